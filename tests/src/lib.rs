//! # canvas-tests
//!
//! Helpers for end-to-end tests: a server on a free loopback port over a temporary data
//! directory ([`TestServer`]), a REST client ([`Api`]) and a y-websocket client over
//! tokio-tungstenite holding its own yrs document ([`WsClient`]).
//!
//! Every wait is bounded ([`WAIT`]) so a broken server fails a test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod contract;

use canvas_engine::protocol::{self, Extension};
use canvas_engine::yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use canvas_engine::yrs::sync::{Message, SyncMessage};
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::{Doc, ReadTxn, StateVector, Transact, TransactionMut, Update};
use canvas_server::{AppState, Config};
use canvas_storage::testing::{Service, service_url};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any test waits for one expected event.
pub const WAIT: Duration = Duration::from_secs(10);

/// A canvas server on 127.0.0.1 with a port of its own.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: PathBuf,
    /// The service URLs this server runs on, if any.
    pub services: Option<ServiceSet>,
    _tmp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server on a fresh temporary data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a fresh temporary data directory, adjusting the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(&dir, adjust).await;
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on the test services (PostgreSQL, MongoDB, Redis from
    /// `DATABASE_URL_TEST`, `MONGODB_URI_TEST`, `REDIS_URL_TEST`, which `./scripts/test.sh`
    /// provides), each with a database / key prefix of its own. Panics if one is missing.
    pub async fn start_services() -> Self {
        let services = ServiceSet::fresh().await;
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(&dir, |c| services.configure(c)).await;
        server._tmp = Some(tmp);
        server.services = Some(services);
        server
    }

    /// Starts another server on the same services and data directory (a restart, or a
    /// second node).
    pub async fn start_again(&self) -> Self {
        let services = self.services.clone();
        let mut server = Self::start_in(&self.data_dir, |c| {
            if let Some(s) = &services {
                s.configure(c)
            }
        })
        .await;
        server.services = services;
        server
    }

    /// Starts a server on an existing data directory (to test restarts).
    pub async fn start_in(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_data_dir(dir);
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.idle_unload_secs = 2;
        adjust(&mut config);
        let state = canvas_server::open_state(config)
            .await
            .expect("storage opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(canvas_server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            state,
            data_dir: dir.to_path_buf(),
            services: None,
            _tmp: None,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully (rooms flush and checkpoint) and keeps the data directory.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
        self._tmp.take()
    }

    pub fn api(&self) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: format!("http://{}", self.addr),
        }
    }

    /// The WebSocket address of a canvas, as y-websocket builds it.
    pub fn ws_url(&self, canvas: &str, token: &str) -> String {
        format!("ws://{}/ws/{canvas}?token={token}", self.addr)
    }
}

/// URLs of the test services with a PostgreSQL database, a MongoDB database and a Redis key
/// prefix of this test's own.
#[derive(Debug, Clone)]
pub struct ServiceSet {
    pub database_url: String,
    pub mongodb_uri: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub mongo_db: String,
}

impl ServiceSet {
    /// Creates a fresh PostgreSQL database and picks fresh MongoDB / Redis names.
    pub async fn fresh() -> ServiceSet {
        let mongo = service_url(Service::Mongo);
        let redis_url = service_url(Service::Redis);
        let (database_url, name) = fresh_database("").await;
        let mongodb_uri = replace_path(&mongo, &name);
        ServiceSet {
            database_url,
            mongodb_uri,
            redis_url,
            redis_prefix: format!("{name}:"),
            mongo_db: name,
        }
    }

    /// Points a configuration at these services.
    pub fn configure(&self, config: &mut Config) {
        config.database_url = Some(self.database_url.clone());
        config.mongodb_uri = Some(self.mongodb_uri.clone());
        config.redis_url = Some(self.redis_url.clone());
        config.redis_key_prefix = self.redis_prefix.clone();
    }

    /// The environment that selects these services for the `canvas-server` binary.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.database_url.clone()),
            ("MONGODB_URI".into(), self.mongodb_uri.clone()),
            ("REDIS_URL".into(), self.redis_url.clone()),
            ("CANVAS_REDIS_KEY_PREFIX".into(), self.redis_prefix.clone()),
        ]
    }

    /// The MongoDB database of this set.
    pub async fn mongo(&self) -> mongodb::Database {
        let client = mongodb::Client::with_uri_str(&self.mongodb_uri)
            .await
            .expect("MongoDB client");
        client.database(&self.mongo_db)
    }
}

