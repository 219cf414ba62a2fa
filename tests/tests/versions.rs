//! Version history, restores and block attribution, end to end: REST calls while real
//! WebSocket clients are connected, on the embedded store and on the services
//! (PostgreSQL + MongoDB + Redis, two server nodes).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::json::block_json;
use canvas_engine::yrs::{Map, MapRef, Transact, WriteTxn};
use canvas_storage::AuditFilter;
use canvas_tests::*;
use serde_json::{Value, json};

/// A block's JSON in a client's document.
fn block(doc: &canvas_engine::yrs::Doc, id: &str) -> Option<Value> {
    block_json(&doc.transact(), id)
}

fn remove_block(txn: &mut canvas_engine::yrs::TransactionMut, id: &str) {
    txn.get_or_insert_map("blocks").remove(txn, id);
}

fn set_title(txn: &mut canvas_engine::yrs::TransactionMut, id: &str, title: &str) {
    let blocks = txn.get_or_insert_map("blocks");
    let block: MapRef = blocks.get(txn, id).unwrap().cast().unwrap();
    let content: MapRef = block.get(txn, "content").unwrap().cast().unwrap();
    content.insert(txn, "title", title);
}

fn versions_path(canvas: &str) -> String {
    format!("/api/v1/canvases/{canvas}/versions")
}

/// The done-when scenario: edit a canvas, name a version, delete two blocks, restore one
/// block and then the whole version while another client is connected over WebSocket
/// (`watcher_node` may be another server node): it sees both restores live.
async fn edit_name_delete_restore(server: &TestServer, watcher_node: &TestServer) {
    let team = Team::new(server).await;
    let api = &team.api;
    let canvas = &team.canvas;
    let mut editor = WsClient::join(&server.ws_url(canvas, &team.editor.token)).await;
    let mut watcher = WsClient::join(&watcher_node.ws_url(canvas, &team.owner.token)).await;

    editor
        .edit(|txn| {
            add_block(txn, "chart", "chart", (0, 0, 6, 4));
            add_block(txn, "note", "narrative", (6, 0, 6, 4));
            add_block(txn, "table", "table", (0, 4, 12, 4));
        })
        .await;
    editor
        .edit(|txn| set_title(txn, "chart", "Q4 by region"))
        .await;
    editor.wait_acked().await;
    watcher
        .wait_doc(|d| block_ids(d) == ["chart", "note", "table"])
        .await;

    let (status, named) = api
        .post(
            &versions_path(canvas),
            Some(&team.editor.token),
            json!({"changes": "Before cleanup"}),
        )
        .await;
    assert_eq!(status, 201, "{named}");
    assert_eq!(named["version"], 2);
    assert_eq!(named["kind"], "named");
    assert_eq!(named["changes"], "Before cleanup");
    assert_eq!(named["changed_by"], team.editor.id.as_str());

    editor
        .edit(|txn| {
            remove_block(txn, "chart");
            remove_block(txn, "table");
        })
        .await;
    editor.wait_acked().await;
    watcher.wait_doc(|d| block_ids(d) == ["note"]).await;

    // One block back, seen live by the other client.
    let (status, restored) = api
        .post(
            &format!("{}/2/blocks/chart/restore", versions_path(canvas)),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["block"]["id"], "chart");
    assert_eq!(restored["block"]["content"]["title"], "Q4 by region");
    assert_eq!(restored["version"]["version"], 3);
    assert_eq!(restored["version"]["kind"], "restore");
    watcher
        .wait_doc(|d| block_ids(d) == ["chart", "note"])
        .await;
    let live_chart = block(&watcher.doc, "chart").unwrap();
    assert_eq!(live_chart["content"]["title"], "Q4 by region");
    assert_eq!(
        live_chart["metadata"]["last_modified_by"],
        team.editor.id.as_str()
    );

    // The whole version, by the owner this time; also seen live.
    let (status, whole) = api
        .post(
            &format!("{}/2/restore", versions_path(canvas)),
            Some(&team.owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["version"]["version"], 4);
    assert_eq!(whole["version"]["changed_by"], team.owner.id.as_str());
    assert_eq!(whole["canvas"]["version"], 4);
    watcher
        .wait_doc(|d| block_ids(d) == ["chart", "note", "table"])
        .await;
    editor
        .wait_doc(|d| block_ids(d) == ["chart", "note", "table"])
        .await;
    let table = block(&watcher.doc, "table").unwrap();
    assert_eq!(
        table["metadata"]["created_by"],
        team.editor.id.as_str(),
        "a block brought back keeps its creator"
    );
    assert_eq!(
        table["metadata"]["last_modified_by"],
        team.owner.id.as_str()
    );

    // The live document equals version 2 again (blocks without attribution).
    let (_, v2) = api
        .get(
            &format!("{}/2", versions_path(canvas)),
            Some(&team.viewer.token),
        )
        .await;
    let live = api.canvas_json(&team.viewer, canvas).await;
    let strip = |v: &Value| -> Value {
        let mut blocks = v["blocks"].clone();
        for b in blocks.as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("metadata");
        }
        blocks
    };
    assert_eq!(strip(&live), strip(&v2));
    let (_, d) = api
        .get(
            &format!("{}/2/diff", versions_path(canvas)),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(
        d,
        json!({"from": 2, "to": null, "added": [], "removed": [], "moved": [],
               "content_changed": []})
    );

    // The history, newest first, and in the canvas JSON oldest first.
    let (status, list) = api
        .get(&versions_path(canvas), Some(&team.viewer.token))
        .await;
    assert_eq!(status, 200, "{list}");
    let summary: Vec<(i64, String)> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (4, "restore".to_owned()),
            (3, "restore".to_owned()),
            (2, "named".to_owned()),
            (1, "initial".to_owned())
        ]
    );
    assert_eq!(list["versions"][3]["changes"], "Initial creation");
    assert_eq!(list["versions"][0]["changes"], "Restored version 2");
    assert!(list["versions"][0]["changed_at"].is_string());
    assert_eq!(live["version"], 4);
    let history = live["metadata"]["version_history"].as_array().unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| h["version"].clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(2), json!(3), json!(4)]
    );

    // Audited: naming, the block restore and the whole restore.
    let mut actions: Vec<String> = server
        .state
        .storage
        .audit
        .list(AuditFilter {
            resource_id: canvas.parse().ok(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a != "canvas.create")
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "canvas.version.create",
            "canvas.block.restore",
            "canvas.restore"
        ]
    );
}

