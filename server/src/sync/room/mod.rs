//! One open canvas: a task that owns the document and serialises everything done to it.
//!
//! The life of an incoming update, in order:
//! 1. [`super::connection`] decodes the frame and sends it here ([`RoomCmd::Message`]);
//! 2. the room asks the engine's inspector whether the sender's role allows it
//!    ([`CanvasDoc::apply_batch`]); a refusal goes back to the sender as a typed error and
//!    nothing else happens. Updates already waiting in the room's queue behind it are judged
//!    and applied together, one verdict each ([`verdict`]), admins' included: an update that
//!    changes `sharing` ends a batch, so the updates after it are judged with the roles it
//!    gave;
//! 3. an accepted update is applied in memory and queued for the durable log ([`log`]);
//!    updates that arrive while a write is in flight are written together in the next one
//!    (group commit);
//! 4. once the write returns, the updates are relayed to every other connection and the
//!    sender gets a durable acknowledgement.
//!
//! An update submitted over REST ([`RoomCmd::Submit`], from `http/document.rs`) takes the
//! same steps with the caller's role ([`verdict`]'s `submit`); its verdict is the reply, and
//! an accepted one completes its `durable` receiver at step 4.
//!
//! Rooms are actors rather than documents behind a lock: the document is touched by one task
//! only, so no lock is held across the storage `await`s and no lock can be poisoned. A room
//! gets what it needs in [`RoomDeps`], never the server's whole state. A room runs in a
//! `room` span that carries its canvas id, and so do the tasks it spawns (its writes, its
//! presence writer, its forwarder of other nodes' messages, its audits).
//!
//! This module holds the select loop and the lifecycle (load, idle unload, shutdown); the
//! parts: [`commands`] (what a room is asked and answers), [`verdict`] (batches and
//! verdicts), [`log`] (the durable log, checkpoints), [`conns`] (connections), [`presence`]
//! (awareness and the presence throttle), [`cluster`] (other nodes), [`authz`] (roles and
//! sharing audit), [`attribution`] (who changed which block) and [`history`] (versions and
//! restores).

pub mod attribution;
pub mod authz;
pub mod bound;
pub mod cluster;
pub mod commands;
pub mod conns;
pub mod history;
pub mod log;
pub mod presence;
pub mod verdict;

pub use commands::{
    ConnId, EditReply, EditRequest, JoinReply, JoinRequest, OUTBOUND_CAPACITY, Outbound, Queued,
    ReadReply, RoomCmd, RoomEvent, RoomEvents, RoomView, ServerEdit, StateReply, SubmitReply,
    SubmitRequest, VersionCmd, VersionFailure, VersionOp, VersionOutcome, VersionReply, close,
};

use crate::audit::Auditor;
use crate::domain::{ProjectAccess, effective_role};
use crate::metrics::Metrics;
use crate::sync::shared::SharedWriter;
use crate::view;
use bytes::Bytes;
use canvas_engine::sharing::Sharing;
use canvas_engine::yrs::{ClientID, StateVector, Transact};
use canvas_engine::{CanvasDoc, json, presence::PresenceTable, sharing};
use canvas_storage::{
    CanvasRecord, CanvasStore, Fanout, PresenceStore, VersionRecord, VersionStore,
};
use cluster::forward_remote;
use commands::{drain_as_gone, reply_gone};
use conns::Conn;
use log::{DurableLog, Written};
use presence::PresenceThrottle;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};
use uuid::Uuid;

/// What a room needs from the rest of the server: its stores, settings and the server-wide
/// task tracker and shutdown signal (handed in by the registry, built in `state.rs`).
#[derive(Clone)]
pub struct RoomDeps {
    /// Canvas records, documents and their update log.
    pub canvases: Arc<dyn CanvasStore>,
    /// Version history.
    pub versions: Arc<dyn VersionStore>,
    /// Live presence.
    pub presence: Arc<dyn PresenceStore>,
    /// Live messages between server nodes.
    pub fanout: Arc<dyn Fanout>,
    /// Where sharing changes made through the document are audited.
    pub auditor: Auditor,
    /// Tracks the room's tasks so shutdown can wait for them to finish flushing.
    pub tasks: TaskTracker,
    /// Cancelled when the server shuts down: rooms flush, checkpoint and close.
    pub shutdown: CancellationToken,
    /// This node's name among the servers sharing the services.
    pub node_id: String,
    /// The server's Prometheus series.
    pub metrics: Arc<Metrics>,
    /// Timings and thresholds.
    pub config: RoomConfig,
    /// Results of blocks bound to queries (the server's data side).
    pub resolver: Arc<dyn bound::BlockResolver>,
    /// Where the room tells what happened in it (the webhooks).
    pub events: Arc<dyn commands::RoomEvents>,
}