/// Creates a fresh PostgreSQL database named `{run}_e2e_{tag}{random}` after the run's
/// database, so the test command drops it at its end; its URL and name.
pub async fn fresh_database(tag: &str) -> (String, String) {
    let admin = service_url(Service::Postgres);
    let run_db = admin
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|d| !d.is_empty())
        .unwrap_or("canvas");
    let name = format!(
        "{run_db}_e2e_{tag}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("PostgreSQL from DATABASE_URL_TEST answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    (replace_path(&admin, &name), name)
}

/// Replaces the database path of a `scheme://host:port/db?query` URL.
fn replace_path(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A REST client for the server's JSON API.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub username: String,
    pub token: String,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        contract::check(method.as_str(), path, status);
        let text = resp.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// Uploads `csv` as the data of file source `source`, asserting the 200.
    pub async fn upload_csv(&self, token: &str, source: &str, csv: &str) {
        let resp = self
            .client
            .put(format!("{}/api/v1/data-sources/{source}/file", self.base))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .expect("upload sent");
        let status = resp.status().as_u16();
        assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
    }

    /// A `file` data source `name` of `project` made by `user`, with `csv` uploaded unless
    /// `None`; its id.
    pub async fn csv_source(
        &self,
        user: &TestUser,
        project: &str,
        name: &str,
        csv: Option<&str>,
    ) -> String {
        let (status, source) = self
            .post(
                &format!("/api/v1/projects/{project}/data-sources"),
                Some(&user.token),
                json!({"name": name, "type": "file"}),
            )
            .await;
        assert_eq!(status, 201, "{source}");
        let id = source["id"].as_str().expect("an id").to_owned();
        if let Some(csv) = csv {
            self.upload_csv(&user.token, &id, csv).await;
        }
        id
    }

    /// A `database` data source of `project` made by `user` over the database at `url`; its
    /// id.
    pub async fn database_source(
        &self,
        user: &TestUser,
        project: &str,
        name: &str,
        url: &str,
    ) -> String {
        let (status, source) = self
            .post(
                &format!("/api/v1/projects/{project}/data-sources"),
                Some(&user.token),
                json!({"name": name, "type": "database", "connection_config": {"url": url}}),
            )
            .await;
        assert_eq!(status, 201, "{source}");
        source["id"].as_str().expect("an id").to_owned()
    }

    /// Signs up a user with a unique email and username.
    pub async fn signup(&self, name: &str) -> TestUser {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let email = format!("{name}-{}@example.com", &unique[..8]);
        let username = format!("{name}_{}", &unique[..8]);
        let (status, body) = self
            .post("/api/v1/auth/signup", None, json!({ "email": email, "username": username, "password": "correct horse battery" }))
            .await;
        assert_eq!(status, 201, "signup: {body}");
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            username,
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn create_project(&self, owner: &TestUser, name: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/projects",
                Some(&owner.token),
                json!({ "name": name }),
            )
            .await;
        assert_eq!(status, 201, "create project: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn add_member(&self, admin: &TestUser, project: &str, user: &TestUser, role: &str) {
        let (status, body) = self
            .post(
                &format!("/api/v1/projects/{project}/members"),
                Some(&admin.token),
                json!({ "email": user.email, "role": role }),
            )
            .await;
        assert_eq!(status, 201, "add member: {body}");
    }

    pub async fn create_canvas(&self, user: &TestUser, project: &str, name: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/api/v1/projects/{project}/canvases"),
                Some(&user.token),
                json!({ "name": name }),
            )
            .await;
        assert_eq!(status, 201, "create canvas: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn canvas_json(&self, user: &TestUser, canvas: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/v1/canvases/{canvas}"), Some(&user.token))
            .await;
        assert_eq!(status, 200, "get canvas: {body}");
        body
    }
}

/// A project with an owner, an editor, a viewer and a stranger, and one canvas.
pub struct Team {
    pub api: Api,
    pub owner: TestUser,
    pub editor: TestUser,
    pub viewer: TestUser,
    pub admin: TestUser,
    pub stranger: TestUser,
    pub project: String,
    pub canvas: String,
}

