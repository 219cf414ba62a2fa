//! Inspection of incoming updates: roles, schema, dependencies, malformed input.
//!
//! Updates are produced by real yrs documents acting as clients: they sync from the server
//! document first, then make an edit in one transaction.

use canvas_engine::Role;
use canvas_engine::canvas::CanvasDoc;
use canvas_engine::inspect::RefusalCode;
use canvas_engine::schema;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Doc, GetString, In, Map, MapPrelim, MapRef, Out, ReadTxn, StateVector, Text, TextPrelim,
    TextRef, Transact, TransactionMut, Update, WriteTxn,
};

/// A client document with a fixed client id.
fn client(id: u64) -> Doc {
    canvas_engine::new_doc_with_client_id(id)
}

/// Brings a client up to date with the server.
fn sync(client: &Doc, server: &CanvasDoc) {
    let sv = client.transact().state_vector();
    let diff = server.encode_diff(&sv);
    let update = Update::decode_v1(&diff).expect("server diff decodes");
    client
        .transact_mut()
        .apply_update(update)
        .expect("client applies server diff");
}

/// Syncs the client, runs an edit in one transaction and returns that transaction's update.
fn edit(client: &Doc, server: &CanvasDoc, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    sync(client, server);
    edit_offline(client, f)
}

/// An edit without syncing first.
fn edit_offline(client: &Doc, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    let mut txn = client.transact_mut();
    f(&mut txn);
    txn.encode_update_v1()
}

fn position(
    x: impl Into<Any>,
    y: impl Into<Any>,
    w: impl Into<Any>,
    h: impl Into<Any>,
) -> MapPrelim {
    MapPrelim::from([
        ("x", In::Any(x.into())),
        ("y", In::Any(y.into())),
        ("w", In::Any(w.into())),
        ("h", In::Any(h.into())),
    ])
}

/// A narrative block as a JS client would create it: one transaction, nested prelims.
fn narrative(id: &str, pos: MapPrelim, text: &str) -> MapPrelim {
    MapPrelim::from([
        ("id", In::Any(id.into())),
        ("type", In::Any("narrative".into())),
        ("position", In::Map(pos)),
        (
            "content",
            In::Map(MapPrelim::from([("text", In::from(TextPrelim::new(text)))])),
        ),
        // block metadata is the server's: a new block carries an empty map at most
        ("metadata", In::Map(MapPrelim::default())),
    ])
}

fn blocks(txn: &mut TransactionMut) -> MapRef {
    txn.get_or_insert_map(schema::BLOCKS)
}

fn block_map<T: ReadTxn>(txn: &T, id: &str) -> MapRef {
    match txn.get_map(schema::BLOCKS).and_then(|b| b.get(txn, id)) {
        Some(Out::YMap(m)) => m,
        other => panic!("block {id} is not a map: {other:?}"),
    }
}

fn sub_map<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> MapRef {
    match map.get(txn, key) {
        Some(Out::YMap(m)) => m,
        other => panic!("{key} is not a map: {other:?}"),
    }
}

fn block_text<T: ReadTxn>(txn: &T, id: &str) -> TextRef {
    let block = block_map(txn, id);
    let content = sub_map(txn, &block, schema::CONTENT);
    match content.get(txn, "text") {
        Some(Out::YText(t)) => t,
        other => panic!("text is not a text: {other:?}"),
    }
}

/// A server document with layout, meta, sharing and one narrative block b1 at (0,0,6,4),
/// built by a trusted local edit.
fn seeded() -> CanvasDoc {
    let mut server = CanvasDoc::new();
    let ((), _update) = server.edit(|txn| {
        let meta = txn.get_or_insert_map(schema::META);
        meta.insert(txn, "name", "Q3 dashboard");
        let layout = txn.get_or_insert_map(schema::LAYOUT);
        layout.insert(txn, "type", "grid");
        layout.insert(txn, "columns", 12);
        let sharing = txn.get_or_insert_map(schema::SHARING);
        sharing.insert(txn, "visibility", "private");
        sharing.insert(
            txn,
            "permissions",
            MapPrelim::from([(
                "u9",
                In::Map(MapPrelim::from([("role", In::Any("viewer".into()))])),
            )]),
        );
        let blocks = txn.get_or_insert_map(schema::BLOCKS);
        blocks.insert(txn, "b1", narrative("b1", position(0, 0, 6, 4), "hello"));
    });
    server
}

fn code(r: Result<canvas_engine::canvas::Applied, canvas_engine::inspect::Refusal>) -> RefusalCode {
    match r {
        Ok(a) => panic!("expected a refusal, got {a:?}"),
        Err(e) => e.code,
    }
}

