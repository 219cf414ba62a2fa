//! The server on PostgreSQL + MongoDB + Redis: the same behaviour as on the embedded store,
//! with identity in PostgreSQL, canvases in MongoDB in the seed's shape, sessions and
//! presence in Redis. Needs the services `./scripts/test.sh` starts; fails loudly without.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::yrs::Transact;
use canvas_tests::*;
use mongodb::bson::{Document, doc};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn editors_collaborate_and_viewers_are_refused_on_services() {
    let server = TestServer::start_services().await;
    // Several nodes may write these stores: no admission is cached (server/src/admission.rs).
    assert!(!server.state.admission.is_enabled());
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut b = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut v = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    a.edit(|txn| add_block(txn, "b1", "chart", (0, 0, 6, 4)))
        .await;
    a.wait_acked().await;
    b.wait_doc(|d| block_ids(d) == ["b1"]).await;
    v.edit(|txn| add_block(txn, "intruder", "chart", (0, 0, 1, 1)))
        .await;
    let refusal = v.wait_for(|_, i| matches!(i, Incoming::Error { .. })).await;
    assert!(matches!(refusal, Incoming::Error { ref code, .. } if code == "read_only"));
    b.edit(|txn| set_position(txn, "b1", "y", 2.0)).await;
    b.wait_acked().await;
    let _ = a.drain(Duration::from_millis(200)).await;
    assert_eq!(block_ids(&a.doc), ["b1"]);
    let view = team.api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(
        view["blocks"][0]["position"],
        serde_json::json!({"x": 0, "y": 2, "w": 6, "h": 4})
    );
}

