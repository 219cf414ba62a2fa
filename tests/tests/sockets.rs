//! The WebSocket itself: close codes that reach the client, answered close frames, idle and
//! dead connections, and documents larger than what a client may send.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::yrs::{Map, Text};
use canvas_tests::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Reads until the server's close frame; its code, or 1006 if the connection just ended.
async fn close_code(client: &mut WsClient) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("the server answers in time")
        {
            Some(Ok(WsMessage::Close(Some(CloseFrame { code, .. })))) => return code.into(),
            Some(Ok(WsMessage::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return 1006,
        }
    }
}

/// An oversized message or a burst of bad frames still gets its close code, every time: the
/// server reads what the client still sends before it hangs up (it used to reset the
/// connection, and about one try in three saw 1006).
#[tokio::test]
async fn fatal_close_codes_reach_the_client_every_time() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 64 * 1024).await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);
    for size in [64 * 1024 + 1, 1024 * 1024 + 64 * 1024, 8 * 1024 * 1024] {
        for _ in 0..8 {
            let mut client = WsClient::join(&url).await;
            // The send may fail once the server has closed: what counts is the code.
            let _ = client
                .ws
                .send(WsMessage::Binary(vec![0u8; size].into()))
                .await;
            assert_eq!(close_code(&mut client).await, 4413, "{size} bytes");
        }
    }
    for _ in 0..20 {
        let mut client = WsClient::join(&url).await;
        for _ in 0..200 {
            if client
                .ws
                .feed(WsMessage::Binary(vec![0x80].into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = client.ws.flush().await;
        assert_eq!(close_code(&mut client).await, 4400);
    }
}

/// A client's close frame is answered (1000 back), not met with a dropped connection.
#[tokio::test]
async fn a_close_frame_is_answered() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client
        .ws
        .close(Some(CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, 1000);
}

/// A connection that never sends its first message is closed (1008); one that goes silent
/// later and does not answer pings is closed as dead (1001), while one that answers stays.
#[tokio::test]
async fn silent_and_dead_connections_are_closed() {
    let server = TestServer::start_with(|c| {
        c.ws_first_message_secs = 1;
        c.ws_ping_secs = 1;
    })
    .await;
    let team = Team::new(&server).await;
    let mut silent = WsClient::connect(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(close_code(&mut silent).await, 1008);

    // The dead peer joins, then stops reading (so it never answers a ping).
    let mut dead = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut alive = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let presence = format!("/api/v1/canvases/{}/presence", team.canvas);
    let active = |body: &serde_json::Value, id: &str| {
        body["active_users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == id)
    };
    // The live one keeps reading (and so answering pings) while the dead one is dropped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = team.api.get(&presence, Some(&team.owner.token)).await;
        assert_eq!(status, 200, "{body}");
        if !active(&body, &team.editor.id) {
            assert!(
                active(&body, &team.owner.id),
                "the live client stays: {body}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead connection is still there: {body}"
        );
        alive.drain(Duration::from_millis(200)).await;
    }
    assert_eq!(close_code(&mut dead).await, 1001);
    alive
        .edit(|txn| add_block(txn, "still-here", "chart", (0, 0, 2, 2)))
        .await;
    alive.wait_acked().await;
}

/// A canvas far larger than what a client may send in one message (20 MB against a 1 MiB
/// limit) is still sent whole to a new client: a limit on what clients send must not lock
/// everyone out of what the room holds. Each such frame is counted (and logged); frames
/// within the limit are not.
#[tokio::test]
async fn a_canvas_of_twenty_megabytes_still_opens() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);
    let mut writer = WsClient::join(&url).await;
    // Twenty narrative blocks of a little under 1 MB of text each, one update per block.
    let text = "lorem ipsum ".repeat(80_000);
    for i in 0..20 {
        writer
            .edit(|txn| {
                use canvas_engine::yrs::{MapRef, TextRef, WriteTxn};
                let id = format!("n{i:02}");
                add_block(txn, &id, "narrative", (0, i * 4, 6, 4));
                let blocks = txn.get_or_insert_map("blocks");
                let block: MapRef = blocks.get(txn, &id).and_then(|v| v.cast().ok()).unwrap();
                let content: MapRef = block
                    .get(txn, "content")
                    .and_then(|v| v.cast().ok())
                    .unwrap();
                let body: TextRef = content
                    .get(txn, "text")
                    .and_then(|v| v.cast().ok())
                    .unwrap();
                body.insert(txn, 0, &text);
            })
            .await;
        writer.wait_acked().await;
    }
    assert!(
        writer.state().len() > 19_000_000,
        "{} bytes",
        writer.state().len()
    );
    let stats = &server.state.metrics;
    assert_eq!(
        stats.oversized_frames.get(),
        0,
        "acks and sync steps are small"
    );
    let mut reader = WsClient::join(&url).await;
    assert_eq!(block_ids(&reader.doc).len(), 20);
    assert_eq!(reader.state().len(), writer.state().len());
    assert_eq!(stats.oversized_frames.get(), 1, "the reader's sync step 2");
    assert!(
        stats.oversized_frame_bytes.get() > 19_000_000,
        "{}",
        stats.oversized_frame_bytes.get()
    );
    drop(reader.drain(Duration::from_millis(10)).await);
}

/// Reads from a raw socket until the server closes it; `false` if it is still open at the
/// deadline.
async fn closed_by_server(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an error response before the close
        }
    }
}

/// A thousand TCP connections that never send a request (and a hundred that stop halfway
/// through one) do not keep a normal client out, and are closed once the handshake timeout
/// passes, freeing what they held.
#[tokio::test]
async fn a_thousand_idle_connections_are_closed_and_keep_nobody_out() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| {
        c.handshake_timeout_secs = 2;
        c.max_pending_handshakes = 2000;
    })
    .await;
    let team = Team::new(&server).await;
    let mut idle = Vec::new();
    for i in 0..1100 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        if i >= 1000 {
            tcp.write_all(b"GET /ws/x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
                .await
                .unwrap();
        }
        idle.push(tcp);
    }
    // A normal client gets in and works while they are held.
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client
        .edit(|txn| add_block(txn, "amid-idle", "chart", (0, 0, 2, 2)))
        .await;
    client.wait_acked().await;
    let (status, _) = team.api.get("/healthz", None).await;
    assert_eq!(status, 200);
    // Every idle one is closed by the server (the timeout is 2 s; the wait is generous).
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(
            closed_by_server(tcp, Duration::from_secs(20)).await,
            "idle connection {i} still open"
        );
    }
    // The established WebSocket is not a pending handshake: it stays.
    client
        .edit(|txn| add_block(txn, "after-idle", "chart", (0, 4, 2, 2)))
        .await;
    client.wait_acked().await;
}

/// With every handshake slot taken, a new connection is closed at once instead of queueing;
/// once the slots free up, clients connect again.
#[tokio::test]
async fn connections_past_the_pending_bound_are_closed_at_once() {
    let server = TestServer::start_with(|c| {
        c.handshake_timeout_secs = 60;
        c.max_pending_handshakes = 5;
    })
    .await;
    let team = Team::new(&server).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_by_server(&mut extra, Duration::from_secs(20)).await,
        "the sixth connection is closed long before the 60 s handshake timeout"
    );
    drop(held);
    // The slots free as the server sees the held connections end: a new connection gets
    // through then (tried until it does; each try that comes too early is closed at once).
    let url = server.ws_url(&team.canvas, &team.editor.token);
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client
        .edit(|txn| add_block(txn, "after-bound", "chart", (0, 0, 2, 2)))
        .await;
    client.wait_acked().await;
}