fn accepted(server: &mut CanvasDoc, role: Role, update: &[u8]) -> canvas_engine::canvas::Applied {
    let before = server.encode_state();
    match server.apply_checked(role, update) {
        Ok(a) => a,
        Err(e) => panic!(
            "refused: {e} (state changed: {})",
            before != server.encode_state()
        ),
    }
}

/// Refuses and checks the document did not change.
fn refused(server: &mut CanvasDoc, role: Role, update: &[u8]) -> canvas_engine::inspect::Refusal {
    let before = server.encode_state();
    let result = server.apply_checked(role, update);
    assert_eq!(
        before,
        server.encode_state(),
        "a refused update changed the document"
    );
    match result {
        Ok(a) => panic!("expected a refusal, got {a:?}"),
        Err(e) => e,
    }
}

#[test]
fn viewer_is_refused_but_its_noop_sync_is_accepted() {
    let mut server = seeded();
    let viewer = client(101);
    let update = edit(&viewer, &server, |txn| {
        let meta = txn.get_or_insert_map(schema::META);
        meta.insert(txn, "name", "mine now");
    });
    let r = refused(&mut server, Role::Viewer, &update);
    assert_eq!(r.code, RefusalCode::ReadOnly);
    assert_eq!(r.message, "viewers cannot change the canvas");

    // a fresh viewer that only synced: its sync step 2 is a no-op
    let viewer2 = client(102);
    sync(&viewer2, &server);
    let step2 = viewer2
        .transact()
        .encode_state_as_update_v1(&server.state_vector());
    let applied = accepted(&mut server, Role::Viewer, &step2);
    assert!(applied.noop);
    // even its full state (everything already known, full delete set) is a no-op
    let full = viewer2
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert!(accepted(&mut server, Role::Viewer, &full).noop);
    // the empty update too
    assert!(accepted(&mut server, Role::Viewer, &[0, 0]).noop);
}

#[test]
fn editor_adds_moves_resizes_and_removes_blocks() {
    let mut server = seeded();
    let editor = client(201);
    let add = edit(&editor, &server, |txn| {
        let b = blocks(txn);
        b.insert(txn, "b2", narrative("b2", position(6, 0, 6, 4), "second"));
    });
    let a = accepted(&mut server, Role::Editor, &add);
    assert!(!a.noop);
    assert_eq!(a.touched_blocks, vec!["b2".to_string()]);

    let mv = edit(&editor, &server, |txn| {
        let b = block_map(txn, "b2");
        let p = sub_map(txn, &b, schema::POSITION);
        p.insert(txn, "y", 8);
        p.insert(txn, "x", 0);
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &mv).touched_blocks,
        vec!["b2"]
    );

    let resize = edit(&editor, &server, |txn| {
        let b = block_map(txn, "b2");
        let p = sub_map(txn, &b, schema::POSITION);
        p.insert(txn, "w", 12);
        p.insert(txn, "h", 2.0); // JS numbers arrive as floats
    });
    accepted(&mut server, Role::Editor, &resize);

    let remove = edit(&editor, &server, |txn| {
        let b = blocks(txn);
        b.remove(txn, "b1");
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &remove).touched_blocks,
        vec!["b1"]
    );

    let txn = server.doc().transact();
    let b = txn.get_map(schema::BLOCKS).expect("blocks");
    assert!(b.get(&txn, "b1").is_none());
    let p = sub_map(&txn, &block_map(&txn, "b2"), schema::POSITION);
    assert_eq!(p.get(&txn, "x"), Some(Out::Any(Any::from(0))));
    assert_eq!(p.get(&txn, "w"), Some(Out::Any(Any::from(12))));
}

#[test]
fn concurrent_typing_from_two_editors_is_accepted() {
    let mut server = seeded();
    let alice = client(301);
    let bob = client(302);
    sync(&alice, &server);
    sync(&bob, &server);
    let mut a_updates = Vec::new();
    let mut b_updates = Vec::new();
    for (i, ch) in ["a", "b", "c"].iter().enumerate() {
        a_updates.push(edit_offline(&alice, |txn| {
            let t = block_text(txn, "b1");
            t.insert(txn, 5 + i as u32, ch);
        }));
        b_updates.push(edit_offline(&bob, |txn| {
            let t = block_text(txn, "b1");
            t.insert(txn, 0, &ch.to_uppercase());
        }));
    }
    for (a, b) in a_updates.iter().zip(&b_updates) {
        assert_eq!(
            accepted(&mut server, Role::Editor, a).touched_blocks,
            vec!["b1"]
        );
        assert_eq!(
            accepted(&mut server, Role::Editor, b).touched_blocks,
            vec!["b1"]
        );
    }
    let txn = server.doc().transact();
    let text = block_text(&txn, "b1").get_string(&txn);
    assert_eq!(text.len(), "hello".len() + 6);
    assert!(text.contains("helloabc"), "{text}");
}

