//! The admission cache (server/src/admission.rs): a WebSocket connect reuses the session and
//! the project access an earlier connect looked up, and every write that ends a session or
//! changes an access takes effect on the very next connect. Each test first connects twice
//! (the second connect is served from the cache), then changes something and connects again.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use serde_json::json;

/// Connects twice with the token, so that its session and access are cached (and checks
/// that they are: the refusals below are the cache's invalidation at work).
async fn warm(server: &TestServer, canvas: &str, token: &str) {
    let cache = &server.state.admission;
    assert!(
        cache.is_enabled(),
        "the embedded single-node default caches admissions"
    );
    for _ in 0..2 {
        let client = WsClient::join(&server.ws_url(canvas, token)).await;
        drop(client);
    }
    let (user, _) = cache.session(token).expect("the session is cached");
    let canvas = uuid::Uuid::parse_str(canvas).unwrap();
    assert!(
        cache.access(user.id, canvas).is_some(),
        "the access is cached"
    );
}

/// The close code a connect is refused with.
async fn refusal(server: &TestServer, canvas: &str, token: &str) -> u16 {
    let mut client = WsClient::connect(&server.ws_url(canvas, token)).await;
    client.wait_closed().await.0
}

#[tokio::test]
async fn a_logged_out_token_is_refused_on_the_next_connect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    warm(&server, &team.canvas, &team.editor.token).await;
    let (status, body) = team
        .api
        .post("/api/v1/auth/logout", Some(&team.editor.token), json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        refusal(&server, &team.canvas, &team.editor.token).await,
        4401
    );
}

#[tokio::test]
async fn a_removed_member_is_refused_on_the_next_connect_and_a_readded_one_admitted() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    warm(&server, &team.canvas, &team.viewer.token).await;
    let member = format!(
        "/api/v1/projects/{}/members/{}",
        team.project, team.viewer.id
    );
    let (status, _) = team.api.delete(&member, Some(&team.owner.token)).await;
    assert_eq!(status, 204);
    assert_eq!(
        refusal(&server, &team.canvas, &team.viewer.token).await,
        4403
    );
    team.api
        .add_member(&team.owner, &team.project, &team.viewer, "viewer")
        .await;
    let _back = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
}

/// A stranger is refused (their access without a role is cached too), then admitted on the
/// next connect once made a member.
#[tokio::test]
async fn a_new_member_is_admitted_on_the_next_connect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    for _ in 0..2 {
        assert_eq!(
            refusal(&server, &team.canvas, &team.stranger.token).await,
            4403
        );
    }
    team.api
        .add_member(&team.owner, &team.project, &team.stranger, "editor")
        .await;
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.stranger.token)).await;
    client
        .edit(|txn| add_block(txn, "welcome", "chart", (0, 0, 2, 2)))
        .await;
    client.wait_acked().await;
}

/// A role changed (editor to viewer) applies to the next connect: its edits are refused.
#[tokio::test]
async fn a_changed_role_applies_to_the_next_connect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    warm(&server, &team.canvas, &team.editor.token).await;
    team.api
        .add_member(&team.owner, &team.project, &team.editor, "viewer")
        .await;
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client
        .edit(|txn| add_block(txn, "demoted", "chart", (0, 0, 2, 2)))
        .await;
    let refused = client
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(
        matches!(refused, Incoming::Error { ref code, .. } if code == "read_only"),
        "{refused:?}"
    );
}

/// Archiving the project applies to the next connect: even the owner's edits are refused.
#[tokio::test]
async fn an_archived_project_applies_to_the_next_connect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    warm(&server, &team.canvas, &team.owner.token).await;
    let (status, body) = team
        .api
        .patch(
            &format!("/api/v1/projects/{}", team.project),
            Some(&team.owner.token),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    client
        .edit(|txn| add_block(txn, "archived", "chart", (0, 0, 2, 2)))
        .await;
    let refused = client
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(matches!(refused, Incoming::Error { .. }), "{refused:?}");
}

#[tokio::test]
async fn a_deleted_canvas_is_refused_on_the_next_connect() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    warm(&server, &team.canvas, &team.owner.token).await;
    let (status, body) = team
        .api
        .delete(
            &format!("/api/v1/canvases/{}", team.canvas),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        refusal(&server, &team.canvas, &team.owner.token).await,
        4404
    );
}