#[tokio::test]
async fn everything_survives_a_restart_and_mongodb_holds_the_seed_shape() {
    let server = TestServer::start_services().await;
    let team = Team::new(&server).await;
    let mut a = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for i in 0..12 {
        a.edit(|txn| add_block(txn, &format!("b{i:02}"), "table", (0, i, 12, 1)))
            .await;
    }
    a.wait_acked().await;
    drop(a);
    let services = server.services.clone().unwrap();
    let restarted = server.start_again().await;
    let tmp = server.stop().await;
    // Sessions live in Redis, users and members in PostgreSQL, canvases in MongoDB.
    let viewer = WsClient::join(&restarted.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(block_ids(&viewer.doc).len(), 12);
    let api = restarted.api();
    let (status, projects) = api.get("/api/v1/projects", Some(&team.editor.token)).await;
    assert_eq!(status, 200, "{projects}");
    assert_eq!(projects["projects"][0]["id"], team.project.as_str());
    restarted.stop().await;
    drop(tmp);

    // A find on `canvases` shows the canvas in the seed's shape with blocks as JSON.
    let db = services.mongo().await;
    let canvas: Document = db
        .collection::<Document>("canvases")
        .find_one(doc! { "name": "Q4 Sales Analysis" })
        .await
        .unwrap()
        .expect("canvas document in MongoDB");
    let json: serde_json::Value = serde_json::to_value(&canvas).unwrap();
    assert_eq!(json["blocks"].as_array().map(Vec::len), Some(12), "{json}");
    assert_eq!(json["blocks"][0]["id"], "b00");
    assert_eq!(json["layout"]["columns"], 12);
    assert_eq!(json["sharing"]["visibility"], "private");
    assert_eq!(json["project_id"], team.project.as_str());
    assert!(json.get("version").is_some());
    assert!(json["metadata"].get("tags").is_some());
}

#[tokio::test]
async fn presence_is_shared_between_two_server_nodes() {
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    let team = Team::new(&node1).await;
    let mut a = WsClient::join(&node1.ws_url(&team.canvas, &team.editor.token)).await;
    a.send_awareness(31, 1, r#"{"user":{"name":"Ed"},"cursor":{"x":1,"y":2}}"#)
        .await;
    a.wait_for(|c, _| c.awareness.contains_key(&31)).await;
    let api2 = node2.api();
    let path = format!("/api/v1/canvases/{}/presence", team.canvas);
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = api2.get(&path, Some(&team.viewer.token)).await;
        assert_eq!(status, 200, "{body}");
        seen = body;
        if !seen["presence"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen["presence"][0]["user_id"],
        team.editor.id.as_str(),
        "{seen}"
    );
    assert_eq!(
        seen["presence"][0]["cursor"],
        serde_json::json!({"x": 1, "y": 2})
    );
    assert_eq!(seen["active_users"], serde_json::json!([team.editor.id]));
}

#[tokio::test]
async fn yjs_and_y_websocket_clients_edit_together_on_services() {
    let server = TestServer::start_services().await;
    let team = Team::new(&server).await;
    run_js_interop(&server, &team).await;
}

#[tokio::test]
async fn edits_and_awareness_reach_clients_on_another_node() {
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    let team = Team::new(&node1).await;
    let mut a = WsClient::join(&node1.ws_url(&team.canvas, &team.owner.token)).await;
    let mut b = WsClient::join(&node2.ws_url(&team.canvas, &team.editor.token)).await;

    a.edit(|txn| add_block(txn, "from-a", "chart", (0, 0, 6, 4)))
        .await;
    b.wait_doc(|d| block_ids(d) == ["from-a"]).await;
    b.edit(|txn| add_block(txn, "from-b", "table", (6, 0, 6, 4)))
        .await;
    a.wait_doc(|d| block_ids(d) == ["from-a", "from-b"]).await;
    for i in 0..20 {
        b.edit(|txn| set_position(txn, "from-b", "y", f64::from(i)))
            .await;
    }
    a.wait_doc(|d| {
        let view = canvas_engine::json::canvas_json(&d.transact());
        view["blocks"].as_array().is_some_and(|bs| {
            bs.iter()
                .any(|b| b["id"] == "from-b" && b["position"]["y"] == 19)
        })
    })
    .await;
    a.wait_acked().await;
    b.wait_acked().await;

    b.send_awareness(77, 1, r#"{"user":{"name":"Bo"}}"#).await;
    a.wait_for(|c, _| c.awareness.contains_key(&77)).await;
    drop(b);
    a.wait_for(|c, _| !c.awareness.contains_key(&77)).await;

    // Both nodes append to one log; after both stop (each checkpoints), a fresh node has it all.
    drop(a);
    let node3 = node1.start_again().await;
    node1.stop().await;
    node2.stop().await;
    let c = WsClient::join(&node3.ws_url(&team.canvas, &team.viewer.token)).await;
    assert_eq!(block_ids(&c.doc), ["from-a", "from-b"]);
    let view = node3.api().canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(view["blocks"][1]["position"]["y"], 19, "{view}");
}

#[tokio::test]
async fn templates_views_favorites_and_links_on_services() {
    let server = TestServer::start_services().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let (status, made) = api
        .post(
            &format!("/api/v1/projects/{}/canvases", team.project),
            Some(&team.editor.token),
            json!({"name": "From template", "template_id": "kpi-overview"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let canvas = made["id"].as_str().unwrap().to_owned();
    let (_, template) = api
        .get("/api/v1/templates/kpi-overview", Some(&team.editor.token))
        .await;
    assert!(template["usage_count"].as_i64().unwrap() >= 1, "{template}");
    let (status, mine) = api
        .post(
            "/api/v1/templates",
            Some(&team.editor.token),
            json!({"canvas_id": canvas, "name": "Ours"}),
        )
        .await;
    assert_eq!(status, 201, "{mine}");

    drop(WsClient::join(&server.ws_url(&canvas, &team.viewer.token)).await);
    let path = format!("/api/v1/canvases/{canvas}");
    let (status, _) = api
        .put(
            &format!("{path}/favorite"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, link) = api
        .post(
            &format!("{path}/sharing/public-link"),
            Some(&team.owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let (status, public) = api.get(link["url"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(public["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(public["interactions"]["favorites_count"], 1);

    // MongoDB holds them in the seed's shapes.
    let db = server.services.as_ref().unwrap().mongo().await;
    let raw = db
        .collection::<Document>("canvas_templates")
        .find_one(doc! { "name": "Ours" })
        .await
        .unwrap()
        .expect("the template is in canvas_templates");
    assert_eq!(raw.get_array("blocks").unwrap().len(), 2);
    let stored = db
        .collection::<Document>("canvases")
        .find_one(doc! { "canvas_id": &canvas })
        .await
        .unwrap()
        .unwrap();
    let interactions = stored.get_document("interactions").unwrap();
    assert_eq!(interactions.get_i64("favorites_count").unwrap(), 1);
    assert!(interactions.get_i64("views").is_ok() || interactions.get_i32("views").is_ok());
}

#[tokio::test]
async fn membership_and_archiving_reach_connections_on_another_node() {
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    let team = Team::new(&node1).await;
    let mut editor = WsClient::join(&node2.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&node2.ws_url(&team.canvas, &team.viewer.token)).await;

    // Archived through node 1: node 2's editor becomes read-only at once.
    let project = format!("/api/v1/projects/{}", team.project);
    let (status, _) = team
        .api
        .patch(
            &project,
            Some(&team.owner.token),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(status, 200);
    editor
        .edit(|txn| add_block(txn, "archived", "chart", (0, 0, 4, 4)))
        .await;
    let refusal = editor
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    assert!(matches!(refusal, Incoming::Error { ref code, .. } if code == "read_only"));

    // A member removed through node 1 is closed on node 2.
    let (status, _) = team
        .api
        .delete(
            &format!("{project}/members/{}", team.viewer.id),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(viewer.wait_closed().await.0, 4403);
}

/// Logout on one node closes the session's sockets on another at once (Redis control
/// channel), with 4401.
#[tokio::test]
async fn logout_on_one_node_closes_the_sessions_sockets_on_another() {
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    let team = Team::new(&node1).await;
    let mut on_two = WsClient::join(&node2.ws_url(&team.canvas, &team.editor.token)).await;
    let mut bystander = WsClient::join(&node2.ws_url(&team.canvas, &team.owner.token)).await;
    let (status, body) = team
        .api
        .post(
            "/api/v1/auth/logout",
            Some(&team.editor.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (code, reason) = on_two.wait_closed().await;
    assert_eq!(code, 4401, "{reason}");
    bystander
        .edit(|txn| add_block(txn, "still-on", "chart", (0, 0, 2, 2)))
        .await;
    bystander.wait_acked().await;
}

/// The REST door on two nodes: an update posted to node 1 (a room with no connection there,
/// loaded for it) and a block PATCH reach a client of node 2.
#[tokio::test]
async fn a_rest_update_on_one_node_reaches_a_client_on_another() {
    use canvas_engine::yrs::updates::decoder::Decode;
    let node1 = TestServer::start_services().await;
    let node2 = node1.start_again().await;
    let team = Team::new(&node1).await;
    let mut b = WsClient::join(&node2.ws_url(&team.canvas, &team.viewer.token)).await;
    let api = node1.api();
    let base = format!("{}/api/v1/canvases/{}", api.base, team.canvas);
    let state = api
        .client
        .get(format!("{base}/state"))
        .bearer_auth(&team.editor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), 200);
    let doc = canvas_engine::new_doc();
    let update = canvas_engine::yrs::Update::decode_v1(&state.bytes().await.unwrap()).unwrap();
    doc.transact_mut().apply_update(update).unwrap();
    let update = {
        let mut txn = doc.transact_mut();
        add_block(&mut txn, "posted", "chart", (0, 0, 6, 4));
        txn.encode_update_v1()
    };
    let resp = api
        .client
        .post(format!("{base}/updates"))
        .bearer_auth(&team.editor.token)
        .header("content-type", "application/octet-stream")
        .body(update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    b.wait_doc(|d| block_ids(d) == ["posted"]).await;
    let (status, block) = api
        .patch(
            &format!("/api/v1/canvases/{}/blocks/posted", team.canvas),
            Some(&team.editor.token),
            json!({"position": {"x": 6}}),
        )
        .await;
    assert_eq!(status, 200, "{block}");
    b.wait_doc(|d| {
        canvas_engine::json::block_json(&d.transact(), "posted")
            .is_some_and(|b| b["position"]["x"] == 6)
    })
    .await;
}