impl Team {
    pub async fn new(server: &TestServer) -> Team {
        let api = server.api();
        let owner = api.signup("owner").await;
        let editor = api.signup("editor").await;
        let viewer = api.signup("viewer").await;
        let admin = api.signup("admin").await;
        let stranger = api.signup("stranger").await;
        let project = api.create_project(&owner, "Q4").await;
        api.add_member(&owner, &project, &editor, "editor").await;
        api.add_member(&owner, &project, &viewer, "viewer").await;
        api.add_member(&owner, &project, &admin, "admin").await;
        let canvas = api
            .create_canvas(&owner, &project, "Q4 Sales Analysis")
            .await;
        Team {
            api,
            owner,
            editor,
            viewer,
            admin,
            stranger,
            project,
            canvas,
        }
    }
}

/// Runs `tests/js/interop.mjs` (real `yjs` + `y-websocket` clients under Node) against a
/// server and team, and checks the server holds what the clients made.
pub async fn run_js_interop(server: &TestServer, team: &Team) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run ./scripts/test.sh (or `npm ci` in tests/js) first"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg("interop.mjs")
            .current_dir(&dir)
            .env("CANVAS_WS_URL", format!("ws://{}/ws", server.addr))
            .env("CANVAS_ID", &team.canvas)
            .env("TOKEN_EDITOR_A", &team.owner.token)
            .env("TOKEN_EDITOR_B", &team.editor.token)
            .env("TOKEN_VIEWER", &team.viewer.token)
            .env("USERNAME_EDITOR_A", &team.owner.username)
            .env("USERNAME_EDITOR_B", &team.editor.username)
            .output(),
    )
    .await
    .expect("node finishes in time")
    .expect("node runs (is Node.js installed?)");
    assert!(
        output.status.success(),
        "interop.mjs failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // What the JS clients did is what the server holds.
    let view = team.api.canvas_json(&team.viewer, &team.canvas).await;
    let blocks = view["blocks"].as_array().expect("blocks array");
    assert_eq!(blocks.len(), 2, "{view}");
    assert!(blocks.iter().all(|b| b["position"]["x"].is_i64()), "{view}");
}

/// What a WebSocket client received.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    Ack(u64),
    Error {
        code: String,
        message: String,
        seq: Option<u64>,
    },
    Closed {
        code: u16,
        reason: String,
    },
    /// Extension message 102: a bound block's data.
    BlockData(Box<protocol::BlockDataBody>),
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A y-websocket client with its own yrs document.
pub struct WsClient {
    pub ws: Stream,
    pub doc: Doc,
    /// Updates this client has sent (the sequence acks count).
    pub sent: u64,
    pub acked: u64,
    pub errors: Vec<(String, String)>,
    pub awareness: std::collections::HashMap<u64, String>,
    /// The latest data (message 102, not `running` ones) received per bound block.
    pub block_data: std::collections::HashMap<String, protocol::BlockDataBody>,
}

impl WsClient {
    /// Connects (asking for acks) without syncing.
    pub async fn connect(url: &str) -> WsClient {
        Self::connect_with_origin(url, None).await
    }

    /// Connects (asking for acks) from a browser page at `origin` (its `Origin` header),
    /// without syncing.
    pub async fn connect_from(url: &str, origin: &str) -> WsClient {
        Self::connect_with_origin(url, Some(origin)).await
    }

