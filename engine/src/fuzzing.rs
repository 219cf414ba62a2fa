//! Bodies of the fuzz targets (`fuzz/` at the repository root, run with `cargo fuzz`), as
//! plain functions, so the same code replays the corpus and every crash found in a normal
//! test (`engine/tests/fuzz_corpus.rs`). Not part of the engine's API.
//!
//! Each target takes arbitrary bytes and panics only when an invariant of the engine breaks
//! (that panic is what the fuzzer reports as a crash):
//!
//! | target | what it feeds | what it checks |
//! |---|---|---|
//! | [`frame`] | [`protocol::decode`] on a whole WebSocket frame, then [`protocol::decode_extension`] on a custom message | a decoded message re-encodes to one that decodes the same |
//! | [`extension`] | [`protocol::decode_extension`] on a body (first byte picks ack or error) | a decoded extension round-trips |
//! | [`inspect`] | up to [`MAX_UPDATES`] updates with roles against a seeded canvas ([`seed_canvas`]), through [`CanvasDoc::apply_checked`] one by one and [`CanvasDoc::apply_batch`] as the room does | fast and general path agree; a refused update changes nothing; a viewer changes nothing; an editor never changes `sharing`; an accepted update is a no-op when sent again; the index stays consistent; the batch gives the same verdicts and document |
//! | [`awareness`] | an awareness update buffer, through both checked decoders (a client's frame, another node's payload) and the room's [`PresenceTable`] | what the engine accepts yrs decodes the same; the table's bookkeeping |
//! | [`json`] | an update applied to a fresh document (when the engine's parser accepts it and yrs applies it) | the JSON view, the index build and the loading from storage never fail |
//!
//! [`seeds`] builds a few real inputs per target with the engine's own encoders
//! (`cargo run -p canvas-engine --example fuzz_seeds -- fuzz/corpus`).

use crate::blocks::{self, NewBlock, Position};
use crate::canvas::{Applied, CanvasDoc};
use crate::init::{self, CanvasMeta};
use crate::inspect::{self, DocIndex, Refusal, RefusalCode};
use crate::presence::PresenceTable;
use crate::protocol::{
    self, Ack, AwarenessUpdate, ErrorBody, Extension, MSG_ACK, MSG_ERROR, Message,
};
use crate::sharing::{self, Visibility};
use crate::{Role, json as view, schema, text};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use yrs::encoding::write::Write;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::protocol::MSG_AWARENESS;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, ClientID, Doc, In, Map, MapPrelim, MapRef, Out, ReadTxn, StateVector, Text, TextRef,
    Transact, TransactionMut, Update, WriteTxn,
};

/// The fuzz targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the corpus
/// folders).
pub const TARGETS: [&str; 5] = ["frame", "extension", "inspect", "awareness", "json"];

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "frame" => frame(data),
        "extension" => extension(data),
        "inspect" => inspect(data),
        "awareness" => awareness(data),
        "json" => json(data),
        _ => return false,
    }
    true
}

/// Decodes a WebSocket frame; a decoded message must re-encode into a frame that decodes to
/// the same message, and an extension body that decodes must round-trip too.
pub fn frame(data: &[u8]) {
    let Ok(msg) = protocol::decode(data) else {
        return;
    };
    let again = protocol::decode(&protocol::encode(&msg));
    assert_eq!(again.ok().as_ref(), Some(&msg), "re-encoded frame");
    if let Message::Custom(tag, body) = &msg {
        extension_round_trip(*tag, body);
    }
}

/// Decodes an extension body: the first byte picks the type (even: [`MSG_ACK`], odd:
/// [`MSG_ERROR`]), the rest is the MessagePack body.
pub fn extension(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let tag = if first % 2 == 0 { MSG_ACK } else { MSG_ERROR };
    extension_round_trip(tag, body);
}

fn extension_round_trip(tag: u8, body: &[u8]) {
    let Ok(ext) = protocol::decode_extension(tag, body) else {
        return;
    };
    assert_eq!(ext.tag(), tag);
    let again = protocol::decode_extension(tag, &protocol::extension_body(&ext));
    assert_eq!(again.ok().as_ref(), Some(&ext), "re-encoded extension body");
    let frame = protocol::encode_extension(&ext);
    assert_eq!(
        protocol::decode(&frame).ok(),
        Some(Message::Custom(tag, protocol::extension_body(&ext)))
    );
}

