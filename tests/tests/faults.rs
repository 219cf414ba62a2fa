//! Service outages while the server runs: what clients see, and that they recover.
//!
//! Each test runs its own throwaway `redis-server` (from the machine's packages, as
//! `scripts/test.sh` does) so it can stop and start it without touching anyone else's.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use std::time::Duration;

/// A private Redis on a port of its own, killed when dropped (also when a test fails).
struct PrivateRedis {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    async fn start_on(port: u16) -> PrivateRedis {
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        PrivateRedis {
            child,
            port,
            _dir: dir,
        }
    }

    async fn start() -> PrivateRedis {
        let port = free_port();
        Self::start_on(port).await
    }

    async fn stop(mut self) -> u16 {
        self.child.kill().await.unwrap();
        self.port
    }
}

/// A free port on 127.0.0.1 (for a private service to listen on).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `/readyz` until it says `service` is down; returns the body.
async fn wait_down(api: &Api, service: &str) -> serde_json::Value {
    let body = wait_ready(api, 503).await;
    assert_eq!(body["status"], "unavailable", "{body}");
    let state = body["services"][service].as_str().unwrap_or_default();
    assert!(state.starts_with("unavailable"), "{body}");
    body
}

/// `canvas_storage_errors_total{backend}` from `/metrics` (0 before the first).
async fn storage_errors(api: &Api, backend: &str) -> f64 {
    let (status, body) = api.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("the text format");
    let series = format!(r#"canvas_storage_errors_total{{backend="{backend}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

/// Polls `/readyz` until its status is `want`; returns the body.
async fn wait_ready(api: &Api, want: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = api.get("/readyz", None).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis down: `/healthz` still says ok, `/readyz` names Redis, REST answers 503 in the error
/// shape (not 500), a new WebSocket with a valid token is told 1011 (retry), not 4401 (which
/// the SDK takes as a dead token), and the open connection goes on editing (canvases are in
/// the embedded store). Redis back: everything works again without a restart; sessions kept
/// only in a Redis without persistence are gone (README, "Operations").
#[tokio::test]
async fn a_redis_outage_is_a_retry_not_a_bad_token() {
    let redis = PrivateRedis::start().await;
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let server = TestServer::start_with(|c| c.redis_url = Some(url)).await;
    let team = Team::new(&server).await;
    let ready = wait_ready(&team.api, 200).await;
    assert_eq!(ready["services"]["redis"], "ok", "{ready}");
    let mut open = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;

    let port = redis.stop().await;
    let body = wait_down(&team.api, "redis").await;
    assert_eq!(body["services"]["sqlite"], "ok", "{body}");
    let (status, _) = team.api.get("/healthz", None).await;
    assert_eq!(status, 200, "liveness holds through the outage");

    let errors_before = storage_errors(&team.api, "redis").await;
    let (status, body) = team
        .api
        .get("/api/v1/projects", Some(&team.owner.token))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        storage_errors(&team.api, "redis").await > errors_before,
        "the failed session lookup is counted against Redis"
    );
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.to_lowercase().contains("redis"),
        "no internals: {message}"
    );

    let mut refused = WsClient::connect(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let (code, reason) = refused.wait_closed().await;
    assert_eq!(code, 1011, "{reason}");
    assert!(
        !reason.to_lowercase().contains("redis"),
        "no internals: {reason}"
    );

    open.edit(|txn| add_block(txn, "during-outage", "chart", (0, 0, 2, 2)))
        .await;
    open.wait_acked().await;

    let _redis = PrivateRedis::start_on(port).await;
    wait_ready(&team.api, 200).await;
    // The sessions lived only in that Redis: the old token is gone (401, not 503) ...
    let (status, body) = team
        .api
        .get("/api/v1/projects", Some(&team.owner.token))
        .await;
    assert_eq!(status, 401, "{body}");
    // ... and logging in again works, as does a new connection.
    let fresh = team.api.signup("after").await;
    let (status, body) = team.api.get("/api/v1/projects", Some(&fresh.token)).await;
    assert_eq!(status, 200, "{body}");
    open.edit(|txn| add_block(txn, "after-outage", "chart", (0, 4, 2, 2)))
        .await;
    open.wait_acked().await;
}

/// A private MongoDB-compatible server (secantusdb, which `scripts/test.sh` installs and
/// names in `CANVAS_TEST_SECANTUSD`) on a port and data folder of its own; killed when
/// dropped. Started again on the same folder, it has what it had.
struct PrivateMongo {
    child: tokio::process::Child,
    port: u16,
}

impl PrivateMongo {
    async fn start_on(port: u16, dir: &std::path::Path) -> PrivateMongo {
        let bin = std::env::var("CANVAS_TEST_SECANTUSD").expect(
            "CANVAS_TEST_SECANTUSD is not set: run ./scripts/test.sh (it installs secantusdb \
             and sets it to the secantusd-py it installed)",
        );
        let child = tokio::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.join("data"))
            .args(["--log-level", "WARNING"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("secantusd-py runs");
        let uri = format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ping = async {
                let client = mongodb::Client::with_uri_str(&uri).await?;
                client
                    .database("admin")
                    .run_command(mongodb::bson::doc! { "ping": 1 })
                    .await
            };
            if ping.await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "secantusd-py did not answer on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        PrivateMongo { child, port }
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// MongoDB down: what was acknowledged stays, what was not is never acknowledged; the room
/// closes its connections with 1011 and new ones get 1011 until it is back (a retry, not a
/// refusal); the server does not exit and `/readyz` names MongoDB. Back: a client that
/// resyncs with its unacknowledged edit has it stored, next to everything acknowledged.
#[tokio::test]
async fn a_mongodb_outage_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mongo = PrivateMongo::start_on(port, dir.path()).await;
    let uri = format!(
        "mongodb://127.0.0.1:{}/canvas_fault?directConnection=true",
        mongo.port
    );
    let server = TestServer::start_with(|c| c.mongodb_uri = Some(uri)).await;
    let team = Team::new(&server).await;
    let url = server.ws_url(&team.canvas, &team.editor.token);
    let mut a = WsClient::join(&url).await;
    a.edit(|txn| add_block(txn, "before", "chart", (0, 0, 2, 2)))
        .await;
    a.wait_acked().await;

    mongo.stop().await;
    a.edit(|txn| add_block(txn, "during", "chart", (0, 4, 2, 2)))
        .await;
    let (code, reason) = a.wait_closed().await;
    assert_eq!(code, 1011, "{reason}");
    assert!(
        a.acked < a.sent,
        "the edit made during the outage was not acknowledged"
    );
    let mut refused = WsClient::connect(&url).await;
    let (code, reason) = refused.wait_closed().await;
    assert_eq!(code, 1011, "{reason}");
    wait_down(&team.api, "mongodb").await;
    let (status, _) = team.api.get("/healthz", None).await;
    assert_eq!(status, 200);

    let _mongo = PrivateMongo::start_on(port, dir.path()).await;
    wait_ready(&team.api, 200).await;
    // The client resyncs with what it has, its unacknowledged edit included.
    let mut b = WsClient::connect(&url).await;
    b.doc = std::mem::replace(&mut a.doc, canvas_engine::new_doc());
    b.sync().await;
    b.wait_acked().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = team.api.canvas_json(&team.owner, &team.canvas).await;
        let ids: Vec<&str> = view["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["id"].as_str())
            .collect();
        if ids.contains(&"before") && ids.contains(&"during") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private PostgreSQL cluster (initdb + pg_ctl, as the `postgres` user when run as root,
/// as `scripts/test.sh` does), stopped and started on the same data; stopped when dropped.
struct PrivatePostgres {
    bindir: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    fn bindir() -> std::path::PathBuf {
        let debian = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|bin| bin.join("initdb").exists());
        debian.unwrap_or_else(|| {
            let out = std::process::Command::new("sh")
                .args(["-c", "dirname \"$(readlink -f \"$(command -v pg_ctl)\")\""])
                .output()
                .expect("sh runs");
            std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
    }

    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bindir.join(program);
        if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn start() -> PrivatePostgres {
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        let as_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_root {
            let chown = std::process::Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown to postgres");
        }
        let port = free_port();
        let pg = PrivatePostgres {
            bindir: Self::bindir(),
            dir,
            port,
            as_root,
        };
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .expect("initdb runs (apt-get install postgresql)");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        pg.up();
        pg
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start");
    }

    fn down(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// PostgreSQL stopped: REST answers 503 in the error shape, new WebSockets 1011, open ones go
/// on editing (canvases are elsewhere); started again: everything answers without a server
/// restart.
#[tokio::test]
async fn a_postgresql_outage_is_503_and_open_sessions_go_on() {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap();
    let url = pg.url();
    let server = TestServer::start_with(|c| c.database_url = Some(url)).await;
    let team = Team::new(&server).await;
    let mut open = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;

    let pg = tokio::task::spawn_blocking(move || {
        pg.down();
        pg
    })
    .await
    .unwrap();
    let body = wait_down(&team.api, "postgresql").await;
    assert_eq!(body["status"], "unavailable", "{body}");
    let (status, health) = team.api.get("/healthz", None).await;
    assert_eq!(status, 200, "liveness holds through the outage: {health}");
    assert_eq!(health["status"], "ok");
    let errors_before = storage_errors(&team.api, "postgresql").await;
    let (status, body) = team
        .api
        .get("/api/v1/projects", Some(&team.owner.token))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        storage_errors(&team.api, "postgresql").await > errors_before,
        "the failed lookup is counted against PostgreSQL"
    );
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let mut refused = WsClient::connect(&server.ws_url(&team.canvas, &team.owner.token)).await;
    let (code, reason) = refused.wait_closed().await;
    assert_eq!(code, 1011, "{reason}");
    open.edit(|txn| add_block(txn, "during", "chart", (0, 0, 2, 2)))
        .await;
    open.wait_acked().await;

    let _pg = tokio::task::spawn_blocking(move || {
        pg.up();
        pg
    })
    .await
    .unwrap();
    wait_ready(&team.api, 200).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = team
            .api
            .get("/api/v1/projects", Some(&team.owner.token))
            .await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = WsClient::join(&server.ws_url(&team.canvas, &team.owner.token)).await;
    again
        .wait_doc(|doc| block_ids(doc).contains(&"during".to_owned()))
        .await;
}

/// Redis restarted (killed, then started empty on the same port) while two server nodes
/// share a room, with a client on each. During the outage both go on editing, acknowledged
/// (the log is in MongoDB), and move their cursors; nothing of that crosses between the nodes.
/// Once Redis is back, without anyone sending anything more: each client gets the other's
/// outage edits (the nodes catch up from the log) and the other's latest cursor (the nodes
/// publish their people's presence again, and the shared presence store has it again); new
/// edits cross both ways again (the nodes resubscribed by themselves).
#[tokio::test]
async fn a_redis_restart_under_two_nodes_heals_fan_out_presence_and_catch_up() {
    let redis = PrivateRedis::start().await;
    let mut services = ServiceSet::fresh().await;
    services.redis_url = format!("redis://127.0.0.1:{}/0", redis.port);
    let dir = tempfile::tempdir().unwrap();
    let node1 = TestServer::start_in(dir.path(), |c| services.configure(c)).await;
    let node2 = TestServer::start_in(dir.path(), |c| services.configure(c)).await;
    let team = Team::new(&node1).await;
    let mut a = WsClient::join(&node1.ws_url(&team.canvas, &team.owner.token)).await;
    let mut b = WsClient::join(&node2.ws_url(&team.canvas, &team.editor.token)).await;
    let cursor = |x: i64| format!(r#"{{"user":{{"name":"x"}},"cursor":{{"x":{x},"y":0}}}}"#);
    a.send_awareness(31, 1, &cursor(1)).await;
    b.send_awareness(77, 1, &cursor(1)).await;
    a.edit(|txn| add_block(txn, "before", "chart", (0, 0, 2, 2)))
        .await;
    both_until(
        &mut a,
        &mut b,
        "both see the other before the outage",
        |a, b| {
            a.awareness.contains_key(&77)
                && b.awareness.contains_key(&31)
                && block_ids(&b.doc).contains(&"before".to_owned())
        },
    )
    .await;

    let port = redis.stop().await;
    wait_down(&node1.api(), "redis").await;
    wait_down(&node2.api(), "redis").await;
    for i in 0..5 {
        a.edit(|txn| add_block(txn, &format!("a-during-{i}"), "chart", (0, 2 + 2 * i, 2, 2)))
            .await;
        b.edit(|txn| add_block(txn, &format!("b-during-{i}"), "chart", (6, 2 + 2 * i, 2, 2)))
            .await;
    }
    a.wait_acked().await;
    b.wait_acked().await;
    a.send_awareness(31, 2, &cursor(2)).await;
    b.send_awareness(77, 2, &cursor(2)).await;
    let has_all = |doc: &canvas_engine::yrs::Doc, who: &str| {
        let ids = block_ids(doc);
        (0..5).all(|i| ids.contains(&format!("{who}-during-{i}")))
    };
    assert!(has_all(&a.doc, "a") && has_all(&b.doc, "b"));

    let _redis = PrivateRedis::start_on(port).await;
    wait_ready(&node1.api(), 200).await;
    wait_ready(&node2.api(), 200).await;
    both_until(&mut a, &mut b, "outage edits and cursors cross", |a, b| {
        let moved = |c: &WsClient, id| c.awareness.get(&id).is_some_and(|s| s.contains(r#""x":2"#));
        has_all(&a.doc, "b") && has_all(&b.doc, "a") && moved(a, 77) && moved(b, 31)
    })
    .await;
    a.edit(|txn| add_block(txn, "a-after", "chart", (0, 20, 2, 2)))
        .await;
    b.edit(|txn| add_block(txn, "b-after", "chart", (6, 20, 2, 2)))
        .await;
    both_until(&mut a, &mut b, "new edits cross both ways", |a, b| {
        let ids = (block_ids(&a.doc), block_ids(&b.doc));
        ids.0 == ids.1
            && ids.0.contains(&"a-after".to_owned())
            && ids.0.contains(&"b-after".to_owned())
    })
    .await;
    assert_eq!(block_ids(&a.doc).len(), 13);

    // The sessions were only in that Redis: the viewer logs in again, and each node's REST
    // presence lists the user on the other node with the cursor of the outage.
    let (status, login) = team
        .api
        .post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({"email": team.viewer.email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap();
    let path = format!("/api/v1/canvases/{}/presence", team.canvas);
    for (node, other) in [(&node1, &team.editor), (&node2, &team.owner)] {
        let deadline = tokio::time::Instant::now() + RECOVERY;
        loop {
            let (status, body) = node.api().get(&path, Some(token)).await;
            assert_eq!(status, 200, "{body}");
            let listed = body["presence"].as_array().unwrap().iter().any(|p| {
                p["user_id"] == other.id.as_str()
                    && p["cursor"] == serde_json::json!({"x": 2, "y": 0})
            });
            if listed {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How long two nodes may take to heal after Redis is back ("within seconds").
const RECOVERY: Duration = Duration::from_secs(15);

/// Reads from both clients until `done` holds for the pair; panics after [`RECOVERY`].
async fn both_until(
    a: &mut WsClient,
    b: &mut WsClient,
    what: &str,
    mut done: impl FnMut(&WsClient, &WsClient) -> bool,
) {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while !done(a, b) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {RECOVERY:?}: {what} (a has {:?}, b has {:?})",
            block_ids(&a.doc),
            block_ids(&b.doc)
        );
        for client in [&mut *a, &mut *b] {
            if let Some(Incoming::Closed { code, reason }) =
                client.next(Duration::from_millis(20)).await
            {
                panic!("closed while waiting for {what}: {code} {reason}");
            }
        }
    }
}