#[test]
fn editor_may_change_meta_and_layout() {
    let mut server = seeded();
    let editor = client(401);
    let u = edit(&editor, &server, |txn| {
        let meta = txn.get_or_insert_map(schema::META);
        meta.insert(txn, "name", "renamed");
        meta.insert(txn, "tags", yrs::ArrayPrelim::from(["a", "b"]));
        let layout = txn.get_or_insert_map(schema::LAYOUT);
        layout.insert(txn, "rowHeight", 40);
    });
    let a = accepted(&mut server, Role::Editor, &u);
    assert!(a.touched_blocks.is_empty());
}

#[test]
fn meta_name_is_checked_like_a_name_given_over_rest() {
    let mut server = seeded();
    let cases: [(&str, In); 5] = [
        (
            "a right-to-left override",
            In::Any("Q3 \u{202E}txt.exe".into()),
        ),
        ("a line break", In::Any("Q3\nreport".into())),
        (
            "too long",
            In::Any("n".repeat(schema::MAX_NAME_CHARS + 1).into()),
        ),
        ("a number", In::Any(7.into())),
        ("a shared text", In::from(TextPrelim::new("Q3"))),
    ];
    for (i, (what, value)) in cases.into_iter().enumerate() {
        // a fresh client each time: a refused edit leaves a gap in its sender's clock
        let editor = client(451 + i as u64);
        let u = edit(&editor, &server, |txn| {
            let meta = txn.get_or_insert_map(schema::META);
            meta.insert(txn, schema::NAME, value);
        });
        let r = refused(&mut server, Role::Admin, &u);
        assert_eq!(r.code, RefusalCode::InvalidSchema, "{what}: {}", r.message);
        assert!(
            r.message.starts_with("meta.name must"),
            "{what}: {}",
            r.message
        );
    }
    // fine: the longest name, an empty one (a field being retyped), accents and emoji
    for (i, name) in [
        "n".repeat(schema::MAX_NAME_CHARS),
        String::new(),
        "Ventes é 📈".into(),
    ]
    .into_iter()
    .enumerate()
    {
        let editor = client(461 + i as u64);
        let u = edit(&editor, &server, |txn| {
            let meta = txn.get_or_insert_map(schema::META);
            meta.insert(txn, schema::NAME, name.as_str());
        });
        accepted(&mut server, Role::Editor, &u);
    }
}

#[test]
fn editor_cannot_touch_sharing_but_admin_can() {
    let mut server = seeded();
    let editor = client(501);
    let set_visibility = edit(&editor, &server, |txn| {
        let s = txn.get_or_insert_map(schema::SHARING);
        s.insert(txn, "visibility", "public");
    });
    let r = refused(&mut server, Role::Editor, &set_visibility);
    assert_eq!(r.code, RefusalCode::Forbidden);
    assert_eq!(
        r.message,
        "editors cannot change sharing (sharing.visibility)"
    );

    let editor = client(502);
    let add_grant = edit(&editor, &server, |txn| {
        let s = txn.get_or_insert_map(schema::SHARING);
        let Some(Out::YMap(perms)) = s.get(txn, "permissions") else {
            panic!("permissions")
        };
        perms.insert(
            txn,
            "u2",
            MapPrelim::from([("role", In::Any("admin".into()))]),
        );
    });
    let r = refused(&mut server, Role::Editor, &add_grant);
    assert_eq!(r.code, RefusalCode::Forbidden);
    assert_eq!(
        r.message,
        "editors cannot change sharing (sharing.permissions)"
    );

    let editor = client(503);
    let delete_grant = edit(&editor, &server, |txn| {
        let s = txn.get_or_insert_map(schema::SHARING);
        let Some(Out::YMap(perms)) = s.get(txn, "permissions") else {
            panic!("permissions")
        };
        perms.remove(txn, "u9");
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &delete_grant).code,
        RefusalCode::Forbidden
    );

    // the same updates from an admin (fresh clients: the refused ones left gaps)
    for (id, u) in [(511, 0), (512, 1), (513, 2)] {
        let admin = client(id);
        let update = edit(&admin, &server, |txn| {
            let s = txn.get_or_insert_map(schema::SHARING);
            let Some(Out::YMap(perms)) = s.get(txn, "permissions") else {
                panic!("permissions")
            };
            match u {
                0 => {
                    s.insert(txn, "visibility", "team");
                }
                1 => {
                    perms.insert(
                        txn,
                        "u3",
                        MapPrelim::from([("role", In::Any("editor".into()))]),
                    );
                }
                _ => {
                    perms.remove(txn, "u9");
                }
            }
        });
        accepted(&mut server, Role::Admin, &update);
    }
    let txn = server.doc().transact();
    let s = txn.get_map(schema::SHARING).expect("sharing");
    assert_eq!(s.get(&txn, "visibility"), Some(Out::Any(Any::from("team"))));
}

