//! Everything is still there after the server stops and starts again.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;

#[tokio::test]
async fn state_survives_a_graceful_restart() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for i in 0..30 {
        a.edit(|txn| add_block(txn, &format!("b{i}"), "chart", (0, i, 2, 1)))
            .await;
    }
    a.edit(|txn| set_position(txn, "b0", "x", 10.0)).await;
    a.wait_acked().await;
    let before = team.api.canvas_json(&team.owner, &team.canvas).await;
    drop(a);
    let dir = server.data_dir.clone();
    let tmp = server.stop().await;

    let server = TestServer::start_in(&dir, |_| {}).await;
    let api = server.api();
    let after = api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(after["blocks"], before["blocks"]);
    assert_eq!(after["blocks"].as_array().unwrap().len(), 30);
    // Logins, memberships and tokens survived too: the viewer still syncs the document.
    let viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(block_ids(&viewer.doc).len(), 30);
    let (status, body) = api
        .post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({ "email": team.editor.email, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn rooms_unload_when_idle_and_reload_from_the_log() {
    let server = TestServer::start_with(|c| {
        c.idle_unload_secs = 1;
        c.checkpoint_updates = 7;
    })
    .await;
    let team = Team::new(&server).await;
    let canvas: uuid::Uuid = team.canvas.parse().unwrap();
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for i in 0..25 {
        a.edit(|txn| add_block(txn, &format!("b{i}"), "chart", (0, i, 2, 1)))
            .await;
    }
    a.wait_acked().await;
    drop(a);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.rooms.is_loaded(canvas) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room never unloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stored = server
        .state
        .storage
        .canvases
        .load_document(canvas)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.updates.is_empty(),
        "unload compacts the log: {} entries left",
        stored.updates.len()
    );
    let b = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(block_ids(&b.doc).len(), 25);
}

#[tokio::test]
async fn a_quiet_room_checkpoints_after_a_while_while_still_open() {
    let server = TestServer::start_with(|c| c.checkpoint_secs = 1).await;
    let team = Team::new(&server).await;
    let canvas: uuid::Uuid = team.canvas.parse().unwrap();
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    a.edit(|txn| add_block(txn, "only", "chart", (0, 0, 2, 1)))
        .await;
    a.wait_acked().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = server
            .state
            .storage
            .canvases
            .load_document(canvas)
            .await
            .unwrap()
            .unwrap();
        if stored.updates.is_empty() && stored.snapshot_seq > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no time-based checkpoint"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        server.state.rooms.is_loaded(canvas),
        "the room is still open"
    );
}
