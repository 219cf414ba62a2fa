//! The JSON view of a canvas document, in the seed's MongoDB canvas shape.
//!
//! ```text
//! { name, description, project_id, owner_id,
//!   layout: { type, columns, rowHeight, breakpoints: { lg, md, sm, xs } },
//!   blocks: [ { id, type, position: { x, y, w, h }, content: {..}, metadata: {..} }, .. ],
//!   sharing: { visibility, permissions: [ { user_id, role, granted_at, granted_by } ],
//!              public_link, embed_settings: { enabled, allowed_domains } },
//!   metadata: { tags: [..] } }
//! ```
//!
//! Blocks are listed by `(position.y, position.x, id)`; grants by user id. Shared types are
//! converted with yrs's own `to_json` (a `Y.Text` becomes its string); integral numbers come
//! out as JSON integers whether they were stored as integers or as floats (JS numbers).
//! The view never fails: a document mid-edit, or holding values of the wrong type, yields
//! the schema's defaults for what is missing (the caller adds `id`, `version`,
//! `interactions` and `metadata.created_at/updated_at/version_history`).

use serde_json::{Map as JsonMap, Value, json};
use yrs::types::ToJson;
use yrs::{Any, Map, MapRef, Out, ReadTxn};

use crate::blocks::{self, Position};
use crate::schema::{
    BLOCKS, CONTENT, DEFAULT_BREAKPOINTS, DEFAULT_ROW_HEIGHT, LAYOUT, META, METADATA, POSITION,
};
use crate::sharing;
use crate::values::out_i64;

/// Converts a yrs [`Any`] to JSON with yrs's serializer (integral numbers become integers,
/// `undefined` becomes `null`, non-finite floats become `null`).
pub fn any_to_json(any: &Any) -> Value {
    serde_json::to_value(any).unwrap_or(Value::Null)
}

/// Converts any value read from the document (primitive or shared type, recursively) to JSON.
pub fn out_to_json<T: ReadTxn>(txn: &T, out: &Out) -> Value {
    any_to_json(&out.to_json(txn))
}

fn get<T: ReadTxn>(txn: &T, map: Option<&MapRef>, key: &str) -> Option<Out> {
    map?.get(txn, key)
}

fn string_or_null<T: ReadTxn>(txn: &T, map: Option<&MapRef>, key: &str) -> Value {
    match get(txn, map, key) {
        Some(Out::Any(Any::String(s))) => Value::String(s.to_string()),
        _ => Value::Null,
    }
}

fn object_at<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Value {
    match map.get(txn, key).map(|o| out_to_json(txn, &o)) {
        Some(v @ Value::Object(_)) => v,
        _ => Value::Object(JsonMap::new()),
    }
}

/// The whole canvas as JSON (see the module documentation for the shape).
pub fn canvas_json<T: ReadTxn>(txn: &T) -> Value {
    let meta = txn.get_map(META);
    let meta = meta.as_ref();

    let name = match string_or_null(txn, meta, "name") {
        Value::Null => Value::String(String::new()),
        v => v,
    };
    let tags: Vec<Value> = match get(txn, meta, "tags").map(|o| out_to_json(txn, &o)) {
        Some(Value::Array(items)) => items.into_iter().filter(Value::is_string).collect(),
        _ => Vec::new(),
    };

    json!({
        "name": name,
        "description": string_or_null(txn, meta, "description"),
        "project_id": string_or_null(txn, meta, "project_id"),
        "owner_id": string_or_null(txn, meta, "owner_id"),
        "layout": layout_json(txn),
        "blocks": blocks_json(txn),
        "sharing": sharing_json(txn),
        "metadata": { "tags": tags },
    })
}

