//! The composition root: builds the server's parts over the configuration and the stores
//! (the auditor, the room registry with what its rooms need) and holds them in one cheap,
//! cloneable handle for the REST handlers and the WebSocket entry. Nothing below `http/` and
//! `sync::connection` sees this handle: rooms get their own [`RoomDeps`].

use crate::admission::AdmissionCache;
use crate::audit::Auditor;
use crate::config::Config;
use crate::data::DataLayer;
use crate::metrics::Metrics;
use crate::passwords::Passwords;
use crate::sync::meter::MessageMeter;
use crate::sync::room::bound::BlockResolver;
use crate::sync::room::presence::AwarenessLimits;
use crate::sync::room::{RoomConfig, RoomDeps};
use crate::sync::rooms::Rooms;
use crate::sync::sessions::LiveSessions;
use crate::sync::views::ViewCounter;
use crate::webhooks::{self, Webhooks};
use canvas_storage::Storage;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Handle to everything a request needs. Cloning copies one `Arc`.
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
    /// Writes the audit trail.
    pub auditor: Auditor,
    /// Cancelled when the server shuts down: rooms flush, checkpoint and close.
    pub shutdown: CancellationToken,
    /// This node's name among the servers sharing the services.
    pub node_id: String,
    /// Tracks room and connection tasks so shutdown can wait for them to finish flushing.
    pub tasks: TaskTracker,
    /// Counts WebSocket messages against each user's per-minute limit.
    pub ws_meter: MessageMeter,
    /// Open WebSockets by login session (logout closes them).
    pub live_sessions: Arc<LiveSessions>,
    /// Hashes and checks passwords, a bounded number at once.
    pub passwords: Passwords,
    /// Data sources, queries and executions.
    pub data: DataLayer,
    /// The Prometheus series of this server (`GET /metrics`), its own registry.
    pub metrics: Arc<Metrics>,
    /// Webhook subscriptions, the outbox and the delivery worker.
    pub webhooks: Webhooks,
    /// Counts canvas openings, written in batches.
    pub views: Arc<ViewCounter>,
    /// Sessions and canvas accesses a WebSocket connect looked up (single node only;
    /// emptied by every write that could change them).
    pub admission: Arc<AdmissionCache>,
}

impl AppState {
    /// Builds the state over a storage handle and the analytics side.
    /// `resolver` makes the rooms' data side from a weak handle on the state itself (the
    /// state holds the rooms, which hold the resolver).
    pub fn new(
        config: Config,
        storage: Storage,
        data: DataLayer,
        outbound: webhooks::Outbound,
        resolver: impl FnOnce(Weak<Shared>) -> Arc<dyn BlockResolver>,
    ) -> Self {
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut storage = storage;
        let admission = AdmissionCache::wrap(&mut storage);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let auditor = Auditor::new(storage.audit.clone(), tasks.clone());
        // SQL errors the driver does not attribute are the PostgreSQL's when one is used.
        let sql_service = if storage.probes.iter().any(|p| p.service() == "postgresql") {
            "postgresql"
        } else {
            "sqlite"
        };
        let metrics = Arc::new(Metrics::new(sql_service));
        let result_ttl = data.result_ttl;
        let webhooks = Webhooks::new(
            storage.webhooks.clone(),
            data.key.clone(),
            outbound,
            metrics.clone(),
            tasks.clone(),
        );
        AppState(Arc::new_cyclic(|weak| {
            let rooms = Rooms::new(RoomDeps {
                resolver: resolver(weak.clone()),
                events: Arc::new(webhooks.clone()),
                canvases: storage.canvases.clone(),
                versions: storage.versions.clone(),
                presence: storage.presence.clone(),
                fanout: storage.fanout.clone(),
                auditor: auditor.clone(),
                tasks: tasks.clone(),
                shutdown: shutdown.clone(),
                node_id: node_id.clone(),
                metrics: metrics.clone(),
                config: RoomConfig {
                    idle_unload: config.idle_unload(),
                    checkpoint_updates: config.checkpoint_updates,
                    checkpoint_every: Duration::from_secs(config.checkpoint_secs),
                    version_interval: config.version_interval(),
                    awareness: AwarenessLimits {
                        max_state_bytes: config.max_awareness_bytes,
                        per_second: config.awareness_per_second,
                    },
                    result_ttl,
                },
            });
            let ws_meter = MessageMeter::new(storage.rate_limits.clone(), config.ws_rate_limit);
            let passwords = Passwords::new(config.hash_slots(), config.hash_wait());
            let views = ViewCounter::new(
                storage.interactions.clone(),
                tasks.clone(),
                shutdown.clone(),
            );
            Shared {
                passwords,
                node_id,
                config,
                storage,
                rooms,
                auditor,
                shutdown,
                tasks,
                ws_meter,
                live_sessions: Arc::default(),
                data,
                metrics,
                webhooks,
                views,
                admission,
            }
        }))
    }

    /// The handle around a state reached through a weak reference.
    pub fn from_shared(shared: Arc<Shared>) -> AppState {
        AppState(shared)
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
