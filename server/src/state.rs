//! The server's shared state: a cheap, cloneable handle passed to every handler and room.

use crate::config::Config;
use crate::sync::rooms::Rooms;
use canvas_storage::Storage;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Handle to everything a request or a room needs. Cloning copies one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
pub struct Shared {
    /// The configuration the server started with.
    pub config: Config,
    /// Every store (users, sessions, projects, audit, canvases).
    pub storage: Storage,
    /// The loaded canvas rooms.
    pub rooms: Rooms,
    /// Cancelled when the server shuts down: rooms flush, checkpoint and close.
    pub shutdown: CancellationToken,
    /// This node's name among the servers sharing the services.
    pub node_id: String,
    /// Tracks room and connection tasks so shutdown can wait for them to finish flushing.
    pub tasks: TaskTracker,
}

impl AppState {
    /// Builds the state over a storage handle.
    pub fn new(config: Config, storage: Storage) -> Self {
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        AppState(Arc::new(Shared {
            node_id,
            config,
            storage,
            rooms: Rooms::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
