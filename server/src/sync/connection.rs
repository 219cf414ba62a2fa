//! Where an update enters: `GET /ws/{canvas_id}?token=...` upgrades to a WebSocket that
//! speaks the y-websocket protocol.
//!
//! The connection task authenticates, asks the room to join, then pumps frames both ways:
//! inbound frames are size-checked and decoded here (in parallel across connections) and
//! handed to the room; outbound frames come from the room through a bounded queue.
//! Bad input closes only this connection, with a code and a reason.

use super::room::{ConnId, JoinRequest, OUTBOUND_CAPACITY, Outbound, RoomCmd, close};
use super::rooms::Joined;
use crate::access::{self, LookupError};
use crate::auth;
use crate::domain::{ClientInfo, ProjectAccess, embedding_host};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use canvas_engine::protocol;
use futures_util::SinkExt;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};
use uuid::Uuid;

/// WebSocket write buffer: small, so an idle connection stays cheap.
const BUFFER_BYTES: usize = 4 * 1024;

/// WebSocket read buffer, allocated for every connection up front. Client messages are small
/// (a keystroke is about 30 bytes, so one read still takes in dozens); a large one (a sync
/// step 2 from a client with offline work) gets its whole length reserved when its header
/// arrives. 2 KiB instead of 4 took W4's memory per idle connection from 16.1 to 14.1 KiB
/// (BENCHMARKS.md).
const READ_BUFFER_BYTES: usize = 2 * 1024;

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
pub async fn ws_handler(
    ws: WebSocketUpgrade,
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
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_write_buffer_size(max.saturating_mul(4).max(BUFFER_BYTES * 2))
        // Frames a little over the limit still arrive so we can answer 4413 ourselves;
        // far larger ones are cut off by the WebSocket layer.
        .max_message_size(max.saturating_add(64 * 1024))
        .max_frame_size(max.saturating_add(64 * 1024))
        .on_upgrade(move |socket| {
            let tasks = state.tasks.clone();
            let caller = Caller {
                params,
                client,
                embed_host,
            };
            tasks.track_future(connection(socket, state, conn_id, canvas, caller).instrument(span))
        })
}

/// What the upgrade request said about the caller.
struct Caller {
    params: WsParams,
    client: ClientInfo,
    embed_host: Option<String>,
}

