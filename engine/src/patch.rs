//! A block edit asked for as JSON (the REST `PATCH /canvases/{id}/blocks/{block_id}`), made
//! the way a Yjs client would make it: on a copy of the document, by a client id of its own,
//! writing only the position keys and content keys asked for (never `metadata`). The result
//! is an ordinary v1 update that the server then judges with the caller's role like any
//! client's update (the inspector decides: grid, schema, forged values), so a REST edit can
//! do nothing a WebSocket client could not.
//!
//! - `position`: any of `x`, `y`, `w`, `h`; each value is written as given (the inspector
//!   refuses what is not an integer inside the grid).
//! - `content`: a partial object, merged key by key (JSON merge patch): a key with a value is
//!   set (written only if it differs), a key with `null` is removed. A narrative's `text` is
//!   edited in place between the common prefix and suffix (people typing in it keep their
//!   cursors); `data_bindings` is stored as a `Y.Array`, as everywhere.

use crate::blocks::{DATA_BINDINGS_KEY, NARRATIVE, TEXT_KEY};
use crate::canvas::DocError;
use crate::new_doc;
use crate::schema::{BLOCKS, CONTENT, POSITION, POSITION_KEYS};
use crate::values::{child_map, string_at};
use crate::versions::sync_text;
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value};
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Any, ArrayPrelim, Map, Out, ReadTxn, TextRef, Transact, Update};

/// What a `PATCH` of a block asks for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockPatch {
    /// Position keys to set (`x`, `y`, `w`, `h`; any subset).
    pub position: Option<JsonMap<String, Value>>,
    /// Content keys to set, or to remove (`null`).
    pub content: Option<JsonMap<String, Value>>,
}

/// Why a patch could not be made into an update. Nothing is changed either way.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The document's state does not load.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// There is no block with this id.
    #[error("no block {0:?}")]
    NoSuchBlock(String),
    /// The patch names something a block does not have, or gives a value that cannot be
    /// stored at all.
    #[error("{0}")]
    Invalid(String),
    /// The block lacks a part the patch needs (its position or content map).
    #[error("block {id:?} is malformed: {what}")]
    Malformed {
        /// The block id.
        id: String,
        /// The missing part.
        what: &'static str,
    },
}

fn to_any(what: &str, value: &Value) -> Result<Any, PatchError> {
    yrs::encoding::serde::to_any(value)
        .map_err(|e| PatchError::Invalid(format!("{what}: cannot be stored: {e}")))
}

/// The update that applies `patch` to block `block_id` of the document whose full state is
/// `state` (a v1 update), written by a fresh client id; `None` if it changes nothing.
pub fn block_patch_update(
    state: &[u8],
    block_id: &str,
    patch: &BlockPatch,
) -> Result<Option<Vec<u8>>, PatchError> {
    let doc = new_doc();
    {
        let update = Update::decode_v1(state).map_err(DocError::Decode)?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(DocError::Apply)?;
    }
    let mut txn = doc.transact_mut();
    let block = txn
        .get_map(BLOCKS)
        .and_then(|blocks| child_map(&txn, &blocks, block_id))
        .ok_or_else(|| PatchError::NoSuchBlock(block_id.to_owned()))?;
    let malformed = |what| PatchError::Malformed {
        id: block_id.to_owned(),
        what,
    };
    // Check everything before writing anything.
    if let Some(position) = &patch.position
        && let Some(key) = position
            .keys()
            .find(|k| !POSITION_KEYS.contains(&k.as_str()))
    {
        return Err(PatchError::Invalid(format!(
            "position has no key {key:?}: only x, y, w and h"
        )));
    }
    let narrative = string_at(&txn, &block, "type").as_deref() == Some(NARRATIVE);
    let mut writes: Vec<(&str, Write)> = Vec::new();
    if let Some(content) = &patch.content {
        for (key, value) in content {
            let write = match value {
                Value::Null => Write::Remove,
                _ if narrative && key == TEXT_KEY => Write::Text(
                    value
                        .as_str()
                        .ok_or_else(|| {
                            PatchError::Invalid(
                                "content.text of a narrative must be a string".into(),
                            )
                        })?
                        .to_owned(),
                ),
                Value::Array(items) if key == DATA_BINDINGS_KEY => Write::Array(
                    items
                        .iter()
                        .map(|v| to_any("content.data_bindings", v))
                        .collect::<Result<_, _>>()?,
                ),
                _ => Write::Value(to_any(&format!("content.{key}"), value)?),
            };
            writes.push((key.as_str(), write));
        }
    }
    let position_values: Vec<(&str, Any)> = match &patch.position {
        Some(position) => position
            .iter()
            .map(|(k, v)| Ok((k.as_str(), to_any(&format!("position.{k}"), v)?)))
            .collect::<Result<_, PatchError>>()?,
        None => Vec::new(),
    };
    if !position_values.is_empty() {
        let map = child_map(&txn, &block, POSITION).ok_or_else(|| malformed("no position map"))?;
        for (key, value) in position_values {
            map.try_update(&mut txn, key, value);
        }
    }
    if !writes.is_empty() {
        let content =
            child_map(&txn, &block, CONTENT).ok_or_else(|| malformed("no content map"))?;
        for (key, write) in writes {
            match write {
                Write::Remove => {
                    if content.contains_key(&txn, key) {
                        content.remove(&mut txn, key);
                    }
                }
                Write::Text(wanted) => match content.get(&txn, key) {
                    Some(Out::YText(text)) => {
                        sync_text(&mut txn, &text, &wanted);
                    }
                    _ => {
                        // no text yet (or not a Y.Text): a new one
                        let _: TextRef =
                            content.insert(&mut txn, key, yrs::TextPrelim::new(wanted));
                    }
                },
                Write::Array(items) => {
                    let same = match content.get(&txn, key) {
                        Some(Out::YArray(array)) => {
                            array.to_json(&txn) == Any::Array(items.clone().into())
                        }
                        _ => false,
                    };
                    if !same {
                        content.insert(&mut txn, key, ArrayPrelim::from(items));
                    }
                }
                Write::Value(value) => {
                    content.try_update(&mut txn, key, value);
                }
            }
        }
    }
    if !txn.has_changes() {
        return Ok(None);
    }
    Ok(Some(txn.encode_update_v1()))
}

