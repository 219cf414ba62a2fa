//! The WebSocket under a connection: the upgrade (RFC 6455 over hyper's HTTP/1.1 upgrade),
//! frame limits, keep-alive pings, and closing so that the client hears the close code.
//!
//! Closing properly matters: a client that is still sending when the server gives up (the
//! rest of an oversized message, a burst of bad frames) would otherwise have its unread
//! bytes answered with a TCP reset, and it would see 1006 instead of 4413 or 4400, and retry
//! forever. So a close here sends the close frame, then keeps reading (and discarding) until
//! the client answers with its own close frame or hangs up, for at most [`CLOSE_GRACE`], and
//! only then shuts the TCP connection down. A close frame from the client is answered
//! (1000 back) before the connection ends.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::task::TaskTracker;
use tracing::debug;

/// How long a closing connection waits for the client's answering close frame (or for it
/// to hang up) while discarding what it still sends.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// At most this much of what a closing client still sends is read and discarded.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket upgrade request (`GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a key); anything else gets a JSON 400 or 426.
pub struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: HeaderValue,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let refuse = |message: &str| ApiError::bad_request("not_a_websocket", message);
        if parts.method != Method::GET {
            return Err(refuse("a WebSocket upgrade is a GET request"));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !header_has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(refuse(
                "this endpoint speaks WebSocket only (Connection: upgrade, Upgrade: websocket)",
            ));
        }
        if !header_has_token(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(refuse("Sec-WebSocket-Version must be 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| refuse("Sec-WebSocket-Key is missing"))?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| refuse("bad Sec-WebSocket-Key"))?;
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| refuse("this connection cannot be upgraded"))?;
        Ok(Upgrade { on_upgrade, accept })
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// What one WebSocket may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message a client may send (bigger ones close with 4413). Frames a little
    /// over it are still read whole, so the client gets the code; far bigger ones are cut
    /// off at their header.
    pub max_message_bytes: usize,
}

impl Upgrade {
    /// Answers 101 and runs `serve` on the socket once the upgrade completes, as a task of
    /// `tasks`.
    pub fn respond<F, Fut>(self, limits: Limits, tasks: &TaskTracker, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let tracker = tasks.clone();
        let fut = async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(cause) => {
                    debug!(%cause, "websocket upgrade failed");
                    return;
                }
            };
            let inbound_cap = limits.max_message_bytes.saturating_add(64 * 1024);
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .write_buffer_size(WRITE_BUFFER_BYTES)
                // What a client receives is not bounded by what it may send: the whole state
                // of a large canvas goes out as one frame. The room's outbound queue is what
                // bounds a connection's backlog.
                .max_write_buffer_size(usize::MAX)
                .max_message_size(Some(inbound_cap))
                .max_frame_size(Some(inbound_cap));
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            // Its own task: the upgrade's state (hyper's upgrade future, the handshake) is
            // freed, not kept beside the connection for as long as it lives.
            tracker.spawn(serve(Socket {
                ws,
                heard: Instant::now(),
                broken: false,
            }));
        };
        tasks.spawn(fut);
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response()
    }
}

/// WebSocket write buffer: small, so an idle connection stays cheap.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// WebSocket read buffer, allocated for every connection up front. Client messages are small
/// (a keystroke is about 30 bytes, so one read still takes in dozens); a large one (a sync
/// step 2 from a client with offline work) gets its whole length reserved when its header
/// arrives. 2 KiB instead of 4 took W4's memory per idle connection from 16.1 to 14.1 KiB
/// (BENCHMARKS.md).
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// What arrived from the client.
#[derive(Debug)]
pub enum Inbound {
    /// A binary message.
    Frame(Bytes),
    /// Something the connection must be closed for, with this code and reason.
    Refuse(u16, String),
    /// The client closed (its close frame has been answered) or went away.
    Gone,
}

