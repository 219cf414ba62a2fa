//! Webhooks end to end: a local receiver (axum) gets signed deliveries, which the test
//! verifies by recomputing the HMAC; a receiver that fails the first attempts gets the event
//! on the third and the delivery log shows each; an event queued before a kill -9 arrives
//! after the restart; `canvas.updated` is coalesced; only admins manage webhooks; private
//! targets are refused without the switch; bad input changes nothing.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use canvas_tests::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    event: String,
    body: Vec<u8>,
    at: Instant,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A local receiver that answers 500 to its first `fail_first` requests, then 204.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    got: Mutex<Vec<Received>>,
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.got.lock().expect("receiver").clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.answered < 300)
            .collect()
    }
}

async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut got = rx.got.lock().expect("receiver");
    let status = if got.len() < rx.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    got.push(Received {
        signature: header("canvas-signature"),
        event: header("canvas-event"),
        body: body.to_vec(),
        at: Instant::now(),
        answered: status.as_u16(),
    });
    status
}

/// Serves a receiver on `listener`; its URL.
fn serve_receiver(listener: tokio::net::TcpListener, rx: Arc<Receiver>) -> String {
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/hook", post(receive)).with_state(rx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

async fn receiver(fail_first: usize) -> (String, Arc<Receiver>) {
    let rx = Arc::new(Receiver {
        fail_first,
        ..Receiver::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    (serve_receiver(listener, rx.clone()), rx)
}

/// Polls `check` every 50 ms until it gives a value, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks `Canvas-Signature` the way a receiver would: HMAC-SHA256 of "<t>.<body>".
fn signature_verifies(header: &str, body: &[u8], secret: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = chrono::Utc::now().timestamp();
    let fresh = t.parse::<i64>().is_ok_and(|t| (now - t).abs() < 300);
    fresh && expected == v1
}

async fn subscribe(
    api: &Api,
    admin: &TestUser,
    project: &str,
    url: &str,
    events: &[&str],
) -> String {
    let (status, body) = api
        .post(
            &format!("/api/v1/projects/{project}/webhooks"),
            Some(&admin.token),
            json!({"url": url, "events": events, "secret": SECRET}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.to_string().contains(SECRET),
        "the secret is never shown: {body}"
    );
    assert_eq!(body["secret_hint"], "…cdef");
    body["id"].as_str().expect("an id").to_owned()
}

async fn deliveries(api: &Api, admin: &TestUser, project: &str, hook: &str) -> Vec<Value> {
    let (status, body) = api
        .get(
            &format!("/api/v1/projects/{project}/webhooks/{hook}/deliveries"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().expect("deliveries").clone()
}

fn fast(config: &mut canvas_server::Config) {
    config.allow_private_targets = true;
    config.webhook_tick_ms = 50;
    config.webhook_retry_base_ms = 100;
    config.webhook_coalesce_ms = 1000;
}

#[tokio::test]
async fn a_signed_delivery_reaches_a_receiver_that_fails_twice_on_the_third_attempt() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("hookowner").await;
    let project = api.create_project(&owner, "Hooks").await;
    let (url, rx) = receiver(2).await;
    let hook = subscribe(&api, &owner, &project, &url, &["canvas.created"]).await;

    let canvas = api.create_canvas(&owner, &project, "Launch plan").await;
    let got = wait_for("the third attempt to be accepted", WAIT * 2, || {
        let rx = rx.clone();
        async move { rx.accepted().first().cloned() }
    })
    .await;
    let all = rx.all();
    assert_eq!(all.len(), 3, "two refused attempts, then the accepted one");
    assert_eq!(
        all.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    // The same event every time: the same body, freshly signed.
    assert!(all.iter().all(|r| r.body == got.body));
    for r in &all {
        assert!(
            signature_verifies(&r.signature, &r.body, SECRET),
            "{} verifies",
            r.signature
        );
        assert!(!signature_verifies(&r.signature, &r.body, "another secret"));
        let mut tampered = r.body.clone();
        tampered.push(b' ');
        assert!(!signature_verifies(&r.signature, &tampered, SECRET));
    }
    let event = got.json();
    assert_eq!(got.event, "canvas.created");
    assert_eq!(event["type"], "canvas.created");
    assert!(event["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(event["created_at"].as_str().is_some());
    assert_eq!(event["data"]["canvas"]["id"], canvas.as_str());
    assert_eq!(event["data"]["canvas"]["name"], "Launch plan");
    assert_eq!(event["data"]["created_by"], owner.id.as_str());
    // The gaps grow: 100 ms, then 200 ms (the backoff doubles).
    assert!(all[1].at - all[0].at >= Duration::from_millis(90));
    assert!(all[2].at - all[1].at >= Duration::from_millis(190));

    // The delivery log: one delivery, delivered, with its three attempts.
    let log = wait_for("the log to show the delivery", WAIT, || {
        let api = api.clone();
        let (owner, project, hook) = (owner.clone(), project.clone(), hook.clone());
        async move {
            let log = deliveries(&api, &owner, &project, &hook).await;
            (log.len() == 1 && log[0]["status"] == "delivered").then_some(log)
        }
    })
    .await;
    let d = &log[0];
    assert_eq!(d["type"], "canvas.created");
    assert_eq!(d["event_id"], event["id"]);
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 204);
    let attempts = d["attempt_log"].as_array().expect("attempt_log");
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(codes, [500, 500, 204]);
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    assert!(attempts[2]["error"].is_null());

    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        r#"canvas_webhook_deliveries_total{outcome="delivered"} 1"#,
        r#"canvas_webhook_deliveries_total{outcome="retry"} 2"#,
        r#"canvas_webhook_events_queued_total{event="canvas.created"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn canvas_updates_are_coalesced_and_carry_the_version_and_the_user() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("coalescer").await;
    let project = api.create_project(&owner, "Busy").await;
    let canvas = api.create_canvas(&owner, &project, "Busy canvas").await;
    let (url, rx) = receiver(0).await;
    let hook = subscribe(&api, &owner, &project, &url, &["canvas.updated"]).await;

    let mut ws = WsClient::join(&server.ws_url(&canvas, &owner.token)).await;
    let started = Instant::now();
    const EDITS: i64 = 40;
    for i in 0..EDITS {
        ws.edit(|txn| add_block(txn, &format!("b{i}"), "chart", (0, i * 2, 4, 2)))
            .await;
        ws.wait_acked().await;
    }
    let last_ack = Instant::now();
    let interval = Duration::from_millis(1000);
    // Everything queued is delivered and the last change's window has closed.
    wait_for("every update event to be delivered", WAIT * 2, || {
        let api = api.clone();
        let (owner, project, hook) = (owner.clone(), project.clone(), hook.clone());
        async move {
            let log = deliveries(&api, &owner, &project, &hook).await;
            let done = !log.is_empty()
                && log.iter().all(|d| d["status"] == "delivered")
                && last_ack.elapsed() > interval * 3 / 2;
            done.then_some(())
        }
    })
    .await;
    let events = rx.accepted();
    let windows = (last_ack - started).as_millis() / interval.as_millis() + 2;
    assert!(
        !events.is_empty() && events.len() as u128 <= windows && (events.len() as i64) < EDITS,
        "{} events for {EDITS} edits over {:?}",
        events.len(),
        last_ack - started
    );
    let mut versions = Vec::new();
    for e in &events {
        assert!(signature_verifies(&e.signature, &e.body, SECRET));
        let body = e.json();
        assert_eq!(body["type"], "canvas.updated");
        assert_eq!(body["data"]["canvas_id"], canvas.as_str());
        assert_eq!(body["data"]["project_id"], project.as_str());
        assert_eq!(body["data"]["updated_by"], owner.id.as_str());
        versions.push(body["data"]["version"].as_i64().expect("a version"));
    }
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions grow: {versions:?}"
    );
    // No two events of a canvas within one interval.
    for pair in events.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= interval * 9 / 10,
            "{:?} apart",
            pair[1].at - pair[0].at
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn membership_and_version_events_arrive_with_who_did_it() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("memberhooks").await;
    let mate = api.signup("mate").await;
    let project = api.create_project(&owner, "Team").await;
    let canvas = api.create_canvas(&owner, &project, "Plan").await;
    let (url, rx) = receiver(0).await;
    subscribe(
        &api,
        &owner,
        &project,
        &url,
        &[
            "member.added",
            "member.changed",
            "member.removed",
            "version.created",
            "canvas.deleted",
        ],
    )
    .await;
    api.add_member(&owner, &project, &mate, "viewer").await;
    api.add_member(&owner, &project, &mate, "editor").await;
    let (status, body) = api
        .delete(
            &format!("/api/v1/projects/{project}/members/{}", mate.id),
            Some(&owner.token),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = api
        .post(
            &format!("/api/v1/canvases/{canvas}/versions"),
            Some(&owner.token),
            json!({"changes": "First draft"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .delete(&format!("/api/v1/canvases/{canvas}"), Some(&owner.token))
        .await;
    assert_eq!(status, 204, "{body}");

    let events = wait_for("five events", WAIT, || {
        let rx = rx.clone();
        async move {
            let got = rx.accepted();
            (got.len() >= 5).then_some(got)
        }
    })
    .await;
    let mut by_type: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            let body = e.json();
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["data"].clone(),
            )
        })
        .collect();
    by_type.sort_by(|a, b| a.0.cmp(&b.0));
    let types: Vec<&str> = by_type.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "canvas.deleted",
            "member.added",
            "member.changed",
            "member.removed",
            "version.created"
        ]
    );
    let data = |t: &str| &by_type.iter().find(|(k, _)| k == t).expect("event").1;
    assert_eq!(data("member.added")["user_id"], mate.id.as_str());
    assert_eq!(data("member.added")["role"], "viewer");
    assert_eq!(data("member.changed")["previous_role"], "viewer");
    assert_eq!(data("member.changed")["role"], "editor");
    assert_eq!(data("member.removed")["previous_role"], "editor");
    assert_eq!(data("member.removed")["changed_by"], owner.id.as_str());
    assert_eq!(data("version.created")["canvas_id"], canvas.as_str());
    assert_eq!(data("version.created")["changes"], "First draft");
    assert_eq!(data("version.created")["created_by"], owner.id.as_str());
    assert_eq!(data("canvas.deleted")["canvas"]["id"], canvas.as_str());
    server.stop().await;
}

#[tokio::test]
async fn only_admins_manage_webhooks_and_bad_input_changes_nothing() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("hookadmin").await;
    let viewer = api.signup("hookviewer").await;
    let editor = api.signup("hookeditor").await;
    let admin = api.signup("hookadmin2").await;
    let stranger = api.signup("hookstranger").await;
    let project = api.create_project(&owner, "Guarded").await;
    api.add_member(&owner, &project, &viewer, "viewer").await;
    api.add_member(&owner, &project, &editor, "editor").await;
    api.add_member(&owner, &project, &admin, "admin").await;
    let (url, _rx) = receiver(0).await;
    let path = format!("/api/v1/projects/{project}/webhooks");
    let good = json!({"url": url, "events": ["canvas.created"], "secret": SECRET});

    for user in [&viewer, &editor] {
        let (status, body) = api.post(&path, Some(&user.token), good.clone()).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _) = api.get(&path, Some(&user.token)).await;
        assert_eq!(status, 403);
    }
    let (status, _) = api.post(&path, Some(&stranger.token), good.clone()).await;
    assert_eq!(status, 404, "non-members do not see the project");
    let (status, _) = api.post(&path, None, good.clone()).await;
    assert_eq!(status, 401);

    let bad = [
        (
            json!({"url": url, "events": ["canvas.exploded"], "secret": SECRET}),
            "unknown_event",
        ),
        (
            json!({"url": url, "events": [], "secret": SECRET}),
            "invalid_events",
        ),
        (
            json!({"url": "not a url", "events": ["canvas.created"], "secret": SECRET}),
            "invalid_url",
        ),
        (
            json!({"url": "ftp://example.com/x", "events": ["canvas.created"], "secret": SECRET}),
            "invalid_url",
        ),
        (
            json!({"url": "http://user:pw@example.com/x", "events": ["canvas.created"], "secret": SECRET}),
            "invalid_url",
        ),
        (
            json!({"url": url, "events": ["canvas.created"], "secret": "short"}),
            "invalid_secret",
        ),
    ];
    for (body, code) in bad {
        let (status, answer) = api.post(&path, Some(&owner.token), body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some());
    }
    let (status, answer) = api
        .post(
            &path,
            Some(&owner.token),
            json!({"url": url, "events": ["canvas.created"]}),
        )
        .await;
    assert_eq!(status, 400, "a missing secret: {answer}");
    let (status, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(status, 200);
    assert_eq!(list["webhooks"], json!([]), "nothing was stored");

    // A project admin manages them; viewers and editors still cannot read or delete them.
    let hook = subscribe(
        &api,
        &admin,
        &project,
        &url,
        &["canvas.created", "canvas.created"],
    )
    .await;
    let (_, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(list["webhooks"][0]["events"], json!(["canvas.created"]));
    assert!(!list.to_string().contains(SECRET));
    for user in [&viewer, &editor] {
        let (status, _) = api
            .delete(&format!("{path}/{hook}"), Some(&user.token))
            .await;
        assert_eq!(status, 403);
        let (status, _) = api
            .get(&format!("{path}/{hook}/deliveries"), Some(&user.token))
            .await;
        assert_eq!(status, 403);
    }
    let (status, _) = api
        .delete(
            &format!("{path}/{}", uuid::Uuid::new_v4()),
            Some(&owner.token),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .delete(&format!("{path}/{hook}"), Some(&admin.token))
        .await;
    assert_eq!(status, 204);
    let (_, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(list["webhooks"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn private_targets_are_refused_without_the_switch() {
    let server = TestServer::start().await;
    let api = server.api();
    let owner = api.signup("ssrf").await;
    let project = api.create_project(&owner, "Outside").await;
    let path = format!("/api/v1/projects/{project}/webhooks");
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
    ] {
        let (status, body) = api
            .post(
                &path,
                Some(&owner.token),
                json!({"url": url, "events": ["canvas.created"], "secret": SECRET}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "forbidden_target", "{url}: {body}");
    }
    let (_, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(list["webhooks"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn ended_deliveries_leave_the_log_after_the_retention_and_pending_ones_stay() {
    let server = TestServer::start_with(|config: &mut canvas_server::Config| {
        fast(config);
        config.webhook_retention_secs = 1;
    })
    .await;
    let api = server.api();
    let owner = api.signup("retention").await;
    let project = api.create_project(&owner, "Kept a while").await;
    let (ok_url, ok_rx) = receiver(0).await;
    let (down_url, down_rx) = receiver(usize::MAX).await;
    let ok = subscribe(&api, &owner, &project, &ok_url, &["canvas.created"]).await;
    let down = subscribe(&api, &owner, &project, &down_url, &["canvas.created"]).await;
    api.create_canvas(&owner, &project, "Short-lived log").await;

    wait_for("the delivery", WAIT, || {
        let rx = ok_rx.clone();
        async move { (!rx.accepted().is_empty()).then_some(()) }
    })
    .await;
    // Delivered, then gone from the log once a second has passed and the worker pruned.
    wait_for("the delivered one to be pruned", WAIT * 2, || {
        let api = api.clone();
        let (owner, project, ok) = (owner.clone(), project.clone(), ok.clone());
        async move {
            deliveries(&api, &owner, &project, &ok)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;
    // The failing receiver's delivery is still being retried: it stays, attempts and all,
    // though it is older than the retention.
    wait_for("a few attempts at the failing receiver", WAIT, || {
        let rx = down_rx.clone();
        async move { (rx.all().len() >= 3).then_some(()) }
    })
    .await;
    let log = deliveries(&api, &owner, &project, &down).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "pending");
    assert!(
        log[0]["attempt_log"]
            .as_array()
            .is_some_and(|a| a.len() >= 2),
        "{log:?}"
    );
    server.stop().await;
}

/// The binary as a process, killed with SIGKILL when dropped.
struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `data_dir`, retrying failed deliveries after `retry_base_ms`.
fn start_process(data_dir: &std::path::Path, retry_base_ms: u64) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_canvas-server-under-test"));
    command
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("CANVAS_LOG", "warn")
        .env("CANVAS_ALLOW_PRIVATE_TARGETS", "1")
        .env("CANVAS_WEBHOOK_TICK_MS", "50")
        .env("CANVAS_WEBHOOK_RETRY_BASE_MS", retry_base_ms.to_string());
    for var in [
        "DATABASE_URL",
        "MONGODB_URI",
        "REDIS_URL",
        "CANVAS_REDIS_KEY_PREFIX",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("canvas-server starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let base = line
        .split_once("listening on ")
        .map(|(_, addr)| addr.trim().to_owned())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    Process { child, base }
}

#[tokio::test]
async fn an_event_queued_before_a_kill_9_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The receiver's address, with nothing listening yet: every attempt is refused.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = spare.local_addr().expect("addr");
    drop(spare);
    let url = format!("http://{addr}/hook");

    // Two seconds between attempts: the kill below lands between two of them, never during
    // one (an attempt cut short would only be due again when its lease ends).
    let first = start_process(dir.path(), 2000);
    let api = Api {
        client: reqwest::Client::new(),
        base: first.base.clone(),
    };
    let owner = api.signup("crash").await;
    let project = api.create_project(&owner, "Crash").await;
    let hook = subscribe(&api, &owner, &project, &url, &["canvas.created"]).await;
    let canvas = api.create_canvas(&owner, &project, "Survivor").await;
    // In the outbox, attempted and refused once, not delivered.
    wait_for("a refused attempt", WAIT, || {
        let api = api.clone();
        let (owner, project, hook) = (owner.clone(), project.clone(), hook.clone());
        async move {
            let log = deliveries(&api, &owner, &project, &hook).await;
            log.first()
                .filter(|d| {
                    d["status"] == "pending"
                        && d["attempt_log"].as_array().is_some_and(|l| l.len() == 1)
                })
                .map(|_| ())
        }
    })
    .await;
    let pid = first.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    drop(first);

    // The receiver comes up, then the server again on the same data.
    let rx = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the receiver's port");
    serve_receiver(listener, rx.clone());
    let second = start_process(dir.path(), 100);
    let api = Api {
        client: reqwest::Client::new(),
        base: second.base.clone(),
    };
    let got = wait_for("the event after the restart", WAIT * 2, || {
        let rx = rx.clone();
        async move { rx.accepted().first().cloned() }
    })
    .await;
    assert!(signature_verifies(&got.signature, &got.body, SECRET));
    let event = got.json();
    assert_eq!(event["type"], "canvas.created");
    assert_eq!(event["data"]["canvas"]["id"], canvas.as_str());
    let log = wait_for("the log to show it delivered", WAIT, || {
        let api = api.clone();
        let (owner, project, hook) = (owner.clone(), project.clone(), hook.clone());
        async move {
            let log = deliveries(&api, &owner, &project, &hook).await;
            log.first()
                .filter(|d| d["status"] == "delivered")
                .map(|_| log.clone())
        }
    })
    .await;
    assert_eq!(log.len(), 1, "one event, one delivery");
    assert!(log[0]["attempts"].as_i64() >= Some(2));
    assert_eq!(rx.accepted().len(), 1, "delivered once");
}

/// The delivered count in a server's `/metrics`.
fn delivered(server: &TestServer) -> u64 {
    let text = server.state.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"canvas_webhook_deliveries_total{outcome="delivered"} "#))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Two nodes whose outbox is one PostgreSQL database (`DATABASE_URL_TEST`) post each event
/// once: both workers claim from it, and no event reaches the receiver twice.
#[tokio::test]
async fn two_nodes_on_one_database_deliver_each_event_once() {
    let (database_url, _) = fresh_database("hooks").await;
    // Nodes share the server key that seals the secrets (as for data sources).
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let on_pg = |c: &mut canvas_server::Config| {
        fast(c);
        c.database_url = Some(database_url.clone());
        c.secret_key = Some(key.to_owned());
    };
    let a = TestServer::start_with(&on_pg).await;
    let b = TestServer::start_with(&on_pg).await;
    let api = a.api();
    let owner = api.signup("twonodes").await;
    let project = api.create_project(&owner, "Shared").await;
    let (url, rx) = receiver(0).await;
    let hook = subscribe(&api, &owner, &project, &url, &["canvas.created"]).await;
    const EVENTS: usize = 20;
    for i in 0..EVENTS {
        api.create_canvas(&owner, &project, &format!("Canvas {i}"))
            .await;
    }
    wait_for("every event delivered", WAIT * 2, || {
        let api = api.clone();
        let (owner, project, hook) = (owner.clone(), project.clone(), hook.clone());
        async move {
            let log = deliveries(&api, &owner, &project, &hook).await;
            (log.len() == EVENTS && log.iter().all(|d| d["status"] == "delivered")).then_some(())
        }
    })
    .await;
    let got = rx.accepted();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS, "every event arrived");
    assert_eq!(got.len(), EVENTS, "none twice");
    assert_eq!(delivered(&a) + delivered(&b), EVENTS as u64);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn presence_and_sharing_events_arrive() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("presencehooks").await;
    let project = api.create_project(&owner, "Live").await;
    let canvas = api.create_canvas(&owner, &project, "Live canvas").await;
    let (url, rx) = receiver(0).await;
    let events = ["presence.joined", "presence.left", "sharing.changed"];
    subscribe(&api, &owner, &project, &url, &events).await;

    let ws = WsClient::join(&server.ws_url(&canvas, &owner.token)).await;
    let (status, body) = api
        .patch(
            &format!("/api/v1/canvases/{canvas}/sharing"),
            Some(&owner.token),
            json!({"visibility": "team"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(ws);
    let got = wait_for("joined, sharing changed and left", WAIT, || {
        let rx = rx.clone();
        async move {
            let got = rx.accepted();
            (got.len() >= 3).then_some(got)
        }
    })
    .await;
    let mut bodies: Vec<Value> = got.iter().map(Received::json).collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap_or_default().to_owned());
    let types: Vec<&str> = bodies
        .iter()
        .map(|b| b["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, events);
    for presence in &bodies[..2] {
        assert_eq!(presence["data"]["user_id"], owner.id.as_str());
        assert_eq!(presence["data"]["canvas_id"], canvas.as_str());
    }
    let sharing = &bodies[2]["data"];
    assert_eq!(sharing["before"]["visibility"], "private");
    assert_eq!(sharing["after"]["visibility"], "team");
    assert_eq!(sharing["changed_by"], owner.id.as_str());
    assert_eq!(sharing["source"], "rest");
    server.stop().await;
}

#[tokio::test]
async fn query_executions_that_complete_and_fail_are_announced() {
    let server = TestServer::start_with(fast).await;
    let api = server.api();
    let owner = api.signup("queryhooks").await;
    let project = api.create_project(&owner, "Data").await;
    let (url, rx) = receiver(0).await;
    subscribe(
        &api,
        &owner,
        &project,
        &url,
        &["query.execution.completed", "query.execution.failed"],
    )
    .await;
    api.csv_source(
        &owner,
        &project,
        "sales",
        Some("region,amount\nnorth,10\nsouth,20\nnorth,5\n"),
    )
    .await;
    let query = |text: &str| {
        let api = &api;
        let project = &project;
        let token = owner.token.clone();
        let text = text.to_owned();
        async move {
            let (status, q) = api
                .post(
                    &format!("/api/v1/projects/{project}/queries"),
                    Some(&token),
                    json!({"name": "q", "query_text": text, "query_type": "sql"}),
                )
                .await;
            assert_eq!(status, 201, "{q}");
            q["id"].as_str().expect("an id").to_owned()
        }
    };
    let good = query("SELECT region, sum(amount) AS total FROM sales GROUP BY region").await;
    let bad = query("SELECT no_such_column FROM sales").await;
    let (status, ran) = api
        .post(
            &format!("/api/v1/queries/{good}/execute"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{ran}");
    let (status, refused) = api
        .post(
            &format!("/api/v1/queries/{bad}/execute"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    let events = wait_for("two execution events", WAIT, || {
        let rx = rx.clone();
        async move {
            let got = rx.accepted();
            (got.len() >= 2).then_some(got)
        }
    })
    .await;
    let bodies: Vec<Value> = events.iter().map(|e| e.json()).collect();
    let of = |t: &str| {
        bodies
            .iter()
            .find(|b| b["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {bodies:?}"))
    };
    let completed = &of("query.execution.completed")["data"];
    assert_eq!(completed["query_id"], good.as_str());
    assert_eq!(completed["execution_id"], ran["execution"]["id"]);
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["rows_returned"], 2);
    assert_eq!(completed["executed_by"], owner.id.as_str());
    assert_eq!(completed["project_id"], project.as_str());
    let failed = &of("query.execution.failed")["data"];
    assert_eq!(failed["query_id"], bad.as_str());
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_column")),
        "{failed}"
    );
    for e in &events {
        assert!(signature_verifies(&e.signature, &e.body, SECRET));
    }
    server.stop().await;
}
