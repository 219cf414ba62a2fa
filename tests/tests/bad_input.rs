//! Bad input of any kind gets a clear error, changes nothing, and leaves other connections
//! working.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn expect_close(server: &TestServer, team: &Team, frame: WsMessage, code: u16) -> String {
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client.ws.send(frame).await.unwrap();
    let (got, reason) = client.wait_closed().await;
    assert_eq!(got, code, "reason: {reason}");
    reason
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 64 * 1024).await;
    let team = Team::new(&server).await;
    let mut bystander = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty frame", vec![]),
        ("truncated varint", vec![0x80]),
        ("unknown sync step", vec![0, 7, 1, 0]),
        ("sync update without its length", vec![0, 2]),
        ("length past the end", vec![0, 2, 50, 1, 2, 3]),
        (
            "garbage update",
            vec![0, 2, 5, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        ("trailing bytes", vec![3, 3]),
        ("awareness garbage", vec![1, 4, 0xff, 0xff, 0xff, 0xff]),
    ];
    for (what, frame) in cases {
        let reason = expect_close(&server, &team, WsMessage::Binary(frame.into()), 4400).await;
        assert!(reason.contains("malformed"), "{what}: {reason}");
    }
    let reason = expect_close(&server, &team, WsMessage::Text("hello".into()), 4400).await;
    assert!(reason.contains("text"), "{reason}");
    // Just over the limit: answered with 4413; far over it: cut off, also 4413.
    expect_close(
        &server,
        &team,
        WsMessage::Binary(vec![0u8; 64 * 1024 + 1].into()),
        4413,
    )
    .await;
    expect_close(
        &server,
        &team,
        WsMessage::Binary(vec![0u8; 1024 * 1024].into()),
        4413,
    )
    .await;

    // The bystander still works and nothing reached the document.
    bystander
        .edit(|txn| add_block(txn, "still-fine", "chart", (0, 0, 3, 3)))
        .await;
    bystander.wait_acked().await;
    let view = team.api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn random_garbage_never_takes_the_server_down() {
    use rand::{Rng, SeedableRng};
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..40 {
        let len = rng.random_range(1..200);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        frame[0] = rng.random_range(0..4); // aim at real message types
        let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
        client.send_raw(frame).await;
        let _ = client.drain(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = team.api.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    client
        .edit(|txn| add_block(txn, "after-garbage", "chart", (0, 0, 3, 3)))
        .await;
    client.wait_acked().await;
}

#[tokio::test]
async fn rest_rejects_bad_input_with_json_errors() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let api = server.api();
    let owner = api.signup("owner").await;
    let project = api.create_project(&owner, "P").await;

    let raw = |body: &'static str| {
        let api = api.clone();
        let token = owner.token.clone();
        async move {
            let resp = api
                .client
                .post(format!("{}/api/v1/projects", api.base))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            canvas_tests::contract::check("POST", "/api/v1/projects", status);
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = raw("{not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let (status, body) = raw(r#"{"name": 42}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/api/v1/projects",
            Some(&owner.token),
            json!({ "name": "x".repeat(5000) }),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = api
        .post(
            "/api/v1/projects",
            Some(&owner.token),
            json!({ "name": "  " }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name")),
        "{body}"
    );

    let (status, body) = api.get("/api/v1/projects", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = api.get("/api/v1/projects", Some("garbage")).await;
    assert_eq!(status, 401);
    let (status, body) = api
        .get("/api/v1/canvases/not-a-uuid", Some(&owner.token))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_path")),
        "{body}"
    );
    let (status, _) = api
        .get(
            &format!("/api/v1/canvases/{}", uuid::Uuid::new_v4()),
            Some(&owner.token),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = api
        .post(
            &format!("/api/v1/projects/{project}/members"),
            Some(&owner.token),
            json!({ "email": "nobody@example.com", "role": "editor" }),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api
        .post(
            &format!("/api/v1/projects/{project}/members"),
            Some(&owner.token),
            json!({ "email": owner.email, "role": "emperor" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_role")),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/api/v1/auth/signup",
            None,
            json!({ "email": "no-at-sign", "username": "abc", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_email")),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/api/v1/auth/signup",
            None,
            json!({ "email": owner.email, "username": "someone_else", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": owner.email, "password": "wrong password" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
}

/// Awareness states are JSON every peer can parse (y-protocols runs `JSON.parse` on each;
/// one bad state kills a standard client's message handler), within the size limit, few per
/// connection, and under the sender's own name. Anything else is dropped, answered with an
/// `invalid_awareness` error, and never relayed.
#[tokio::test]
async fn awareness_that_peers_cannot_parse_is_never_relayed() {
    let server = TestServer::start_with(|c| c.max_awareness_bytes = 1024).await;
    let team = Team::new(&server).await;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut sender = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;

    sender.send_awareness(11, 1, "{not json").await;
    sender
        .send_awareness(12, 1, &format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096)))
        .await;
    for _ in 0..2 {
        let error = sender
            .wait_for(|_, m| matches!(m, Incoming::Error { .. }))
            .await;
        let Incoming::Error { code, .. } = error else {
            unreachable!()
        };
        assert_eq!(code, "invalid_awareness");
    }
    // A valid state that claims to be someone else: relayed under the sender's own name.
    sender
        .send_awareness(
            13,
            1,
            r#"{"user":{"name":"Owner (admin)","color":"red"},"cursor":{"x":1}}"#,
        )
        .await;
    watcher.wait_for(|c, _| c.awareness.contains_key(&13)).await;
    let state: serde_json::Value = serde_json::from_str(&watcher.awareness[&13]).unwrap();
    assert_eq!(
        state,
        json!({"user": {"name": team.viewer.username, "color": "red"}, "cursor": {"x": 1}})
    );
    assert!(!watcher.awareness.contains_key(&11) && !watcher.awareness.contains_key(&12));

    // No more than a few client ids per connection.
    for id in 20..30 {
        sender.send_awareness(id, 1, "{}").await;
    }
    sender.send_awareness(13, 2, r#"{"cursor":{"x":2}}"#).await;
    watcher
        .wait_for(|c, _| c.awareness.get(&13).is_some_and(|s| s.contains(r#""x":2"#)))
        .await;
    let fakes = (20..30)
        .filter(|id| watcher.awareness.contains_key(id))
        .count();
    assert_eq!(
        fakes, 3,
        "four client ids per connection: 13 and three more"
    );

    // A newcomer gets only valid states and syncs.
    let mut late = WsClient::connect(&server.ws_url(&team.canvas, &team.editor.token)).await;
    late.sync().await;
    late.wait_for(|c, _| c.awareness.contains_key(&13)).await;
    assert!(
        late.awareness
            .values()
            .all(|s| serde_json::from_str::<serde_json::Value>(s).is_ok())
    );
}

/// A flood of awareness messages is cut to the connection's rate: a burst passes, the rest
/// is dropped instead of being relayed to everyone.
#[tokio::test]
async fn an_awareness_flood_is_cut_to_the_rate() {
    let server = TestServer::start_with(|c| c.awareness_per_second = 5).await;
    let team = Team::new(&server).await;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let mut sender = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    for clock in 1..=200 {
        sender
            .send_awareness(13, clock, &format!(r#"{{"cursor":{{"x":{clock}}}}}"#))
            .await;
    }
    // A marker after the flood: an edit, relayed in order behind whatever awareness passed.
    sender
        .edit(|txn| add_block(txn, "marker", "chart", (0, 0, 1, 1)))
        .await;
    let mut relayed = 0;
    watcher
        .wait_for(|c, m| {
            if matches!(
                m,
                Incoming::Message(canvas_engine::yrs::sync::Message::Awareness(_))
            ) {
                relayed += 1;
            }
            block_ids(&c.doc).contains(&"marker".to_owned())
        })
        .await;
    // The burst is twice the rate; a few more may refill while the flood is sent.
    assert!((10..100).contains(&relayed), "relayed {relayed} of 200");
}
