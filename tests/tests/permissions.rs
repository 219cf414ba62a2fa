//! Who may do what on live connections: refusals are typed, not applied, not stored, not
//! relayed, and the connection stays open.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::Role;
use canvas_engine::sharing::{self, Visibility};
use canvas_engine::yrs::{Any, Map, Transact, WriteTxn};
use canvas_tests::*;
use std::time::Duration;

#[tokio::test]
async fn viewer_edits_are_refused_and_never_reach_others() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;

    viewer
        .edit(|txn| add_block(txn, "intruder", "chart", (0, 0, 4, 4)))
        .await;
    let refusal = viewer
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    let Incoming::Error { code, seq, .. } = refusal else {
        unreachable!()
    };
    assert_eq!(code, "read_only");
    assert_eq!(seq, Some(viewer.sent));
    // The refused update is acknowledged as processed, and the connection stays open.
    viewer.wait_acked().await;

    editor
        .edit(|txn| add_block(txn, "ok", "chart", (0, 0, 4, 4)))
        .await;
    editor.wait_acked().await;
    viewer
        .wait_doc(|d| block_ids(d).contains(&"ok".to_owned()))
        .await;
    let seen = editor.drain(Duration::from_millis(300)).await;
    assert!(
        !block_ids(&editor.doc).contains(&"intruder".to_owned()),
        "{seen:?}"
    );
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    let ids: Vec<_> = view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    assert_eq!(ids, vec![serde_json::json!("ok")]);
}

#[tokio::test]
async fn editors_cannot_change_sharing_but_admins_can() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            let sharing = txn.get_or_insert_map("sharing");
            sharing.insert(txn, "visibility", Any::from("public"));
        })
        .await;
    let refusal = editor
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    let Incoming::Error { code, message, .. } = refusal else {
        unreachable!()
    };
    assert_eq!(code, "forbidden", "{message}");

    // Editors may still change blocks, meta and layout on a fresh connection (the refused
    // update left a gap in the old client's clock, so it resyncs with a new document).
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            let meta = txn.get_or_insert_map("meta");
            meta.insert(txn, "name", Any::from("Renamed"));
        })
        .await;
    editor.wait_acked().await;
    assert!(editor.errors.is_empty(), "{:?}", editor.errors);

    let mut admin = WsClient::join(&server.ws_url(&team.canvas, &team.admin.token)).await;
    admin
        .edit(|txn| sharing::set_visibility(txn, Visibility::Team))
        .await;
    admin.wait_acked().await;
    assert!(admin.errors.is_empty(), "{:?}", admin.errors);
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["sharing"]["visibility"], "team");
    assert_eq!(view["name"], "Renamed");
}

#[tokio::test]
async fn an_update_after_a_refusal_is_refused_as_a_gap_not_kept_pending() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            txn.get_or_insert_map("sharing")
                .insert(txn, "public_link", Any::from("x"));
        })
        .await;
    editor
        .edit(|txn| add_block(txn, "after", "chart", (0, 0, 2, 2)))
        .await;
    editor.wait_acked().await;
    let codes: Vec<_> = editor.errors.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, ["forbidden", "missing_dependency"]);
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"], serde_json::json!([]));
}

#[tokio::test]
async fn schema_breaking_updates_are_refused() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    for (what, pos) in [
        ("outside the grid", (8, 0, 6, 2)),
        ("negative", (-1, 0, 2, 2)),
        ("empty", (0, 0, 0, 2)),
    ] {
        let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
        editor.edit(|txn| add_block(txn, "bad", "chart", pos)).await;
        let refusal = editor
            .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
            .await;
        let Incoming::Error { code, .. } = refusal else {
            unreachable!()
        };
        assert_eq!(code, "invalid_schema", "{what}");
    }
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            txn.get_or_insert_map("secrets")
                .insert(txn, "k", Any::from("v"));
        })
        .await;
    let refusal = editor
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(
        matches!(refusal, Incoming::Error { ref code, .. } if code == "invalid_schema"),
        "{refusal:?}"
    );
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"], serde_json::json!([]));
}

