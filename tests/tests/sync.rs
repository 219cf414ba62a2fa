//! Live collaboration over the y-websocket protocol: sync, relay, awareness, acks.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::yrs::{GetString, Map, ReadTxn, Text, TextRef, Transact, WriteTxn};
use canvas_tests::*;
use std::time::Duration;

fn narrative_text(doc: &canvas_engine::yrs::Doc, id: &str) -> Option<String> {
    let txn = doc.transact();
    let blocks = txn.get_map("blocks")?;
    let block: canvas_engine::yrs::MapRef = blocks.get(&txn, id)?.cast().ok()?;
    let content: canvas_engine::yrs::MapRef = block.get(&txn, "content")?.cast().ok()?;
    let text: TextRef = content.get(&txn, "text")?.cast().ok()?;
    Some(text.get_string(&txn))
}

fn insert_text(txn: &mut canvas_engine::yrs::TransactionMut, id: &str, index: u32, s: &str) {
    let blocks = txn.get_or_insert_map("blocks");
    let block: canvas_engine::yrs::MapRef = blocks.get(txn, id).unwrap().cast().unwrap();
    let content: canvas_engine::yrs::MapRef = block.get(txn, "content").unwrap().cast().unwrap();
    let text: TextRef = content.get(txn, "text").unwrap().cast().unwrap();
    text.insert(txn, index, s);
}

#[tokio::test]
async fn two_editors_converge_and_edits_are_acknowledged() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut b = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;

    // The initial document (meta, layout, sharing) reached both.
    for c in [&a, &b] {
        let txn = c.doc.transact();
        let meta = txn.get_map("meta").expect("meta synced");
        assert_eq!(
            meta.get(&txn, "name").map(|v| v.to_string(&txn)),
            Some("Q4 Sales Analysis".to_owned())
        );
    }

    a.edit(|txn| add_block(txn, "b1", "narrative", (0, 0, 6, 4)))
        .await;
    a.wait_acked().await;
    b.wait_doc(|d| block_ids(d) == ["b1"]).await;

    // Concurrent typing into one narrative block converges.
    a.edit(|txn| insert_text(txn, "b1", 0, "Hello")).await;
    b.edit(|txn| insert_text(txn, "b1", 0, "World")).await;
    a.wait_doc(|d| narrative_text(d, "b1").is_some_and(|t| t.len() == 10))
        .await;
    b.wait_doc(|d| narrative_text(d, "b1").is_some_and(|t| t.len() == 10))
        .await;
    assert_eq!(narrative_text(&a.doc, "b1"), narrative_text(&b.doc, "b1"));
    a.wait_acked().await;
    b.wait_acked().await;

    // The REST view shows the live block in the seed's shape.
    let view = team.api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(view["blocks"][0]["id"], "b1");
    assert_eq!(
        view["blocks"][0]["position"],
        serde_json::json!({"x": 0, "y": 0, "w": 6, "h": 4})
    );
    assert_eq!(
        view["blocks"][0]["content"]["text"].as_str().map(str::len),
        Some(10)
    );
}

