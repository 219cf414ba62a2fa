//! The canvas as JSON in the seed's MongoDB shape: the engine's view of the document plus
//! what the server keeps beside it (id, version, timestamps, interactions).

use canvas_storage::{CanvasRecord, VersionRecord};
use serde_json::{Value, json};

/// Completes the engine's JSON view of a document with the record's fields.
pub fn canvas_view(record: &CanvasRecord, mut doc: Value) -> Value {
    let created_at = record.created_at.to_rfc3339();
    let updated_at = record.updated_at.to_rfc3339();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("id".into(), json!(record.id));
        obj.insert("version".into(), json!(record.version));
        obj.entry("project_id").or_insert(json!(record.project_id));
        obj.entry("owner_id").or_insert(json!(record.owner_id));
        obj.entry("interactions").or_insert(json!({
            "views": 0,
            "last_viewed_at": null,
            "comments_count": 0,
            "favorites_count": 0,
        }));
        let metadata = obj.entry("metadata").or_insert(json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.entry("tags").or_insert(json!([]));
            metadata.insert("created_at".into(), json!(created_at));
            metadata.insert("updated_at".into(), json!(updated_at));
            metadata.entry("version_history").or_insert(json!([{
                "version": 1,
                "changes": "Initial creation",
                "changed_by": record.owner_id,
                "changed_at": created_at,
                "kind": "initial",
            }]));
        }
    }
    doc
}

/// Sets a view's `version` (the latest number) and `metadata.version_history` (the records,
/// oldest first, as in the seed) from a canvas's history; an empty history changes nothing.
pub fn with_history(mut view: Value, history: &[VersionRecord]) -> Value {
    let Some(last) = history.last() else {
        return view;
    };
    view["version"] = json!(last.version);
    if let Some(metadata) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("version_history".into(), json!(history));
    }
    view
}
