//! Around the live document: sharing (REST and document), public links, embedding,
//! templates, views and favorites, archiving, and the audit trail of all of it.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::Role;
use canvas_engine::sharing;
use canvas_engine::yrs::Transact;
use canvas_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The `action` of each entry of an audit page, in order.
fn actions(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a document update and waits for its typed refusal; returns the refusal code.
async fn refused_code(client: &mut WsClient) -> String {
    let refusal = client
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    let Incoming::Error { code, .. } = refusal else {
        unreachable!()
    };
    code
}

#[tokio::test]
async fn sharing_through_rest_is_live_checked_and_audited() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let sharing = format!("/api/v1/canvases/{}/sharing", team.canvas);

    let (status, body) = api.get(&sharing, Some(&team.viewer.token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visibility"], "private");
    assert_eq!(body["permissions"], json!([]));
    assert_eq!(
        body["embed_settings"],
        json!({"enabled": false, "allowed_domains": []})
    );

    // Editors and viewers may read sharing but not change it; bad input changes nothing.
    for user in [&team.editor, &team.viewer] {
        let (status, body) = api
            .patch(&sharing, Some(&user.token), json!({"visibility": "team"}))
            .await;
        assert_eq!(status, 403, "{body}");
    }
    for (bad, code) in [
        (json!({"visibility": "everyone"}), "invalid_visibility"),
        (
            json!({"embed_settings": {"allowed_domains": ["http://x"]}}),
            "invalid_domains",
        ),
        (json!({"visibility": 3}), "invalid_field"),
        (json!({"colour": "red"}), "invalid_field"),
    ] {
        let (status, body) = api
            .patch(&sharing, Some(&team.owner.token), bad.clone())
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{bad}: {body}"
        );
    }

    // A connected client sees the change live, in its document.
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    let (status, body) = api
        .patch(
            &sharing,
            Some(&team.admin.token),
            json!({"visibility": "team", "embed_settings": {"enabled": true, "allowed_domains": ["Partner.com"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visibility"], "team");
    assert_eq!(
        body["embed_settings"]["allowed_domains"],
        json!(["partner.com"])
    );
    watcher
        .wait_doc(|d| {
            let s = sharing::sharing(&d.transact());
            s.visibility == sharing::Visibility::Team && s.embed_enabled
        })
        .await;

    // A grant gives a non-member a role at once; revoking it closes their connection.
    let (status, body) = api
        .put(
            &format!("{sharing}/permissions/{}", team.stranger.id),
            Some(&team.owner.token),
            json!({"role": "editor"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions"][0]["user_id"], team.stranger.id.as_str());
    assert_eq!(body["permissions"][0]["role"], "editor");
    assert_eq!(body["permissions"][0]["granted_by"], team.owner.id.as_str());
    let mut guest = WsClient::join(&server.ws_url(&team.canvas, &team.stranger.token)).await;
    guest
        .edit(|txn| add_block(txn, "guest-block", "chart", (0, 0, 4, 4)))
        .await;
    guest.wait_acked().await;
    assert!(guest.errors.is_empty(), "{:?}", guest.errors);
    for (path, body, status) in [
        (
            format!("{sharing}/permissions/{}", uuid::Uuid::new_v4()),
            json!({"role": "editor"}),
            404,
        ),
        (
            format!("{sharing}/permissions/{}", team.stranger.id),
            json!({"role": "owner"}),
            400,
        ),
        (
            format!("{sharing}/permissions/not-a-uuid"),
            json!({"role": "viewer"}),
            400,
        ),
    ] {
        assert_eq!(
            api.put(&path, Some(&team.owner.token), body).await.0,
            status,
            "{path}"
        );
    }
    let (status, _) = api
        .delete(
            &format!("{sharing}/permissions/{}", team.stranger.id),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(guest.wait_closed().await.0, 4403);
    assert_eq!(
        api.delete(
            &format!("{sharing}/permissions/{}", team.stranger.id),
            Some(&team.owner.token)
        )
        .await
        .0,
        404,
        "no grant left to remove"
    );

    // Every change is in the audit trail of the organization of whoever made it.
    let (_, trail) = api
        .get(
            &format!(
                "/api/v1/audit?resource_type=canvas&resource_id={}",
                team.canvas
            ),
            Some(&team.owner.token),
        )
        .await;
    let sharing_entries: Vec<&Value> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "canvas.sharing.update")
        .collect();
    assert_eq!(
        sharing_entries.len(),
        2,
        "grant and revoke by the owner: {trail}"
    );
    assert_eq!(sharing_entries[0]["changes"]["source"], "rest");
    assert_eq!(sharing_entries[0]["changes"]["after"]["grants"], json!([]));
    assert_eq!(
        sharing_entries[1]["changes"]["after"]["grants"][0]["user_id"],
        team.stranger.id.as_str()
    );
    let (_, admins) = api.get("/api/v1/audit", Some(&team.admin.token)).await;
    assert!(
        actions(&admins).contains(&"canvas.sharing.update".to_owned()),
        "the admin's change is in the admin's organization: {admins}"
    );
}

#[tokio::test]
async fn sharing_changes_made_in_the_document_are_audited_too() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut owner = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let stranger = team.stranger.id.clone();
    owner
        .edit(|txn| {
            sharing::grant(
                txn,
                &stranger,
                Role::Viewer,
                "someone",
                "2024-01-01T00:00:00Z",
            )
        })
        .await;
    owner.wait_acked().await;
    let (status, body) = team
        .api
        .get(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.stranger.token),
        )
        .await;
    assert_eq!(
        status, 200,
        "the grant made in the document gives access: {body}"
    );

    // The audit entry is written off the room's task: wait for it.
    let path = format!(
        "/api/v1/audit?resource_type=canvas&resource_id={}",
        team.canvas
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let entry = loop {
        let (_, trail) = team.api.get(&path, Some(&team.owner.token)).await;
        if let Some(entry) = trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "canvas.sharing.update")
        {
            break entry.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit entry: {trail}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(entry["changes"]["source"], "document");
    assert_eq!(entry["user_id"], team.owner.id.as_str());
    assert_eq!(
        entry["changes"]["after"]["grants"][0]["user_id"],
        stranger.as_str()
    );
}

#[tokio::test]
async fn a_public_link_opens_the_canvas_read_only_until_revoked() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut owner = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    owner
        .edit(|txn| add_block(txn, "shown", "chart", (0, 0, 6, 4)))
        .await;
    owner.wait_acked().await;

    let link_path = format!("/api/v1/canvases/{}/sharing/public-link", team.canvas);
    assert_eq!(
        api.post(&link_path, Some(&team.editor.token), json!({}))
            .await
            .0,
        403
    );
    let (status, link) = api
        .post(&link_path, Some(&team.owner.token), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40, "a long random token: {token}");
    let url = link["url"].as_str().unwrap();

    // Anyone with the link reads the canvas, with no account.
    let (status, canvas) = api.get(url, None).await;
    assert_eq!(status, 200, "{canvas}");
    assert_eq!(canvas["blocks"][0]["id"], "shown");
    assert_eq!(canvas["sharing"]["visibility"], "public");
    let link_id = canvas["sharing"]["public_link"]
        .as_str()
        .expect("the document names the link")
        .to_owned();
    assert_ne!(
        link_id, token,
        "the document holds the link's id, not its token"
    );
    let wrong = format!("/api/v1/canvases/{}?link=not-the-token", team.canvas);
    assert_eq!(api.get(&wrong, None).await.0, 404);
    assert_eq!(
        api.get(&format!("/api/v1/canvases/{}", team.canvas), None)
            .await
            .0,
        401
    );
    let (_, for_viewer) = api
        .get(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(for_viewer["public_link"], Value::Null);
    assert_eq!(for_viewer["public_link_enabled"], true);

    // Over WebSocket the link gives a read-only connection.
    let ws = format!("ws://{}/ws/{}?link={token}", server.addr, team.canvas);
    let mut guest = WsClient::join(&ws).await;
    assert_eq!(block_ids(&guest.doc), ["shown"]);
    guest
        .edit(|txn| add_block(txn, "graffiti", "chart", (0, 4, 2, 2)))
        .await;
    assert_eq!(refused_code(&mut guest).await, "read_only");
    owner
        .edit(|txn| add_block(txn, "later", "table", (6, 0, 6, 4)))
        .await;
    // (The guest's own document still shows its refused block: a real client resyncs.)
    guest
        .wait_doc(|d| block_ids(d).contains(&"later".to_owned()))
        .await;
    let mut bad = WsClient::connect(&format!(
        "ws://{}/ws/{}?link=nope",
        server.addr, team.canvas
    ))
    .await;
    assert_eq!(bad.wait_closed().await.0, 4403);

    // Revoking the link closes what it opened, at once, and the canvas is private again.
    assert_eq!(api.delete(&link_path, Some(&team.owner.token)).await.0, 204);
    assert_eq!(guest.wait_closed().await.0, 4403);
    assert_eq!(api.get(url, None).await.0, 404);
    let (_, after) = api
        .get(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(
        (after["visibility"].as_str(), &after["public_link"]),
        (Some("private"), &Value::Null)
    );
    assert_eq!(api.delete(&link_path, Some(&team.owner.token)).await.0, 404);
    assert!(
        block_ids(&owner.doc) == ["later", "shown"],
        "the guest's edit never reached anyone"
    );
}

#[tokio::test]
async fn embedding_pages_are_checked_against_the_allowed_domains() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);

    // The server's own pages and clients without an Origin are not embeddings.
    let own = format!("http://{}", server.addr);
    let mut same_site = WsClient::connect_from(&url, &own).await;
    same_site.sync().await;
    let mut foreign = WsClient::connect_from(&url, "https://blog.partner.com").await;
    assert_eq!(
        foreign.wait_closed().await.0,
        4403,
        "embedding is off by default"
    );

    let sharing = format!("/api/v1/canvases/{}/sharing", team.canvas);
    let (status, body) = team
        .api
        .patch(
            &sharing,
            Some(&team.owner.token),
            json!({"embed_settings": {"enabled": true, "allowed_domains": ["partner.com"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut embedded = WsClient::connect_from(&url, "https://blog.partner.com").await;
    embedded.sync().await;
    let mut elsewhere = WsClient::connect_from(&url, "https://evil.example").await;
    assert_eq!(elsewhere.wait_closed().await.0, 4403);

    // Turning embedding off closes the embedded connection, not the others.
    let (status, _) = team
        .api
        .patch(
            &sharing,
            Some(&team.owner.token),
            json!({"embed_settings": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(embedded.wait_closed().await.0, 4403);
    same_site
        .edit(|txn| add_block(txn, "still-here", "chart", (0, 0, 4, 4)))
        .await;
    same_site.wait_acked().await;
    assert!(same_site.errors.is_empty());
}

#[tokio::test]
async fn canvases_start_from_templates_and_canvases_become_templates() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;

    let (status, list) = api.get("/api/v1/templates", Some(&team.editor.token)).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for builtin in ["sales-dashboard", "kpi-overview", "blank-report"] {
        assert!(ids.contains(&builtin), "{ids:?}");
    }
    let (_, sales) = api
        .get(
            "/api/v1/templates/sales-dashboard",
            Some(&team.editor.token),
        )
        .await;
    assert_eq!(sales["created_by"], "system");
    assert_eq!(
        sales["required_fields"],
        json!(["date", "sales_amount", "region"])
    );
    let uses = sales["usage_count"].as_i64().unwrap();

    let create = format!("/api/v1/projects/{}/canvases", team.project);
    let (status, made) = api
        .post(
            &create,
            Some(&team.editor.token),
            json!({"name": "From template", "template_id": "sales-dashboard"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let canvas = made["id"].as_str().unwrap().to_owned();
    let view = api.canvas_json(&team.editor, &canvas).await;
    let blocks = view["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{view}");
    assert_eq!(blocks[0]["content"]["chart_type"], "bar");
    assert!(
        blocks
            .iter()
            .all(|b| b["metadata"]["created_by"] == team.editor.id.as_str())
    );
    // The narrative text is a shared text: a client can type into it.
    let mut typist = WsClient::join(&server.ws_url(&canvas, &team.editor.token)).await;
    typist
        .edit(|txn| {
            use canvas_engine::yrs::{Map, MapRef, Text, TextRef, WriteTxn};
            let blocks = txn.get_or_insert_map("blocks");
            let block: MapRef = blocks.get(txn, "sales_insights").unwrap().cast().unwrap();
            let content: MapRef = block.get(txn, "content").unwrap().cast().unwrap();
            let text: TextRef = content.get(txn, "text").unwrap().cast().unwrap();
            text.insert(txn, 0, "Q4: ");
        })
        .await;
    typist.wait_acked().await;
    assert!(typist.errors.is_empty(), "{:?}", typist.errors);
    let (_, sales) = api
        .get(
            "/api/v1/templates/sales-dashboard",
            Some(&team.editor.token),
        )
        .await;
    assert_eq!(sales["usage_count"].as_i64().unwrap(), uses + 1);

    for (body, status) in [
        (json!({"name": "x", "template_id": "no-such-template"}), 404),
        (json!({"name": "x", "template_id": 7}), 400),
    ] {
        assert_eq!(
            api.post(&create, Some(&team.editor.token), body).await.0,
            status
        );
    }

    // A canvas becomes a template of its author's organization, without attribution.
    let (status, template) = api
        .post(
            "/api/v1/templates",
            Some(&team.editor.token),
            json!({"canvas_id": canvas, "name": "Our sales board", "category": "sales", "required_fields": ["region"]}),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    assert_eq!(template["blocks"].as_array().unwrap().len(), 3);
    assert!(template["blocks"][0].get("metadata").is_none());
    assert_eq!(template["created_by"], team.editor.id.as_str());
    let template_id = template["id"].as_str().unwrap();
    let path = format!("/api/v1/templates/{template_id}");
    assert_eq!(api.get(&path, Some(&team.editor.token)).await.0, 200);
    assert_eq!(
        api.get(&path, Some(&team.stranger.token)).await.0,
        404,
        "another organization"
    );
    assert_eq!(
        api.post(
            "/api/v1/templates",
            Some(&team.viewer.token),
            json!({"canvas_id": canvas, "name": "mine"})
        )
        .await
        .0,
        403,
        "viewers cannot copy a canvas into a template"
    );
    assert_eq!(
        api.post(
            "/api/v1/templates",
            Some(&team.editor.token),
            json!({"canvas_id": uuid::Uuid::new_v4(), "name": "from nothing"})
        )
        .await
        .0,
        404,
        "no such canvas"
    );
    let (status, again) = api
        .post(
            &create,
            Some(&team.editor.token),
            json!({"name": "Second", "template_id": template_id}),
        )
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        again["blocks"][1]["content"]["text"],
        "## Key Insights\n\nSales total **{{total_sales}}**; the best region sells \
         **{{best_region}}**.\n\nDescribe what changed this period and why."
            .replace("## Key", "Q4: ## Key")
    );

    let (_, trail) = api.get("/api/v1/audit", Some(&team.editor.token)).await;
    let acts = actions(&trail);
    assert!(
        acts.contains(&"template.use".to_owned()) && acts.contains(&"template.create".to_owned()),
        "{acts:?}"
    );
}

#[tokio::test]
async fn opening_counts_views_and_favorites_are_per_user() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let path = format!("/api/v1/canvases/{}", team.canvas);
    let before = api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(before["interactions"]["views"], 0, "{before}");
    assert_eq!(before["is_favorite"], false);

    for user in [&team.viewer, &team.editor] {
        drop(WsClient::join(&server.ws_url(&team.canvas, &user.token)).await);
    }
    // Views are counted off the connection's task: wait for both.
    let deadline = tokio::time::Instant::now() + WAIT;
    let counted = loop {
        let view = api.canvas_json(&team.viewer, &team.canvas).await;
        if view["interactions"]["views"] == 2 {
            break view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(counted["interactions"]["last_viewed_at"].is_string());

    let (status, body) = api
        .put(
            &format!("{path}/favorite"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["is_favorite"].as_bool(),
            body["favorites_count"].as_i64()
        ),
        (Some(true), Some(1))
    );
    api.put(
        &format!("{path}/favorite"),
        Some(&team.viewer.token),
        json!({}),
    )
    .await;
    api.put(
        &format!("{path}/favorite"),
        Some(&team.editor.token),
        json!({}),
    )
    .await;
    assert_eq!(
        api.put(
            &format!("{path}/favorite"),
            Some(&team.stranger.token),
            json!({})
        )
        .await
        .0,
        403,
        "only people who can read it"
    );
    let view = api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(view["interactions"]["favorites_count"], 2);
    assert_eq!(view["is_favorite"], true);
    let (_, favorites) = api.get("/api/v1/favorites", Some(&team.viewer.token)).await;
    assert_eq!(favorites["canvases"][0]["id"], team.canvas.as_str());
    let (status, body) = api
        .delete(&format!("{path}/favorite"), Some(&team.viewer.token))
        .await;
    assert_eq!((status, body["favorites_count"].as_i64()), (200, Some(1)));
    let (_, favorites) = api.get("/api/v1/favorites", Some(&team.viewer.token)).await;
    assert_eq!(favorites["canvases"], json!([]));
    assert_eq!(
        api.canvas_json(&team.editor, &team.canvas).await["is_favorite"],
        true
    );
}

#[tokio::test]
async fn archiving_a_project_hides_it_and_makes_its_canvases_read_only_live() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let project = format!("/api/v1/projects/{}", team.project);
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;

    assert_eq!(
        api.patch(
            &project,
            Some(&team.editor.token),
            json!({"is_archived": true})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.patch(
            &project,
            Some(&team.owner.token),
            json!({"is_archived": "yes"})
        )
        .await
        .0,
        400
    );
    let (status, body) = api
        .patch(
            &project,
            Some(&team.admin.token),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_archived"], true);

    // The open connection is read-only now; the project left the lists.
    editor
        .edit(|txn| add_block(txn, "too-late", "chart", (0, 0, 4, 4)))
        .await;
    assert_eq!(refused_code(&mut editor).await, "read_only");
    let (_, listed) = api.get("/api/v1/projects", Some(&team.editor.token)).await;
    assert!(
        listed["projects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != team.project.as_str())
    );
    let (_, archived) = api
        .get("/api/v1/projects?archived=true", Some(&team.editor.token))
        .await;
    assert_eq!(archived["projects"][0]["id"], team.project.as_str());
    let create = format!("{project}/canvases");
    let (status, body) = api
        .post(&create, Some(&team.owner.token), json!({"name": "new"}))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api
        .patch(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.owner.token),
            json!({"visibility": "team"}),
        )
        .await;
    assert_eq!(
        status, 403,
        "even the owner cannot change an archived canvas: {body}"
    );
    assert_eq!(
        api.canvas_json(&team.viewer, &team.canvas).await["blocks"],
        json!([])
    );

    // Restoring gives the roles back; a rename is audited too.
    let (status, body) = api
        .patch(
            &project,
            Some(&team.owner.token),
            json!({"is_archived": false, "name": "Q4 again"}),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("Q4 again")),
        "{body}"
    );
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| add_block(txn, "welcome-back", "chart", (0, 0, 4, 4)))
        .await;
    editor.wait_acked().await;
    assert!(editor.errors.is_empty(), "{:?}", editor.errors);
    let (_, trail) = api
        .get(
            &format!(
                "/api/v1/audit?resource_type=project&resource_id={}",
                team.project
            ),
            Some(&team.owner.token),
        )
        .await;
    let acts = actions(&trail);
    assert_eq!(
        &acts[..2],
        ["project.update", "project.restore"],
        "{acts:?}"
    );
}

/// The walkthrough, as one new user would try it, read back from `GET /audit`:
/// name a version, delete two blocks, restore one block and then the whole version while
/// another client watches; create a canvas from a template; share it publicly and open it
/// through the link; remove a member while they are connected.
#[tokio::test]
async fn the_whole_lifecycle_reads_back_from_the_audit_trail() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let owner = Some(team.owner.token.as_str());
    let canvas = &team.canvas;
    let mut me = WsClient::join(&server.ws_url(canvas, &team.owner.token)).await;
    let mut watcher = WsClient::join(&server.ws_url(canvas, &team.editor.token)).await;
    me.edit(|txn| {
        add_block(txn, "a", "chart", (0, 0, 6, 4));
        add_block(txn, "b", "table", (6, 0, 6, 4));
        add_block(txn, "c", "chart", (0, 4, 6, 4));
    })
    .await;
    me.wait_acked().await;
    let versions = format!("/api/v1/canvases/{canvas}/versions");
    let (status, named) = api
        .post(&versions, owner, json!({"changes": "Three blocks"}))
        .await;
    assert_eq!(status, 201, "{named}");
    let v = named["version"].as_i64().unwrap();
    me.edit(|txn| {
        use canvas_engine::yrs::{Map, WriteTxn};
        let blocks = txn.get_or_insert_map("blocks");
        blocks.remove(txn, "a");
        blocks.remove(txn, "b");
    })
    .await;
    me.wait_acked().await;
    watcher.wait_doc(|d| block_ids(d) == ["c"]).await;
    let (status, body) = api
        .post(
            &format!("{versions}/{v}/blocks/a/restore"),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    watcher.wait_doc(|d| block_ids(d) == ["a", "c"]).await;
    let (status, body) = api
        .post(&format!("{versions}/{v}/restore"), owner, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    watcher.wait_doc(|d| block_ids(d) == ["a", "b", "c"]).await;

    let (status, made) = api
        .post(
            &format!("/api/v1/projects/{}/canvases", team.project),
            owner,
            json!({"name": "Board", "template_id": "sales-dashboard"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let board = made["id"].as_str().unwrap();
    let (status, link) = api
        .post(
            &format!("/api/v1/canvases/{board}/sharing/public-link"),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let (status, public) = api.get(link["url"].as_str().unwrap(), None).await;
    assert_eq!(
        (status, public["blocks"].as_array().unwrap().len()),
        (200, 3)
    );

    let (status, _) = api
        .delete(
            &format!(
                "/api/v1/projects/{}/members/{}",
                team.project, team.editor.id
            ),
            owner,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        watcher.wait_closed().await.0,
        4403,
        "the removed member's edits stop"
    );

    let (_, trail) = api.get("/api/v1/audit?limit=50", owner).await;
    let acts = actions(&trail);
    for expected in [
        "canvas.version.create",
        "canvas.block.restore",
        "canvas.restore",
        "canvas.create",
        "template.use",
        "canvas.sharing.update",
        "member.remove",
    ] {
        assert!(
            acts.contains(&expected.to_owned()),
            "{expected} missing from {acts:?}"
        );
    }
}

/// Everything a member or guest can read of a canvas, as one string: its JSON, the
/// sharing settings, every version's JSON, the document a viewer's Yjs client holds (as
/// bytes, lossily) and the audit log.
async fn everything_readable(
    server: &TestServer,
    team: &Team,
    reader: &TestUser,
    guest_link: &str,
) -> String {
    let api = &team.api;
    let canvas = &team.canvas;
    let mut seen = String::new();
    for path in [
        format!("/api/v1/canvases/{canvas}"),
        format!("/api/v1/canvases/{canvas}/sharing"),
        format!("/api/v1/canvases/{canvas}/versions"),
    ] {
        let (status, body) = api.get(&path, Some(&reader.token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push_str(&body.to_string());
    }
    let (_, versions) = api
        .get(
            &format!("/api/v1/canvases/{canvas}/versions"),
            Some(&reader.token),
        )
        .await;
    for v in versions["versions"].as_array().expect("versions") {
        let n = v["version"].as_i64().expect("a number");
        let (status, body) = api
            .get(
                &format!("/api/v1/canvases/{canvas}/versions/{n}"),
                Some(&reader.token),
            )
            .await;
        assert_eq!(status, 200, "version {n}: {body}");
        seen.push_str(&body.to_string());
    }
    let (status, as_guest) = api
        .get(
            &format!("/api/v1/canvases/{canvas}?link={guest_link}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{as_guest}");
    seen.push_str(&as_guest.to_string());
    let member = WsClient::join(&server.ws_url(canvas, &reader.token)).await;
    seen.push_str(&String::from_utf8_lossy(&member.state()));
    let guest = WsClient::join(&format!(
        "ws://{}/ws/{canvas}?link={guest_link}",
        server.addr
    ))
    .await;
    seen.push_str(&String::from_utf8_lossy(&guest.state()));
    let (_, audit) = api
        .get(
            &format!("/api/v1/audit?resource_id={canvas}"),
            Some(&team.owner.token),
        )
        .await;
    seen.push_str(&audit.to_string());
    seen
}

#[tokio::test]
async fn the_public_link_token_is_in_no_document_version_or_log() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let link_path = format!("/api/v1/canvases/{}/sharing/public-link", team.canvas);
    let (status, link) = api
        .post(&link_path, Some(&team.owner.token), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().expect("a token").to_owned();
    // A named version taken while the link exists, and one from before it (version 1).
    let (status, version) = api
        .post(
            &format!("/api/v1/canvases/{}/versions", team.canvas),
            Some(&team.owner.token),
            json!({"changes": "with a link"}),
        )
        .await;
    assert_eq!(status, 201, "{version}");

    let seen = everything_readable(&server, &team, &team.viewer, &token).await;
    assert!(
        !seen.contains(&token),
        "a viewer can read the token somewhere: {seen}"
    );
    assert!(seen.contains("public_link"), "the reads did cover sharing");
    // The admin still reads it where it is meant to be read.
    let (_, sharing) = api
        .get(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.admin.token),
        )
        .await;
    assert_eq!(sharing["public_link"], token.as_str());
    assert_eq!(sharing["public_link_enabled"], true);
}

/// The owner's view of the current token, from `GET .../sharing`.
async fn current_token(team: &Team) -> Option<String> {
    let (status, sharing) = team
        .api
        .get(
            &format!("/api/v1/canvases/{}/sharing", team.canvas),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 200, "{sharing}");
    sharing["public_link"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn removing_an_admin_replaces_the_links_they_could_read() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let canvas = &team.canvas;
    let link_path = format!("/api/v1/canvases/{canvas}/sharing/public-link");
    let (status, _) = api
        .post(&link_path, Some(&team.owner.token), json!({}))
        .await;
    assert_eq!(status, 201);
    let first = current_token(&team).await.expect("a link");
    let guest_url = |token: &str| format!("ws://{}/ws/{canvas}?link={token}", server.addr);
    let canvas_url = |token: &str| format!("/api/v1/canvases/{canvas}?link={token}");

    // A viewer never saw the token: removing them changes nothing.
    let mut guest = WsClient::join(&guest_url(&first)).await;
    let member = |user: &TestUser| format!("/api/v1/projects/{}/members/{}", team.project, user.id);
    assert_eq!(
        api.delete(&member(&team.viewer), Some(&team.owner.token))
            .await
            .0,
        204
    );
    assert_eq!(current_token(&team).await.as_deref(), Some(first.as_str()));
    assert_eq!(api.get(&canvas_url(&first), None).await.0, 200);

    // A project admin could read it: once they are removed, their copy opens nothing, the
    // guest it let in is closed, and the canvas is public under a new token.
    assert_eq!(
        api.delete(&member(&team.admin), Some(&team.owner.token))
            .await
            .0,
        204
    );
    assert_eq!(guest.wait_closed().await.0, 4403);
    let second = current_token(&team).await.expect("still a link");
    assert_ne!(second, first);
    assert_eq!(api.get(&canvas_url(&first), None).await.0, 404);
    let mut stale = WsClient::connect(&guest_url(&first)).await;
    assert_eq!(stale.wait_closed().await.0, 4403);
    let (status, canvas_json) = api.get(&canvas_url(&second), None).await;
    assert_eq!(status, 200, "{canvas_json}");
    assert_eq!(canvas_json["sharing"]["visibility"], "public");

    // Demoting an admin is the same as removing one.
    api.add_member(&team.owner, &team.project, &team.editor, "admin")
        .await;
    api.add_member(&team.owner, &team.project, &team.editor, "viewer")
        .await;
    let third = current_token(&team).await.expect("still a link");
    assert_ne!(third, second);
    assert_eq!(api.get(&canvas_url(&second), None).await.0, 404);

    // And a canvas-level admin grant, taken away.
    let grant = format!(
        "/api/v1/canvases/{canvas}/sharing/permissions/{}",
        team.stranger.id
    );
    assert_eq!(
        api.put(&grant, Some(&team.owner.token), json!({"role": "admin"}))
            .await
            .0,
        200
    );
    assert_eq!(current_token(&team).await.as_deref(), Some(third.as_str()));
    assert_eq!(api.delete(&grant, Some(&team.owner.token)).await.0, 204);
    let fourth = current_token(&team).await.expect("still a link");
    assert_ne!(fourth, third);
    assert_eq!(api.get(&canvas_url(&third), None).await.0, 404);
    assert_eq!(api.get(&canvas_url(&fourth), None).await.0, 200);

    // An admin who leaves the project on their own takes no working token with them.
    api.add_member(&team.owner, &team.project, &team.admin, "admin")
        .await;
    assert_eq!(
        api.delete(&member(&team.admin), Some(&team.admin.token))
            .await
            .0,
        204
    );
    let fifth = current_token(&team).await.expect("still a link");
    assert_ne!(fifth, fourth);
    assert_eq!(api.get(&canvas_url(&fourth), None).await.0, 404);
}