/// An upgraded WebSocket.
pub struct Socket {
    ws: Stream,
    /// When the client was last heard from (any frame, pongs included).
    heard: Instant,
    /// The stream is out of step with the frames (a frame was cut off at its header): only
    /// raw bytes can still be read from it.
    broken: bool,
}

impl Socket {
    /// The next message (pings are answered and pongs noted on the way).
    pub async fn recv(&mut self) -> Inbound {
        loop {
            let next = self.ws.next().await;
            self.heard = Instant::now();
            match next {
                Some(Ok(Message::Binary(frame))) => return Inbound::Frame(frame),
                Some(Ok(Message::Text(_))) => {
                    return Inbound::Refuse(
                        super::room::close::MALFORMED,
                        "text frames are not part of the protocol".into(),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) => {
                    // tungstenite has queued the answering close frame: send it.
                    let _ = self.ws.flush().await;
                    return Inbound::Gone;
                }
                None => return Inbound::Gone,
                Some(Err(WsError::Capacity(cause))) => {
                    if matches!(cause, CapacityError::MessageTooLong { .. }) {
                        self.broken = true;
                    }
                    return Inbound::Refuse(
                        super::room::close::TOO_LARGE,
                        format!("message too large: {cause}"),
                    );
                }
                Some(Err(WsError::Protocol(cause))) => {
                    self.broken = true;
                    return Inbound::Refuse(
                        super::room::close::MALFORMED,
                        format!("websocket protocol error: {cause}"),
                    );
                }
                Some(Err(cause)) => {
                    debug!(%cause, "websocket error");
                    return Inbound::Gone;
                }
            }
        }
    }

    /// Queues a binary frame (sent by the next [`Socket::flush`], or earlier when the
    /// buffer fills).
    pub async fn feed(&mut self, frame: Bytes) -> Result<(), WsError> {
        self.ws.feed(Message::Binary(frame)).await
    }

    /// Writes out everything queued.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        self.ws.flush().await
    }

    /// Sends a ping (the client's pong, or anything else, counts as hearing from it).
    pub async fn ping(&mut self) -> Result<(), WsError> {
        self.ws.send(Message::Ping(Bytes::new())).await
    }

    /// When the client was last heard from.
    pub fn last_heard(&self) -> Instant {
        self.heard
    }

    /// Closes with a code and a reason (cut to the protocol's 123 bytes): sends the close
    /// frame, waits up to [`CLOSE_GRACE`] for the client's answer while discarding what it
    /// still sends, then shuts the connection down.
    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from(cut_reason(reason)),
        };
        let deadline = Instant::now() + CLOSE_GRACE;
        let sent = tokio::time::timeout_at(deadline, self.ws.close(Some(frame))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return; // the client is gone or not reading: nothing more to say
        }
        if !self.broken {
            // Read on until the client's close frame (tungstenite ends the stream then).
            let drained = tokio::time::timeout_at(deadline, async {
                let mut read = 0usize;
                while let Some(Ok(message)) = self.ws.next().await {
                    read = read.saturating_add(message.len());
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            })
            .await;
            if drained.is_ok() {
                return;
            }
        } else {
            // The frames are out of step: discard raw bytes until the client hangs up.
            let raw = self.ws.get_mut();
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = 0usize;
            let _ = tokio::time::timeout_at(deadline, async {
                while let Ok(n) = raw.read(&mut buf).await {
                    read = read.saturating_add(n);
                    if n == 0 || read > DRAIN_LIMIT {
                        break;
                    }
                }
            })
            .await;
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), self.ws.get_mut().shutdown()).await;
    }
}

/// A close reason cut to at most 120 bytes at a character boundary (the protocol allows 123).
fn cut_reason(reason: &str) -> String {
    let mut cut = reason.len().min(120);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason[..cut].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(cut_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = cut_reason(&long);
        assert!(cut.len() <= 120 && cut.len().is_multiple_of(2));
    }

    #[test]
    fn upgrade_headers_are_matched_as_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!header_has_token(&headers, header::UPGRADE, "websocket"));
    }
}
