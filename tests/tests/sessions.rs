//! Ending a login session reaches its open WebSockets: logout and expiry close them with
//! 4401 at once, and nothing sent on them afterwards is taken.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use serde_json::json;
use std::time::Duration;

/// Logout closes the session's sockets with 4401 at once; the same user's other session
/// stays connected.
#[tokio::test]
async fn logout_closes_the_sessions_sockets_at_once() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let (status, body) = team
        .api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": team.editor.email, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let other_token = body["token"].as_str().unwrap().to_owned();
    let mut first = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut second = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut other = WsClient::join(&server.ws_url(&team.canvas, &other_token)).await;

    let (status, body) = team
        .api
        .post("/api/v1/auth/logout", Some(&team.editor.token), json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    for client in [&mut first, &mut second] {
        let (code, reason) = client.wait_closed().await;
        assert_eq!(code, 4401, "{reason}");
        assert!(reason.contains("logged out"), "{reason}");
    }
    other
        .edit(|txn| add_block(txn, "other-session", "chart", (0, 0, 2, 2)))
        .await;
    other.wait_acked().await;
    // The ended token opens nothing any more.
    let mut again = WsClient::connect(&server.ws_url(&team.canvas, &team.editor.token)).await;
    assert_eq!(again.wait_closed().await.0, 4401);
}

/// A session that expires while its socket is open closes it with 4401 at the expiry.
#[tokio::test]
async fn an_expiring_session_closes_its_sockets() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let user = uuid::Uuid::parse_str(&team.editor.id).unwrap();
    let short = server
        .state
        .storage
        .sessions
        .create_session(user, Duration::from_secs(2))
        .await
        .unwrap();
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &short)).await;
    let (code, reason) = client.wait_closed().await;
    assert_eq!(code, 4401, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"].as_array().unwrap().len(), 0);
}
