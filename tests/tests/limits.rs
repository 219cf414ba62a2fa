//! Per-minute rate limits: REST calls (429 with Retry-After), login attempts per account,
//! and WebSocket messages (close 4429).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn rest_calls_past_the_limit_get_429_per_user_and_endpoint() {
    let server = TestServer::start_with(|c| c.rest_rate_limit = 5).await;
    let api = server.api();
    let ann = api.signup("ann").await;
    let bob = api.signup("bob").await;
    for _ in 0..5 {
        assert_eq!(api.get("/api/v1/projects", Some(&ann.token)).await.0, 200);
    }
    let resp = api
        .client
        .get(format!("{}/api/v1/projects", api.base))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u32 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another endpoint and another user are counted separately.
    assert_eq!(api.get("/api/v1/auth/me", Some(&ann.token)).await.0, 200);
    assert_eq!(api.get("/api/v1/projects", Some(&bob.token)).await.0, 200);
}

#[tokio::test]
async fn password_guessing_is_limited_per_account() {
    let server = TestServer::start_with(|c| c.login_rate_limit = 3).await;
    let api = server.api();
    let ann = api.signup("ann").await;
    for _ in 0..3 {
        let (status, _) = api
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": ann.email, "password": "guess guess" }),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": ann.email, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn websocket_floods_are_closed_with_4429() {
    let server = TestServer::start_with(|c| c.ws_rate_limit = 40).await;
    let team = Team::new(&server).await;
    let mut calm = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut flood = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for i in 0..200u32 {
        flood
            .send_awareness(99, i + 1, r#"{"cursor":{"x":1,"y":1}}"#)
            .await;
    }
    let (code, reason) = flood.wait_closed().await;
    assert_eq!(code, 4429, "{reason}");
    // Others are unaffected.
    calm.edit(|txn| add_block(txn, "fine", "chart", (0, 0, 2, 2)))
        .await;
    calm.wait_acked().await;
}

/// Reconnecting does not reset the message count: twenty short connections of 31 messages
/// each (620 in all) against a limit of 100 end with 4429, and so does the next connection.
#[tokio::test]
async fn reconnecting_does_not_get_around_the_websocket_limit() {
    let server = TestServer::start_with(|c| c.ws_rate_limit = 100).await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);
    let mut limited = None;
    for _ in 0..20 {
        let mut client = WsClient::connect(&url).await;
        for _ in 0..31 {
            let frame = WsMessage::Binary(canvas_engine::protocol::query_awareness().into());
            if futures_util::SinkExt::send(&mut client.ws, frame)
                .await
                .is_err()
            {
                break; // closed by the server: over the limit
            }
        }
        // Closing after the messages: the server reads (and counts) them all first. An error
        // here means the server closed first, over the limit.
        let _ = futures_util::SinkExt::close(&mut client.ws).await;
        let (code, reason) = client.wait_closed().await;
        if code == 4429 {
            limited = Some(reason);
            break;
        }
    }
    assert!(limited.is_some(), "620 messages passed a limit of 100");
    let mut next = WsClient::connect(&url).await;
    let (code, reason) = next.wait_closed().await;
    assert_eq!(code, 4429, "{reason}");
    // Another user is not affected.
    let mut other = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    other
        .edit(|txn| add_block(txn, "fine", "chart", (0, 0, 2, 2)))
        .await;
    other.wait_acked().await;
}
