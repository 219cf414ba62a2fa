//! Accepting TCP connections: limits that hold before anyone is authenticated.
//!
//! Every accepted connection holds one of `--max-pending-handshakes` slots until its first
//! HTTP request has arrived whole; a connection that has not sent one within
//! `--handshake-timeout-secs` (silent, or a request cut off halfway) is closed and its slot
//! freed. With every slot taken, new connections are closed at once instead of queueing,
//! so a flood of idle sockets cannot exhaust file descriptors or memory: it costs the
//! attacker one slot per socket for a few seconds. After the first request, HTTP keep-alive
//! connections wait at most the same time for each next request's headers. Upgraded
//! WebSockets have their own limits (`sync::socket`, `sync::connection`).

use crate::state::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tower::Service;

/// How long shutdown waits for HTTP requests in flight (WebSockets are closed by their rooms).
const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// What accepting is bounded by.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Connections whose first request has not arrived yet, at most.
    pub max_pending: usize,
    /// How long a connection may take to send a whole request (its first, and each next one
    /// on a keep-alive connection).
    pub handshake_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then waits (a bounded time) for the
/// HTTP requests in flight.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: AcceptLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(cause) => {
                // Out of file descriptors, most likely: give the slots time to free some.
                tracing::warn!(%cause, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many connections without a request yet; closing");
            drop(tcp);
            continue;
        };
        // Relayed updates are small frames that must leave at once: without TCP_NODELAY,
        // Nagle's algorithm holds each one back until the previous is acknowledged (tens of
        // milliseconds of fan-out latency, measured by the W3 benchmark).
        if let Err(cause) = tcp.set_nodelay(true) {
            tracing::debug!(%cause, "cannot set TCP_NODELAY");
        }
        let (first_tx, first_rx) = oneshot::channel::<()>();
        let first_tx = Arc::new(Mutex::new(Some(first_tx)));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            // The first request is here: its connection no longer holds a slot.
            if let Some(tx) = first_tx.lock().ok().and_then(|mut tx| tx.take()) {
                let _ = tx.send(());
            }
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { app.call(request.map(axum::body::Body::new)).await }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = &mut conn => return,
                _ = first_rx => {}
                () = tokio::time::sleep(timeout) => {
                    tracing::debug!(%peer, "no request within the handshake timeout; closing");
                    return;
                }
            }
            drop(slot);
            if let Err(cause) = conn.await {
                tracing::trace!(%cause, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(REQUEST_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP requests did not finish in time");
    }
}

/// The accept limits of a server's configuration.
pub fn limits_of(state: &AppState) -> AcceptLimits {
    AcceptLimits {
        max_pending: state.config.max_pending_handshakes,
        handshake_timeout: Duration::from_secs(state.config.handshake_timeout_secs.max(1)),
    }
}
