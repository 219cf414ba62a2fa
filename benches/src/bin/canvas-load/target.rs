//! The servers under test and how each one gets its rooms.
//!
//! - Ours needs accounts: the harness signs a user up, creates a project and one canvas per
//!   room through the REST API, and connects with that user's token (there is no
//!   unauthenticated mode). Its durable acknowledgements are asked for with `acks=1`.
//! - y-sweet wants each document created first (`POST /doc/new {"docId"}`), then serves it at
//!   `/d/ROOM/ws/ROOM`.
//! - The y-websocket server and Hocuspocus create a document on first connection.

use crate::Error;
use crate::wire::{Dialect, Framer};
use clap::ValueEnum;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// This repository's `canvas-server`.
    Canvas,
    /// y-sweet (Rust, yrs).
    YSweet,
    /// The reference `@y/websocket-server` (Node.js, yjs).
    YWebsocket,
    /// `@hocuspocus/server` (Node.js, yjs).
    Hocuspocus,
}

impl Kind {
    /// The name tables and charts use.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Canvas => "ours",
            Kind::YSweet => "y-sweet",
            Kind::YWebsocket => "y-websocket",
            Kind::Hocuspocus => "hocuspocus",
        }
    }

    /// Whether several processes of it can serve one document together (W8): ours on
    /// Redis, Hocuspocus with its Redis extension.
    pub fn two_nodes(self) -> bool {
        matches!(self, Kind::Canvas | Kind::Hocuspocus)
    }

    /// Whether the server acknowledges updates (ours: durable acks; Hocuspocus: sync status).
    pub fn acks(self) -> bool {
        matches!(self, Kind::Canvas | Kind::Hocuspocus)
    }
}

/// One room on the server under test.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its WebSocket URL.
    pub url: String,
    /// Its WebSocket URL asking for acknowledgements (ours only; the same URL otherwise).
    pub ack_url: String,
    /// How to frame messages for it.
    pub framer: Framer,
}

/// A server under test, ready to hand out rooms.
pub struct Target {
    /// What kind of server it is.
    pub kind: Kind,
    addr: String,
    http: reqwest::Client,
    /// Our server: the token of the user who owns every canvas, and their project.
    account: Option<(String, String)>,
}

/// Room names unique across runs against the same long-lived peer.
static NEXT_ROOM: AtomicU64 = AtomicU64::new(0);

impl Target {
    /// Prepares a target at `addr` (`host:port`): for our server, signs up a user and makes
    /// a project.
    pub async fn new(kind: Kind, addr: &str) -> Result<Target, Error> {
        // Idle pooled connections are dropped well before a server closes them (ours after
        // `--handshake-timeout-secs`, 10 s by default): loading the trace between the signup
        // and the first canvas takes longer, and a request sent on a connection the server
        // is closing fails ("error sending request").
        let http = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()?;
        let mut target = Target {
            kind,
            addr: addr.to_owned(),
            http,
            account: None,
        };
        if kind == Kind::Canvas {
            let unique = format!("{}{}", std::process::id(), now_nanos() % 1_000_000_000);
            let body = target
                .post(
                    "/api/v1/auth/signup",
                    None,
                    json!({"email": format!("load{unique}@example.com"), "username": format!("load{unique}"), "password": "load generator password"}),
                )
                .await?;
            let token = field(&body, &["token"])?;
            let body = target
                .post("/api/v1/projects", Some(&token), json!({"name": "load"}))
                .await?;
            let project = field(&body, &["id"])?;
            target.account = Some((token, project));
        }
        Ok(target)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<Value, Error> {
        let mut req = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(Error::Setup(format!("POST {path}: {status}: {text}")));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates `n` fresh rooms (at most 16 creation requests at a time).
    pub async fn rooms(&self, n: usize) -> Result<Vec<Room>, Error> {
        futures_util::stream::iter(0..n)
            .map(|_| self.room())
            .buffered(16)
            .try_collect()
            .await
    }

    /// The same room on another node at `addr` (`host:port`) that shares this one's
    /// services: the same document, token and framing, another address.
    pub fn room_on(&self, room: &Room, addr: &str) -> Result<Room, Error> {
        let from = format!("ws://{}/", self.addr);
        let to = format!("ws://{addr}/");
        let moved = |url: &str| {
            url.strip_prefix(&from)
                .map(|rest| format!("{to}{rest}"))
                .ok_or_else(|| Error::Setup(format!("{url} is not on {}", self.addr)))
        };
        Ok(Room {
            url: moved(&room.url)?,
            ack_url: moved(&room.ack_url)?,
            framer: room.framer.clone(),
        })
    }

    async fn room(&self) -> Result<Room, Error> {
        let name = format!(
            "load-{}-{}-{}",
            std::process::id(),
            now_nanos() % 1_000_000,
            NEXT_ROOM.fetch_add(1, Ordering::Relaxed)
        );
        let addr = &self.addr;
        Ok(match self.kind {
            Kind::Canvas => {
                let (token, project) = self
                    .account
                    .as_ref()
                    .ok_or_else(|| Error::Setup("no account".into()))?;
                let body = self
                    .post(
                        &format!("/api/v1/projects/{project}/canvases"),
                        Some(token),
                        json!({"name": name}),
                    )
                    .await?;
                let id = field(&body, &["id"])?;
                let url = format!("ws://{addr}/ws/{id}?token={token}");
                Room {
                    ack_url: format!("{url}&acks=1"),
                    url,
                    framer: Framer::new(Dialect::YWebsocket, &id),
                }
            }
            Kind::YSweet => {
                self.post("/doc/new", None, json!({"docId": name})).await?;
                let url = format!("ws://{addr}/d/{name}/ws/{name}");
                Room {
                    ack_url: url.clone(),
                    url,
                    framer: Framer::new(Dialect::YWebsocket, &name),
                }
            }
            Kind::YWebsocket => {
                let url = format!("ws://{addr}/{name}");
                Room {
                    ack_url: url.clone(),
                    url,
                    framer: Framer::new(Dialect::YWebsocket, &name),
                }
            }
            Kind::Hocuspocus => {
                let url = format!("ws://{addr}/{name}");
                Room {
                    ack_url: url.clone(),
                    url,
                    framer: Framer::new(Dialect::Hocuspocus, &name),
                }
            }
        })
    }
}

fn field(body: &Value, path: &[&str]) -> Result<String, Error> {
    let mut v = body;
    for key in path {
        v = &v[*key];
    }
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Setup(format!("response lacks {}: {body}", path.join("."))))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
