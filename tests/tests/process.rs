//! The `canvas-server` binary as an operator runs it: configuration from flags, the address
//! printed on start, and a clean stop on SIGTERM that keeps every acknowledged edit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

use canvas_engine::protocol::{self, Extension};
use canvas_engine::yrs::sync::{Message, SyncMessage};
use canvas_engine::yrs::{Doc, ReadTxn, StateVector, Transact};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

struct Running {
    child: Child,
    base: String,
}

fn start(data_dir: &std::path::Path) -> Running {
    start_with(data_dir, &[])
}

/// Starts the binary with extra environment (service URLs); service variables of the test
/// process itself are not inherited.
fn start_with(data_dir: &std::path::Path, env: &[(String, String)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_canvas-server-under-test"));
    command
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("CANVAS_LOG", "warn");
    for var in [
        "DATABASE_URL",
        "MONGODB_URI",
        "REDIS_URL",
        "CANVAS_REDIS_KEY_PREFIX",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("canvas-server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let base = line
        .split_once("listening on ")
        .map(|(_, addr)| addr.trim().to_owned())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    Running { child, base }
}

impl Drop for Running {
    /// A failed test must not leave a server running (it would hold the test's pipes open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(running: &mut Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the server with SIGKILL (nothing flushed, nothing closed) and waits until it is gone.
fn sigkill(mut running: Running) {
    let pid = running.child.id().to_string();
    let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(status.success());
    let _ = running.child.wait();
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_acknowledged_edits() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let http = reqwest::Client::new();
    let (token, canvas_id) = setup_canvas(&http, &server.base).await;

    // One client adds a block and waits for the durable acknowledgement.
    let ws_url = format!(
        "{}/ws/{canvas_id}?token={token}&acks=1",
        server.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let doc = Doc::new();
    ws.send(WsMessage::Binary(
        protocol::sync_step1(&StateVector::default()).into(),
    ))
    .await
    .unwrap();
    let update = {
        let mut txn = doc.transact_mut();
        canvas_tests::add_block(&mut txn, "kept", "chart", (0, 0, 4, 2));
        txn.encode_update_v1()
    };
    let mut sent_update = false;
    let mut sent = 0u64;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let WsMessage::Binary(bytes) = frame else {
            continue;
        };
        match protocol::decode(&bytes).unwrap() {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let diff = doc.transact().encode_diff_v1(&sv);
                ws.send(WsMessage::Binary(protocol::sync_step2(&diff).into()))
                    .await
                    .unwrap();
                sent += 1;
            }
            Message::Sync(SyncMessage::SyncStep2(_)) if !sent_update => {
                ws.send(WsMessage::Binary(protocol::update(&update).into()))
                    .await
                    .unwrap();
                sent += 1;
                sent_update = true;
            }
            Message::Custom(tag, body) => match protocol::decode_extension(tag, &body).unwrap() {
                Extension::Ack(ack) if sent_update && ack.through >= sent => break,
                Extension::Error(e) => panic!("refused: {} {}", e.code, e.message),
                _ => {}
            },
            _ => {}
        }
    }

    let status = sigterm(&mut server);
    assert!(status.success(), "exit status {status}");

    let server = start(dir.path());
    let view = canvas_view(&http, &server.base, &canvas_id, &token).await;
    assert_eq!(view["blocks"][0]["id"], "kept", "{view}");
    assert_eq!(
        view["blocks"][0]["position"],
        json!({"x": 0, "y": 0, "w": 4, "h": 2})
    );
    let mut server = server;
    assert!(sigterm(&mut server).success());
}

/// Signs up, creates a project and a canvas; returns (token, canvas id).
async fn setup_canvas(http: &reqwest::Client, base: &str) -> (String, String) {
    let api = format!("{base}/api/v1");
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let signup = post(
        http,
        format!("{api}/auth/signup"),
        None,
        json!({"email": format!("{unique}@example.com"), "username": format!("u{}", &unique[..12]), "password": "correct horse battery"}),
    )
    .await;
    let token = signup["token"].as_str().unwrap().to_owned();
    let project = post(
        http,
        format!("{api}/projects"),
        Some(&token),
        json!({"name": "P"}),
    )
    .await;
    let canvas = post(
        http,
        format!(
            "{api}/projects/{}/canvases",
            project["id"].as_str().unwrap()
        ),
        Some(&token),
        json!({"name": "C"}),
    )
    .await;
    (token, canvas["id"].as_str().unwrap().to_owned())
}

/// The canvas's JSON view, read over REST.
async fn canvas_view(http: &reqwest::Client, base: &str, canvas_id: &str, token: &str) -> Value {
    let resp = http
        .get(format!("{base}/api/v1/canvases/{canvas_id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Streams block-adding updates and kills the server with SIGKILL once some
/// acknowledgements arrived, while more updates are in flight; restarts on the same data and
/// does it again, `cycles` times. After every restart, every block acknowledged in any cycle
/// must be there.
async fn crash_mid_stream(env: &[(String, String)], cycles: u64) {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut server = start_with(dir.path(), env);
    let (token, canvas_id) = setup_canvas(&http, &server.base).await;
    let mut acked_ids: Vec<String> = Vec::new();
    for cycle in 0..cycles {
        let ws_url = format!(
            "{}/ws/{canvas_id}?token={token}&acks=1",
            server.base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let (mut sink, mut stream) = ws.split();

        // Message 1 on this connection is our sync step 2 (empty doc); then one update per
        // block, each block new (c{cycle}b{i}).
        let doc = Doc::new();
        let total = 400u64;
        let mut updates = Vec::new();
        let mut ids = Vec::new();
        for i in 0..total {
            let id = format!("c{cycle}b{i}");
            let mut txn = doc.transact_mut();
            canvas_tests::add_block(&mut txn, &id, "chart", (0, i as i64, 1, 1));
            updates.push(txn.encode_update_v1());
            ids.push(id);
        }
        let empty = Doc::new()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        sink.send(WsMessage::Binary(protocol::sync_step2(&empty).into()))
            .await
            .unwrap();
        let sender = tokio::spawn(async move {
            for update in updates {
                if sink
                    .send(WsMessage::Binary(protocol::update(&update).into()))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        // A different point of the stream each cycle.
        let kill_after = 20 + (cycle * 37) % 200;
        let mut acked = 0u64;
        while acked < kill_after + 1 {
            let frame = tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let WsMessage::Binary(bytes) = frame else {
                continue;
            };
            if let Message::Custom(tag, body) = protocol::decode(&bytes).unwrap() {
                match protocol::decode_extension(tag, &body).unwrap() {
                    Extension::Ack(ack) => acked = ack.through,
                    Extension::Error(e) => panic!("refused: {} {}", e.code, e.message),
                    Extension::BlockData(_) => {}
                }
            }
        }
        sigkill(server);
        sender.abort();
        // Acknowledgement `through = n` covers messages 1..=n: the sync step 2 and the first
        // n - 1 blocks of this cycle.
        acked_ids.extend(ids.into_iter().take((acked - 1) as usize));

        server = start_with(dir.path(), env);
        let view = canvas_view(&http, &server.base, &canvas_id, &token).await;
        let present: std::collections::HashSet<String> = view["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        for id in &acked_ids {
            assert!(
                present.contains(id),
                "cycle {cycle}: acknowledged block {id} lost ({} acknowledged, {} present)",
                acked_ids.len(),
                present.len()
            );
        }
    }
}

/// Twenty kill -9 cycles in a row on the embedded store: nothing acknowledged is lost.
#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_update_embedded() {
    crash_mid_stream(&[], 20).await;
}

/// Five kill -9 cycles in a row on PostgreSQL, MongoDB and Redis.
#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_update_on_services() {
    let services = canvas_tests::ServiceSet::fresh().await;
    crash_mid_stream(&services.env(), 5).await;
}

/// A configured service that cannot be reached stops startup with a message naming it.
#[test]
fn unreachable_services_stop_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (var, url, name) in [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/canvas",
            "PostgreSQL",
        ),
        ("REDIS_URL", "redis://127.0.0.1:1/0", "Redis"),
        (
            "MONGODB_URI",
            "mongodb://127.0.0.1:1/canvas?directConnection=true&serverSelectionTimeoutMS=1000",
            "MongoDB",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_canvas-server-under-test"))
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("MONGODB_URI")
            .env_remove("REDIS_URL")
            .env(var, url)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}: started anyway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening"),
            "{name}"
        );
    }
}

/// Starts the binary with `args`, its stderr a pipe (not a terminal), and returns the log
/// lines it wrote up to and including the one announcing its address.
fn startup_log(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_canvas-server-under-test"));
    command
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("CANVAS_LOG", "info")
        .env_remove("NO_COLOR");
    for var in [
        "DATABASE_URL",
        "MONGODB_URI",
        "REDIS_URL",
        "CANVAS_LOG_FORMAT",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canvas-server starts");
    let stderr = child.stderr.take().unwrap();
    let running = Running {
        child,
        base: String::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no address logged; stderr so far: {lines:?}"));
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    // The log is what is checked: stopping the server is `Running`'s drop (a kill; SIGTERM
    // this early could beat the signal handler).
    drop(running);
    lines
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let lines = startup_log(&[]);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
    assert!(lines.iter().any(|l| l.contains(" INFO ")), "{lines:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = startup_log(&["--log-format", "json"]);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
        assert!(value["message"].is_string(), "{line}");
    }
    let listening = lines.last().unwrap();
    let value: Value = serde_json::from_str(listening).unwrap();
    assert_eq!(value["level"], "INFO");
    assert!(
        value["data_dir"].is_string(),
        "fields at the top level: {listening}"
    );
}

/// Updates posted over REST (`POST /canvases/{id}/updates`) and block edits
/// (`PATCH /canvases/{id}/blocks/{block_id}`) are in the durable log before their 200: a
/// SIGKILL right after the last answer loses none of them.
#[tokio::test]
async fn rest_updates_are_durable_before_their_200() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let server = start(dir.path());
    let (token, canvas_id) = setup_canvas(&http, &server.base).await;
    let api = format!("{}/api/v1/canvases/{canvas_id}", server.base);
    let state = http
        .get(format!("{api}/state"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), 200);
    let state = state.bytes().await.unwrap();
    let doc = canvas_engine::new_doc();
    {
        use canvas_engine::yrs::updates::decoder::Decode;
        let update = canvas_engine::yrs::Update::decode_v1(&state).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
    }
    for i in 0..20i64 {
        let update = {
            let mut txn = doc.transact_mut();
            canvas_tests::add_block(&mut txn, &format!("posted{i}"), "chart", (0, i, 6, 1));
            txn.encode_update_v1()
        };
        let resp = http
            .post(format!("{api}/updates"))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(update)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let resp = http
        .patch(format!("{api}/blocks/posted0"))
        .bearer_auth(&token)
        .json(&json!({"position": {"x": 6}, "content": {"title": "moved"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    sigkill(server);

    let server = start(dir.path());
    let view = canvas_view(&http, &server.base, &canvas_id, &token).await;
    let blocks = view["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 20, "{view}");
    let first = blocks.iter().find(|b| b["id"] == "posted0").unwrap();
    assert_eq!(first["position"]["x"], 6, "{first}");
    assert_eq!(first["content"]["title"], "moved", "{first}");
}

/// Relay comes before the durable write, the acknowledgement after it. A kill -9 in the
/// middle of a stream of edits: the readers may hold updates the server never stored; the
/// writer still holds every unacknowledged one and sends it again when it resyncs; a
/// viewer's copy of what the server lost is refused (`read_only`) and the viewer resyncs
/// from scratch, as the SDK does; an editor's copy is accepted like any edit. Afterwards the
/// server and every client hold the same blocks, and nothing acknowledged was lost.
#[tokio::test]
async fn sigkill_between_relay_and_write_loses_nothing_and_clients_converge() {
    use canvas_tests::{Api, WsClient, block_ids};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let writer = api.signup("writer").await;
    let reader = api.signup("reader").await;
    let viewer = api.signup("viewer").await;
    let project = api.create_project(&writer, "P").await;
    api.add_member(&writer, &project, &reader, "editor").await;
    api.add_member(&writer, &project, &viewer, "viewer").await;
    let canvas = api.create_canvas(&writer, &project, "C").await;
    let ws_url = |base: &str, token: &str| {
        format!(
            "{}/ws/{canvas}?token={token}",
            base.replace("http://", "ws://")
        )
    };

    let mut w = WsClient::join(&ws_url(&server.base, &writer.token)).await;
    let mut r = WsClient::join(&ws_url(&server.base, &reader.token)).await;
    let mut v = WsClient::join(&ws_url(&server.base, &viewer.token)).await;
    let total = 300usize;
    for i in 0..total {
        w.edit(|txn| canvas_tests::add_block(txn, &format!("b{i}"), "chart", (0, i as i64, 1, 1)))
            .await;
    }
    // Kill once the readers hold part of the stream, while the rest is still on its way.
    r.wait_doc(|doc| block_ids(doc).len() >= total / 3).await;
    sigkill(server);
    // What reached each client before the connections broke.
    w.wait_closed().await;
    r.wait_closed().await;
    v.wait_closed().await;
    let acked_through = w.acked;
    let relayed = block_ids(&r.doc).len().max(block_ids(&v.doc).len());

    let server = start(dir.path());
    let stored =
        view_block_ids(&canvas_view(&api.client, &server.base, &canvas, &writer.token).await);
    // The writer's acknowledgement counts its messages: the sync step 2 of its join, then
    // one per block.
    for i in 0..(acked_through.saturating_sub(1) as usize).min(total) {
        assert!(
            stored.contains(&format!("b{i}")),
            "acknowledged block b{i} lost ({acked_through} acknowledged, {} stored)",
            stored.len()
        );
    }
    eprintln!(
        "at the kill: {acked_through} messages acknowledged, {relayed} blocks relayed to a reader; {} stored",
        stored.len()
    );

    // The viewer comes back first, with what it holds: anything the server lost is refused.
    let mut v2 = WsClient::connect(&ws_url(&server.base, &viewer.token)).await;
    v2.doc = std::mem::replace(&mut v.doc, canvas_engine::new_doc());
    v2.sync().await;
    let viewer_held_lost = block_ids(&v2.doc).iter().any(|id| !stored.contains(id));
    if viewer_held_lost {
        v2.wait_for(|c, _| !c.errors.is_empty()).await;
        assert!(
            v2.errors.iter().all(|(code, _)| code == "read_only"),
            "{:?}",
            v2.errors
        );
    }
    // ... and resyncs from the server, as the SDK does after a refusal.
    drop(v2);
    let mut v3 = WsClient::join(&ws_url(&server.base, &viewer.token)).await;

    // The writer resyncs with everything it made; the reader (an editor) with what it holds.
    let mut w2 = WsClient::connect(&ws_url(&server.base, &writer.token)).await;
    w2.doc = std::mem::replace(&mut w.doc, canvas_engine::new_doc());
    w2.sync().await;
    let mut r2 = WsClient::connect(&ws_url(&server.base, &reader.token)).await;
    r2.doc = std::mem::replace(&mut r.doc, canvas_engine::new_doc());
    r2.sync().await;

    let mut all: Vec<String> = (0..total).map(|i| format!("b{i}")).collect();
    all.sort();
    for client in [&mut w2, &mut r2, &mut v3] {
        client.wait_doc(|doc| block_ids(doc) == all).await;
    }
    assert!(
        w2.errors.is_empty() && r2.errors.is_empty(),
        "{:?} {:?}",
        w2.errors,
        r2.errors
    );
    w2.wait_acked().await;
    let view = canvas_view(&api.client, &server.base, &canvas, &writer.token).await;
    let mut on_server: Vec<String> = view_block_ids(&view).into_iter().collect();
    on_server.sort();
    assert_eq!(on_server, all, "the server holds every block again");
}

fn view_block_ids(view: &Value) -> std::collections::HashSet<String> {
    view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}