    async fn connect_with_origin(url: &str, origin: Option<&str>) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = if url.contains('?') {
            format!("{url}&acks=1")
        } else {
            format!("{url}?acks=1")
        };
        let mut request = url.into_client_request().expect("valid websocket url");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().expect("valid origin header"));
        }
        // Like a browser, take frames of any size the server sends (the whole state of a
        // large canvas comes as one).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        let (ws, _) = tokio::time::timeout(WAIT, connect)
            .await
            .expect("connect in time")
            .expect("websocket handshake");
        WsClient {
            ws,
            doc: canvas_engine::new_doc(),
            sent: 0,
            acked: 0,
            errors: vec![],
            awareness: Default::default(),
            block_data: Default::default(),
        }
    }

    /// Connects and completes the sync handshake.
    pub async fn join(url: &str) -> WsClient {
        let mut client = Self::connect(url).await;
        client.sync().await;
        client
    }

    pub async fn send_raw(&mut self, frame: Vec<u8>) {
        self.ws
            .send(WsMessage::Binary(frame.into()))
            .await
            .expect("send frame");
    }

    /// Sends sync step 1 and processes messages until step 2 arrives.
    pub async fn sync(&mut self) {
        let sv = self.doc.transact().state_vector();
        self.send_raw(protocol::sync_step1(&sv)).await;
        self.wait_for(|_, m| {
            matches!(
                m,
                Incoming::Message(Message::Sync(SyncMessage::SyncStep2(_)))
            )
        })
        .await;
    }

    /// Makes a local edit and sends it as an update; returns the update's bytes.
    pub async fn edit(&mut self, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
        let update = {
            let mut txn = self.doc.transact_mut();
            f(&mut txn);
            txn.encode_update_v1()
        };
        self.send_update(update.clone()).await;
        update
    }

    pub async fn send_update(&mut self, update: Vec<u8>) {
        self.sent += 1;
        self.send_raw(protocol::update(&update)).await;
    }

    pub async fn send_awareness(&mut self, client_id: u64, clock: u32, state: &str) {
        let mut update = AwarenessUpdate {
            clients: Default::default(),
        };
        update.clients.insert(
            canvas_engine::yrs::ClientID::new(client_id),
            AwarenessUpdateEntry {
                clock,
                json: state.into(),
            },
        );
        self.send_raw(protocol::awareness(&update)).await;
    }

    /// Receives one thing, applying document updates and awareness to local state.
    pub async fn next(&mut self, wait: Duration) -> Option<Incoming> {
        let frame = match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => return None,
            Ok(None) => {
                return Some(Incoming::Closed {
                    code: 1006,
                    reason: "stream ended".into(),
                });
            }
            Ok(Some(Err(e))) => {
                return Some(Incoming::Closed {
                    code: 1006,
                    reason: e.to_string(),
                });
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let bytes = match frame {
            WsMessage::Binary(b) => b.to_vec(),
            WsMessage::Close(Some(CloseFrame { code, reason })) => {
                return Some(Incoming::Closed {
                    code: code.into(),
                    reason: reason.to_string(),
                });
            }
            WsMessage::Close(None) => {
                return Some(Incoming::Closed {
                    code: 1005,
                    reason: String::new(),
                });
            }
            _ => return Some(Incoming::Message(Message::Custom(255, vec![]))),
        };
        let message = protocol::decode(&bytes).expect("server sends valid frames");
        Some(match message {
            Message::Custom(tag, body) => {
                match protocol::decode_extension(tag, &body).expect("valid extension") {
                    Extension::Ack(ack) => {
                        self.acked = ack.through;
                        Incoming::Ack(ack.through)
                    }
                    Extension::Error(e) => {
                        self.errors.push((e.code.clone(), e.message.clone()));
                        Incoming::Error {
                            code: e.code,
                            message: e.message,
                            seq: e.seq,
                        }
                    }
                    Extension::BlockData(data) => {
                        // `running` says an execution started; the data stays what it was
                        if data.status != "running" {
                            self.block_data
                                .insert(data.block_id.clone(), (*data).clone());
                        }
                        Incoming::BlockData(data)
                    }
                }
            }
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let diff = self.doc.transact().encode_diff_v1(&sv);
                // The answer may come after this client started closing: then it is moot.
                let frame = WsMessage::Binary(protocol::sync_step2(&diff).into());
                if self.ws.send(frame).await.is_ok() {
                    self.sent += 1;
                }
                Incoming::Message(Message::Sync(SyncMessage::SyncStep1(sv)))
            }
            Message::Sync(SyncMessage::SyncStep2(u)) | Message::Sync(SyncMessage::Update(u)) => {
                let update = Update::decode_v1(&u).expect("server sends valid updates");
                self.doc.transact_mut().apply_update(update).expect("apply");
                Incoming::Message(Message::Sync(SyncMessage::SyncStep2(u)))
            }
            Message::Awareness(update) => {
                for (id, entry) in &update.clients {
                    if &*entry.json == "null" {
                        self.awareness.remove(&id.get());
                    } else {
                        self.awareness.insert(id.get(), entry.json.to_string());
                    }
                }
                Incoming::Message(Message::Awareness(update))
            }
            other => Incoming::Message(other),
        })
    }

    /// Processes incoming messages until `done` holds for one (or for the client state).
    pub async fn wait_for(
        &mut self,
        mut done: impl FnMut(&WsClient, &Incoming) -> bool,
    ) -> Incoming {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(incoming) = self.next(left).await else {
                panic!("timed out waiting; errors so far: {:?}", self.errors);
            };
            if done(self, &incoming) {
                return incoming;
            }
            if let Incoming::Closed { code, reason } = &incoming {
                panic!("connection closed while waiting: {code} {reason}");
            }
        }
    }

    /// Waits until the local document satisfies `pred`.
    pub async fn wait_doc(&mut self, mut pred: impl FnMut(&Doc) -> bool) {
        if pred(&self.doc) {
            return;
        }
        self.wait_for(|c, _| pred(&c.doc)).await;
    }

    /// Waits until every update sent so far is acknowledged.
    pub async fn wait_acked(&mut self) {
        if self.acked >= self.sent {
            return;
        }
        self.wait_for(|c, _| c.acked >= c.sent).await;
    }

    /// Waits for the server to close the connection; returns code and reason.
    pub async fn wait_closed(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Incoming::Closed { code, reason }) => return (code, reason),
                Some(_) => continue,
                None => panic!("connection not closed in time"),
            }
        }
    }

    /// Collects what arrives within `wait` (to check that something does NOT arrive).
    pub async fn drain(&mut self, wait: Duration) -> Vec<Incoming> {
        let mut got = vec![];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return got;
            }
            match self.next(left).await {
                Some(i) => got.push(i),
                None => return got,
            }
        }
    }

    pub fn state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }
}