/// A room's timings and thresholds (from the server's configuration).
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// How long a room stays loaded after its last connection leaves.
    pub idle_unload: Duration,
    /// Log entries after which a room considers compacting its log (see `checkpoint_due`).
    pub checkpoint_updates: u64,
    /// How often a room checkpoints whatever it logged (and refreshes its active users).
    pub checkpoint_every: Duration,
    /// Time between automatic versions of an edited canvas.
    pub version_interval: Duration,
    /// What presence messages a connection may send.
    pub awareness: presence::AwarenessLimits,
    /// How long a bound block's result stays fresh (the result cache's time to live).
    pub result_ttl: Duration,
}

/// Takes a room out of the registry (only the instance it was made for): called when the
/// room stops taking commands.
#[derive(Clone)]
pub struct Unregister(Arc<dyn Fn() + Send + Sync>);

impl Unregister {
    /// Wraps the registry's removal of one room instance.
    pub fn new(forget: impl Fn() + Send + Sync + 'static) -> Self {
        Unregister(Arc::new(forget))
    }

    fn now(&self) {
        (self.0)();
    }
}

/// The room actor's state.
pub(super) struct Room {
    id: Uuid,
    deps: RoomDeps,
    unregister: Unregister,
    record: CanvasRecord,
    canvas: CanvasDoc,
    /// Boxed: a map's table keeps room for more entries than it holds, and a connection's
    /// state is a few hundred bytes (W4, memory per room).
    conns: HashMap<ConnId, Box<Conn>>,
    presence: PresenceTable,
    /// Which connection announced each awareness client id.
    awareness_owner: HashMap<ClientID, ConnId>,
    /// Writes presence to the shared store, in order, off this task.
    shared_writer: SharedWriter,
    /// At most one presence write per user per interval.
    presence_throttle: PresenceThrottle,
    /// The durable log: queued updates, the write in flight, sequence numbers.
    log: DurableLog,
    idle_since: Option<Instant>,
    /// When lagging connections are next checked for a drained queue (`None`: none lags).
    lag_check_at: Option<Instant>,
    /// The sharing settings as of the last change to them (the "before" of the next audit).
    last_sharing: Sharing,
    /// The canvas's version history, oldest first (its last number is `record.version`).
    versions: Vec<VersionRecord>,
    /// The user who last changed the document since the last version (`None`: unchanged).
    dirty_by: Option<Uuid>,
    /// When this room last recorded a version (or loaded).
    last_version_at: Instant,
    /// Who last stamped each block and when (attribution throttle).
    stamped: HashMap<String, (Uuid, Instant)>,
    /// Bumped after every write transaction on the document (an observer on it), so that
    /// `full_state` is known to be current; `None` if the observer could not be registered.
    doc_writes: Option<Arc<AtomicU64>>,
    /// Sync step 2 for a client whose document is empty, with the `doc_writes` count it was
    /// encoded at: a burst of joins is answered from one encoding of the whole document.
    full_state: Option<(u64, Bytes)>,
    /// Bound blocks: their latest data and the requests in flight.
    bound: bound::BoundBlocks,
    /// This room's own command channel (answers of background work come back on it).
    own: Option<mpsc::WeakSender<RoomCmd>>,
}

enum Flow {
    Continue,
    Stop,
}

impl Room {
    /// Tells the server what happened in this room (webhooks); never blocks.
    fn announce(&self, event: RoomEvent) {
        self.deps
            .events
            .room_event(self.id, self.record.project_id, event);
    }
}