#[test]
fn unknown_root_is_refused_even_for_the_owner() {
    let mut server = seeded();
    let owner = client(601);
    let u = edit(&owner, &server, |txn| {
        let m = txn.get_or_insert_map("secrets");
        m.insert(txn, "k", "v");
    });
    let r = refused(&mut server, Role::Owner, &u);
    assert_eq!(r.code, RefusalCode::InvalidSchema);
    assert!(r.message.contains("\"secrets\""), "{}", r.message);
}

fn new_block_update(id: u64, server: &CanvasDoc, pos: MapPrelim) -> Vec<u8> {
    let c = client(id);
    edit(&c, server, |txn| {
        let b = blocks(txn);
        b.insert(txn, "bx", narrative("bx", pos, ""));
    })
}

#[test]
fn invalid_positions_are_refused() {
    let mut server = seeded();
    let cases: Vec<(MapPrelim, &str)> = vec![
        (
            position(8, 0, 6, 2),
            "block bx: position.x + position.w = 14 exceeds 12 columns",
        ),
        (
            position(-1, 0, 6, 2),
            "block bx: position.x = -1 must be >= 0",
        ),
        (
            position(0, -3, 6, 2),
            "block bx: position.y = -3 must be >= 0",
        ),
        (
            position(0, 0, 0, 2),
            "block bx: position.w = 0 must be >= 1",
        ),
        (
            position(1.5, 0, 6, 2),
            "block bx: position.x must be an integer, got 1.5",
        ),
        (
            position("1", 0, 6, 2),
            "block bx: position.x must be an integer, got the string \"1\"",
        ),
        (
            MapPrelim::from([
                ("x", In::Any(0.into())),
                ("y", In::Any(0.into())),
                ("w", In::Any(4.into())),
            ]),
            "block bx: position.h is missing",
        ),
    ];
    for (i, (pos, message)) in cases.into_iter().enumerate() {
        let u = new_block_update(700 + i as u64, &server, pos);
        let r = refused(&mut server, Role::Admin, &u);
        assert_eq!(r.code, RefusalCode::InvalidSchema);
        assert_eq!(r.message, message);
    }
    // a valid one passes
    let u = new_block_update(799, &server, position(6, 10, 6, 2));
    assert_eq!(
        accepted(&mut server, Role::Editor, &u).touched_blocks,
        vec!["bx"]
    );
}

#[test]
fn block_without_position_and_primitive_blocks_are_refused() {
    let mut server = seeded();
    let c = client(801);
    let u = edit(&c, &server, |txn| {
        let b = blocks(txn);
        b.insert(
            txn,
            "b9",
            MapPrelim::from([("type", In::Any("chart".into()))]),
        );
    });
    let r = refused(&mut server, Role::Editor, &u);
    assert_eq!(r.code, RefusalCode::InvalidSchema);
    assert!(r.message.contains("needs a position"), "{}", r.message);

    let c = client(802);
    let u = edit(&c, &server, |txn| {
        let b = blocks(txn);
        b.insert(txn, "b9", 42);
    });
    let r = refused(&mut server, Role::Editor, &u);
    assert_eq!(r.code, RefusalCode::InvalidSchema);
    assert_eq!(r.message, "block b9 must be a map, got a value");

    // replacing a position by a number
    let c = client(803);
    let u = edit(&c, &server, |txn| {
        let b = block_map(txn, "b1");
        b.insert(txn, schema::POSITION, 3);
    });
    let r = refused(&mut server, Role::Editor, &u);
    assert_eq!(r.message, "block b1: position must be a map, got a value");

    // removing the position
    let c = client(804);
    let u = edit(&c, &server, |txn| {
        let b = block_map(txn, "b1");
        b.remove(txn, schema::POSITION);
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &u).message,
        "block b1: position was removed"
    );
}

#[test]
fn deleting_a_position_key_is_refused_unless_the_block_goes_too() {
    let mut server = seeded();
    let c = client(901);
    let u = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "b1"), schema::POSITION);
        p.remove(txn, "w");
    });
    let r = refused(&mut server, Role::Editor, &u);
    assert_eq!(r.message, "block b1: position.w was deleted");

    // changing a position key and deleting the block in the same update is fine
    let c = client(902);
    let u = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "b1"), schema::POSITION);
        p.remove(txn, "w");
        p.insert(txn, "x", 100);
        let b = blocks(txn);
        b.remove(txn, "b1");
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &u).touched_blocks,
        vec!["b1"]
    );
}