#[tokio::test]
async fn awareness_is_relayed_echoed_and_cleared_on_disconnect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut b = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;

    a.send_awareness(
        4242,
        1,
        r#"{"user":{"name":"Alice"},"cursor":{"x":3,"y":4}}"#,
    )
    .await;
    b.wait_for(|c, _| c.awareness.contains_key(&4242)).await;
    // Echoed to the sender as well (keeps y-websocket's 30 s liveness timer happy).
    a.wait_for(|c, _| c.awareness.contains_key(&4242)).await;

    // The presence store is written off the room's task: poll it briefly.
    let path = format!("/api/v1/canvases/{}/presence", team.canvas);
    let mut presence = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = team.api.get(&path, Some(&team.viewer.token)).await;
        assert_eq!(status, 200, "{body}");
        presence = body;
        if !presence["presence"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = presence["presence"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{presence}");
    assert_eq!(list[0]["user_id"], team.editor.id.as_str());
    assert_eq!(list[0]["cursor"], serde_json::json!({"x": 3, "y": 4}));
    assert!(list[0]["last_seen"].is_string(), "{presence}");
    let mut active: Vec<&str> = presence["active_users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    active.sort();
    let mut expected = vec![team.editor.id.as_str(), team.viewer.id.as_str()];
    expected.sort();
    assert_eq!(active, expected);

    // A newcomer receives the known awareness right away.
    let mut c = WsClient::connect(&server.ws_url(&team.canvas, &team.owner.token)).await;
    c.wait_for(|c, _| c.awareness.contains_key(&4242)).await;

    // Nobody can erase or fake someone else's awareness state.
    c.send_awareness(4242, 99, "null").await;
    c.send_awareness(4242, 100, r#"{"user":{"name":"Mallory"}}"#)
        .await;
    c.send_awareness(7, 1, r#"{"user":{"name":"Carol"}}"#).await;
    b.wait_for(|c, _| c.awareness.contains_key(&7)).await;
    assert!(
        b.awareness[&4242].contains(r#""x":3"#),
        "the owner's state is untouched: {:?}",
        b.awareness
    );
    // Everyone shows up under their own name, whatever their state says.
    assert!(b.awareness[&4242].contains(&team.editor.username));
    assert!(b.awareness[&7].contains(&team.owner.username));

    drop(a);
    b.wait_for(|c, _| !c.awareness.contains_key(&4242)).await;
}

#[tokio::test]
async fn late_joiner_receives_everything_and_updates_relay_in_order() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for i in 0..20 {
        a.edit(|txn| add_block(txn, &format!("b{i:02}"), "chart", (0, i * 4, 6, 4)))
            .await;
    }
    a.wait_acked().await;
    let late = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(block_ids(&late.doc).len(), 20);
    let mut b = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    a.edit(|txn| set_position(txn, "b00", "x", 6.0)).await;
    b.wait_doc(|d| {
        let view = canvas_engine::json::canvas_json(&d.transact());
        view["blocks"].as_array().is_some_and(|bs| {
            bs.iter()
                .any(|b| b["id"] == "b00" && b["position"]["x"] == 6)
        })
    })
    .await;
    // Nothing else arrives at the sender: its own update is not echoed back.
    let extra = a.drain(Duration::from_millis(300)).await;
    assert!(
        extra.iter().all(|i| matches!(i, Incoming::Ack(_))),
        "unexpected: {extra:?}"
    );
}

#[tokio::test]
async fn the_presence_store_ends_with_the_latest_cursor_despite_the_throttle() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    // Several cursor moves within the one-second write interval: the first is written at
    // once, the others are held back, and the last one must still reach the store.
    // (That the others are held back, i.e. the throttle itself, is proven by the room's unit
    // test counting presence writes: server/src/sync/room/tests.rs.)
    for x in 1..=5 {
        a.send_awareness(
            4243,
            x,
            &format!(r#"{{"user":{{"name":"Ann"}},"cursor":{{"x":{x},"y":0}}}}"#),
        )
        .await;
    }
    a.wait_for(|c, _| {
        c.awareness
            .get(&4243)
            .is_some_and(|s| s.contains(r#""x":5"#))
    })
    .await;
    let path = format!("/api/v1/canvases/{}/presence", team.canvas);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = team.api.get(&path, Some(&team.viewer.token)).await;
        assert_eq!(status, 200, "{body}");
        if body["presence"][0]["cursor"] == serde_json::json!({"x": 5, "y": 0}) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last cursor never reached the store: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn joiners_get_the_document_as_it_is_now_after_inserts_and_deletions() {
    // The room answers joins with an empty document from a cached encoding of the whole
    // document; every change, a deletion too, must make it encode again.
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);
    let mut a = WsClient::join(&url).await;
    a.edit(|txn| add_block(txn, "b1", "narrative", (0, 0, 6, 4)))
        .await;
    a.wait_acked().await;
    let first = WsClient::join(&url).await;
    assert_eq!(block_ids(&first.doc), ["b1"]);
    let second = WsClient::join(&url).await;
    assert_eq!(block_ids(&second.doc), ["b1"]);
    a.edit(|txn| {
        txn.get_or_insert_map("blocks").remove(txn, "b1");
    })
    .await;
    a.wait_acked().await;
    let third = WsClient::join(&url).await;
    assert!(block_ids(&third.doc).is_empty());
    a.edit(|txn| add_block(txn, "b2", "chart", (0, 0, 6, 4)))
        .await;
    a.wait_acked().await;
    let fourth = WsClient::join(&url).await;
    assert_eq!(block_ids(&fourth.doc), ["b2"]);
    server.stop().await;
}

#[tokio::test]
async fn bursts_of_typing_from_several_clients_are_applied_in_batches_with_one_verdict_each() {
    // Updates that wait in a room's queue are inspected and applied together
    // (`CanvasDoc::apply_batch`, admins' included); each still gets its own verdict and ack,
    // runs of typing are logged and relayed as one merged update, and a refused one (a
    // viewer's) takes nothing else down.
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut b = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    a.edit(|txn| add_block(txn, "t", "narrative", (0, 0, 6, 4)))
        .await;
    a.wait_acked().await;
    b.wait_doc(|d| block_ids(d) == ["t"]).await;
    viewer.wait_doc(|d| block_ids(d) == ["t"]).await;

    // Without waiting for anything: 300 keystrokes from `a`, a viewer's edit in the middle.
    for i in 0..300u32 {
        a.edit(|txn| insert_text(txn, "t", i, "x")).await;
        if i == 150 {
            viewer.edit(|txn| insert_text(txn, "t", 0, "NO")).await;
        }
    }
    a.wait_acked().await;
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    let refusal = viewer
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(matches!(refusal, Incoming::Error { ref code, .. } if code == "read_only"));
    let expected = "x".repeat(300);
    b.wait_doc(|d| narrative_text(d, "t").as_deref() == Some(expected.as_str()))
        .await;
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"][0]["content"]["text"], expected.as_str());

    // And all of it is in the durable log: a restarted server has it.
    drop((a, b, viewer));
    let dir = server.data_dir.clone();
    // The data folder must outlive the first server: the second one opens it.
    let _data = server.stop().await;
    let again = TestServer::start_in(&dir, |_| {}).await;
    let c = WsClient::join(&again.ws_url(&team.canvas, &team.owner.token)).await;
    assert_eq!(
        narrative_text(&c.doc, "t").as_deref(),
        Some(expected.as_str())
    );
}

/// REST presence answers from the live room on the node that holds it: the cursor every
/// connected client already sees, not the store's copy (written at most once a second).
#[tokio::test]
async fn rest_presence_shows_the_live_cursor() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut mover = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    for x in 1..=3 {
        mover
            .send_awareness(4242, x, &format!(r#"{{"cursor":{{"x":{x},"y":0}}}}"#))
            .await;
    }
    watcher
        .wait_for(|c, _| {
            c.awareness
                .get(&4242)
                .is_some_and(|s| s.contains(r#""x":3"#))
        })
        .await;
    let (status, body) = team
        .api
        .get(
            &format!("/api/v1/canvases/{}/presence", team.canvas),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let list = body["presence"].as_array().unwrap();
    let editor = list
        .iter()
        .find(|e| e["user_id"] == team.editor.id.as_str())
        .unwrap_or_else(|| panic!("the editor is present: {body}"));
    assert_eq!(
        editor["cursor"],
        serde_json::json!({"x": 3, "y": 0}),
        "{body}"
    );
    assert_eq!(list.len(), 1, "only users with an awareness state: {body}");
    assert!(
        body["active_users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == team.viewer.id.as_str()),
        "a connected user without one is active: {body}"
    );
}

/// A client that stops reading while a room is busy is not dropped: once it reads again it
/// gets what it missed as one merged update and converges (it used to be closed with 1013
/// and had to reconnect and resync).
#[tokio::test]
async fn a_lagging_reader_is_caught_up_not_dropped() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut writer = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut slow = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    // About 16 MB of relayed updates while `slow` reads nothing: more than the socket buffers
    // and its queue of frames hold.
    let title = "x".repeat(8 * 1024);
    let total = 2000;
    for i in 0..total {
        writer
            .edit(|txn| {
                add_block(txn, &format!("b{i:04}"), "chart", (0, i, 1, 1));
                use canvas_engine::yrs::{Map, MapRef, WriteTxn};
                let blocks = txn.get_or_insert_map("blocks");
                let block: MapRef = blocks
                    .get(txn, &format!("b{i:04}"))
                    .and_then(|v| v.cast().ok())
                    .unwrap();
                let content: MapRef = block
                    .get(txn, "content")
                    .and_then(|v| v.cast().ok())
                    .unwrap();
                content.insert(txn, "title", title.as_str());
            })
            .await;
        if i % 100 == 99 {
            writer.wait_acked().await;
        }
    }
    writer.wait_acked().await;
    // Reading again: it converges without being closed (wait_doc fails on a close).
    slow.wait_doc(|doc| block_ids(doc).len() == total as usize)
        .await;
    let (status, body) = team
        .api
        .get(
            &format!("/api/v1/canvases/{}/presence", team.canvas),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["active_users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == team.viewer.id.as_str()),
        "the slow reader is still connected: {body}"
    );
}