impl Room {
    /// Loads the canvas from storage and runs the room until it unloads or the server stops.
    pub(super) async fn run(
        id: Uuid,
        deps: RoomDeps,
        unregister: Unregister,
        mut rx: mpsc::Receiver<RoomCmd>,
        own: mpsc::WeakSender<RoomCmd>,
    ) {
        // Subscribe to the other nodes' live messages before reading storage, so nothing
        // made durable elsewhere in between is missed (duplicates are harmless).
        let remote = match deps.fanout.subscribe(id).await {
            Ok(remote) => remote,
            Err(cause) => {
                error!(%cause, "cannot subscribe to other nodes");
                unregister.now();
                drain_as_gone(&mut rx);
                return;
            }
        };
        // The forwarder (and with it the subscription) ends when this room ends.
        let stop = tokio_util::sync::CancellationToken::new();
        let stop_forwarding_on_exit = stop.clone().drop_guard();
        let forwarder = forward_remote(
            remote,
            (deps.fanout.clone(), id),
            own.clone(),
            deps.node_id.clone(),
            stop,
        );
        deps.tasks.spawn(forwarder.in_current_span());
        let own_cmds = own.clone();
        let metrics = deps.metrics.clone();
        let loading = Instant::now();
        let loaded = Room::load(id, deps, unregister.clone()).await;
        metrics.room_loaded(loaded.is_ok(), loading.elapsed());
        let (mut room, written_rx) = match loaded {
            Ok(loaded) => loaded,
            Err(cause) => {
                error!(%cause, "cannot load canvas");
                unregister.now();
                drain_as_gone(&mut rx);
                return;
            }
        };
        room.own = Some(own_cmds);
        // The loop runs as a task of its own, in this span: the loading task's state (the
        // subscription and the load futures, the loaded parts before they become the room)
        // is freed rather than kept beside the room for as long as it stays open.
        let tasks = room.deps.tasks.clone();
        tasks.spawn(
            room.serve(rx, written_rx, stop_forwarding_on_exit)
                .in_current_span(),
        );
    }

    async fn load(
        id: Uuid,
        deps: RoomDeps,
        unregister: Unregister,
    ) -> Result<(Room, mpsc::Receiver<Box<Written>>), String> {
        let storage = &deps.canvases;
        // Three independent reads, at once: a join that loads the room waits for the
        // slowest of them rather than for their sum (W5, join from storage).
        let (record, stored, versions) = tokio::try_join!(
            storage.canvas(id),
            storage.load_document(id),
            deps.versions.versions(id)
        )
        .map_err(|e| e.to_string())?;
        let record = record.ok_or("canvas not found")?;
        let stored = stored.ok_or("canvas document not found")?;
        let durable_seq = stored
            .updates
            .last()
            .map_or(stored.snapshot_seq, |(seq, _)| *seq);
        let canvas = CanvasDoc::from_stored(
            &stored.snapshot,
            stored.updates.iter().map(|(_, u)| u.as_slice()),
        )
        .map_err(|e| e.to_string())?;
        info!(log_entries = stored.updates.len(), "room loaded");
        let (log, written_rx) = DurableLog::new(
            durable_seq,
            stored.snapshot_seq,
            stored.snapshot.len() as u64,
        );
        let shared_writer = SharedWriter::start(
            deps.presence.clone(),
            deps.fanout.clone(),
            id,
            deps.node_id.clone(),
            (&deps.tasks, deps.metrics.clone()),
        );
        let last_sharing = sharing::sharing(&canvas.doc().transact());
        // Loading replays the log; what it did to sharing is not a change.
        canvas.take_sharing_changed();
        let doc_writes = Arc::new(AtomicU64::new(0));
        let bump = doc_writes.clone();
        let doc_writes =
            match canvas
                .doc()
                .observe_after_transaction("room-full-state", move |_| {
                    bump.fetch_add(1, Ordering::Relaxed);
                }) {
                Ok(()) => Some(doc_writes),
                Err(cause) => {
                    warn!(%cause, "no cache of the encoded document for joins");
                    None
                }
            };
        let room = Room {
            last_sharing,
            id,
            deps,
            unregister,
            record,
            canvas,
            conns: HashMap::new(),
            presence: PresenceTable::default(),
            awareness_owner: HashMap::new(),
            shared_writer,
            presence_throttle: PresenceThrottle::default(),
            log,
            idle_since: Some(Instant::now()),
            lag_check_at: None,
            versions,
            dirty_by: None,
            last_version_at: Instant::now(),
            stamped: HashMap::new(),
            doc_writes,
            full_state: None,
            bound: bound::BoundBlocks::default(),
            own: None,
        };
        Ok((room, written_rx))
    }