#[test]
fn map_overwrite_is_located_through_its_origin() {
    let mut server = seeded();
    let c = client(1001);
    // x already has a value: the new item carries only an origin, no parent info
    let bad = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "b1"), schema::POSITION);
        p.insert(txn, "x", 7);
    });
    let r = refused(&mut server, Role::Editor, &bad);
    assert_eq!(
        r.message,
        "block b1: position.x + position.w = 13 exceeds 12 columns"
    );

    let c = client(1002);
    let good = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "b1"), schema::POSITION);
        p.insert(txn, "x", 6);
    });
    accepted(&mut server, Role::Editor, &good);
    // and again on top of the overwrite (origin = the item just written)
    let again = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "b1"), schema::POSITION);
        p.insert(txn, "x", 7);
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &again).message,
        "block b1: position.x + position.w = 13 exceeds 12 columns"
    );
}

#[test]
fn a_gap_after_a_refusal_is_a_missing_dependency() {
    let mut server = seeded();
    let c = client(1101);
    let first = edit(&c, &server, |txn| {
        let s = txn.get_or_insert_map(schema::SHARING);
        s.insert(txn, "visibility", "public");
    });
    assert_eq!(
        code(server.apply_checked(Role::Editor, &first)),
        RefusalCode::Forbidden
    );
    // the client goes on typing: its next update builds on the refused one
    let second = edit_offline(&c, |txn| {
        let t = block_text(txn, "b1");
        t.insert(txn, 0, "x");
    });
    let r = refused(&mut server, Role::Editor, &second);
    assert_eq!(r.code, RefusalCode::MissingDependency);
    assert!(r.message.contains("resync"), "{}", r.message);
    // an update that builds on another peer's update the server never got
    let stranger = client(1102);
    let unseen = edit(&stranger, &server, |txn| {
        let t = block_text(txn, "b1");
        t.insert(txn, 0, "S");
    });
    let other = client(1103);
    sync(&other, &server);
    Update::decode_v1(&unseen)
        .map(|u| other.transact_mut().apply_update(u))
        .expect("decodes")
        .expect("applies");
    let dependent = edit_offline(&other, |txn| {
        let t = block_text(txn, "b1");
        t.insert(txn, 1, "o");
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &dependent).code,
        RefusalCode::MissingDependency
    );
    // once the missing update arrives, the dependent one is accepted
    accepted(&mut server, Role::Editor, &unseen);
    accepted(&mut server, Role::Editor, &dependent);
}

