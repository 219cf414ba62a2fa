//! Where an update enters: `GET /ws/{canvas_id}?token=...` upgrades to a WebSocket that
//! speaks the y-websocket protocol.
//!
//! The connection task authenticates, asks the room to join, then pumps frames both ways:
//! inbound frames are size-checked and decoded here (in parallel across connections) and
//! handed to the room; outbound frames come from the room through a bounded queue.
//! Bad input closes only this connection, with a code and a reason.

use super::room::{ConnId, JoinRequest, OUTBOUND_CAPACITY, Outbound, Queued, RoomCmd, close};
use super::rooms::Joined;
use super::sessions::{self, session_key};
use super::socket::{Inbound, Limits, Socket, Upgrade};
use crate::access::{self, LookupError};
use crate::auth;
use crate::domain::{ClientInfo, ProjectAccess, embedding_host};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use canvas_engine::protocol;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};
use uuid::Uuid;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Query parameters of the WebSocket entry point.
#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// The bearer token (what `WebsocketProvider`'s `params: { token }` sends).
    token: Option<String>,
    /// `1` asks for durable acknowledgements (extension message 100).
    acks: Option<String>,
    /// A public link token: read-only access without an account.
    link: Option<String>,
}

/// The upgrade handler. Every refusal happens after the upgrade, as a close code, so that
/// y-websocket clients see a permanent 44xx code and stop reconnecting.
#[utoipa::path(get, path = "/ws/{canvas_id}", tag = "document",
    params(("canvas_id" = String, Path, description = "The canvas (the room name)"),
        ("token" = Option<String>, Query, description = "A session token (or an `Authorization: Bearer` header)"),
        ("link" = Option<String>, Query, description = "A public link token: read-only without an account"),
        ("acks" = Option<String>, Query, description = "Ask for acknowledgements (see docs/PROTOCOL.md)")),
    responses((status = 101, description = "Switching to the WebSocket sync protocol (docs/PROTOCOL.md)")))]
pub async fn ws_handler(
    upgrade: Upgrade,
    State(state): State<AppState>,
    Path(canvas): Path<String>,
    client: ClientInfo,
    headers: HeaderMap,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let max = state.config.max_message_bytes;
    let params = params.map(|Query(p)| p).unwrap_or(WsParams {
        token: None,
        acks: None,
        link: None,
    });
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let embed_host = embedding_host(header(ORIGIN), header(HOST), &state.config.app_origins);
    let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("conn", conn = conn_id, canvas = %canvas);
    let tasks = state.tasks.clone();
    let caller = Caller {
        params,
        client,
        embed_host,
    };
    upgrade.respond(
        Limits {
            max_message_bytes: max,
        },
        &tasks,
        move |socket| connection(socket, state, conn_id, canvas, caller).instrument(span),
    )
}

/// What the upgrade request said about the caller.
struct Caller {
    params: WsParams,
    client: ClientInfo,
    embed_host: Option<String>,
}

