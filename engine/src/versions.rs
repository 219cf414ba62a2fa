//! Versions of a canvas: what changed between two of them, and restoring one as a forward
//! change.
//!
//! A version is a full snapshot of the document (a v1 update, see [`load_version`]). Nothing
//! here rewinds history: a restore is an ordinary edit made in the live document's write
//! transaction, so it merges with concurrent edits, is stored and relayed like any other
//! update, and can itself be undone by restoring another version.
//!
//! - [`diff`] compares two JSON views (as made by [`crate::json::canvas_json`]) block by
//!   block: added, removed, moved or resized, content changed.
//! - [`restore`] makes `meta`, `layout` and `blocks` of the live document equal to a
//!   version's. It writes only what differs: a map key whose value is already right is not
//!   touched, nested maps are compared key by key, and a narrative `Y.Text` is edited in
//!   place (the differing middle is replaced, keeping the common prefix and suffix) so
//!   people typing in that text keep their cursors and their concurrent keystrokes.
//!   **`sharing` is never restored**: permissions, visibility and links are not content,
//!   and a content restore by an editor must not roll back an admin's grants or
//!   revocations.
//! - [`restore_block`] brings one block back as it was in a version (re-created if it was
//!   deleted since, otherwise edited in place like [`restore`] does).
//!
//! A block's `metadata` (who created and last changed it) is left alone on blocks that still
//! exist, and copied from the version when a deleted block is re-created (its creator stays
//! its creator); the server then stamps the blocks a restore changed with the restorer (see
//! [`crate::attribution`]).

use crate::blocks::{Position, columns};
use crate::canvas::DocError;
use crate::new_doc;
use crate::schema::{BLOCKS, LAYOUT, META, METADATA, POSITION};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, Doc, GetString, In, Map, MapPrelim, MapRef, OffsetKind, Out, ReadTxn, Text,
    TextPrelim, TextRef, Transact, TransactionMut, Update, WriteTxn,
};

/// Why a block could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The version has no block with this id.
    #[error("block {0:?} is not in this version")]
    NoSuchBlock(String),
    /// The block's position in the version does not fit the live grid (its columns changed).
    #[error("block {id:?} at x={} w={} does not fit the current {columns} columns", .position.x, .position.w)]
    OutOfGrid {
        /// The block id.
        id: String,
        /// Its position in the version.
        position: Position,
        /// The live grid's column count.
        columns: i64,
    },
}

/// A block whose place or size differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// The block id.
    pub id: String,
    /// Its position in the older document.
    pub from: Position,
    /// Its position in the newer document.
    pub to: Position,
}

/// What changed, block by block, between two documents. Every list is sorted by block id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDiff {
    /// Blocks only in the newer document.
    pub added: Vec<String>,
    /// Blocks only in the older document.
    pub removed: Vec<String>,
    /// Blocks in both whose position (x, y, w or h) differs.
    pub moved: Vec<Moved>,
    /// Blocks in both whose type or content differs.
    pub content_changed: Vec<String>,
}

fn position_of(block: &Value) -> Position {
    let int = |key: &str| block["position"][key].as_i64().unwrap_or(0);
    Position {
        x: int("x"),
        y: int("y"),
        w: int("w"),
        h: int("h"),
    }
}

fn blocks_by_id(view: &Value) -> BTreeMap<&str, &Value> {
    view["blocks"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| Some((b["id"].as_str()?, b)))
                .collect()
        })
        .unwrap_or_default()
}

/// Compares two JSON views of a canvas (the `blocks` arrays of
/// [`crate::json::canvas_json`]). Block `metadata` (attribution) is not compared.
pub fn diff(from: &Value, to: &Value) -> VersionDiff {
    let old = blocks_by_id(from);
    let new = blocks_by_id(to);
    let mut out = VersionDiff::default();
    for (id, after) in &new {
        let Some(before) = old.get(id) else {
            out.added.push((*id).to_owned());
            continue;
        };
        let (p0, p1) = (position_of(before), position_of(after));
        if p0 != p1 {
            out.moved.push(Moved {
                id: (*id).to_owned(),
                from: p0,
                to: p1,
            });
        }
        if before["type"] != after["type"] || before["content"] != after["content"] {
            out.content_changed.push((*id).to_owned());
        }
    }
    out.removed = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .map(|id| (*id).to_owned())
        .collect();
    out
}