#[test]
fn garbage_and_truncated_updates_are_malformed_without_panic() {
    let mut server = seeded();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let before = server.encode_state();
    for i in 0..3000 {
        let len = rng.random_range(0..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 3 == 0 && !bytes.is_empty() {
            bytes[0] = 1; // one client: go deeper into the parser
        }
        let _ = server.apply_checked(Role::Owner, &bytes);
    }
    // truncations and bit flips of valid updates
    let c = client(1201);
    let valid = edit(&c, &server, |txn| {
        let b = blocks(txn);
        b.insert(txn, "bt", narrative("bt", position(0, 4, 3, 3), "trunc😀"));
    });
    for cut in 0..valid.len() {
        let r = server.inspect(Role::Owner, &valid[..cut]);
        assert!(r.is_err(), "truncated at {cut} accepted");
    }
    for _ in 0..3000 {
        let mut bytes = valid.clone();
        let i = rng.random_range(0..bytes.len());
        bytes[i] ^= 1 << rng.random_range(0..8);
        let _ = server.inspect(Role::Owner, &bytes);
    }
    assert_eq!(before, server.encode_state());
    let r = server
        .inspect(Role::Owner, &[1, 2, 3])
        .expect_err("garbage");
    assert_eq!(r.code, RefusalCode::MalformedUpdate);
    accepted(&mut server, Role::Owner, &valid);
}

#[test]
fn js_like_client_creates_a_block_in_one_transaction() {
    let mut server = CanvasDoc::new();
    let c = client(1301);
    let u = edit(&c, &server, |txn| {
        let layout = txn.get_or_insert_map(schema::LAYOUT);
        layout.insert(txn, "columns", 12);
        let b = blocks(txn);
        b.insert(
            txn,
            "n1",
            narrative("n1", position(0.0, 0.0, 12.0, 6.0), "typed"),
        );
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &u).touched_blocks,
        vec!["n1"]
    );
    let txn = server.doc().transact();
    assert_eq!(block_text(&txn, "n1").get_string(&txn), "typed");
}

/// An edit made by a test client.
type Step = Box<dyn Fn(&mut TransactionMut)>;

/// Decisions on a battery of updates, against a fresh copy of a document.
fn decisions(make: impl Fn() -> CanvasDoc) -> Vec<Result<Vec<String>, RefusalCode>> {
    let mut out = Vec::new();
    let updates: Vec<(Role, Step)> = vec![
        (
            Role::Editor,
            Box::new(|txn| {
                let t = block_text(txn, "b2");
                t.insert(txn, 1, "zz");
            }),
        ),
        (
            Role::Editor,
            Box::new(|txn| {
                let p = sub_map(txn, &block_map(txn, "b2"), schema::POSITION);
                p.insert(txn, "x", 9);
            }),
        ),
        (
            Role::Editor,
            Box::new(|txn| {
                let p = sub_map(txn, &block_map(txn, "b2"), schema::POSITION);
                p.insert(txn, "x", 2);
            }),
        ),
        (
            Role::Editor,
            Box::new(|txn| {
                let s = txn.get_or_insert_map(schema::SHARING);
                s.insert(txn, "public_link", "x");
            }),
        ),
        (
            Role::Viewer,
            Box::new(|txn| {
                let t = block_text(txn, "b2");
                t.remove_range(txn, 0, 1);
            }),
        ),
        (
            Role::Editor,
            Box::new(|txn| {
                let b = blocks(txn);
                b.remove(txn, "b2");
            }),
        ),
    ];
    for (i, (role, f)) in updates.iter().enumerate() {
        let mut server = make();
        let c = client(5000 + i as u64);
        let u = edit(&c, &server, |txn| f(txn));
        out.push(
            server
                .apply_checked(*role, &u)
                .map(|a| a.touched_blocks)
                .map_err(|e| e.code),
        );
    }
    out
}

#[test]
fn index_from_snapshot_decides_like_the_incremental_one() {
    // build a history: blocks created, text typed, a block deleted, a grant removed
    let mut server = seeded();
    let editor = client(1401);
    let admin = client(1402);
    let steps: Vec<(Role, &Doc, Step)> = vec![
        (
            Role::Editor,
            &editor,
            Box::new(|txn| {
                let b = blocks(txn);
                b.insert(txn, "b2", narrative("b2", position(0, 4, 4, 4), "abc"));
                b.insert(txn, "b3", narrative("b3", position(4, 4, 4, 4), "def"));
            }),
        ),
        (
            Role::Editor,
            &editor,
            Box::new(|txn| {
                let t = block_text(txn, "b2");
                t.insert(txn, 3, "ghi");
                let p = sub_map(txn, &block_map(txn, "b3"), schema::POSITION);
                p.insert(txn, "y", 9);
            }),
        ),
        (
            Role::Editor,
            &editor,
            Box::new(|txn| {
                let b = blocks(txn);
                b.remove(txn, "b3");
            }),
        ),
        (
            Role::Admin,
            &admin,
            Box::new(|txn| {
                let s = txn.get_or_insert_map(schema::SHARING);
                let Some(Out::YMap(perms)) = s.get(txn, "permissions") else {
                    panic!("permissions")
                };
                perms.remove(txn, "u9");
            }),
        ),
    ];
    let mut log: Vec<Vec<u8>> = Vec::new();
    let snapshot = server.encode_state();
    for (role, c, f) in &steps {
        let u = edit(c, &server, |txn| f(txn));
        accepted(&mut server, *role, &u);
        log.push(u);
    }
    let state = server.encode_state();
    let incremental = {
        let log = log.clone();
        let snapshot = snapshot.clone();
        move || {
            let mut s = CanvasDoc::from_stored(&snapshot, std::iter::empty()).expect("loads");
            for u in &log {
                s.apply_trusted(u).expect("applies");
            }
            s
        }
    };
    let reloaded = || CanvasDoc::from_stored(&state, std::iter::empty()).expect("loads");
    let from_log =
        || CanvasDoc::from_stored(&snapshot, log.iter().map(Vec::as_slice)).expect("loads");
    let a = decisions(incremental);
    let b = decisions(reloaded);
    let c = decisions(from_log);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a[0], Ok(vec!["b2".to_string()]));
    assert_eq!(a[1], Err(RefusalCode::InvalidSchema));
    assert_eq!(a[3], Err(RefusalCode::Forbidden));
    assert_eq!(a[4], Err(RefusalCode::ReadOnly));
    assert!(server.index().matches_state_vector(server.doc()));
}