async fn connection(
    socket: Socket,
    state: AppState,
    conn_id: ConnId,
    canvas: String,
    caller: Caller,
) {
    let params = &caller.params;
    // Everything before and after the pump runs boxed: this task lives as long as the
    // connection, and would otherwise keep room for the largest of those futures while it
    // sits idle (W4, memory per connection).
    let admitted = Box::pin(admit(
        &state,
        &canvas,
        params.token.as_deref(),
        params.link.as_deref(),
    ))
    .await;
    let Admitted {
        canvas_id,
        user,
        session,
        mut access,
    } = match admitted {
        Ok(admitted) => admitted,
        Err((code, reason)) => {
            Box::pin(socket.close(code, &reason)).await;
            return;
        }
    };
    // Logout closes the session's connections; expiry too, at its time.
    let registration = params
        .token
        .as_deref()
        .filter(|_| session.is_some())
        .map(|token| state.live_sessions.register(session_key(token), conn_id));
    let session_end = SessionEnd {
        ended: registration.as_ref().map(|r| r.ended.clone()),
        expires: session.map(|s| Instant::now() + sessions::until(s.expires_at)),
    };
    access.embed_host = caller.embed_host;
    let (rate_user, username, actor) = match &user {
        Some(user) => (user.id, user.username.clone(), caller.client.actor(user)),
        None => (
            access.user_id,
            "guest".to_owned(),
            caller.client.anonymous(),
        ),
    };
    // Over the message limit: no new connection either (reconnecting resets nothing).
    if !Box::pin(state.ws_meter.admit(rate_user)).await {
        state.metrics.rate_limited_connect();
        Box::pin(socket.close(
            close::RATE_LIMITED,
            "rate limited: too many messages per minute",
        ))
        .await;
        return;
    }
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let wants_acks = params.acks.as_deref() == Some("1");
    let joined = Box::pin(state.rooms.join(canvas_id, || JoinRequest {
        conn_id,
        access: access.clone(),
        username: username.clone(),
        out: out_tx.clone(),
        wants_acks,
        actor: actor.clone(),
    }))
    .await;
    drop(out_tx);
    let room = match joined {
        Ok(Joined::Yes(role, room)) => {
            debug!(%role, user = %rate_user, "connection joined");
            // Opening a canvas counts as a view (`interactions.views`, `last_viewed_at`),
            // written with the others gathered meanwhile (no write per connect).
            state.views.count(canvas_id);
            room
        }
        Ok(Joined::Forbidden) => {
            Box::pin(socket.close(close::FORBIDDEN, "you have no access to this canvas")).await;
            return;
        }
        Err(e) => {
            tracing::warn!(cause = %e, "cannot open the canvas room");
            Box::pin(socket.close(
                close::INTERNAL,
                "the canvas cannot be opened now; try again",
            ))
            .await;
            return;
        }
    };
    let live = Live {
        room,
        ids: Ids {
            conn: conn_id,
            canvas: canvas_id,
            user: rate_user,
        },
        out_rx,
        timing: Timing::of(&state),
        session: session_end,
        registration,
        open: OpenConnection::count(&state),
    };
    // The open connection runs as a task of its own, in this span: what admission held (the
    // caller's parameters, the user, the access) is freed rather than kept beside the socket
    // for as long as the connection stays open (W4, memory per connection).
    let tasks = state.tasks.clone();
    tasks.spawn(live.run(socket, state).in_current_span());
}

/// What an admitted connection keeps while it is open.
struct Live {
    room: super::rooms::RoomSender,
    ids: Ids,
    out_rx: mpsc::Receiver<Queued>,
    timing: Timing,
    session: SessionEnd,
    /// Its entry among the session's connections (closed at logout), if it has a session.
    registration: Option<sessions::Registration>,
    open: OpenConnection,
}

impl Live {
    /// Pumps frames until the connection ends, then leaves the room and closes the socket.
    async fn run(self, mut socket: Socket, state: AppState) {
        let (room, ids) = (&self.room, self.ids);
        let end = pump(
            &mut socket,
            room,
            ids,
            &state,
            self.out_rx,
            (self.timing, self.session),
        )
        .await;
        drop(self.open);
        drop(self.registration);
        // The room forgets the connection (a no-op if it already has), what it sent is
        // counted, and only then is the socket closed (which waits for the client's answer).
        Box::pin(room.send(RoomCmd::Leave(ids.conn))).await;
        Box::pin(state.ws_meter.flush(ids.user)).await;
        if let Some((code, reason)) = end {
            Box::pin(socket.close(code, &reason)).await;
        }
    }
}

/// Counts a connection in `canvas_ws_connections` while it lives (to the end of its pump,
/// however that ends).
struct OpenConnection(prometheus::IntGauge);