/// A block as a JavaScript client would create it: nested prelim maps, numbers as f64, and
/// an empty `metadata` map (the server fills it; clients may not write into it).
pub fn block_prelim(
    id: &str,
    kind: &str,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
) -> canvas_engine::yrs::MapPrelim {
    use canvas_engine::yrs::{Any, In, MapPrelim};
    let num = |v: i64| {
        In::Any(Any::Number(canvas_engine::yrs::any::Number::Float(
            v as f64,
        )))
    };
    let position = MapPrelim::from([("x", num(x)), ("y", num(y)), ("w", num(w)), ("h", num(h))]);
    let content: MapPrelim = if kind == "narrative" {
        MapPrelim::from([(
            "text",
            In::Text(canvas_engine::yrs::types::text::DeltaPrelim::default()),
        )])
    } else {
        MapPrelim::from([("title", In::Any(Any::from("Sales by Region")))])
    };
    MapPrelim::from([
        ("id", In::Any(Any::from(id))),
        ("type", In::Any(Any::from(kind))),
        ("position", In::Map(position)),
        ("content", In::Map(content)),
        ("metadata", In::Map(MapPrelim::default())),
    ])
}

/// Adds a block in a client transaction.
pub fn add_block(txn: &mut TransactionMut, id: &str, kind: &str, pos: (i64, i64, i64, i64)) {
    use canvas_engine::yrs::{Map, WriteTxn};
    let blocks = txn.get_or_insert_map("blocks");
    blocks.insert(txn, id, block_prelim(id, kind, pos.0, pos.1, pos.2, pos.3));
}

/// Sets one key of a block's position in a client transaction.
pub fn set_position(txn: &mut TransactionMut, id: &str, key: &str, value: f64) {
    use canvas_engine::yrs::{Any, Map, MapRef, WriteTxn};
    let blocks = txn.get_or_insert_map("blocks");
    let block: MapRef = blocks
        .get(txn, id)
        .and_then(|v| v.cast().ok())
        .expect("block exists");
    let position: MapRef = block
        .get(txn, "position")
        .and_then(|v| v.cast().ok())
        .expect("position exists");
    position.insert(
        txn,
        key,
        Any::Number(canvas_engine::yrs::any::Number::Float(value)),
    );
}

/// The block ids present in a client document.
pub fn block_ids(doc: &Doc) -> Vec<String> {
    use canvas_engine::yrs::Map;
    let txn = doc.transact();
    let mut ids: Vec<String> = txn
        .get_map("blocks")
        .map(|b| b.keys(&txn).map(str::to_owned).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}