#[test]
fn edits_by_the_server_keep_the_index_current() {
    let mut server = seeded();
    let (_, u) = server.edit(|txn| {
        let b = blocks(txn);
        b.insert(txn, "s1", narrative("s1", position(0, 20, 2, 2), ""));
    });
    assert!(u.is_some_and(|u| u.len() > 2));
    let ((), empty) = server.edit(|_| {});
    assert_eq!(empty, None);
    let c = client(1501);
    let bad = edit(&c, &server, |txn| {
        let p = sub_map(txn, &block_map(txn, "s1"), schema::POSITION);
        p.insert(txn, "w", 13);
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &bad).code,
        RefusalCode::InvalidSchema
    );
}

/// Block metadata (attribution) is the server's: clients may not write into an existing
/// block's metadata, whichever way they try, and whatever their role; deleting a whole block
/// stays allowed. A block the update creates may carry metadata (an undo re-creating a removed
/// block does): it is reported as new, and the server replaces its creator.
#[test]
fn block_metadata_cannot_be_forged() {
    let mut server = seeded();
    server.edit(|txn| canvas_engine::attribution::stamp(txn, "b1", "u1", "t1", true));
    let forged_new = |id: u64, server: &CanvasDoc| {
        edit(&client(id), server, |txn| {
            let mut block = narrative("b2", position(6, 0, 6, 4), "x");
            block.insert(
                "metadata".into(),
                In::Map(MapPrelim::from([("created_by", In::Any("mallory".into()))])),
            );
            blocks(txn).insert(txn, "b2", block);
        })
    };
    let update = forged_new(1201, &server);
    assert_eq!(
        refused(&mut server, Role::Viewer, &update).code,
        RefusalCode::ReadOnly
    );
    let created = accepted(&mut server, Role::Editor, &update);
    assert_eq!(
        (created.touched_blocks, created.new_blocks),
        (vec!["b2".to_owned()], vec!["b2".to_owned()])
    );
    // once it exists, its metadata is as closed as any other block's
    let rewrite = edit(&client(1206), &server, |txn| {
        let m = sub_map(txn, &block_map(txn, "b2"), schema::METADATA);
        m.insert(txn, "created_by", "mallory-again");
    });
    let r = refused(&mut server, Role::Owner, &rewrite);
    assert_eq!(r.code, RefusalCode::Forbidden, "{r}");
    assert!(r.message.contains("metadata"), "{r}");
    // overwriting one key (the fast path's kind of update), removing one, replacing the map
    let overwrite = edit(&client(1202), &server, |txn| {
        let m = sub_map(txn, &block_map(txn, "b1"), schema::METADATA);
        m.insert(txn, "last_modified_by", "mallory");
    });
    assert_eq!(
        refused(&mut server, Role::Admin, &overwrite).code,
        RefusalCode::Forbidden
    );
    let remove = edit(&client(1203), &server, |txn| {
        let m = sub_map(txn, &block_map(txn, "b1"), schema::METADATA);
        m.remove(txn, "created_by");
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &remove).code,
        RefusalCode::Forbidden
    );
    let replace = edit(&client(1204), &server, |txn| {
        block_map(txn, "b1").insert(txn, schema::METADATA, MapPrelim::default());
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &replace).code,
        RefusalCode::Forbidden
    );
    // replacing an existing block whole is creating a block: reported as new, so the server
    // replaces the creator it carries
    let replaced = edit(&client(1207), &server, |txn| {
        let mut block = narrative("b1", position(0, 0, 6, 4), "again");
        block.insert(
            "metadata".into(),
            In::Map(MapPrelim::from([("created_by", In::Any("mallory".into()))])),
        );
        blocks(txn).insert(txn, "b1", block);
    });
    let applied = accepted(&mut server, Role::Editor, &replaced);
    assert_eq!(applied.new_blocks, ["b1"]);
    // an empty metadata map in a new block, and deleting a stamped block, are fine
    let c = client(1205);
    let fresh = edit(&c, &server, |txn| {
        blocks(txn).insert(txn, "b3", narrative("b3", position(6, 0, 6, 4), "y"));
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &fresh).touched_blocks,
        ["b3"]
    );
    let gone = edit(&c, &server, |txn| {
        blocks(txn).remove(txn, "b1");
    });
    assert_eq!(
        accepted(&mut server, Role::Editor, &gone).touched_blocks,
        ["b1"]
    );
}