impl OpenConnection {
    fn count(state: &AppState) -> Self {
        state.metrics.ws_connections.inc();
        OpenConnection(state.metrics.ws_connections.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// When the connection's login session ends: at logout (cancelled) or at its expiry.
struct SessionEnd {
    ended: Option<CancellationToken>,
    expires: Option<Instant>,
}

/// The timings of one connection's keep-alive.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// How long a new connection may stay silent before its first message.
    first_message: Duration,
    /// How often the server pings (`None`: never).
    ping_every: Option<Duration>,
}

impl Timing {
    fn of(state: &AppState) -> Self {
        Timing {
            first_message: Duration::from_secs(state.config.ws_first_message_secs.max(1)),
            ping_every: (state.config.ws_ping_secs > 0)
                .then(|| Duration::from_secs(state.config.ws_ping_secs)),
        }
    }
}

/// Who a connection is.
#[derive(Debug, Clone, Copy)]
struct Ids {
    /// The connection, in its room.
    conn: ConnId,
    /// The canvas it joined.
    canvas: Uuid,
    /// Whose message limit it counts against (the user, or the public link's guest).
    user: Uuid,
}

/// Pumps frames both ways until the connection ends; returns the close code and reason to
/// send, or `None` when the client is gone.
async fn pump(
    socket: &mut Socket,
    room: &super::rooms::RoomSender,
    ids: Ids,
    state: &AppState,
    mut out_rx: mpsc::Receiver<Queued>,
    (timing, session): (Timing, SessionEnd),
) -> Option<(u16, String)> {
    let max = state.config.max_message_bytes;
    let mut heard_any = false;
    let started = Instant::now();
    let mut next_ping = timing.ping_every.map(|every| started + every);
    loop {
        // Silence: before the first message, a deadline; later, a dead peer that stopped
        // answering pings (two intervals without a sound).
        let silence_deadline = if heard_any {
            timing
                .ping_every
                .map(|every| socket.last_heard() + every * 2 + Duration::from_secs(1))
        } else {
            Some(started + timing.first_message)
        };
        // One timer for every deadline (a timer is one of the larger parts of an idle
        // connection's state).
        let wake = [next_ping, session.expires, silence_deadline]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            inbound = socket.recv() => {
                let frame = match inbound {
                    Inbound::Frame(frame) => frame,
                    Inbound::Refuse(code, reason) => return Some((code, reason)),
                    Inbound::Gone => return None,
                };
                heard_any = true;
                state.metrics.ws_received_frames.inc();
                state.metrics.ws_received_bytes.inc_by(frame.len() as u64);
                if frame.len() > max {
                    let reason = format!("message of {} bytes exceeds the {max}-byte limit", frame.len());
                    return Some((close::TOO_LARGE, reason));
                }
                if !state.ws_meter.count(ids.user).await {
                    state.metrics.rate_limited_message();
                    return Some((close::RATE_LIMITED, "rate limited: too many messages per minute".into()));
                }
                match protocol::decode(&frame) {
                    Ok(message) => {
                        if !room.send(RoomCmd::Message(ids.conn, message)).await {
                            return Some((close::TRY_AGAIN_LATER, "canvas room closed; reconnect".into()));
                        }
                    }
                    Err(err) => return Some((close::MALFORMED, format!("malformed message: {err}"))),
                }
            }
            outbound = out_rx.recv() => {
                // Everything already queued goes out with one flush (one write system call
                // for a burst of relayed updates instead of one per frame).
                let mut next = outbound;
                let mut queued = 0usize;
                loop {
                    match next.as_ref().map(Queued::get) {
                        Some(Outbound::Frame(frame)) => {
                            // Sent whole however large (a canvas grown past what a client
                            // may send), but counted and logged.
                            state.metrics.ws_sent_frames.inc();
                            state.metrics.ws_sent_bytes.inc_by(frame.len() as u64);
                            if frame.len() > max {
                                state.metrics.large_frame(ids.canvas, frame.len(), max);
                            }
                            if socket.feed(frame.clone()).await.is_err() {
                                return None;
                            }
                            queued += 1;
                        }
                        // The room already forgot this connection.
                        Some(Outbound::Close(code, reason)) => {
                            let _ = socket.flush().await;
                            return Some((*code, reason.clone()));
                        }
                        None => {
                            let _ = socket.flush().await;
                            return Some((close::TRY_AGAIN_LATER, "connection too slow for the room".into()));
                        }
                    }
                    if queued >= FLUSH_EVERY {
                        break;
                    }
                    match out_rx.try_recv() {
                        Ok(more) => next = Some(more),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => next = None,
                    }
                }
                if socket.flush().await.is_err() {
                    return None;
                }
            }
            () = cancelled_opt(session.ended.as_ref()) => {
                return Some((close::UNAUTHORIZED, "the session ended (logged out)".into()));
            }
            () = sleep_until_opt(wake), if wake.is_some() => {
                let now = Instant::now();
                let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                if due(session.expires) {
                    return Some((close::UNAUTHORIZED, "the session expired; log in again".into()));
                }
                if due(silence_deadline) {
                    if heard_any {
                        debug!("no answer to pings; closing");
                        return Some((close::GOING_AWAY, "no answer to pings".into()));
                    }
                    return Some((close::POLICY, format!("no message within {} s of connecting", timing.first_message.as_secs())));
                }
                if due(next_ping) {
                    if socket.ping().await.is_err() {
                        return None;
                    }
                    next_ping = timing.ping_every.map(|every| Instant::now() + every);
                }
            }
        }
    }
}

async fn cancelled_opt(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Outbound frames written before one flush, at most (a bound on the burst one connection
/// writes while others wait).
const FLUSH_EVERY: usize = 256;

/// The close reason when storage fails during admission (the cause is logged, not sent).
const RETRY_REASON: &str = "the server cannot check access now; reconnect";

/// A failed authentication as a close code: bad credentials are permanent (4401), but a
/// storage failure while checking them is not (1011: the client retries; a client told
/// 4401 would drop a valid token for good after a brief outage).
fn admission_failure(error: crate::error::ApiError) -> (u16, String) {
    match error {
        crate::error::ApiError::Unauthorized(reason) => (close::UNAUTHORIZED, reason),
        other => {
            tracing::warn!(cause = %crate::error::Chain(&other), "cannot authenticate a connection");
            (close::INTERNAL, RETRY_REASON.to_owned())
        }
    }
}

/// Authenticates the token (or, without one, takes the public link) and finds the canvas;
/// the error is the close code and reason. A token and a link together give the user's own
/// access plus the link's.
async fn admit(
    state: &AppState,
    canvas: &str,
    token: Option<&str>,
    link: Option<&str>,
) -> Result<Admitted, (u16, String)> {
    let token = token.filter(|t| !t.is_empty());
    let link = link.filter(|l| !l.is_empty());
    if token.is_none() && link.is_none() {
        return Err((close::UNAUTHORIZED, "missing token".to_owned()));
    }
    let (user, session) = match token {
        Some(token) => {
            let (user, session) = auth::authenticate_session_cached(state, token)
                .await
                .map_err(admission_failure)?;
            (Some(user), Some(session))
        }
        None => (None, None),
    };
    let canvas_id =
        Uuid::parse_str(canvas).map_err(|_| (close::NOT_FOUND, format!("no canvas {canvas:?}")))?;
    let found = match &user {
        Some(user) => {
            access::project_access_cached(&state.storage, &state.admission, user, canvas_id).await
        }
        // Checked above: without a token there is a link.
        None => access::link_access(&state.storage, canvas_id, link.unwrap_or_default())
            .await
            .map(|found| found.access),
    };
    let mut access = found.map_err(|e| match e {
        LookupError::NotFound(_) => (close::NOT_FOUND, e.to_string()),
        LookupError::Storage(cause) => {
            tracing::warn!(%cause, "cannot admit a connection");
            (close::INTERNAL, RETRY_REASON.to_owned())
        }
    })?;
    if let (Some(token), Some(_)) = (link, &user) {
        access.link = access::matched_link(&state.storage, canvas_id, token)
            .await
            .map_err(|cause| {
                tracing::warn!(%cause, "cannot admit a connection");
                (close::INTERNAL, RETRY_REASON.to_owned())
            })?;
    }
    Ok(Admitted {
        canvas_id,
        user,
        session,
        access,
    })
}

/// Who was let in, to what.
struct Admitted {
    canvas_id: Uuid,
    /// `None` for a public-link guest.
    user: Option<canvas_storage::User>,
    /// The login session of the token (`None` for a public-link guest).
    session: Option<canvas_storage::Session>,
    access: ProjectAccess,
}