async fn connection(
    mut socket: WebSocket,
    state: AppState,
    conn_id: ConnId,
    canvas: String,
    caller: Caller,
) {
    let params = &caller.params;
    let admitted = admit(
        &state,
        &canvas,
        params.token.as_deref(),
        params.link.as_deref(),
    )
    .await;
    let (canvas_id, user, mut access) = match admitted {
        Ok(admitted) => admitted,
        Err((code, reason)) => {
            close_socket(&mut socket, code, &reason).await;
            return;
        }
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
    if !state.ws_meter.admit(rate_user).await {
        close_socket(
            &mut socket,
            close::RATE_LIMITED,
            "rate limited: too many messages per minute",
        )
        .await;
        return;
    }
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let wants_acks = params.acks.as_deref() == Some("1");
    let joined = state
        .rooms
        .join(canvas_id, || JoinRequest {
            conn_id,
            access: access.clone(),
            username: username.clone(),
            out: out_tx.clone(),
            wants_acks,
            actor: actor.clone(),
        })
        .await;
    drop(out_tx);
    let room = match joined {
        Ok(Joined::Yes(role, room)) => {
            debug!(%role, user = %rate_user, "connection joined");
            // Opening a canvas counts as a view (`interactions.views`, `last_viewed_at`).
            let store = state.storage.interactions.clone();
            state.tasks.spawn(async move {
                if let Err(cause) = store.record_view(canvas_id).await {
                    tracing::warn!(%cause, "cannot count a view");
                }
            });
            room
        }
        Ok(Joined::Forbidden) => {
            close_socket(
                &mut socket,
                close::FORBIDDEN,
                "you have no access to this canvas",
            )
            .await;
            return;
        }
        Err(e) => {
            close_socket(&mut socket, close::INTERNAL, &e.to_string()).await;
            return;
        }
    };
    let max = state.config.max_message_bytes;
    // Every way out ends here: the room forgets the connection (a no-op if it already has)
    // and what it sent is counted.
    'pump: loop {
        tokio::select! {
            inbound = socket.recv() => {
                let frame = match inbound {
                    Some(Ok(WsMessage::Binary(frame))) => frame,
                    Some(Ok(WsMessage::Text(_))) => {
                        close_socket(&mut socket, close::MALFORMED, "text frames are not part of the protocol").await;
                        break;
                    }
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Ok(WsMessage::Close(_))) | None => break,
                    Some(Err(err)) => {
                        let text = err.to_string();
                        if text.contains("too long") || text.contains("Space limit") || text.contains("size") {
                            close_socket(&mut socket, close::TOO_LARGE, "message too large").await;
                        } else {
                            debug!(cause = %text, "websocket error");
                        }
                        break;
                    }
                };
                if frame.len() > max {
                    close_socket(&mut socket, close::TOO_LARGE, &format!("message of {} bytes exceeds the {max}-byte limit", frame.len())).await;
                    break;
                }
                if !state.ws_meter.count(rate_user).await {
                    close_socket(&mut socket, close::RATE_LIMITED, "rate limited: too many messages per minute").await;
                    break;
                }
                match protocol::decode(&frame) {
                    Ok(message) => {
                        if !room.send(RoomCmd::Message(conn_id, message)).await {
                            close_socket(&mut socket, close::INTERNAL, "canvas room closed").await;
                            break 'pump;
                        }
                    }
                    Err(err) => {
                        close_socket(&mut socket, close::MALFORMED, &format!("malformed message: {err}")).await;
                        break;
                    }
                }
            }
            outbound = out_rx.recv() => {
                // Everything already queued goes out with one flush (one write system call
                // for a burst of relayed updates instead of one per frame).
                let mut next = outbound;
                let mut queued = 0usize;
                loop {
                    match next {
                        Some(Outbound::Frame(frame)) => {
                            if socket.feed(WsMessage::Binary(frame)).await.is_err() {
                                break 'pump;
                            }
                            queued += 1;
                        }
                        Some(Outbound::Close(code, reason)) => {
                            let _ = socket.flush().await;
                            close_socket(&mut socket, code, &reason).await;
                            // The room already forgot this connection.
                            break 'pump;
                        }
                        None => {
                            let _ = socket.flush().await;
                            close_socket(&mut socket, close::TRY_AGAIN_LATER, "connection too slow for the room").await;
                            break 'pump;
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
                    break;
                }
            }
        }
    }
    room.send(RoomCmd::Leave(conn_id)).await;
    state.ws_meter.flush(rate_user).await;
}

/// Outbound frames written before one flush, at most (a bound on the burst one connection
/// writes while others wait).
const FLUSH_EVERY: usize = 256;

/// Authenticates the token (or, without one, takes the public link) and finds the canvas;
/// the error is the close code and reason. A token and a link together give the user's own
/// access plus the link's.
async fn admit(
    state: &AppState,
    canvas: &str,
    token: Option<&str>,
    link: Option<&str>,
) -> Result<(Uuid, Option<canvas_storage::User>, ProjectAccess), (u16, String)> {
    let token = token.filter(|t| !t.is_empty());
    let link = link.filter(|l| !l.is_empty());
    if token.is_none() && link.is_none() {
        return Err((close::UNAUTHORIZED, "missing token".to_owned()));
    }
    let user = match token {
        Some(token) => Some(
            auth::authenticate(state, token)
                .await
                .map_err(|e| (close::UNAUTHORIZED, e.to_string()))?,
        ),
        None => None,
    };
    let canvas_id =
        Uuid::parse_str(canvas).map_err(|_| (close::NOT_FOUND, format!("no canvas {canvas:?}")))?;
    let found = match &user {
        Some(user) => access::canvas_access(&state.storage, user, canvas_id).await,
        // Checked above: without a token there is a link.
        None => access::link_access(&state.storage, canvas_id, link.unwrap_or_default()).await,
    };
    let mut access = found
        .map_err(|e| match e {
            LookupError::NotFound(_) => (close::NOT_FOUND, e.to_string()),
            LookupError::Storage(cause) => (close::INTERNAL, cause.to_string()),
        })?
        .access;
    access.link = link.map(str::to_owned);
    Ok((canvas_id, user, access))
}

async fn close_socket(socket: &mut WebSocket, code: u16, reason: &str) {
    // Close reasons are limited to 123 bytes by the protocol.
    let mut reason = reason.to_owned();
    if reason.len() > 120 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