/// Most updates one [`inspect`] input holds.
pub const MAX_UPDATES: usize = 4;

/// Separates the updates of one [`inspect`] input.
pub const SEPARATOR: &[u8] = b"\xf7\xf7\xf7";

/// Splits an [`inspect`] input: byte 0 holds the senders' roles, two bits per update
/// (`0` viewer, `1` editor, `2` admin, `3` owner, lowest bits first); the rest is up to
/// [`MAX_UPDATES`] v1 updates separated by [`SEPARATOR`] (anything after the last
/// separator allowed is part of the last update).
pub fn split_updates(data: &[u8]) -> Vec<(Role, &[u8])> {
    let Some((&roles, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while out.len() < MAX_UPDATES {
        let role = match (roles >> (2 * out.len())) & 3 {
            0 => Role::Viewer,
            1 => Role::Editor,
            2 => Role::Admin,
            _ => Role::Owner,
        };
        let end = if out.len() + 1 == MAX_UPDATES {
            None
        } else {
            rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR)
        };
        match end {
            Some(end) => {
                out.push((role, &rest[..end]));
                rest = &rest[end + SEPARATOR.len()..];
            }
            None => {
                out.push((role, rest));
                break;
            }
        }
    }
    out
}

/// Joins updates and roles into one [`inspect`] input (the inverse of [`split_updates`]).
pub fn join_updates(updates: &[(Role, &[u8])]) -> Vec<u8> {
    let mut roles = 0u8;
    let mut out = vec![0];
    for (i, (role, update)) in updates.iter().take(MAX_UPDATES).enumerate() {
        let bits = match role {
            Role::Viewer => 0,
            Role::Editor => 1,
            Role::Admin => 2,
            Role::Owner => 3,
        };
        roles |= bits << (2 * i);
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(update);
    }
    out[0] = roles;
    out
}

/// Everything a refused update must leave as it was: the state vector and every root.
fn snapshot(canvas: &CanvasDoc) -> (StateVector, Vec<Option<Any>>) {
    let txn = canvas.doc().transact();
    let roots = schema::ROOTS
        .iter()
        .map(|r| txn.get_map(*r).map(|m| m.to_json(&txn)))
        .collect();
    (txn.state_vector(), roots)
}

fn sharing_raw(canvas: &CanvasDoc) -> Option<Any> {
    let txn = canvas.doc().transact();
    txn.get_map(schema::SHARING).map(|m| m.to_json(&txn))
}

type Verdict = Result<(bool, Vec<String>), RefusalCode>;

fn summary(r: &Result<Applied, Refusal>) -> Verdict {
    r.as_ref()
        .map(|a| (a.noop, a.touched_blocks.clone()))
        .map_err(|e| e.code)
}

/// Judges up to [`MAX_UPDATES`] updates ([`split_updates`]) against the seeded canvas
/// ([`seed_canvas`]) as the room does, and checks the inspector's promises.
pub fn inspect(data: &[u8]) {
    let updates = split_updates(data);
    let mut one_by_one = seed_canvas();
    let mut expected = Vec::new();
    for (role, update) in &updates {
        let (role, update) = (*role, *update);
        let fast = inspect::inspect_with(one_by_one.doc(), one_by_one.index(), role, update, true);
        let general =
            inspect::inspect_with(one_by_one.doc(), one_by_one.index(), role, update, false);
        let judged = |r: &Result<inspect::Inspection, Refusal>| match r {
            Ok(i) => Ok((i.is_noop(), i.touched_blocks().to_vec())),
            Err(e) => Err(e.code),
        };
        assert_eq!(judged(&fast), judged(&general), "fast and general path");

        let before = snapshot(&one_by_one);
        let sharing_before = sharing_raw(&one_by_one);
        let verdict = one_by_one.apply_checked(role, update);
        match &verdict {
            Err(_) => assert!(
                snapshot(&one_by_one) == before,
                "a refused update changed the document"
            ),
            Ok(applied) => {
                if !role.can_edit() {
                    assert!(applied.noop, "a viewer's update was applied");
                }
                if !role.can_administer() {
                    assert!(
                        sharing_raw(&one_by_one) == sharing_before,
                        "an editor's update changed sharing"
                    );
                }
                if applied.noop {
                    assert!(snapshot(&one_by_one) == before, "a no-op changed something");
                }
                assert!(
                    one_by_one.index().matches_state_vector(one_by_one.doc()),
                    "the index lags the document"
                );
                let again = one_by_one.inspect(role, update);
                assert!(
                    again.as_ref().is_ok_and(|i| i.is_noop()),
                    "an applied update sent again is not a no-op: {:?}",
                    again.map(|i| i.is_noop())
                );
            }
        }
        expected.push(summary(&verdict));
    }
    DocIndex::build(one_by_one.doc()).expect("the index of an accepted document builds");
    materialise(one_by_one.doc());
    // What the room checkpoints loads again, as the same document.
    let reloaded =
        CanvasDoc::from_stored(&one_by_one.encode_state(), []).expect("the snapshot loads");
    assert!(
        snapshot(&reloaded) == snapshot(&one_by_one),
        "the snapshot loads as another document"
    );

    // The room's way: batches, judged again after a change to sharing.
    let mut batched = seed_canvas();
    let mut got = Vec::new();
    let mut rest: &[(Role, &[u8])] = &updates;
    while !rest.is_empty() {
        let verdicts = batched.apply_batch(rest.iter().copied()).verdicts;
        assert!(!verdicts.is_empty(), "a batch judged nothing");
        rest = rest.get(verdicts.len()..).unwrap_or_default();
        got.extend(verdicts.iter().map(summary));
    }
    assert_eq!(got, expected, "batch verdicts");
    assert!(
        snapshot(&batched).1 == snapshot(&one_by_one).1,
        "a batch leads to another document"
    );
}

/// Decodes an awareness update buffer as the server does (a client's awareness message with
/// [`protocol::decode`], another node's with [`protocol::decode_awareness_update`]), and
/// feeds it to a [`PresenceTable`].
pub fn awareness(data: &[u8]) {
    let mut frame = Vec::with_capacity(data.len() + 6);
    frame.write_var(MSG_AWARENESS);
    frame.write_buf(data);
    let from_client = match protocol::decode(&frame) {
        Ok(Message::Awareness(update)) => Some(update),
        _ => None,
    };
    let from_node = protocol::decode_awareness_update(data).ok();
    assert_eq!(from_client, from_node, "both ways in decode alike");
    let Some(update) = from_node else {
        return;
    };
    // What the engine accepts, yrs decodes the same (the engine only refuses more).
    let by_yrs = AwarenessUpdate::decode_v1(data).ok();
    assert_eq!(by_yrs.as_ref(), Some(&update), "yrs decodes otherwise");
    assert_eq!(
        protocol::decode(&protocol::awareness(&update)).ok(),
        Some(Message::Awareness(update.clone())),
        "re-encoded awareness"
    );

    let mut table = PresenceTable::new();
    let change = table.apply(&update);
    let present: Vec<ClientID> = update
        .clients
        .iter()
        .filter(|(_, e)| &*e.json != "null")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(change.added.len(), present.len());
    assert!(change.updated.is_empty() && change.removed.is_empty());
    assert_eq!(table.len(), present.len());
    for (id, entry) in &update.clients {
        assert_eq!(table.clock(*id), Some(entry.clock));
        assert_eq!(table.contains(*id), &*entry.json != "null");
    }
    assert_eq!(table.full_update().clients.len(), present.len());
    let _ = table.states();
    assert!(table.apply(&update).is_empty(), "the same update twice");

    let ids: Vec<ClientID> = update.clients.keys().copied().collect();
    let removal = table.remove(&ids);
    assert_eq!(removal.is_some(), !present.is_empty());
    assert!(table.is_empty());
    if let Some(removal) = removal {
        // Peers receiving the removal drop exactly the present clients.
        let mut peer = PresenceTable::new();
        peer.apply(&update);
        let change = peer.apply(&removal);
        let mut removed = change.removed;
        let mut want = present;
        removed.sort();
        want.sort();
        assert_eq!(removed, want);
    }
    assert!(
        table.apply(&update).is_empty(),
        "a removed client came back"
    );
    table.forget_removed();
    assert_eq!(table.full_update().clients.len(), 0);
}

/// Applies `data` as an update to a fresh document when the engine's parser and yrs both
/// accept it, and materialises the result (the JSON view, the index, the stored form).
pub fn json(data: &[u8]) {
    if inspect::locate(&DocIndex::default(), data).is_err() || inspect::holds_obsolete_json(data) {
        // Never applied by the server: refused (malformed, or obsolete JSON content, which yrs
        // would not read back from the snapshot), so never stored either.
        return;
    }
    let Ok(update) = Update::decode_v1(data) else {
        return;
    };
    let doc = crate::new_doc_with_client_id(1);
    if doc.transact_mut().apply_update(update).is_err() {
        return;
    }
    materialise(&doc);
    DocIndex::build(&doc).expect("the index of an applied update builds");
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let loaded = CanvasDoc::from_stored(&state, []).expect("the stored state loads");
    assert!(loaded.index().matches_state_vector(loaded.doc()));
}

/// Every JSON view of a document, serialised.
fn materialise(doc: &Doc) {
    let txn = doc.transact();
    let canvas = view::canvas_json(&txn);
    assert!(serde_json::to_string(&canvas).is_ok());
    let _ = view::layout_json(&txn);
    let _ = view::sharing_json(&txn);
    let _ = sharing::sharing(&txn);
    let listed = view::blocks_json(&txn);
    let ids = blocks::block_ids(&txn);
    assert!(listed.len() <= ids.len());
    for id in ids {
        let _ = view::block_json(&txn, &id);
        let _ = blocks::block_position(&txn, &id);
        let _ = blocks::block_type(&txn, &id);
        let _ = text::narrative(&txn, &id);
    }
    let _ = blocks::columns(&txn);
}

/// The client id of the seeded canvas's author.
const SEED_CLIENT: u64 = 1;

/// The seeded canvas's state as a v1 update (built once).
pub fn seed_state() -> &'static [u8] {
    static STATE: OnceLock<Vec<u8>> = OnceLock::new();
    STATE.get_or_init(|| {
        let doc = crate::new_doc_with_client_id(SEED_CLIENT);
        {
            let mut txn = doc.transact_mut();
            fill_seed(&mut txn);
        }
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    })
}