#[tokio::test]
async fn restores_are_forward_changes_seen_live() {
    let server = TestServer::start().await;
    edit_name_delete_restore(&server, &server).await;
}

#[tokio::test]
async fn restores_are_forward_changes_seen_live_on_services_across_nodes() {
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    edit_name_delete_restore(&node1, &node2).await;
    // MongoDB holds the snapshots and keeps the canvas document's history in step.
    let db = node1.services.as_ref().unwrap().mongo().await;
    use mongodb::bson::{Document, doc};
    let versions = db
        .collection::<Document>("canvas_versions")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(versions, 4);
    let canvas = db
        .collection::<Document>("canvases")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(canvas.get_i32("version").ok(), Some(4));
    let history = canvas
        .get_document("metadata")
        .unwrap()
        .get_array("version_history")
        .unwrap();
    assert_eq!(history.len(), 4);
}

#[tokio::test]
async fn versions_are_read_compared_and_guarded() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let canvas = &team.canvas;
    let path = versions_path(canvas);
    let mut editor = WsClient::join(&server.ws_url(canvas, &team.editor.token)).await;

    // Version 1 is the canvas as created.
    let (status, v1) = api
        .get(&format!("{path}/1"), Some(&team.viewer.token))
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["id"], canvas.as_str());
    assert_eq!(v1["name"], "Q4 Sales Analysis");
    assert_eq!(v1["blocks"], json!([]));
    assert_eq!(v1["metadata"]["version_history"][0]["kind"], "initial");

    editor
        .edit(|txn| {
            add_block(txn, "a", "chart", (0, 0, 6, 4));
            add_block(txn, "b", "chart", (6, 0, 6, 4));
        })
        .await;
    editor.wait_acked().await;
    let (status, _) = api
        .post(&path, Some(&team.editor.token), json!({"changes": "two"}))
        .await;
    assert_eq!(status, 201);
    editor
        .edit(|txn| {
            set_position(txn, "a", "y", 8.0);
            set_title(txn, "b", "renamed");
            add_block(txn, "c", "table", (0, 20, 12, 2));
        })
        .await;
    editor.wait_acked().await;

    let (_, d) = api
        .get(&format!("{path}/1/diff?to=2"), Some(&team.viewer.token))
        .await;
    assert_eq!(
        d,
        json!({"from": 1, "to": 2, "added": ["a", "b"], "removed": [], "moved": [],
               "content_changed": []})
    );
    let (_, d) = api
        .get(&format!("{path}/2/diff"), Some(&team.viewer.token))
        .await;
    assert_eq!(
        d,
        json!({"from": 2, "to": null, "added": ["c"], "removed": [],
               "moved": [{"id": "a", "from": {"x": 0, "y": 0, "w": 6, "h": 4},
                          "to": {"x": 0, "y": 8, "w": 6, "h": 4}}],
               "content_changed": ["b"]})
    );

    // Unknown versions and blocks, bad input, roles.
    for bad in ["99", "0"] {
        let (status, body) = api
            .get(&format!("{path}/{bad}"), Some(&team.viewer.token))
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = api
        .get(&format!("{path}/1/diff?to=42"), Some(&team.viewer.token))
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .get(&format!("{path}/abc"), Some(&team.viewer.token))
        .await;
    assert_eq!(status, 400);
    let (status, body) = api
        .post(
            &format!("{path}/2/blocks/c/restore"),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "block c is not in version 2: {body}");
    let (status, _) = api
        .post(
            &format!("{path}/7/restore"),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    for changes in [json!(""), json!("   "), json!("x".repeat(501)), json!(5)] {
        let (status, body) = api
            .post(
                &path,
                Some(&team.editor.token),
                json!({ "changes": changes }),
            )
            .await;
        assert_eq!(status, 400, "{changes}: {body}");
    }
    let (status, _) = api
        .post(
            &path,
            Some(&team.editor.token),
            json!({"changes": "x".repeat(500)}),
        )
        .await;
    assert_eq!(status, 201, "500 characters are fine");
    for (method_path, body) in [
        (path.clone(), json!({"changes": "viewer"})),
        (format!("{path}/1/restore"), json!({})),
        (format!("{path}/2/blocks/a/restore"), json!({})),
    ] {
        let (status, reply) = api.post(&method_path, Some(&team.viewer.token), body).await;
        assert_eq!(status, 403, "{method_path}: {reply}");
    }
    let (status, _) = api.get(&path, Some(&team.stranger.token)).await;
    assert_eq!(status, 403);
    let (status, _) = api.get(&path, None).await;
    assert_eq!(status, 401);
    // Nothing the refused calls asked for happened.
    let (_, list) = api.get(&path, Some(&team.viewer.token)).await;
    assert_eq!(list["versions"].as_array().unwrap().len(), 3);
    let live = api.canvas_json(&team.viewer, canvas).await;
    assert_eq!(live["blocks"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_restore_never_rolls_back_sharing() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut owner = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    // Version 2 while the stranger has no grant; then the owner grants them editor.
    let (status, _) = api
        .post(
            &versions_path(&team.canvas),
            Some(&team.owner.token),
            json!({"changes": "before the grant"}),
        )
        .await;
    assert_eq!(status, 201);
    let stranger = team.stranger.id.clone();
    owner
        .edit(|txn| {
            canvas_engine::sharing::grant(
                txn,
                &stranger,
                canvas_engine::Role::Editor,
                "owner",
                "now",
            )
        })
        .await;
    owner.wait_acked().await;
    let (status, _) = api
        .post(
            &format!("{}/2/restore", versions_path(&team.canvas)),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let live = api.canvas_json(&team.stranger, &team.canvas).await;
    assert_eq!(
        live["sharing"]["permissions"][0]["user_id"],
        stranger.as_str()
    );
}

#[tokio::test]
async fn the_server_stamps_who_changed_each_block_and_forgeries_are_refused() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut owner = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    editor
        .edit(|txn| add_block(txn, "b1", "chart", (0, 0, 6, 4)))
        .await;
    editor.wait_acked().await;
    // The stamp reaches everyone, the sender included.
    let editor_id = team.editor.id.clone();
    for c in [&mut editor, &mut owner] {
        c.wait_doc(|d| {
            block(d, "b1").is_some_and(|b| b["metadata"]["created_by"] == editor_id.as_str())
        })
        .await;
    }
    let stamped = block(&owner.doc, "b1").unwrap()["metadata"].clone();
    assert_eq!(stamped["last_modified_by"], editor_id.as_str());
    let created_at = stamped["created_at"].as_str().unwrap();
    assert!(
        created_at.len() == 24 && created_at.ends_with('Z') && &created_at[10..11] == "T",
        "an RFC 3339 UTC time: {stamped}"
    );

    // Another user's change: last_modified_by moves, created_by stays.
    owner.edit(|txn| set_position(txn, "b1", "y", 3.0)).await;
    owner.wait_acked().await;
    let owner_id = team.owner.id.clone();
    editor
        .wait_doc(|d| {
            block(d, "b1").is_some_and(|b| b["metadata"]["last_modified_by"] == owner_id.as_str())
        })
        .await;
    assert_eq!(
        block(&editor.doc, "b1").unwrap()["metadata"]["created_by"],
        editor_id.as_str()
    );

    // Forging: rewriting the creator, or creating a block with made-up metadata.
    let mut forger = WsClient::join(&server.ws_url(&team.canvas, &team.admin.token)).await;
    forger
        .edit(|txn| {
            let blocks = txn.get_or_insert_map("blocks");
            let block: MapRef = blocks.get(txn, "b1").unwrap().cast().unwrap();
            let metadata: MapRef = block.get(txn, "metadata").unwrap().cast().unwrap();
            metadata.insert(txn, "created_by", "mallory");
        })
        .await;
    let refusal = forger
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(
        matches!(&refusal, Incoming::Error { code, .. } if code == "forbidden"),
        "{refusal:?}"
    );
    // A new block may come with metadata (an undo re-creating a removed block does): the
    // server replaces it with its own stamp at once, so the made-up creator never survives.
    let mut forger = WsClient::join(&server.ws_url(&team.canvas, &team.admin.token)).await;
    let admin_id = team.admin.id.clone();
    forger
        .edit(|txn| {
            let mut prelim = block_prelim("b2", "chart", 6, 0, 6, 4);
            prelim.insert(
                "metadata".into(),
                canvas_engine::yrs::In::Map(canvas_engine::yrs::MapPrelim::from([(
                    "created_by",
                    canvas_engine::yrs::In::from("mallory"),
                )])),
            );
            txn.get_or_insert_map("blocks").insert(txn, "b2", prelim);
        })
        .await;
    forger
        .wait_doc(|d| {
            block(d, "b2").is_some_and(|b| {
                b["metadata"]["created_by"] == admin_id.as_str()
                    && b["metadata"]["last_modified_by"] == admin_id.as_str()
            })
        })
        .await;
    assert!(forger.errors.is_empty(), "{:?}", forger.errors);
    forger
        .edit(|txn| {
            txn.get_or_insert_map("blocks").remove(txn, "b2");
        })
        .await;
    forger.wait_acked().await;
    let view = team.api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(view["blocks"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(
        view["blocks"][0]["metadata"]["created_by"],
        editor_id.as_str()
    );
    assert_eq!(
        view["blocks"][0]["metadata"]["last_modified_by"],
        owner_id.as_str()
    );
}

#[tokio::test]
async fn automatic_versions_are_recorded_while_a_canvas_is_edited() {
    let server = TestServer::start_with(|c| c.version_interval_secs = 1).await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| add_block(txn, "b1", "chart", (0, 0, 6, 4)))
        .await;
    editor.wait_acked().await;
    let path = versions_path(&team.canvas);
    let deadline = tokio::time::Instant::now() + WAIT;
    let auto = loop {
        let (status, list) = team.api.get(&path, Some(&team.viewer.token)).await;
        assert_eq!(status, 200, "{list}");
        if let Some(auto) = list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["kind"] == "auto")
        {
            break auto.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic version: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(auto["version"], 2);
    assert_eq!(auto["changed_by"], team.editor.id.as_str());
    let (_, v2) = team
        .api
        .get(&format!("{path}/2"), Some(&team.viewer.token))
        .await;
    assert_eq!(v2["blocks"][0]["id"], "b1");
    // That no further automatic version follows while nothing changes is the room's unit
    // test (server/src/sync/room/tests.rs), with the clock moved instead of slept through.
}

#[tokio::test]
async fn the_history_survives_a_restart() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| add_block(txn, "b1", "chart", (0, 0, 6, 4)))
        .await;
    editor.wait_acked().await;
    let path = versions_path(&team.canvas);
    let (status, _) = team
        .api
        .post(&path, Some(&team.editor.token), json!({"changes": "kept"}))
        .await;
    assert_eq!(status, 201);
    drop(editor);
    let dir = server.data_dir.clone();
    let tmp = server.stop().await;
    let again = TestServer::start_in(&dir, |_| {}).await;
    let api = again.api();
    let (status, list) = api.get(&path, Some(&team.viewer.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["versions"][0]["changes"], "kept");
    assert_eq!(list["versions"].as_array().unwrap().len(), 2);
    let (_, live) = api
        .get(
            &format!("/api/v1/canvases/{}", team.canvas),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(live["version"], 2);
    let (_, v2) = api
        .get(&format!("{path}/2"), Some(&team.viewer.token))
        .await;
    assert_eq!(v2["blocks"][0]["id"], "b1");
    again.stop().await;
    drop(tmp);
}
