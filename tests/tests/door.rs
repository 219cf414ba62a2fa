//! The REST door to the document: `GET /canvases/{id}/state[?sv=]`,
//! `POST /canvases/{id}/updates` and `PATCH /canvases/{id}/blocks/{block_id}`, against live
//! WebSocket clients of the same room. (Durability before the 200 across a SIGKILL:
//! `process.rs`, `rest_updates_are_durable_before_their_200`; two nodes: `services.rs`.)

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::{Doc, Map, Out, ReadTxn, Transact, TransactionMut, Update, WriteTxn};
use canvas_engine::{json as doc_json, new_doc};
use canvas_tests::*;
use serde_json::{Value, json};

/// What `GET /canvases/{id}/state` answered: status, body, `x-state-vector`, content type.
struct StateAnswer {
    status: u16,
    body: Vec<u8>,
    sv: Option<String>,
    content_type: Option<String>,
}

async fn get_state(api: &Api, token: Option<&str>, canvas: &str, sv: Option<&str>) -> StateAnswer {
    let mut req = api
        .client
        .get(format!("{}/api/v1/canvases/{canvas}/state", api.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(sv) = sv {
        req = req.query(&[("sv", sv)]);
    }
    let resp = req.send().await.unwrap();
    canvas_tests::contract::check(
        "GET",
        &format!("/api/v1/canvases/{canvas}/state"),
        resp.status().as_u16(),
    );
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    StateAnswer {
        status: resp.status().as_u16(),
        sv: header("x-state-vector"),
        content_type: header("content-type"),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

async fn post_update(
    api: &Api,
    token: Option<&str>,
    canvas: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = api
        .client
        .post(format!("{}/api/v1/canvases/{canvas}/updates", api.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    canvas_tests::contract::check(
        "POST",
        &format!("/api/v1/canvases/{canvas}/updates"),
        status,
    );
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(api: &Api, user: &TestUser, canvas: &str, update: Vec<u8>) -> (u16, Value) {
    post_update(
        api,
        Some(&user.token),
        canvas,
        "application/octet-stream",
        update,
    )
    .await
}

/// A document holding what the server answered (as a script would hold it).
fn doc_from(state: &[u8]) -> Doc {
    let doc = new_doc();
    doc.transact_mut()
        .apply_update(Update::decode_v1(state).unwrap())
        .unwrap();
    doc
}

/// A local change of `doc`, as the update it makes.
fn change(doc: &Doc, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    f(&mut txn);
    txn.encode_update_v1()
}

/// The canvas a document holds, as JSON (every root).
fn canvas_of(doc: &Doc) -> Value {
    doc_json::canvas_json(&doc.transact())
}

fn block_of(doc: &Doc, id: &str) -> Value {
    doc_json::block_json(&doc.transact(), id).unwrap_or(Value::Null)
}

/// The script's copy of the canvas, read over REST.
async fn script_doc(api: &Api, user: &TestUser, canvas: &str) -> Doc {
    let state = get_state(api, Some(&user.token), canvas, None).await;
    assert_eq!(state.status, 200);
    doc_from(&state.body)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_state_and_diffs_from_a_state_vector_rebuild_the_document() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| add_block(txn, "b1", "chart", (0, 0, 6, 4)))
        .await;
    editor.wait_acked().await;
    // the server's attribution stamp reaches the client too
    editor
        .wait_doc(|d| block_of(d, "b1")["metadata"]["created_by"] == team.editor.id.as_str())
        .await;

    // a viewer reads the whole document: the same canvas as the live client's
    let full = get_state(api, Some(&team.viewer.token), &team.canvas, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.content_type.as_deref(),
        Some("application/octet-stream")
    );
    let mine = doc_from(&full.body);
    assert_eq!(canvas_of(&mine), canvas_of(&editor.doc));
    let sv = full.sv.expect("the state vector header");

    // more changes, then only what is missing since that state vector
    editor
        .edit(|txn| add_block(txn, "b2", "narrative", (6, 0, 6, 4)))
        .await;
    editor.edit(|txn| set_position(txn, "b1", "y", 4.0)).await;
    editor.wait_acked().await;
    editor
        .wait_doc(|d| block_of(d, "b2")["metadata"]["created_by"] == team.editor.id.as_str())
        .await;
    let diff = get_state(api, Some(&team.viewer.token), &team.canvas, Some(&sv)).await;
    assert_eq!(diff.status, 200);
    let now = get_state(api, Some(&team.viewer.token), &team.canvas, None).await;
    assert!(
        diff.body.len() < now.body.len(),
        "a diff ({} bytes) is smaller than the whole state ({} bytes)",
        diff.body.len(),
        now.body.len()
    );
    mine.transact_mut()
        .apply_update(Update::decode_v1(&diff.body).unwrap())
        .unwrap();
    assert_eq!(canvas_of(&mine), canvas_of(&doc_from(&now.body)));
    assert_eq!(block_of(&mine, "b1")["position"]["y"], 4);
    assert_eq!(block_ids(&mine), ["b1", "b2"]);
    // the state vector as standard base64 (with `+`, `/`, `=`) works too
    use base64::Engine;
    let sv_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(now.sv.unwrap())
        .unwrap();
    let standard = base64::engine::general_purpose::STANDARD.encode(&sv_bytes);
    let nothing = get_state(api, Some(&team.viewer.token), &team.canvas, Some(&standard)).await;
    assert_eq!(nothing.status, 200);
    let before = canvas_of(&mine);
    mine.transact_mut()
        .apply_update(Update::decode_v1(&nothing.body).unwrap())
        .unwrap();
    assert_eq!(
        canvas_of(&mine),
        before,
        "nothing new since the latest vector"
    );

    // a bad state vector, and callers who may not read
    for bad in ["not base64!", "_w"] {
        let answer = get_state(api, Some(&team.viewer.token), &team.canvas, Some(bad)).await;
        assert_eq!(answer.status, 400, "{bad}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(error_code(&body), "invalid_state_vector", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let stranger = get_state(api, Some(&team.stranger.token), &team.canvas, None).await;
    assert_eq!(stranger.status, 403);
    assert_eq!(get_state(api, None, &team.canvas, None).await.status, 401);
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = get_state(api, Some(&team.owner.token), &unknown, None).await;
    assert_eq!(missing.status, 404);
    // anyone with the canvas's public link reads it too, without an account; a wrong link
    // cannot be told from no canvas
    let link_path = format!("/api/v1/canvases/{}/sharing/public-link", team.canvas);
    let (status, link) = api
        .post(&link_path, Some(&team.owner.token), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    let read = |link: &str| {
        api.client
            .get(format!(
                "{}/api/v1/canvases/{}/state",
                api.base, team.canvas
            ))
            .query(&[("link", link)])
            .send()
    };
    let resp = read(link["token"].as_str().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let linked = doc_from(&resp.bytes().await.unwrap());
    assert_eq!(canvas_of(&linked)["blocks"], canvas_of(&mine)["blocks"]);
    assert_eq!(read("not-the-token").await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_posted_update_is_judged_stamped_and_relayed_live() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let update = change(&script, |txn| {
        add_block(txn, "posted", "chart", (0, 0, 6, 4))
    });
    let (status, body) = post(api, &team.editor, &team.canvas, update.clone()).await;
    assert_eq!((status, &body), (200, &json!({"applied": true})));
    // relayed to the room's connections, with the server's stamp naming the poster
    watcher
        .wait_doc(|d| block_of(d, "posted")["metadata"]["created_by"] == team.editor.id.as_str())
        .await;
    assert_eq!(block_ids(&watcher.doc), ["posted"]);
    // the JSON view has it
    let view = api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"][0]["id"], "posted", "{view}");
    assert_eq!(
        view["blocks"][0]["position"],
        json!({"x": 0, "y": 0, "w": 6, "h": 4})
    );
    // the same update again changes nothing
    let (status, body) = post(api, &team.editor, &team.canvas, update).await;
    assert_eq!((status, &body), (200, &json!({"applied": false})));
    // a live client and a script edit together: the client's edit reaches the script's
    // next diff, the script's next update reaches the client
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| set_position(txn, "posted", "x", 6.0))
        .await;
    editor.wait_acked().await;
    let sv = {
        use base64::Engine;
        use canvas_engine::yrs::updates::encoder::Encode;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(script.transact().state_vector().encode_v1())
    };
    let diff = get_state(api, Some(&team.editor.token), &team.canvas, Some(&sv)).await;
    script
        .transact_mut()
        .apply_update(Update::decode_v1(&diff.body).unwrap())
        .unwrap();
    assert_eq!(block_of(&script, "posted")["position"]["x"], 6);
    let update = change(&script, |txn| set_position(txn, "posted", "y", 3.0));
    assert_eq!(post(api, &team.admin, &team.canvas, update).await.0, 200);
    editor
        .wait_doc(|d| {
            let block = block_of(d, "posted");
            block["position"]["y"] == 3 && block["metadata"]["last_modified_by"] == team.admin.id
        })
        .await;
}

#[tokio::test]
async fn viewers_and_strangers_cannot_post_and_nothing_changes() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let script = script_doc(api, &team.viewer, &team.canvas).await;
    let update = change(&script, |txn| {
        add_block(txn, "intruder", "chart", (0, 0, 6, 4))
    });
    let (status, body) = post(api, &team.viewer, &team.canvas, update.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "read_only", "{body}");
    let (status, body) = post(api, &team.stranger, &team.canvas, update.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = post_update(
        api,
        None,
        &team.canvas,
        "application/octet-stream",
        update.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let view = api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(view["blocks"], json!([]), "{view}");
    // the refusal is not a gap: the same update from an editor is taken
    assert_eq!(post(api, &team.editor, &team.canvas, update).await.0, 200);
}

#[tokio::test]
async fn refused_updates_are_422_with_the_codes_of_message_101() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    let before = get_state(api, Some(&team.owner.token), &team.canvas, None).await;

    // an editor changing sharing
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let sharing = change(&script, |txn| {
        let sharing = txn.get_or_insert_map("sharing");
        sharing.insert(txn, "visibility", "public");
    });
    // a block outside the grid
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let outside = change(&script, |txn| {
        add_block(txn, "wide", "chart", (10, 0, 6, 4))
    });
    // an update built on another that was never sent
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let _unsent = change(&script, |txn| {
        add_block(txn, "first", "chart", (0, 0, 6, 4))
    });
    let dependent = change(&script, |txn| set_position(txn, "first", "x", 2.0));
    for (update, code) in [
        (sharing, "forbidden"),
        (outside, "invalid_schema"),
        (dependent, "missing_dependency"),
    ] {
        let (status, body) = post(api, &team.editor, &team.canvas, update).await;
        assert_eq!(status, 422, "{code}: {body}");
        assert_eq!(error_code(&body), code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // nothing changed
    let after = get_state(api, Some(&team.owner.token), &team.canvas, None).await;
    assert_eq!(after.sv, before.sv);
    // and nothing was relayed: the first update the watcher gets is the next good one
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let good = change(&script, |txn| add_block(txn, "good", "chart", (0, 0, 6, 4)));
    assert_eq!(post(api, &team.editor, &team.canvas, good).await.0, 200);
    watcher.wait_doc(|d| !block_ids(d).is_empty()).await;
    assert_eq!(block_ids(&watcher.doc), ["good"]);
    // a write into the server's block metadata is refused like over WebSocket
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let forged = change(&script, |txn| {
        let blocks = txn.get_or_insert_map("blocks");
        let Some(Out::YMap(block)) = blocks.get(txn, "good") else {
            panic!("no block");
        };
        let Some(Out::YMap(metadata)) = block.get(txn, "metadata") else {
            panic!("no metadata");
        };
        metadata.insert(txn, "created_by", "someone else");
    });
    let (status, body) = post(api, &team.editor, &team.canvas, forged).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "forbidden", "{body}");
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_clear_errors_and_change_nothing() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 4096).await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut watcher = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    let before = get_state(api, Some(&team.owner.token), &team.canvas, None).await;
    let script = script_doc(api, &team.editor, &team.canvas).await;

    let mut garbage = vec![0xffu8; 64];
    garbage[0] = 1;
    for body in [garbage, vec![0xff; 3], Vec::new()] {
        let (status, answer) = post(api, &team.editor, &team.canvas, body.clone()).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert_eq!(error_code(&answer), "malformed_update", "{answer}");
    }
    // a JSON body is not an update
    let (status, answer) = post_update(
        api,
        Some(&team.editor.token),
        &team.canvas,
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(error_code(&answer), "unsupported_media_type", "{answer}");
    // larger than a WebSocket frame may be: 413
    let big = change(&script, |txn| {
        add_block(txn, "big", "chart", (0, 0, 6, 4));
        let blocks = txn.get_or_insert_map("blocks");
        let Some(Out::YMap(block)) = blocks.get(txn, "big") else {
            panic!("no block");
        };
        let Some(Out::YMap(content)) = block.get(txn, "content") else {
            panic!("no content");
        };
        content.insert(txn, "notes", "x".repeat(8000));
    });
    let (status, answer) = post(api, &team.editor, &team.canvas, big).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(error_code(&answer), "payload_too_large", "{answer}");
    let after = get_state(api, Some(&team.owner.token), &team.canvas, None).await;
    assert_eq!(after.sv, before.sv, "nothing changed");
    // a fresh copy for the next update: the big one was never applied
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let good = change(&script, |txn| add_block(txn, "good", "chart", (0, 0, 6, 4)));
    assert_eq!(post(api, &team.editor, &team.canvas, good).await.0, 200);
    watcher.wait_doc(|d| !block_ids(d).is_empty()).await;
    assert_eq!(block_ids(&watcher.doc), ["good"]);
}

async fn patch_block(
    api: &Api,
    user: &TestUser,
    canvas: &str,
    block: &str,
    body: Value,
) -> (u16, Value) {
    api.patch(
        &format!("/api/v1/canvases/{canvas}/blocks/{block}"),
        Some(&user.token),
        body,
    )
    .await
}

#[tokio::test]
async fn patch_moves_and_edits_a_block_and_live_clients_see_it() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            add_block(txn, "c1", "chart", (0, 0, 6, 4));
            add_block(txn, "n1", "narrative", (0, 4, 6, 4));
        })
        .await;
    editor.wait_acked().await;

    let (status, block) = patch_block(
        api,
        &team.admin,
        &team.canvas,
        "c1",
        json!({"position": {"x": 6, "y": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{block}");
    assert_eq!(block["id"], "c1");
    assert_eq!(block["position"], json!({"x": 6, "y": 2, "w": 6, "h": 4}));
    assert_eq!(
        block["metadata"]["last_modified_by"],
        team.admin.id.as_str()
    );
    assert_eq!(block["metadata"]["created_by"], team.editor.id.as_str());
    editor
        .wait_doc(|d| block_of(d, "c1")["position"] == json!({"x": 6, "y": 2, "w": 6, "h": 4}))
        .await;

    let (status, block) = patch_block(
        api,
        &team.editor,
        &team.canvas,
        "n1",
        json!({"content": {"text": "Revenue grew 25%", "subtitle": "Q4"}}),
    )
    .await;
    assert_eq!(status, 200, "{block}");
    assert_eq!(block["content"]["text"], "Revenue grew 25%");
    editor
        .wait_doc(|d| {
            let content = &block_of(d, "n1")["content"];
            content["text"] == "Revenue grew 25%" && content["subtitle"] == "Q4"
        })
        .await;
    // a client types into the text, then a PATCH edits it further
    editor
        .edit(|txn| {
            use canvas_engine::yrs::{Text, TextRef};
            let blocks = txn.get_or_insert_map("blocks");
            let Some(Out::YMap(block)) = blocks.get(txn, "n1") else {
                panic!("no block");
            };
            let Some(Out::YMap(content)) = block.get(txn, "content") else {
                panic!("no content");
            };
            let text: TextRef = content.get(txn, "text").unwrap().cast().unwrap();
            text.insert(txn, 0, "Q4: ");
        })
        .await;
    editor.wait_acked().await;
    let (status, block) = patch_block(
        api,
        &team.editor,
        &team.canvas,
        "n1",
        json!({"content": {"text": "Q4: Revenue grew 30%", "subtitle": null}}),
    )
    .await;
    assert_eq!(status, 200, "{block}");
    assert_eq!(block["content"]["text"], "Q4: Revenue grew 30%");
    assert!(block["content"].get("subtitle").is_none(), "{block}");
    // asking again for what is already there changes nothing and answers the block
    let (status, again) = patch_block(
        api,
        &team.editor,
        &team.canvas,
        "c1",
        json!({"position": {"x": 6}}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["position"]["x"], 6);

    // refused: the same checks and codes as a client's update
    let before = api.canvas_json(&team.owner, &team.canvas).await;
    let cases = [
        (
            &team.editor,
            "c1",
            json!({"position": {"x": 10}}),
            422,
            "invalid_schema",
        ),
        (
            &team.editor,
            "c1",
            json!({"position": {"w": 0}}),
            422,
            "invalid_schema",
        ),
        (
            &team.editor,
            "c1",
            json!({"position": {"x": "left"}}),
            422,
            "invalid_schema",
        ),
        (
            &team.editor,
            "c1",
            json!({"position": {"z": 1}}),
            422,
            "invalid_schema",
        ),
        (
            &team.editor,
            "n1",
            json!({"content": {"text": 3}}),
            422,
            "invalid_schema",
        ),
        (
            &team.editor,
            "c1",
            json!({"colour": "red"}),
            400,
            "invalid_field",
        ),
        (
            &team.editor,
            "c1",
            json!({"position": [1, 2]}),
            400,
            "invalid_field",
        ),
        (
            &team.viewer,
            "c1",
            json!({"position": {"x": 0}}),
            403,
            "read_only",
        ),
        (
            &team.stranger,
            "c1",
            json!({"position": {"x": 0}}),
            403,
            "forbidden",
        ),
        (
            &team.editor,
            "nope",
            json!({"position": {"x": 0}}),
            404,
            "not_found",
        ),
    ];
    for (user, block, body, status, code) in cases {
        let (got, answer) = patch_block(api, user, &team.canvas, block, body.clone()).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{body}: {answer}"
        );
    }
    let after = api.canvas_json(&team.owner, &team.canvas).await;
    assert_eq!(after["blocks"], before["blocks"]);
}

/// A file source in `project` with a small CSV, and a saved query over it; the query's id.
async fn foreign_query(api: &Api, owner: &TestUser, project: &str) -> String {
    let (status, source) = api
        .post(
            &format!("/api/v1/projects/{project}/data-sources"),
            Some(&owner.token),
            json!({"name": "sales", "type": "file"}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let resp = api
        .client
        .put(format!(
            "{}/api/v1/data-sources/{}/file",
            api.base,
            source["id"].as_str().unwrap()
        ))
        .bearer_auth(&owner.token)
        .header("content-type", "text/csv")
        .body("secret,amount\nx,1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, query) = api
        .post(
            &format!("/api/v1/projects/{project}/queries"),
            Some(&owner.token),
            json!({"name": "q", "query_text": "SELECT * FROM sales", "query_type": "sql", "parameters": {}}),
        )
        .await;
    assert_eq!(status, 201, "{query}");
    query["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bindings_that_arrive_over_rest_are_checked_like_over_websocket() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let other = api.create_project(&team.stranger, "elsewhere").await;
    let foreign = foreign_query(api, &team.stranger, &other).await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| add_block(txn, "chart", "chart", (0, 0, 6, 4)))
        .await;
    editor.wait_acked().await;

    // a PATCH binding the chart to another project's query
    let (status, block) = patch_block(
        api,
        &team.editor,
        &team.canvas,
        "chart",
        json!({"content": {"data_source": {"type": "query", "query_id": foreign, "parameters": {}}}}),
    )
    .await;
    assert_eq!(status, 200, "{block}");
    let data = editor
        .wait_for(|_, i| matches!(i, Incoming::BlockData(d) if d.block_id == "chart"))
        .await;
    let Incoming::BlockData(data) = data else {
        unreachable!()
    };
    assert_eq!(data.status, "error");
    assert_eq!(data.error.as_ref().unwrap().code, "forbidden_query");
    assert!(data.rows.is_empty() && data.columns.is_empty());
    let (status, body) = api
        .get(
            &format!("/api/v1/canvases/{}/blocks/chart/data", team.canvas),
            Some(&team.editor.token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains("secret"), "{body}");

    // a posted update creating a block bound to a query that does not exist
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let update = change(&script, |txn| {
        add_block(txn, "table", "table", (6, 0, 6, 4));
        let blocks = txn.get_or_insert_map("blocks");
        let Some(Out::YMap(block)) = blocks.get(txn, "table") else {
            panic!("no block");
        };
        let Some(Out::YMap(content)) = block.get(txn, "content") else {
            panic!("no content");
        };
        let source = canvas_engine::bindings::json_to_any(
            &json!({"type": "query", "query_id": unknown, "parameters": {}}),
        );
        content.insert(txn, "data_source", source);
    });
    assert_eq!(post(api, &team.editor, &team.canvas, update).await.0, 200);
    let data = editor
        .wait_for(|_, i| matches!(i, Incoming::BlockData(d) if d.block_id == "table"))
        .await;
    let Incoming::BlockData(data) = data else {
        unreachable!()
    };
    assert_eq!(
        data.error.as_ref().unwrap().code,
        "query_not_found",
        "{data:?}"
    );
}

#[tokio::test]
async fn a_room_loaded_by_a_rest_update_unloads_when_idle() {
    let server = TestServer::start_with(|c| c.idle_unload_secs = 1).await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let canvas: uuid::Uuid = team.canvas.parse().unwrap();
    let script = script_doc(api, &team.editor, &team.canvas).await;
    let update = change(&script, |txn| add_block(txn, "b", "chart", (0, 0, 6, 4)));
    assert_eq!(post(api, &team.editor, &team.canvas, update).await.0, 200);
    assert!(server.state.rooms.is_loaded(canvas));
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.rooms.is_loaded(canvas) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room never unloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // loaded again by a read, with the update in it
    let view = api.canvas_json(&team.viewer, &team.canvas).await;
    assert_eq!(view["blocks"][0]["id"], "b", "{view}");
}