/// A canvas with a narrative and a chart block, a grant, a public link and embedding, made
/// with the engine's own edits by one fixed client (so every run starts the same).
pub fn seed_canvas() -> CanvasDoc {
    CanvasDoc::from_stored(seed_state(), []).expect("the seeded canvas loads")
}

fn fill_seed(txn: &mut TransactionMut) {
    init::init_canvas(
        txn,
        &CanvasMeta {
            name: "Fuzz".into(),
            description: Some("seeded".into()),
            project_id: "p1".into(),
            owner_id: "u1".into(),
            tags: vec!["a".into(), "b".into()],
        },
    );
    let block = |id: &str, block_type: &str, x, y, content| NewBlock {
        id: id.into(),
        block_type: block_type.into(),
        position: Position { x, y, w: 4, h: 2 },
        content,
        created_by: "u1".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let added = [
        block(
            "n1",
            "narrative",
            0,
            0,
            serde_json::json!({"text": "hello"}),
        ),
        block(
            "c1",
            "chart",
            4,
            0,
            serde_json::json!({"kind": "bar", "data_bindings": [1, 2]}),
        ),
    ];
    for b in &added {
        blocks::add_block(txn, b).expect("a seed block");
    }
    sharing::grant(txn, "u2", Role::Editor, "u1", "2026-01-01T00:00:00Z");
    sharing::set_visibility(txn, Visibility::Team);
    sharing::set_public_link(txn, Some("link"));
    sharing::set_embed(txn, true, &["example.org".to_owned()]);
}

/// A client that has the seeded canvas, with its own client id.
fn seeded_client(client_id: u64) -> Doc {
    let doc = crate::new_doc_with_client_id(client_id);
    if let Ok(update) = Update::decode_v1(seed_state()) {
        let _ = doc.transact_mut().apply_update(update);
    }
    doc
}

/// One edit in one transaction of a seeded client, as the update it sends.
fn client_edit(client_id: u64, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    let doc = seeded_client(client_id);
    let mut txn = doc.transact_mut();
    f(&mut txn);
    txn.encode_update_v1()
}

fn child_map(txn: &TransactionMut, map: &MapRef, key: &str) -> Option<MapRef> {
    match map.get(txn, key) {
        Some(Out::YMap(m)) => Some(m),
        _ => None,
    }
}

/// The position map of a block, as a client edits it.
fn position_map(txn: &mut TransactionMut, id: &str) -> Option<MapRef> {
    let blocks = txn.get_or_insert_map(schema::BLOCKS);
    let block = child_map(txn, &blocks, id)?;
    child_map(txn, &block, schema::POSITION)
}

/// The text of a narrative block, as a client edits it.
fn narrative_text(txn: &mut TransactionMut, id: &str) -> Option<TextRef> {
    let blocks = txn.get_or_insert_map(schema::BLOCKS);
    let block = child_map(txn, &blocks, id)?;
    let content = child_map(txn, &block, schema::CONTENT)?;
    match content.get(txn, "text") {
        Some(Out::YText(t)) => Some(t),
        _ => None,
    }
}

/// Real inputs for each target, as `(target, name, bytes)`, made with the engine's encoders.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_owned(), bytes));
    };
    let at = "2026-01-02T00:00:00Z";

    // inspect: edits of clients that have the seeded canvas.
    let typing = client_edit(2, |txn| {
        if let Some(t) = narrative_text(txn, "n1") {
            t.insert(txn, 5, " world");
        }
    });
    let backspace = client_edit(3, |txn| {
        if let Some(t) = narrative_text(txn, "n1") {
            t.remove_range(txn, 0, 2);
        }
    });
    let moved = client_edit(4, |txn| {
        if let Some(pos) = position_map(txn, "c1") {
            pos.insert(txn, "x", 6);
            pos.insert(txn, "y", 3);
        }
    });
    let added = client_edit(5, |txn| {
        let _ = blocks::add_block(
            txn,
            &NewBlock {
                id: "t1".into(),
                block_type: "table".into(),
                position: Position {
                    x: 0,
                    y: 4,
                    w: 12,
                    h: 3,
                },
                content: serde_json::json!({"rows": [[1, 2], [3, 4]]}),
                created_by: "u2".into(),
                created_at: at.into(),
            },
        );
    });
    let removed = client_edit(6, |txn| {
        let _ = blocks::remove_block(txn, "c1");
    });
    let renamed = client_edit(7, |txn| {
        txn.get_or_insert_map(schema::META)
            .insert(txn, "name", "renamed");
    });
    let content = client_edit(8, |txn| {
        if let Some(Out::YMap(block)) = txn.get_or_insert_map(schema::BLOCKS).get(txn, "c1")
            && let Some(Out::YMap(content)) = block.get(txn, schema::CONTENT)
        {
            content.insert(txn, "kind", "line");
        }
    });
    let visibility = client_edit(9, |txn| sharing::set_visibility(txn, Visibility::Public));
    let grant = client_edit(10, |txn| {
        sharing::grant(txn, "u3", Role::Viewer, "u1", at);
    });
    let out_of_grid = client_edit(11, |txn| {
        if let Some(pos) = position_map(txn, "n1") {
            pos.insert(txn, "x", 40);
        }
    });
    let new_root = client_edit(12, |txn| {
        txn.get_or_insert_map("not-a-root").insert(txn, "k", 1);
    });
    let block_not_map = client_edit(13, |txn| {
        txn.get_or_insert_map(schema::BLOCKS).insert(
            txn,
            "x1",
            MapPrelim::from([("id", In::from("x1"))]),
        );
    });
    for (name, role, update) in [
        ("typing", Role::Editor, &typing),
        ("backspace", Role::Editor, &backspace),
        ("move", Role::Editor, &moved),
        ("add-block", Role::Editor, &added),
        ("remove-block", Role::Editor, &removed),
        ("rename", Role::Editor, &renamed),
        ("set-content", Role::Editor, &content),
        ("visibility-by-admin", Role::Admin, &visibility),
        ("visibility-by-editor", Role::Editor, &visibility),
        ("grant", Role::Owner, &grant),
        ("viewer-typing", Role::Viewer, &typing),
        ("out-of-grid", Role::Editor, &out_of_grid),
        ("new-root", Role::Editor, &new_root),
        ("incomplete-block", Role::Editor, &block_not_map),
    ] {
        add("inspect", name, join_updates(&[(role, update)]));
    }
    add(
        "inspect",
        "batch",
        join_updates(&[
            (Role::Editor, &typing),
            (Role::Admin, &visibility),
            (Role::Editor, &moved),
            (Role::Editor, &typing),
        ]),
    );

    // json: whole documents and single edits.
    add("json", "seed-state", seed_state().to_vec());
    add("json", "add-block", added.clone());
    add("json", "grant", grant.clone());

    // frame: one frame of each message type.
    let sv = seeded_client(14).transact().state_vector();
    let aw = awareness_update(&[(14, 1, r#"{"user":{"name":"ann"},"cursor":{"x":1}}"#)]);
    for (name, frame) in [
        ("sync-step1", protocol::sync_step1(&sv)),
        ("sync-step2", protocol::sync_step2(seed_state())),
        ("update", protocol::update(&typing)),
        ("awareness", protocol::awareness(&aw)),
        ("auth-denied", protocol::auth(Some("no"))),
        ("auth-granted", protocol::auth(None)),
        ("query-awareness", protocol::query_awareness()),
        (
            "ack",
            protocol::encode_extension(&Extension::Ack(Ack { through: 7 })),
        ),
        ("error", protocol::encode_extension(&error_extension())),
        (
            "custom",
            protocol::encode(&Message::Custom(200, vec![1, 2])),
        ),
    ] {
        add("frame", name, frame);
    }

    // extension: bodies (first byte: even = ack, odd = error).
    let mut ack = vec![0];
    ack.extend(protocol::extension_body(&Extension::Ack(Ack {
        through: 7,
    })));
    add("extension", "ack", ack);
    let mut error = vec![1];
    error.extend(protocol::extension_body(&error_extension()));
    add("extension", "error", error);

    // awareness: update buffers.
    add("awareness", "one", aw.encode_v1());
    add(
        "awareness",
        "two-and-removal",
        awareness_update(&[(15, 3, r#"{"cursor":null}"#), (16, 2, "null")]).encode_v1(),
    );
    add(
        "awareness",
        "max-client",
        awareness_update(&[(protocol::MAX_CLIENT_ID, u32::MAX, "{}")]).encode_v1(),
    );
    out
}

fn error_extension() -> Extension {
    Extension::Error(ErrorBody {
        code: "read_only".into(),
        message: "viewers cannot change the canvas".into(),
        seq: Some(3),
    })
}

fn awareness_update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
    let clients: HashMap<ClientID, AwarenessUpdateEntry> = entries
        .iter()
        .map(|&(id, clock, json)| {
            (
                ClientID::new(id),
                AwarenessUpdateEntry {
                    clock,
                    json: Arc::from(json),
                },
            )
        })
        .collect();
    AwarenessUpdate { clients }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_split_as_joined() {
        let a: &[u8] = &[1, 2, 3];
        let b: &[u8] = &[];
        let c: &[u8] = &[9];
        let joined = join_updates(&[(Role::Editor, a), (Role::Viewer, b), (Role::Owner, c)]);
        let split = split_updates(&joined);
        assert_eq!(
            split,
            vec![(Role::Editor, a), (Role::Viewer, b), (Role::Owner, c)]
        );
        assert!(split_updates(&[]).is_empty());
        assert_eq!(split_updates(&[2]), vec![(Role::Admin, &[][..])]);
    }

    #[test]
    fn every_seed_runs_and_names_a_target() {
        let seeds = seeds();
        for target in TARGETS {
            assert!(
                seeds.iter().any(|(t, ..)| *t == target),
                "no seed for {target}"
            );
        }
        for (target, name, bytes) in &seeds {
            assert!(run(target, bytes), "{target}/{name}");
        }
        assert!(!run("nope", &[]));
    }

    #[test]
    fn the_inspect_seeds_get_the_verdicts_they_stand_for() {
        let canvas = seed_canvas();
        let mut wrong = Vec::new();
        for (target, name, bytes) in seeds() {
            if target != "inspect" || name == "batch" {
                continue;
            }
            let [(role, update)] = split_updates(&bytes)[..] else {
                panic!("{name}: one update");
            };
            let verdict = canvas.inspect(role, update).map(|i| i.is_noop());
            let want = match name.as_str() {
                "visibility-by-editor" => Err(RefusalCode::Forbidden),
                "viewer-typing" => Err(RefusalCode::ReadOnly),
                "out-of-grid" | "new-root" | "incomplete-block" => Err(RefusalCode::InvalidSchema),
                _ => Ok(false),
            };
            let got = verdict.map_err(|e| e.code);
            if got != want {
                wrong.push(format!("{name}: {got:?}, not {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