/// A stored version's state as a document of its own, to read from (never to edit).
pub fn load_version(state: &[u8]) -> Result<Doc, DocError> {
    let doc = new_doc();
    if !state.is_empty() {
        let update = Update::decode_v1(state).map_err(DocError::Decode)?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(DocError::Apply)?;
    }
    Ok(doc)
}

/// Makes `meta`, `layout` and `blocks` of the document under `txn` equal to those of
/// `target` (read with `ttxn`), writing only what differs. `sharing` is left as it is.
/// Returns the ids of the blocks that were created or changed (not those removed), sorted.
pub fn restore<T: ReadTxn>(txn: &mut TransactionMut, ttxn: &T) -> Vec<String> {
    for root in [META, LAYOUT] {
        let live = txn.get_or_insert_map(root);
        match ttxn.get_map(root) {
            Some(target) => {
                sync_map(txn, &live, ttxn, &target, &[]);
            }
            None => {
                clear_map(txn, &live);
            }
        }
    }
    let live = txn.get_or_insert_map(BLOCKS);
    let target = ttxn.get_map(BLOCKS);
    let wanted: BTreeMap<String, Out> = target
        .as_ref()
        .map(|t| t.iter(ttxn).map(|(k, v)| (k.to_owned(), v)).collect())
        .unwrap_or_default();
    let existing: Vec<String> = live.keys(txn).map(str::to_owned).collect();
    for id in existing {
        if !wanted.contains_key(&id) {
            live.remove(txn, &id);
        }
    }
    let mut changed = Vec::new();
    for (id, value) in &wanted {
        if put_block(txn, &live, id, ttxn, value) {
            changed.push(id.clone());
        }
    }
    changed
}