/// Obsolete JSON content (Yjs before v13) is refused: yrs 0.28 reads it with one string more
/// than it writes, so a canvas holding it would store a snapshot that does not load (found
/// by the `json` fuzz target).
#[test]
fn obsolete_json_content_is_refused() {
    let server = seeded();
    // client 20, clock 0: meta.k = ContentJSON as yrs reads it (count 0, then one string)
    let update = b"\x01\x01\x14\x00\x22\x01\x04meta\x01k\x00\x011\x00";
    assert!(Update::decode_v1(update).is_ok(), "yrs decodes it");
    let r = server
        .inspect(Role::Owner, update)
        .expect_err("obsolete JSON content");
    assert_eq!(r.code, RefusalCode::InvalidSchema, "{r}");
    assert!(r.message.contains("obsolete JSON content"), "{r}");
}

#[test]
fn data_binding_values_cannot_be_forged() {
    use canvas_engine::bindings::{json_to_any, set_binding_value};
    use serde_json::json;
    use yrs::{Array, ArrayPrelim, ArrayRef};
    let mut server = seeded();
    let bindings_of = |txn: &TransactionMut, id: &str| -> ArrayRef {
        let content = sub_map(txn, &block_map(txn, id), schema::CONTENT);
        match content.get(txn, "data_bindings") {
            Some(Out::YArray(a)) => a,
            other => panic!("data_bindings is not an array: {other:?}"),
        }
    };
    // a new narrative with bindings but no values: accepted
    let plain = json!({"key": "total", "source": "b1", "calculation": "sum"});
    let create = edit(&client(1301), &server, |txn| {
        let mut block = narrative("n", position(0, 4, 6, 2), "total {{total}}");
        let content = MapPrelim::from([
            ("text", In::from(TextPrelim::new("total {{total}}"))),
            (
                "data_bindings",
                In::Array(ArrayPrelim::from([
                    In::Any(json_to_any(&plain)),
                    In::Map(MapPrelim::from([
                        ("key", In::Any("change".into())),
                        ("source", In::Any("b1".into())),
                        ("calculation", In::Any("percentage_change".into())),
                    ])),
                ])),
            ),
        ]);
        block.insert("content".into(), In::Map(content));
        blocks(txn).insert(txn, "n", block);
    });
    accepted(&mut server, Role::Editor, &create);
    // the server writes values (trusted)
    server.edit(|txn| {
        set_binding_value(txn, "n", 0, "total", &json!(10));
        set_binding_value(txn, "n", 1, "change", &json!(5.5));
    });
    // a client may not set a value in a Map entry, delete it, or push a plain entry with one
    let set = edit(&client(1302), &server, |txn| {
        let entry = match bindings_of(txn, "n").get(txn, 1) {
            Some(Out::YMap(m)) => m,
            other => panic!("{other:?}"),
        };
        entry.insert(txn, "value", 99);
    });
    let r = refused(&mut server, Role::Owner, &set);
    assert_eq!(r.code, RefusalCode::Forbidden, "{r}");
    assert!(r.message.contains("data_bindings"), "{r}");
    let delete = edit(&client(1303), &server, |txn| {
        let entry = match bindings_of(txn, "n").get(txn, 1) {
            Some(Out::YMap(m)) => m,
            other => panic!("{other:?}"),
        };
        entry.remove(txn, "value");
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &delete).code,
        RefusalCode::Forbidden
    );
    let push = edit(&client(1304), &server, |txn| {
        let forged = json!({"key": "x", "source": "b1", "calculation": "max", "value": 1});
        bindings_of(txn, "n").push_back(txn, json_to_any(&forged));
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &push).code,
        RefusalCode::Forbidden
    );
    let whole = edit(&client(1305), &server, |txn| {
        let content = sub_map(txn, &block_map(txn, "n"), schema::CONTENT);
        let forged = json!([{"key": "x", "source": "b1", "calculation": "max", "value": 1}]);
        content.insert(txn, "data_bindings", json_to_any(&forged));
    });
    assert_eq!(
        refused(&mut server, Role::Editor, &whole).code,
        RefusalCode::Forbidden
    );
    // changing a calculation, removing an entry (value and all), adding one without a value
    let change = edit(&client(1306), &server, |txn| {
        let entry = match bindings_of(txn, "n").get(txn, 1) {
            Some(Out::YMap(m)) => m,
            other => panic!("{other:?}"),
        };
        entry.insert(txn, "calculation", "max");
    });
    accepted(&mut server, Role::Editor, &change);
    let remove = edit(&client(1307), &server, |txn| {
        bindings_of(txn, "n").remove(txn, 1);
        bindings_of(txn, "n").push_back(txn, json_to_any(&plain));
    });
    accepted(&mut server, Role::Editor, &remove);
    let gone = edit(&client(1308), &server, |txn| {
        blocks(txn).remove(txn, "n");
    });
    accepted(&mut server, Role::Editor, &gone);
}
