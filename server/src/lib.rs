//! # canvas-server
//!
//! The collaboration server: browsers connect over WebSocket with the standard Yjs protocol,
//! edit canvases together, and everything they do is checked, relayed and made durable.
//!
//! Where things happen, by module:
//! - [`sync::connection`]: where an update **enters** (`GET /ws/{canvas_id}`), is size-checked
//!   and decoded;
//! - [`sync::room`]: where it is **checked** (the engine's inspector, with the sender's role
//!   from [`domain`]), **stored** (group-committed to the durable log) and **relayed**;
//! - [`sync::rooms`]: the registry of loaded rooms (loaded on first join, unloaded when idle);
//! - [`http`]: the REST API (auth, projects, members, canvases, presence, health);
//! - [`domain`]: the pure rules (effective role, public links, embedding, who is asking);
//!   [`access`]: looking a caller's access up in storage; [`audit`]: the audit handle;
//! - [`passwords`]: bounded password hashing, strength, the dummy hash for unknown emails;
//! - [`listen`]: accepting TCP connections, with the limits that hold before authentication;
//! - [`config`]: flags and environment variables; [`state`]: the composition root;
//!   [`metrics`]: every Prometheus series (`GET /metrics`), one registry per server.
//!
//! Layers point down only: `http` and `sync::connection` (the entry points, over
//! [`AppState`]) use `sync::rooms` and `sync::room` (which get their own `RoomDeps`), which
//! use `audit`, `domain`, `view` and the stores; no module imports one above it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use canvas_server::{Config, serve, open_state};
//! let config = Config::for_data_dir("./data");
//! let state = open_state(config).await.expect("storage opens");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod access;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod data;
pub mod domain;
pub mod error;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod passwords;
pub mod state;
pub mod sync;
#[cfg(test)]
mod test_log;
pub mod view;
pub mod webhooks;

pub use config::Config;
pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use canvas_storage::Storage;
use std::future::Future;
use tokio::net::TcpListener;

/// The whole HTTP application over a state.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    http::routes()
        // Unknown paths and methods answer in the error shape too; the second must come
        // after every route (it is set on the routes present).
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::metrics::track,
        ))
        .layer(http::trace::layer())
        .with_state(state)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A store could not be opened (a service unreachable, a migration failed, ...).
    #[error(transparent)]
    Storage(#[from] canvas_storage::StorageError),
    /// The analytics side could not be set up (the object store URL, the secret key).
    #[error("analytics: {0}")]
    Analytics(#[from] canvas_analytics::Error),
}

/// Opens the storage the configuration selects (the services whose URLs are set, the
/// embedded store for the rest) and the analytics side (object store, secret key).
pub async fn open_state(config: Config) -> Result<AppState, StartError> {
    let storage = Storage::connect(&config.data_dir, &config.services()).await?;
    http::templates::install_builtins(&storage).await?;
    let data = data::DataLayer::new(&config)?;
    let outbound = webhooks::Outbound::new(webhooks::Settings::from_config(&config))?;
    Ok(AppState::new(config, storage, data, outbound, |state| {
        std::sync::Arc::new(data::bound::Resolver(state))
    }))
}

/// Serves until `shutdown` completes, then lets every room flush its log, write a
/// checkpoint and close its connections (1001) before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    control::listen(&state).await;
    data::pipelines::start(&state);
    state.webhooks.start(state.shutdown.clone());
    let limits = listen::limits_of(&state);
    listen::accept_loop(listener, app(state.clone()), limits, async move {
        shutdown.await;
        token.cancel();
    })
    .await;
    state.shutdown.cancel();
    state.tasks.close();
    if tokio::time::timeout(sync::room::SHUTDOWN_GRACE, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some rooms did not finish flushing in time");
    }
    Ok(())
}