    /// Serves the room's commands until it unloads or the server stops; the forwarder of
    /// other nodes' messages stops when this returns (`_forwarding` drops).
    async fn serve(
        mut self,
        mut rx: mpsc::Receiver<RoomCmd>,
        mut written_rx: mpsc::Receiver<Box<Written>>,
        _forwarding: tokio_util::sync::DropGuard,
    ) {
        let shutdown = self.deps.shutdown.clone();
        let idle = self.deps.config.idle_unload;
        let refresh_every = self
            .deps
            .config
            .checkpoint_every
            .max(Duration::from_secs(1));
        // Checks for an automatic version at least every 30 s, or every interval if shorter.
        let version_every = self
            .deps
            .config
            .version_interval
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut next_refresh = Instant::now() + refresh_every;
        let mut next_version = Instant::now() + version_every;
        // The branches that wait for storage (a write's result, checkpoints, versions, the
        // other nodes, unloading) run boxed: a room's task is as large as its loop's state,
        // and would otherwise carry the largest of those futures while it sits idle. For
        // the same reason every deadline shares one timer (W4, memory per room).
        loop {
            let idle_deadline = self
                .idle_since
                .filter(|_| self.log.is_idle())
                .map(|since| since + idle);
            let presence_due = self.presence_due();
            let lag_due = self.lag_check_due();
            let data_due = self.bound.next_expiry();
            let wake = [presence_due, data_due, lag_due, idle_deadline]
                .into_iter()
                .flatten()
                .fold(next_refresh.min(next_version), Instant::min);
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    Box::pin(self.shut_down(&mut rx, &mut written_rx)).await;
                    return;
                }
                Some(written) = written_rx.recv() => Box::pin(self.on_written(written)).await,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => match self.take_batch(cmd, &mut rx) {
                        (Some(batch), next) => {
                            self.update_batch(batch);
                            match next {
                                Some(cmd) => self.dispatch(cmd, &mut written_rx).await,
                                None => Flow::Continue,
                            }
                        }
                        (None, Some(cmd)) => self.dispatch(cmd, &mut written_rx).await,
                        (None, None) => Flow::Continue,
                    },
                    None => Flow::Stop,
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                    if due(presence_due) {
                        self.flush_presence();
                    }
                    if due(data_due) {
                        self.block_data_expired();
                    }
                    if due(lag_due) {
                        self.catch_up_lagging();
                    }
                    // (`idle_deadline` is set only while nothing waits to be written)
                    if due(idle_deadline) {
                        Box::pin(self.unload(&mut rx)).await;
                        return;
                    }
                    if next_refresh <= now {
                        next_refresh = now + refresh_every;
                        // Keeps `canvas:state:{id}` alive while people stay connected.
                        if !self.conns.is_empty() {
                            self.publish_active_users();
                        }
                        // Checkpoints after a while, not only after many updates, so a
                        // slowly edited canvas does not keep a long log.
                        if self.log.is_idle() {
                            Box::pin(self.checkpoint()).await;
                        }
                    }
                    if next_version <= now {
                        next_version = now + version_every;
                        if self.shared() {
                            Box::pin(self.refresh_versions()).await;
                        }
                        if self.log.is_idle() {
                            Box::pin(self.auto_version()).await;
                        }
                    }
                    Flow::Continue
                }
            };
            if let Flow::Stop = flow {
                self.unregister.now();
                drain_as_gone(&mut rx);
                return;
            }
            self.start_write();
        }
    }

    /// Runs one command (version commands need the writer's channel).
    async fn dispatch(
        &mut self,
        cmd: RoomCmd,
        written_rx: &mut mpsc::Receiver<Box<Written>>,
    ) -> Flow {
        match cmd {
            RoomCmd::Versions(cmd, reply) => {
                Box::pin(self.version_command(*cmd, reply, written_rx)).await
            }
            RoomCmd::Remote(kind, payload) => {
                Box::pin(self.remote(kind, payload)).await;
                Flow::Continue
            }
            RoomCmd::Resubscribed => {
                Box::pin(self.resubscribed()).await;
                Flow::Continue
            }
            cmd => self.handle(cmd),
        }
    }

    /// Runs a command that needs no waiting.
    fn handle(&mut self, cmd: RoomCmd) -> Flow {
        match cmd {
            RoomCmd::Join(request, reply) => self.join(*request, reply),
            RoomCmd::Message(conn_id, message) => self.message(conn_id, message),
            RoomCmd::Leave(conn_id) => self.leave(conn_id),
            RoomCmd::Read(access, reply) => {
                let view = self.read(&access);
                let _ = reply.send(view);
            }
            RoomCmd::Access(change) => self.access_changed(change),
            RoomCmd::Presence(reply) => {
                let _ = reply.send(self.live_presence());
            }
            RoomCmd::Remote(..) | RoomCmd::Resubscribed => {
                // `dispatch` runs these (they wait for storage or other nodes).
            }
            RoomCmd::Edit(request, reply) => {
                let answer = self.server_edit(*request);
                let _ = reply.send(answer);
            }
            RoomCmd::Submit(request, reply) => {
                let answer = self.submit(*request);
                let _ = reply.send(answer);
            }
            RoomCmd::State(request, reply) => {
                let (access, sv) = &*request;
                let _ = reply.send(self.state(access, sv.as_ref()));
            }
            RoomCmd::Versions(_, reply) => {
                // `serve` runs these with the writer's channel; nothing else sends them here.
                let _ = reply.send(VersionReply::Gone);
            }
            RoomCmd::BlockData(block, ticket, fetched) => self.block_data(block, ticket, *fetched),
            RoomCmd::BlockRunning(block, for_, execution) => {
                self.block_running(block, for_, execution)
            }
            RoomCmd::DataChanged => self.data_changed(),
            RoomCmd::Refreshed(block, binding, fetched) => {
                self.block_refreshed(block, *binding, *fetched)
            }
            RoomCmd::Close(code, reason) => {
                self.close_all(code, &reason);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn sharing(&self) -> Sharing {
        sharing::sharing(&self.canvas.doc().transact())
    }

    fn json(&self) -> serde_json::Value {
        let txn = self.canvas.doc().transact();
        let view = view::canvas_view(&self.record, json::canvas_json(&txn));
        view::with_history(view, &self.versions)
    }

    fn read(&self, access: &ProjectAccess) -> ReadReply {
        let sharing = self.sharing();
        if effective_role(access, &sharing).is_none() {
            return ReadReply::Forbidden;
        }
        ReadReply::View(Box::new(RoomView {
            json: self.json(),
            sharing,
        }))
    }

    /// The document's state for a REST read: the diff from `sv` (everything without one)
    /// and the state vector, if the user may read the canvas.
    fn state(&self, access: &ProjectAccess, sv: Option<&StateVector>) -> StateReply {
        let Some(role) = effective_role(access, &self.sharing()) else {
            return StateReply::Forbidden;
        };
        let update = match sv {
            Some(sv) => self.canvas.encode_diff(sv),
            None => self.canvas.encode_state(),
        };
        StateReply::State {
            update,
            state_vector: self.canvas.encode_state_vector(),
            role,
        }
    }

    /// The JSON view of one block, as `GET /canvases/{id}` shows it.
    fn block_view(&self, block_id: &str) -> Option<serde_json::Value> {
        let mut json = self.json();
        let blocks = json.get_mut("blocks")?.as_array_mut()?;
        let at = blocks.iter().position(|b| b["id"] == block_id)?;
        Some(blocks.swap_remove(at))
    }

    /// Idle for the configured delay with nothing to write: checkpoint and unload.
    async fn unload(mut self, rx: &mut mpsc::Receiver<RoomCmd>) {
        self.auto_version().await;
        self.checkpoint().await;
        self.unregister.now();
        // Anything that reached us after the registry let go is told to ask again; the next
        // instance loads from storage, which now holds everything.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            reply_gone(cmd);
        }
        info!("room unloaded");
    }

    /// Server shutdown: finish the writes, checkpoint, close every connection with 1001.
    async fn shut_down(
        mut self,
        rx: &mut mpsc::Receiver<RoomCmd>,
        written_rx: &mut mpsc::Receiver<Box<Written>>,
    ) {
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                RoomCmd::Message(conn_id, message) => self.message(conn_id, message),
                other => reply_gone(other),
            }
        }
        if let Flow::Stop = self.flush(written_rx).await {
            return;
        }
        self.auto_version().await;
        self.checkpoint().await;
        for conn in self.conns.values() {
            let _ = conn
                .out
                .try_send(Queued::close(close::GOING_AWAY, "server shutting down"));
        }
        self.unregister.now();
        info!("room flushed for shutdown");
    }
}

/// How long shutdown waits for rooms to flush before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