/// The `layout` object, with defaults for anything missing or ill-typed.
pub fn layout_json<T: ReadTxn>(txn: &T) -> Value {
    let layout = txn.get_map(LAYOUT);
    let layout = layout.as_ref();
    let kind = match string_or_null(txn, layout, "type") {
        Value::Null => Value::String("grid".into()),
        v => v,
    };
    let row_height = get(txn, layout, "rowHeight")
        .as_ref()
        .and_then(out_i64)
        .filter(|&h| h > 0)
        .unwrap_or(DEFAULT_ROW_HEIGHT);

    let mut breakpoints: JsonMap<String, Value> = DEFAULT_BREAKPOINTS
        .iter()
        .map(|&(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    if let Some(Out::YMap(bp)) = get(txn, layout, "breakpoints") {
        for (key, value) in bp.iter(txn) {
            if let Some(px) = out_i64(&value) {
                breakpoints.insert(key.to_owned(), Value::from(px));
            }
        }
    } else if let Some(Out::Any(Any::Map(bp))) = get(txn, layout, "breakpoints") {
        for (key, value) in bp.iter() {
            if let Any::Number(n) = value
                && let Some(px) = n.as_i64()
            {
                breakpoints.insert(key.clone(), Value::from(px));
            }
        }
    }

    json!({
        "type": kind,
        "columns": blocks::columns(txn),
        "rowHeight": row_height,
        "breakpoints": breakpoints,
    })
}

fn position_of<T: ReadTxn>(txn: &T, block: &MapRef) -> Position {
    let pos = match block.get(txn, POSITION) {
        Some(Out::YMap(pos)) => Some(pos),
        _ => None,
    };
    let int = |key: &str, default: i64| {
        pos.as_ref()
            .and_then(|p| p.get(txn, key))
            .as_ref()
            .and_then(out_i64)
            .unwrap_or(default)
    };
    Position {
        x: int("x", 0),
        y: int("y", 0),
        w: int("w", 1),
        h: int("h", 1),
    }
}

fn block_value<T: ReadTxn>(txn: &T, id: &str, block: &MapRef) -> (Position, Value) {
    let position = position_of(txn, block);
    let kind = match block.get(txn, "type") {
        Some(Out::Any(Any::String(s))) => s.to_string(),
        _ => String::new(),
    };
    let mut content = object_at(txn, block, CONTENT);
    if kind == blocks::NARRATIVE {
        crate::narrative::render_into(&mut content);
    }
    let value = json!({
        "id": id,
        "type": kind,
        "position": { "x": position.x, "y": position.y, "w": position.w, "h": position.h },
        "content": content,
        "metadata": object_at(txn, block, METADATA),
    });
    (position, value)
}

/// One block as JSON, or `None` if there is no block map with this id. The block's `id` is
/// always its key in `blocks`.
pub fn block_json<T: ReadTxn>(txn: &T, id: &str) -> Option<Value> {
    let blocks = txn.get_map(BLOCKS)?;
    match blocks.get(txn, id)? {
        Out::YMap(block) => Some(block_value(txn, id, &block).1),
        _ => None,
    }
}

/// Every block as JSON, ordered by `(position.y, position.x, id)`. Entries of `blocks` that
/// are not maps are skipped; a block with a missing or ill-typed position is placed at
/// (0, 0) with size 1 x 1.
pub fn blocks_json<T: ReadTxn>(txn: &T) -> Vec<Value> {
    let Some(blocks) = txn.get_map(BLOCKS) else {
        return Vec::new();
    };
    let mut list: Vec<(i64, i64, String, Value)> = blocks
        .iter(txn)
        .filter_map(|(id, out)| match out {
            Out::YMap(block) => {
                let (p, v) = block_value(txn, id, &block);
                Some((p.y, p.x, id.to_owned(), v))
            }
            _ => None,
        })
        .collect();
    list.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    list.into_iter().map(|(_, _, _, v)| v).collect()
}

/// The `sharing` object, as read by [`sharing::sharing`] (so as tolerant as it is).
pub fn sharing_json<T: ReadTxn>(txn: &T) -> Value {
    let s = sharing::sharing(txn);
    let permissions: Vec<Value> = s
        .grants
        .iter()
        .map(|g| {
            json!({
                "user_id": g.user_id,
                "role": g.role.as_str(),
                "granted_at": g.granted_at,
                "granted_by": g.granted_by,
            })
        })
        .collect();
    json!({
        "visibility": s.visibility.as_str(),
        "permissions": permissions,
        "public_link": s.public_link,
        "embed_settings": {
            "enabled": s.embed_enabled,
            "allowed_domains": s.allowed_domains,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use crate::blocks::{NARRATIVE, NewBlock, add_block};
    use crate::init::{CanvasMeta, init_canvas};
    use crate::new_doc;
    use crate::sharing::{Visibility, grant, set_visibility};
    use crate::text::insert_text;
    use yrs::{MapPrelim, Transact, WriteTxn};

    fn nb(id: &str, kind: &str, pos: (i64, i64, i64, i64), content: Value) -> NewBlock {
        NewBlock {
            id: id.into(),
            block_type: kind.into(),
            position: Position {
                x: pos.0,
                y: pos.1,
                w: pos.2,
                h: pos.3,
            },
            content,
            created_by: "u1".into(),
            created_at: "2024-01-15T10:30:00Z".into(),
        }
    }

    #[test]
    fn empty_doc_has_defaults() {
        let d = new_doc();
        let v = canvas_json(&d.transact());
        assert_eq!(
            v,
            json!({
                "name": "", "description": null, "project_id": null, "owner_id": null,
                "layout": {"type": "grid", "columns": 12, "rowHeight": 50,
                           "breakpoints": {"lg": 1200, "md": 996, "sm": 768, "xs": 480}},
                "blocks": [],
                "sharing": {"visibility": "private", "permissions": [], "public_link": null,
                            "embed_settings": {"enabled": false, "allowed_domains": []}},
                "metadata": {"tags": []},
            })
        );
    }

    #[test]
    fn seed_shape() {
        let d = new_doc();
        let mut txn = d.transact_mut();
        init_canvas(
            &mut txn,
            &CanvasMeta {
                name: "Q4 Sales Analysis".into(),
                description: Some("Analysis of Q4 2024 sales performance".into()),
                project_id: "p".into(),
                owner_id: "o".into(),
                tags: vec!["sales".into(), "q4".into(), "regional".into()],
            },
        );
        add_block(
            &mut txn,
            &nb(
                "block_3",
                "table",
                (0, 4, 12, 6),
                json!({"title": "Detailed", "pagination": {"enabled": true, "pageSize": 20}}),
            ),
        )
        .expect("add");
        add_block(
            &mut txn,
            &nb(
                "block_2",
                NARRATIVE,
                (6, 0, 6, 4),
                json!({"text": "## Key", "data_bindings": [{"key": "m", "value": 25.3}]}),
            ),
        )
        .expect("add");
        add_block(
            &mut txn,
            &nb(
                "block_1",
                "chart",
                (0, 0, 6, 4),
                json!({"chart_type": "bar", "style": {"colors": ["#1f77b4"]}}),
            ),
        )
        .expect("add");
        insert_text(&mut txn, "block_2", 6, " Insights", "u2", "t2").expect("type");
        grant(&mut txn, "u9", Role::Editor, "o", "2024-01-10T09:00:00Z");
        set_visibility(&mut txn, Visibility::Public);

        let v = canvas_json(&txn);
        assert_eq!(v["name"], "Q4 Sales Analysis");
        assert_eq!(v["metadata"]["tags"], json!(["sales", "q4", "regional"]));
        let ids: Vec<&str> = v["blocks"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert_eq!(ids, vec!["block_1", "block_2", "block_3"]);
        assert_eq!(
            v["blocks"][1]["content"],
            json!({"text": "## Key Insights", "data_bindings": [{"key": "m", "value": 25.3}]})
        );
        assert_eq!(
            v["blocks"][2]["content"]["pagination"],
            json!({"enabled": true, "pageSize": 20})
        );
        assert_eq!(
            v["blocks"][2]["position"],
            json!({"x": 0, "y": 4, "w": 12, "h": 6})
        );
        assert_eq!(
            v["blocks"][1]["metadata"],
            json!({"created_by": "u1", "created_at": "2024-01-15T10:30:00Z",
                   "last_modified_by": "u2", "last_modified_at": "t2"})
        );
        assert_eq!(
            v["sharing"]["permissions"],
            json!([{"user_id": "u9", "role": "editor",
                    "granted_at": "2024-01-10T09:00:00Z", "granted_by": "o"}])
        );
        assert_eq!(v["sharing"]["visibility"], "public");
        assert_eq!(v["layout"]["columns"], json!(12));
    }

    #[test]
    fn js_floats_render_as_integers() {
        let d = new_doc();
        let mut txn = d.transact_mut();
        let blocks = txn.get_or_insert_map(BLOCKS);
        let block = blocks.insert(
            &mut txn,
            "b",
            MapPrelim::from([("type", yrs::In::from("chart"))]),
        );
        block.insert(
            &mut txn,
            POSITION,
            MapPrelim::from([
                ("x", yrs::In::from(2.0f64)),
                ("y", yrs::In::from(1.0f64)),
                ("w", yrs::In::from(3.0f64)),
                ("h", yrs::In::from(4.0f64)),
            ]),
        );
        block.insert(
            &mut txn,
            CONTENT,
            MapPrelim::from([
                ("n", yrs::In::from(5.0f64)),
                ("f", yrs::In::from(2.5f64)),
                ("u", yrs::In::from(Any::Undefined)),
            ]),
        );
        let layout = txn.get_or_insert_map(LAYOUT);
        layout.insert(&mut txn, "rowHeight", 40.0f64);
        let v = canvas_json(&txn);
        let b = &v["blocks"][0];
        assert_eq!(b["position"], json!({"x": 2, "y": 1, "w": 3, "h": 4}));
        assert!(b["content"]["n"].is_i64());
        assert_eq!(b["content"], json!({"n": 5, "f": 2.5, "u": null}));
        assert_eq!(b["metadata"], json!({}));
        assert_eq!(v["layout"]["rowHeight"], json!(40));
    }

    #[test]
    fn garbage_is_skipped_or_defaulted() {
        let d = new_doc();
        let mut txn = d.transact_mut();
        let blocks = txn.get_or_insert_map(BLOCKS);
        blocks.insert(&mut txn, "junk", 42);
        blocks.insert(&mut txn, "bare", MapPrelim::default());
        let meta = txn.get_or_insert_map(META);
        meta.insert(&mut txn, "name", 7);
        meta.insert(&mut txn, "tags", "not-an-array");
        let layout = txn.get_or_insert_map(LAYOUT);
        layout.insert(
            &mut txn,
            "breakpoints",
            MapPrelim::from([("lg", yrs::In::from("x")), ("xl", yrs::In::from(1600))]),
        );
        let v = canvas_json(&txn);
        assert_eq!(v["name"], "");
        assert_eq!(v["metadata"]["tags"], json!([]));
        assert_eq!(
            v["blocks"],
            json!([{"id": "bare", "type": "", "position": {"x": 0, "y": 0, "w": 1, "h": 1},
                    "content": {}, "metadata": {}}])
        );
        assert_eq!(
            v["layout"]["breakpoints"],
            json!({"lg": 1200, "md": 996, "sm": 768, "xs": 480, "xl": 1600})
        );
        assert_eq!(block_json(&txn, "junk"), None);
        assert!(block_json(&txn, "bare").is_some());
    }
}