/// One content write of a patch.
enum Write {
    Remove,
    Text(String),
    Array(Vec<Any>),
    Value(Any),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{self, NewBlock, Position};
    use crate::canvas::CanvasDoc;
    use crate::init::{self, CanvasMeta};
    use crate::{Role, json};
    use serde_json::json;

    fn canvas() -> CanvasDoc {
        let mut canvas = CanvasDoc::new();
        let (added, _) = canvas.edit(|txn| {
            init::init_canvas(
                txn,
                &CanvasMeta {
                    name: "c".into(),
                    description: None,
                    project_id: "p".into(),
                    owner_id: "o".into(),
                    tags: vec![],
                },
            );
            for (id, kind) in [("c1", "chart"), ("n1", "narrative")] {
                blocks::add_block(
                    txn,
                    &NewBlock {
                        id: id.into(),
                        block_type: kind.into(),
                        position: Position {
                            x: 0,
                            y: 0,
                            w: 6,
                            h: 4,
                        },
                        content: json!({"title": "Sales", "text": "Revenue grew"}),
                        created_by: "u1".into(),
                        created_at: "2024-01-15T10:30:00Z".into(),
                    },
                )?;
            }
            Ok::<_, blocks::EditError>(())
        });
        added.expect("blocks added");
        canvas
    }

    fn patch(value: Value) -> BlockPatch {
        serde_json::from_value(value).expect("a patch")
    }

    fn block(canvas: &CanvasDoc, id: &str) -> Value {
        json::block_json(&canvas.doc().transact(), id).expect("block")
    }

    #[test]
    fn a_patch_is_an_update_an_editor_may_send() {
        let mut canvas = canvas();
        let p = patch(json!({
            "position": {"x": 6, "y": 2},
            "content": {"title": "Revenue", "subtitle": "by region"}
        }));
        let update = block_patch_update(&canvas.encode_state(), "c1", &p)
            .expect("patched")
            .expect("a change");
        canvas
            .apply_checked(Role::Editor, &update)
            .expect("accepted");
        let b = block(&canvas, "c1");
        assert_eq!(b["position"], json!({"x": 6, "y": 2, "w": 6, "h": 4}));
        assert_eq!(b["content"]["title"], "Revenue");
        assert_eq!(b["content"]["subtitle"], "by region");
        // the same patch again changes nothing
        assert!(
            block_patch_update(&canvas.encode_state(), "c1", &p)
                .expect("patched")
                .is_none()
        );
    }

    #[test]
    fn text_is_edited_in_place_and_null_removes_a_key() {
        let mut canvas = canvas();
        let p = patch(json!({"content": {"text": "Revenue grew 25%", "title": null}}));
        let update = block_patch_update(&canvas.encode_state(), "n1", &p)
            .expect("patched")
            .expect("a change");
        canvas
            .apply_checked(Role::Editor, &update)
            .expect("accepted");
        let b = block(&canvas, "n1");
        assert_eq!(b["content"]["text"], "Revenue grew 25%");
        assert!(b["content"].get("title").is_none(), "{b}");
    }

    #[test]
    fn the_inspector_judges_what_a_patch_writes() {
        let mut canvas = canvas();
        let outside = patch(json!({"position": {"x": 10}}));
        let update = block_patch_update(&canvas.encode_state(), "c1", &outside)
            .expect("made")
            .expect("a change");
        let refusal = canvas
            .apply_checked(Role::Editor, &update)
            .expect_err("outside the grid");
        assert_eq!(refusal.code.as_str(), "invalid_schema");
        let viewer = block_patch_update(
            &canvas.encode_state(),
            "c1",
            &patch(json!({"position": {"x": 1}})),
        )
        .expect("made")
        .expect("a change");
        let refusal = canvas
            .apply_checked(Role::Viewer, &viewer)
            .expect_err("viewer");
        assert_eq!(refusal.code.as_str(), "read_only");
        assert_eq!(block(&canvas, "c1")["position"]["x"], 0);
    }

    #[test]
    fn bad_patches_are_errors_before_anything_is_written() {
        let canvas = canvas();
        let state = canvas.encode_state();
        assert!(matches!(
            block_patch_update(&state, "nope", &patch(json!({"position": {"x": 1}}))),
            Err(PatchError::NoSuchBlock(_))
        ));
        assert!(matches!(
            block_patch_update(&state, "c1", &patch(json!({"position": {"z": 1}}))),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            block_patch_update(&state, "n1", &patch(json!({"content": {"text": 3}}))),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            block_patch_update(b"\xff\xff\xff", "c1", &BlockPatch::default()),
            Err(PatchError::Doc(_))
        ));
        assert!(serde_json::from_value::<BlockPatch>(json!({"metadata": {}})).is_err());
    }
}
