//! The REST API: auth, projects, members, canvases, and who may call what.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_storage::AuditFilter;
use canvas_tests::*;
use serde_json::json;

#[tokio::test]
async fn signup_login_logout_and_several_sessions() {
    let server = TestServer::start().await;
    let api = server.api();
    let user = api.signup("ann").await;
    let (status, me) = api.get("/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["email"], user.email.as_str());
    assert!(
        me["user"].get("hashed_password").is_none(),
        "never expose the hash: {me}"
    );
    assert!(
        me["user"]["organization_id"].is_string(),
        "signup makes an organization: {me}"
    );

    let (status, login) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email.to_uppercase(), "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let second = login["token"].as_str().unwrap().to_owned();
    assert_ne!(second, user.token);

    let (status, _) = api
        .post("/api/v1/auth/logout", Some(&user.token), json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.get("/api/v1/auth/me", Some(&user.token)).await.0, 401);
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&second)).await.0,
        200,
        "the other session stays"
    );

    let actions: Vec<String> = server
        .state
        .storage
        .audit
        .list(AuditFilter {
            resource_id: user.id.parse().ok(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["user.logout", "user.login", "user.signup"]);
}

#[tokio::test]
async fn projects_members_and_canvases_respect_roles() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let p = &team.project;

    // Lists and reads.
    let (status, list) = api.get("/api/v1/projects", Some(&team.editor.token)).await;
    assert_eq!(status, 200);
    assert_eq!(list["projects"][0]["id"], p.as_str());
    assert_eq!(list["projects"][0]["role"], "editor");
    assert_eq!(
        api.get("/api/v1/projects", Some(&team.stranger.token))
            .await
            .1["projects"],
        json!([])
    );
    assert_eq!(
        api.get(&format!("/api/v1/projects/{p}"), Some(&team.stranger.token))
            .await
            .0,
        403
    );
    let (status, members) = api
        .get(
            &format!("/api/v1/projects/{p}/members"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(members["members"].as_array().unwrap().len(), 3);

    // Only admins and the owner manage members.
    let (status, _) = api
        .post(
            &format!("/api/v1/projects/{p}/members"),
            Some(&team.editor.token),
            json!({ "email": team.stranger.email, "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = api
        .post(
            &format!("/api/v1/projects/{p}/members"),
            Some(&team.admin.token),
            json!({ "user_id": team.stranger.id, "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        api.get(
            &format!("/api/v1/canvases/{}", team.canvas),
            Some(&team.stranger.token)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.delete(
            &format!("/api/v1/projects/{p}/members/{}", team.stranger.id),
            Some(&team.editor.token)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.delete(
            &format!("/api/v1/projects/{p}/members/{}", team.stranger.id),
            Some(&team.admin.token)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.get(
            &format!("/api/v1/canvases/{}", team.canvas),
            Some(&team.stranger.token)
        )
        .await
        .0,
        403
    );

    // Canvases: viewers cannot create; the JSON view has the seed's shape.
    let (status, _) = api
        .post(
            &format!("/api/v1/projects/{p}/canvases"),
            Some(&team.viewer.token),
            json!({ "name": "nope" }),
        )
        .await;
    assert_eq!(status, 403);
    let (status, created) = api
        .post(
            &format!("/api/v1/projects/{p}/canvases"),
            Some(&team.editor.token),
            json!({ "name": "Board", "description": "d", "tags": ["sales", "q4"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let view = api.canvas_json(&team.viewer, id).await;
    assert_eq!(view["name"], "Board");
    assert_eq!(view["description"], "d");
    assert_eq!(view["project_id"], p.as_str());
    assert_eq!(view["owner_id"], team.editor.id.as_str());
    assert_eq!(view["version"], 1);
    assert_eq!(
        view["layout"],
        json!({ "type": "grid", "columns": 12, "rowHeight": 50, "breakpoints": { "lg": 1200, "md": 996, "sm": 768, "xs": 480 } })
    );
    assert_eq!(view["blocks"], json!([]));
    assert_eq!(view["sharing"]["visibility"], "private");
    assert_eq!(
        view["sharing"]["embed_settings"],
        json!({ "enabled": false, "allowed_domains": [] })
    );
    assert_eq!(view["metadata"]["tags"], json!(["sales", "q4"]));
    assert!(view["metadata"]["created_at"].is_string());
    assert_eq!(view["metadata"]["version_history"][0]["version"], 1);
    let (status, list) = api
        .get(
            &format!("/api/v1/projects/{p}/canvases"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["canvases"].as_array().unwrap().len(), 2);
    let (status, body) = api
        .post(
            &format!("/api/v1/projects/{p}/canvases"),
            Some(&team.editor.token),
            json!({ "name": "T", "template_id": "missing" }),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn deleting_a_canvas_closes_its_connections_with_4404() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(
        team.api
            .delete(
                &format!("/api/v1/canvases/{}", team.canvas),
                Some(&team.editor.token)
            )
            .await
            .0,
        403
    );
    assert_eq!(
        team.api
            .delete(
                &format!("/api/v1/canvases/{}", team.canvas),
                Some(&team.admin.token)
            )
            .await
            .0,
        204
    );
    assert_eq!(viewer.wait_closed().await.0, 4404);
    assert_eq!(
        team.api
            .get(
                &format!("/api/v1/canvases/{}", team.canvas),
                Some(&team.owner.token)
            )
            .await
            .0,
        404
    );
    let mut late = WsClient::connect(&server.ws_url(&team.canvas, &team.owner.token)).await;
    assert_eq!(late.wait_closed().await.0, 4404);
}

#[tokio::test]
async fn organization_admins_read_their_audit_trail_filtered_and_paginated() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let p = &team.project;
    // The owner's organization holds project creation, three member additions, canvas creation.
    let (status, all) = api.get("/api/v1/audit", Some(&team.owner.token)).await;
    assert_eq!(status, 200, "{all}");
    let all_actions = actions(&all);
    assert_eq!(all_actions.first(), Some(&"canvas.create"), "{all}");
    assert!(
        all_actions.contains(&"member.add")
            && all_actions.contains(&"project.create")
            && all_actions.contains(&"user.signup"),
        "{all_actions:?}"
    );
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["organization_id"] == all["entries"][0]["organization_id"])
    );

    let (_, members) = api
        .get(
            &format!("/api/v1/audit?resource_type=project&resource_id={p}&limit=2"),
            Some(&team.owner.token),
        )
        .await;
    let page = actions(&members);
    assert_eq!(page, ["member.add", "member.add"]);
    let (_, next) = api
        .get(
            &format!("/api/v1/audit?resource_type=project&resource_id={p}&limit=2&offset=2"),
            Some(&team.owner.token),
        )
        .await;
    let next = actions(&next);
    assert_eq!(next, ["member.add", "project.create"]);
    let (_, future) = api
        .get(
            "/api/v1/audit?since=2999-01-01T00:00:00Z",
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(future["entries"], json!([]));

    // Another organization's admin sees none of it; bad filters are 400s.
    let (_, theirs) = api.get("/api/v1/audit", Some(&team.stranger.token)).await;
    assert!(
        theirs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == team.stranger.id.as_str()),
        "{theirs}"
    );
    let (status, body) = api
        .get("/api/v1/audit?since=yesterday", Some(&team.owner.token))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    assert_eq!(api.get("/api/v1/audit", None).await.0, 401);
}

/// The `action` of each entry of an audit page, in order.
fn actions(page: &serde_json::Value) -> Vec<&str> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}