/// Brings block `id` back as it is in `target`: re-created if the live document lacks it,
/// otherwise edited in place (its metadata kept). Returns whether anything changed.
pub fn restore_block<T: ReadTxn>(
    txn: &mut TransactionMut,
    ttxn: &T,
    id: &str,
) -> Result<bool, RestoreError> {
    let value = ttxn
        .get_map(BLOCKS)
        .and_then(|blocks| blocks.get(ttxn, id))
        .filter(|v| matches!(v, Out::YMap(_)))
        .ok_or_else(|| RestoreError::NoSuchBlock(id.to_owned()))?;
    if let Out::YMap(block) = &value
        && let Some(Out::YMap(pos)) = block.get(ttxn, POSITION)
    {
        let int = |k: &str| match pos.get(ttxn, k) {
            Some(Out::Any(Any::Number(n))) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        let position = Position {
            x: int("x"),
            y: int("y"),
            w: int("w"),
            h: int("h"),
        };
        let columns = columns(&*txn);
        if position.check(columns).is_err() {
            return Err(RestoreError::OutOfGrid {
                id: id.to_owned(),
                position,
                columns,
            });
        }
    }
    let live = txn.get_or_insert_map(BLOCKS);
    Ok(put_block(txn, &live, id, ttxn, &value))
}

/// Sets `blocks[id]` to `value` (from the target): in place if both are maps (keeping the
/// live metadata), else as a deep copy. Returns whether anything changed.
fn put_block<T: ReadTxn>(
    txn: &mut TransactionMut,
    live: &MapRef,
    id: &str,
    ttxn: &T,
    value: &Out,
) -> bool {
    match (live.get(txn, id), value) {
        (Some(Out::YMap(current)), Out::YMap(target)) => {
            sync_map(txn, &current, ttxn, target, &[METADATA])
        }
        _ => {
            live.insert(txn, id, deep_copy(ttxn, value));
            true
        }
    }
}

fn clear_map(txn: &mut TransactionMut, map: &MapRef) -> bool {
    let keys: Vec<String> = map.keys(txn).map(str::to_owned).collect();
    for key in &keys {
        map.remove(txn, key);
    }
    !keys.is_empty()
}

/// Makes `live` equal to `target`, key by key, leaving the keys in `keep` alone (unless the
/// live map lacks them). Returns whether anything changed.
fn sync_map<T: ReadTxn>(
    txn: &mut TransactionMut,
    live: &MapRef,
    ttxn: &T,
    target: &MapRef,
    keep: &[&str],
) -> bool {
    let mut changed = false;
    let wanted: Vec<(String, Out)> = target.iter(ttxn).map(|(k, v)| (k.to_owned(), v)).collect();
    let existing: Vec<String> = live.keys(txn).map(str::to_owned).collect();
    for key in existing {
        if !keep.contains(&key.as_str()) && !wanted.iter().any(|(k, _)| *k == key) {
            live.remove(txn, &key);
            changed = true;
        }
    }
    for (key, value) in &wanted {
        let current = live.get(txn, key);
        if current.is_some() && keep.contains(&key.as_str()) {
            continue;
        }
        changed |= match (current, value) {
            (Some(Out::YMap(l)), Out::YMap(t)) => sync_map(txn, &l, ttxn, t, &[]),
            (Some(Out::YText(l)), Out::YText(t)) => sync_text(txn, &l, &t.get_string(ttxn)),
            (Some(Out::Any(l)), Out::Any(t)) if l == *t => false,
            (Some(Out::YArray(l)), Out::YArray(t)) if l.to_json(txn) == t.to_json(ttxn) => false,
            (_, value) => {
                live.insert(txn, key.as_str(), deep_copy(ttxn, value));
                true
            }
        };
    }
    changed
}

/// Edits `text` into `wanted` by replacing only the part between their common prefix and
/// common suffix. Returns whether anything changed.
pub(crate) fn sync_text(txn: &mut TransactionMut, text: &TextRef, wanted: &str) -> bool {
    let current = text.get_string(txn);
    if current == wanted {
        return false;
    }
    let prefix: usize = current
        .chars()
        .zip(wanted.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let suffix: usize = current[prefix..]
        .chars()
        .rev()
        .zip(wanted[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let removed = &current[prefix..current.len() - suffix];
    let inserted = &wanted[prefix..wanted.len() - suffix];
    let kind = txn.doc().offset_kind();
    let units = |s: &str| -> u32 {
        let n = match kind {
            OffsetKind::Bytes => s.len(),
            OffsetKind::Utf16 => s.encode_utf16().count(),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let at = units(&current[..prefix]);
    if !removed.is_empty() {
        text.remove_range(txn, at, units(removed));
    }
    if !inserted.is_empty() {
        text.insert(txn, at, inserted);
    }
    true
}

/// A value of the target document as something to insert into the live one (shared types
/// become new shared types with the same content).
fn deep_copy<T: ReadTxn>(ttxn: &T, value: &Out) -> In {
    match value {
        Out::Any(any) => In::Any(any.clone()),
        Out::YMap(map) => In::Map(
            map.iter(ttxn)
                .map(|(k, v)| (k.to_owned(), deep_copy(ttxn, &v)))
                .collect::<MapPrelim>(),
        ),
        Out::YText(text) => In::from(TextPrelim::new(text.get_string(ttxn))),
        Out::YArray(array) => In::Array(array.iter(ttxn).map(|v| deep_copy(ttxn, &v)).collect()),
        other => In::Any(other.to_json(ttxn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CanvasDoc;
    use crate::blocks::{self, NARRATIVE, NewBlock, add_block};
    use crate::init::{CanvasMeta, init_canvas};
    use crate::json::canvas_json;
    use crate::role::Role;
    use crate::sharing::{self, Visibility};
    use crate::text::{self, insert_text};
    use serde_json::json;
    use yrs::updates::encoder::Encode;
    use yrs::{StateVector, Transact};

    fn block(id: &str, kind: &str, x: i64, y: i64, content: Value) -> NewBlock {
        NewBlock {
            id: id.into(),
            block_type: kind.into(),
            position: Position { x, y, w: 6, h: 4 },
            content,
            created_by: "u1".into(),
            created_at: "t0".into(),
        }
    }

    /// A canvas with a chart, a narrative and a table.
    fn canvas() -> CanvasDoc {
        let mut c = CanvasDoc::new();
        c.edit(|txn| {
            init_canvas(
                txn,
                &CanvasMeta {
                    name: "Q4".into(),
                    description: Some("sales".into()),
                    project_id: "p".into(),
                    owner_id: "o".into(),
                    tags: vec!["q4".into()],
                },
            );
            add_block(
                txn,
                &block("chart", "chart", 0, 0, json!({"title": "By region"})),
            )
            .expect("add");
            add_block(
                txn,
                &block(
                    "note",
                    NARRATIVE,
                    6,
                    0,
                    json!({"text": "Hello world", "data_bindings": [{"k": 1}]}),
                ),
            )
            .expect("add");
            add_block(txn, &block("table", "table", 0, 4, json!({"rows": 20}))).expect("add");
        });
        c
    }

    fn view(c: &CanvasDoc) -> Value {
        canvas_json(&c.doc().transact())
    }

    fn restore_from(c: &mut CanvasDoc, state: &[u8]) -> (Vec<String>, Option<Vec<u8>>) {
        let target = load_version(state).expect("loads");
        let ttxn = target.transact();
        c.edit(|txn| restore(txn, &ttxn))
    }

    #[test]
    fn diff_lists_added_removed_moved_and_changed() {
        let mut c = canvas();
        let before = view(&c);
        c.edit(|txn| {
            blocks::remove_block(txn, "table").expect("remove");
            blocks::move_block(txn, "chart", 0, 8, "u2", "t1").expect("move");
            blocks::resize_block(txn, "note", 3, 4, "u2", "t1").expect("resize");
            insert_text(txn, "note", 0, ">> ", "u2", "t1").expect("type");
            add_block(txn, &block("new", "chart", 6, 8, json!({}))).expect("add");
        });
        let after = view(&c);
        let d = diff(&before, &after);
        assert_eq!(d.added, vec!["new"]);
        assert_eq!(d.removed, vec!["table"]);
        assert_eq!(
            d.moved,
            vec![
                Moved {
                    id: "chart".into(),
                    from: Position {
                        x: 0,
                        y: 0,
                        w: 6,
                        h: 4
                    },
                    to: Position {
                        x: 0,
                        y: 8,
                        w: 6,
                        h: 4
                    },
                },
                Moved {
                    id: "note".into(),
                    from: Position {
                        x: 6,
                        y: 0,
                        w: 6,
                        h: 4
                    },
                    to: Position {
                        x: 6,
                        y: 0,
                        w: 3,
                        h: 4
                    },
                },
            ]
        );
        assert_eq!(d.content_changed, vec!["note"]);
        assert_eq!(diff(&after, &after), VersionDiff::default());
    }

    #[test]
    fn restore_makes_content_equal_but_keeps_sharing() {
        let mut c = canvas();
        let version = c.encode_state();
        let version_view = view(&c);
        c.edit(|txn| {
            blocks::remove_block(txn, "table").expect("remove");
            blocks::move_block(txn, "chart", 6, 8, "u2", "t1").expect("move");
            blocks::set_content(txn, "chart", "title", &json!("Changed"), "u2", "t1").expect("set");
            text::delete_text(txn, "note", 0, 6, "u2", "t1").expect("delete");
            add_block(txn, &block("new", "chart", 0, 20, json!({}))).expect("add");
            use yrs::{Map, WriteTxn};
            txn.get_or_insert_map(META).insert(txn, "name", "Renamed");
            sharing::grant(txn, "u9", Role::Editor, "o", "t1");
            sharing::set_visibility(txn, Visibility::Team);
        });
        let sharing_after_edits = view(&c)["sharing"].clone();
        let (changed, update) = restore_from(&mut c, &version);
        assert_eq!(changed, vec!["chart", "note", "table"]);
        let now = view(&c);
        assert_eq!(now["name"], "Q4");
        assert_eq!(
            now["sharing"], sharing_after_edits,
            "sharing is not restored"
        );
        let strip = |v: &Value| {
            let mut v = v.clone();
            for b in v["blocks"].as_array_mut().expect("blocks") {
                b["metadata"] = json!(null);
            }
            v["sharing"] = json!(null);
            v
        };
        assert_eq!(strip(&now), strip(&version_view));
        // The re-created block keeps its creator from the version.
        let table = now["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["id"] == "table"))
            .expect("table is back");
        assert_eq!(table["metadata"]["created_by"], "u1");
        // Restoring again changes nothing and writes nothing.
        let (changed, again) = restore_from(&mut c, &version);
        assert!(changed.is_empty());
        assert_ne!(update, again);
        assert_eq!(again, None, "an equal document needs no update");
    }

    #[test]
    fn text_is_edited_in_place_so_concurrent_typing_survives() {
        let mut server = canvas();
        let version = server.encode_state();
        server.edit(|txn| {
            text::delete_text(txn, "note", 5, 6, "u2", "t1").expect("delete");
            insert_text(txn, "note", 5, " there", "u2", "t1").expect("type");
        });
        assert_eq!(narrative(&server), "Hello there");
        // A client in sync types at the start while the server restores.
        let client = new_doc();
        apply(&client, &server.encode_state());
        let typed = {
            let mut txn = client.transact_mut();
            insert_text(&mut txn, "note", 0, "Hi! ", "c", "t2").expect("type");
            txn.encode_update_v1()
        };
        let (_, restore_update) = restore_from(&mut server, &version);
        assert_eq!(narrative(&server), "Hello world");
        server.apply_trusted(&typed).expect("applies");
        apply(
            &client,
            &restore_update.expect("the restore changes the document"),
        );
        assert_eq!(narrative(&server), "Hi! Hello world");
        let client_text = crate::text::narrative(&client.transact(), "note");
        assert_eq!(client_text.as_deref(), Some("Hi! Hello world"));
        assert_eq!(
            server.encode_state_vector(),
            client.transact().state_vector().encode_v1()
        );
    }

    #[test]
    fn restores_converge_with_a_concurrent_editor() {
        let mut server = canvas();
        let version = server.encode_state();
        server.edit(|txn| {
            blocks::remove_block(txn, "chart").expect("remove");
            blocks::move_block(txn, "table", 6, 10, "u2", "t1").expect("move");
        });
        let client = new_doc();
        apply(&client, &server.encode_state());
        let concurrent = {
            let mut txn = client.transact_mut();
            add_block(&mut txn, &block("mine", "chart", 0, 30, json!({}))).expect("add");
            blocks::move_block(&mut txn, "table", 0, 12, "c", "t2").expect("move");
            txn.encode_update_v1()
        };
        let (_, restore_update) = restore_from(&mut server, &version);
        server.apply_trusted(&concurrent).expect("applies");
        apply(
            &client,
            &restore_update.expect("the restore changes the document"),
        );
        let s = view(&server);
        assert_eq!(
            s,
            canvas_json(&client.transact()),
            "both sides see the same document"
        );
        let ids: Vec<&str> = s["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert!(ids.contains(&"chart") && ids.contains(&"mine"), "{ids:?}");
    }

    #[test]
    fn one_block_comes_back() {
        let mut c = canvas();
        let version = c.encode_state();
        c.edit(|txn| {
            blocks::remove_block(txn, "table").expect("remove");
            blocks::remove_block(txn, "chart").expect("remove");
            blocks::set_content(txn, "note", "extra", &json!(1), "u2", "t1").expect("set");
        });
        let target = load_version(&version).expect("loads");
        let ttxn = target.transact();
        let (result, _) = c.edit(|txn| restore_block(txn, &ttxn, "table"));
        assert_eq!(result, Ok(true));
        let (result, _) = c.edit(|txn| restore_block(txn, &ttxn, "note"));
        assert_eq!(result, Ok(true), "the extra key goes");
        let (result, update) = c.edit(|txn| restore_block(txn, &ttxn, "nope"));
        assert_eq!(result, Err(RestoreError::NoSuchBlock("nope".into())));
        assert_eq!(update, None);
        let v = view(&c);
        let ids: Vec<&str> = v["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert_eq!(ids, vec!["note", "table"], "the chart stays deleted");
        assert_eq!(v["blocks"][0]["content"].get("extra"), None);
    }

    #[test]
    fn a_block_that_no_longer_fits_is_refused() {
        let mut c = canvas();
        let version = c.encode_state();
        c.edit(|txn| {
            blocks::remove_block(txn, "note").expect("remove");
            use yrs::{Map, WriteTxn};
            txn.get_or_insert_map(LAYOUT).insert(txn, "columns", 8);
        });
        let target = load_version(&version).expect("loads");
        let ttxn = target.transact();
        let (result, _) = c.edit(|txn| restore_block(txn, &ttxn, "note"));
        assert!(matches!(result, Err(RestoreError::OutOfGrid { .. })));
    }

    fn narrative(c: &CanvasDoc) -> String {
        crate::text::narrative(&c.doc().transact(), "note").expect("narrative")
    }

    fn apply(doc: &yrs::Doc, update: &[u8]) {
        let update = Update::decode_v1(update).expect("decodes");
        doc.transact_mut().apply_update(update).expect("applies");
        let _ = StateVector::default();
    }
}