#[tokio::test]
async fn credentials_and_membership_are_checked_with_close_codes() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let cases = [
        (format!("ws://{}/ws/{}", server.addr, team.canvas), 4401),
        (server.ws_url(&team.canvas, "not-a-token"), 4401),
        (
            server.ws_url(&team.canvas, &format!("{}.forged", team.owner.id)),
            4401,
        ),
        (server.ws_url(&team.canvas, &team.stranger.token), 4403),
        (
            server.ws_url(&uuid::Uuid::new_v4().to_string(), &team.owner.token),
            4404,
        ),
        (server.ws_url("not-a-uuid", &team.owner.token), 4404),
    ];
    for (url, expected) in cases {
        let mut client = WsClient::connect(&url).await;
        let (code, reason) = client.wait_closed().await;
        assert_eq!(code, expected, "{url}: {reason}");
        assert!(!reason.is_empty());
    }
    // Logging out ends that token for new connections.
    let (status, _) = team
        .api
        .post(
            "/api/v1/auth/logout",
            Some(&team.editor.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let mut client = WsClient::connect(&server.ws_url(&team.canvas, &team.editor.token)).await;
    assert_eq!(client.wait_closed().await.0, 4401);
}

#[tokio::test]
async fn canvas_grants_and_team_visibility_give_roles_to_non_members() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut admin = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let stranger_id = team.stranger.id.clone();
    admin
        .edit(|txn| sharing::grant(txn, &stranger_id, Role::Editor, "owner", "now"))
        .await;
    admin.wait_acked().await;
    assert!(admin.errors.is_empty(), "{:?}", admin.errors);
    let mut guest = WsClient::join(&server.ws_url(&team.canvas, &team.stranger.token)).await;
    guest
        .edit(|txn| add_block(txn, "guest", "table", (0, 0, 12, 3)))
        .await;
    guest.wait_acked().await;
    assert!(guest.errors.is_empty(), "{:?}", guest.errors);
    let _ = guest.doc.transact();
}

#[tokio::test]
async fn removing_or_lowering_a_member_takes_effect_on_open_connections() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let p = &team.project;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;

    // Lowering the editor to viewer: their next edit is refused on the same connection.
    let (status, body) = team
        .api
        .post(
            &format!("/api/v1/projects/{p}/members"),
            Some(&team.owner.token),
            serde_json::json!({ "user_id": team.editor.id, "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    editor
        .edit(|txn| add_block(txn, "late", "chart", (0, 0, 2, 2)))
        .await;
    let refusal = editor
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(
        matches!(refusal, Incoming::Error { ref code, .. } if code == "read_only"),
        "{refusal:?}"
    );

    // Removing the viewer: their connection closes with 4403 right away.
    let started = std::time::Instant::now();
    let (status, _) = team
        .api
        .delete(
            &format!("/api/v1/projects/{p}/members/{}", team.viewer.id),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 204);
    let (code, reason) = viewer.wait_closed().await;
    assert_eq!(code, 4403, "{reason}");
    eprintln!(
        "revocation reached the connection after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn revoking_a_canvas_grant_closes_the_grantees_connection() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut admin = WsClient::join(&server.ws_url(&team.canvas, &team.admin.token)).await;
    let stranger_id = team.stranger.id.clone();
    admin
        .edit(|txn| sharing::grant(txn, &stranger_id, Role::Viewer, "admin", "now"))
        .await;
    admin.wait_acked().await;
    let mut guest = WsClient::join(&server.ws_url(&team.canvas, &team.stranger.token)).await;
    admin
        .edit(|txn| {
            sharing::revoke(txn, &stranger_id);
        })
        .await;
    admin.wait_acked().await;
    assert_eq!(guest.wait_closed().await.0, 4403);
}
