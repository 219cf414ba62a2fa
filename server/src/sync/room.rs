//! One open canvas: a task that owns the document and serialises everything done to it.
//!
//! The life of an incoming update, in order:
//! 1. [`super::connection`] decodes the frame and sends it here ([`RoomCmd::Message`]);
//! 2. the room asks the engine's inspector whether the sender's role allows it
//!    ([`CanvasDoc::apply_checked`]); a refusal goes back to the sender as a typed error and
//!    nothing else happens. Updates already waiting in the room's queue behind it are judged
//!    and applied together, one verdict each (`Room::update_batch`, `apply_batch`), unless
//!    they come from an admin (whose update may change the others' roles);
//! 3. an accepted update is applied in memory and queued for the durable log; updates that
//!    arrive while a write is in flight are written together in the next one (group commit);
//! 4. once the write returns, the updates are relayed to every other connection and the
//!    sender gets a durable acknowledgement.
//!
//! Rooms are actors rather than documents behind a lock: the document is touched by one task
//! only, so no lock is held across the storage `await`s and no lock can be poisoned.
//!
//! The room also stamps who changed which block ([`attribution`](self::attribution)) and
//! keeps the canvas's version history, restores included ([`versions`](self::versions)).

#[path = "attribution.rs"]
pub mod attribution;
#[path = "versions.rs"]
pub mod versions;

pub use versions::{VersionCmd, VersionFailure, VersionOp, VersionReply};

use super::shared::{
    AccessChange, LiveKind, PUT_INTERVAL, SharedOp, SharedWriter, decode_live, encode_live,
};
use crate::audit::Auditor;
use crate::domain::{Actor, ProjectAccess, effective_role};
use crate::view;
use bytes::Bytes;
use canvas_engine::canvas::{Applied, BatchApplied, DocError, LogEntry};
use canvas_engine::edits::Sharing;
use canvas_engine::inspect::{Refusal, RefusalCode};
use canvas_engine::protocol::{self, Ack, ErrorBody, Extension};
use canvas_engine::yrs::sync::awareness::AwarenessUpdate;
use canvas_engine::yrs::sync::{Message, SyncMessage};
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::updates::encoder::Encode;
use canvas_engine::yrs::{ClientID, StateVector, Transact, TransactionMut};
use canvas_engine::{CanvasDoc, Role, edits, json, presence::PresenceTable};
use canvas_storage::PresenceEntry;
use canvas_storage::{
    CanvasRecord, CanvasStore, Fanout, PresenceStore, StorageResult, VersionRecord, VersionStore,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

/// Most updates applied as one batch (see [`Room::update_batch`]).
const MAX_BATCH: usize = 256;

/// Document updates waiting in a room's queue, with the connections that sent them.
type Batch = Vec<(ConnId, Vec<u8>)>;

/// An update of a batch with its sender, the sender's acknowledgement number and user.
type Numbered = (ConnId, u64, Uuid, Vec<u8>);

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// The owner recorded for awareness client ids announced through another server node.
const REMOTE: ConnId = 0;

/// Close codes of the wire protocol (DESIGN.md, "Wire protocol").
pub mod close {
    /// Undecodable input (malformed frame or update).
    pub const MALFORMED: u16 = 4400;
    /// No or bad credentials.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Not allowed.
    pub const FORBIDDEN: u16 = 4403;
    /// No such canvas (or it was deleted).
    pub const NOT_FOUND: u16 = 4404;
    /// Message too large.
    pub const TOO_LARGE: u16 = 4413;
    /// Rate limited.
    pub const RATE_LIMITED: u16 = 4429;
    /// The server is going away (shutdown); clients reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// Something failed inside the server; clients reconnect and resync.
    pub const INTERNAL: u16 = 1011;
    /// The connection could not keep up with the room; it may reconnect.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// What a room sends to a connection's writer.
#[derive(Debug)]
pub enum Outbound {
    /// One protocol message, as one binary frame.
    Frame(Bytes),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// Frames waiting for one connection's writer. Bounded: a connection that falls this far
/// behind is dropped rather than letting the room buffer without limit.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// A connection asking to join.
#[derive(Debug)]
pub struct JoinRequest {
    /// The connection.
    pub conn_id: ConnId,
    /// The user's project-level access (sharing grants are added by the room).
    pub access: ProjectAccess,
    /// Display name for presence listings.
    pub username: String,
    /// Where the room sends frames for this connection.
    pub out: mpsc::Sender<Outbound>,
    /// Whether the client asked for durable acknowledgements (`?acks=1`).
    pub wants_acks: bool,
    /// Who is connecting, for the audit of the sharing changes they make.
    pub actor: Actor,
}

/// A change the server makes to the document for a REST call (sharing settings, ...). It
/// runs inside the room, so it is checked, stored, relayed and audited like any update.
pub type ServerEdit = Box<dyn FnOnce(&mut TransactionMut) -> Result<(), String> + Send>;

/// A REST call asking the room to change the document.
pub struct EditRequest {
    /// The caller's access; the room adds the sharing part.
    pub access: ProjectAccess,
    /// Who is asking, for the audit log.
    pub actor: Actor,
    /// The role the change needs.
    pub required: Role,
    /// The change.
    pub edit: ServerEdit,
}

impl std::fmt::Debug for EditRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditRequest")
            .field("user", &self.access.user_id)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// The room's answer to an edit.
#[derive(Debug)]
pub enum EditReply {
    /// Applied; `durable` completes once the change is in the durable log (it fails if the
    /// write failed). The view is the document right after the change.
    Applied {
        /// Completes when the change is durable.
        durable: oneshot::Receiver<()>,
        /// The document after the change.
        view: Box<RoomView>,
    },
    /// The caller's role is below the one needed (`None`: no access at all).
    Forbidden(Option<Role>),
    /// The change was refused as invalid; nothing changed.
    Invalid(String),
    /// This room instance is unloading or failed; ask the registry again with the request.
    Gone(Box<EditRequest>),
}

/// The room's answer to a join.
#[derive(Debug)]
pub enum JoinReply {
    /// Joined with this effective role.
    Joined(Role),
    /// The user has no role on this canvas.
    Forbidden,
    /// This room instance is unloading or failed; ask the registry again.
    Gone,
}

/// What REST reads of a live room return.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// The canvas in the seed's MongoDB shape.
    pub json: serde_json::Value,
    /// The document's sharing settings.
    pub sharing: Sharing,
}

/// The room's answer to a REST read.
#[derive(Debug)]
pub enum ReadReply {
    /// The live view.
    View(Box<RoomView>),
    /// The user has no role on this canvas.
    Forbidden,
    /// This room instance is unloading or failed; ask the registry again.
    Gone,
}

/// Commands a room processes, one at a time.
#[derive(Debug)]
pub enum RoomCmd {
    /// A connection joins.
    Join(JoinRequest, oneshot::Sender<JoinReply>),
    /// A decoded protocol message from a connection.
    Message(ConnId, Message),
    /// A connection left.
    Leave(ConnId),
    /// A REST read of the live document, by a user with this project access.
    Read(ProjectAccess, oneshot::Sender<ReadReply>),
    /// A membership or an archiving changed (on this node or another): the connections it
    /// concerns get their new role, or are closed with 4403.
    Access(AccessChange),
    /// A live message from another server node (a durable update or awareness).
    Remote(LiveKind, Vec<u8>),
    /// A change of the document for a REST call.
    Edit(Box<EditRequest>, oneshot::Sender<EditReply>),
    /// A version history command (name a version, restore); answered once durable.
    Versions(VersionCmd, oneshot::Sender<VersionReply>),
    /// The canvas was deleted: close every connection with this code and stop.
    Close(u16, String),
}

/// One joined connection, as the room sees it.
struct Conn {
    user_id: Uuid,
    /// The user's project-level access, kept to recompute the role when sharing or
    /// membership changes.
    access: ProjectAccess,
    username: String,
    role: Role,
    out: mpsc::Sender<Outbound>,
    wants_acks: bool,
    /// Document updates received from this connection so far (the sequence of acks).
    received: u64,
    /// Sequence numbers of this connection's accepted updates not yet durable, in order.
    unsaved: VecDeque<u64>,
    /// The last acknowledgement sent.
    acked: u64,
    /// Awareness client ids this connection announced (removed when it leaves).
    clients: HashSet<ClientID>,
    /// Who is connected, for the audit of sharing changes made through the document.
    actor: Actor,
}

impl Conn {
    /// Everything up to this sequence number is durable or was refused.
    fn ack_target(&self) -> u64 {
        self.unsaved
            .front()
            .map_or(self.received, |first| first - 1)
    }
}

/// An accepted update waiting for, or in, a durable write: one connection's update, a run
/// of updates a batch merged into one (`CanvasDoc::apply_batch`), or a server edit.
struct Accepted {
    /// The connections and acknowledgement sequence numbers it stands for, in order (none
    /// for a server edit).
    senders: Vec<(ConnId, u64)>,
    update: Vec<u8>,
    /// Told when the update is durable (server edits made for REST calls).
    done: Option<oneshot::Sender<()>>,
}

impl Accepted {
    /// A change the server made (attribution, a REST edit, a restore).
    fn server(update: Vec<u8>, done: Option<oneshot::Sender<()>>) -> Self {
        Accepted {
            senders: Vec::new(),
            update,
            done,
        }
    }

    /// The connection its relay skips: the sender, when it has one sender (a run merged
    /// from several connections goes back to them too; a Yjs client ignores what it has).
    fn relay_except(&self) -> Option<ConnId> {
        let (first, _) = self.senders.first()?;
        self.senders
            .iter()
            .all(|(c, _)| c == first)
            .then_some(*first)
    }
}

/// The result of one durable write, sent back to the room by the writer task.
struct Written {
    batch: Vec<Accepted>,
    result: StorageResult<i64>,
}

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
    /// Timings and thresholds.
    pub config: RoomConfig,
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
    conns: HashMap<ConnId, Conn>,
    presence: PresenceTable,
    /// Which connection announced each awareness client id.
    awareness_owner: HashMap<ClientID, ConnId>,
    /// Writes presence to the shared store, in order, off this task.
    shared_writer: SharedWriter,
    /// When each user's presence was last written (throttle).
    presence_written: HashMap<Uuid, Instant>,
    /// The latest presence of users whose write was held back by the throttle: written when
    /// their interval is over, so the shared store ends with the last cursor, not a stale one.
    presence_pending: HashMap<Uuid, PresenceEntry>,
    /// Accepted, applied in memory, not yet handed to a writer.
    queued: Vec<Accepted>,
    /// Whether a write is in flight (at most one at a time, keeping the log in order).
    writing: bool,
    written_tx: mpsc::Sender<Written>,
    /// Last sequence number known durable in the log.
    durable_seq: i64,
    /// Last sequence number covered by a snapshot.
    checkpoint_seq: i64,
    /// Size of the last snapshot (loaded or written).
    snapshot_bytes: u64,
    idle_since: Option<Instant>,
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
}

enum Flow {
    Continue,
    Stop,
}

/// Where a change to the document came from, for the audit of sharing changes.
enum ChangedBy<'a> {
    /// An update from this connection (an admin editing `sharing` in the document).
    Conn(ConnId),
    /// A REST call.
    Rest(&'a Actor),
    /// Another server node or the log (audited where it was made).
    OtherNode,
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
                error!(canvas = %id, %cause, "cannot subscribe to other nodes");
                unregister.now();
                drain_as_gone(&mut rx);
                return;
            }
        };
        // The forwarder (and with it the subscription) ends when this room ends.
        let stop = tokio_util::sync::CancellationToken::new();
        let _stop_forwarding_on_exit = stop.clone().drop_guard();
        deps.tasks
            .spawn(forward_remote(remote, own, deps.node_id.clone(), stop));
        let (room, written_rx) = match Room::load(id, deps, unregister.clone()).await {
            Ok(loaded) => loaded,
            Err(cause) => {
                error!(canvas = %id, %cause, "cannot load canvas");
                unregister.now();
                drain_as_gone(&mut rx);
                return;
            }
        };
        room.serve(rx, written_rx).await;
    }

    async fn load(
        id: Uuid,
        deps: RoomDeps,
        unregister: Unregister,
    ) -> Result<(Room, mpsc::Receiver<Written>), String> {
        let storage = &deps.canvases;
        let record = storage
            .canvas(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("canvas not found")?;
        let stored = storage
            .load_document(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("canvas document not found")?;
        let durable_seq = stored
            .updates
            .last()
            .map_or(stored.snapshot_seq, |(seq, _)| *seq);
        let canvas = CanvasDoc::from_stored(
            &stored.snapshot,
            stored.updates.iter().map(|(_, u)| u.as_slice()),
        )
        .map_err(|e| e.to_string())?;
        let versions = deps
            .versions
            .versions(id)
            .await
            .map_err(|e| e.to_string())?;
        info!(canvas = %id, log_entries = stored.updates.len(), "room loaded");
        let (written_tx, written_rx) = mpsc::channel(1);
        let shared_writer = SharedWriter::start(
            deps.presence.clone(),
            deps.fanout.clone(),
            id,
            deps.node_id.clone(),
            &deps.tasks,
        );
        let last_sharing = edits::sharing(&canvas.doc().transact());
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
                    warn!(canvas = %id, %cause, "no cache of the encoded document for joins");
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
            presence_written: HashMap::new(),
            presence_pending: HashMap::new(),
            queued: Vec::new(),
            writing: false,
            written_tx,
            durable_seq,
            checkpoint_seq: stored.snapshot_seq,
            snapshot_bytes: stored.snapshot.len() as u64,
            idle_since: Some(Instant::now()),
            versions,
            dirty_by: None,
            last_version_at: Instant::now(),
            stamped: HashMap::new(),
            doc_writes,
            full_state: None,
        };
        Ok((room, written_rx))
    }

    async fn serve(
        mut self,
        mut rx: mpsc::Receiver<RoomCmd>,
        mut written_rx: mpsc::Receiver<Written>,
    ) {
        let shutdown = self.deps.shutdown.clone();
        let idle = self.deps.config.idle_unload;
        let mut refresh = tokio::time::interval(
            self.deps
                .config
                .checkpoint_every
                .max(Duration::from_secs(1)),
        );
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Checks for an automatic version at least every 30 s, or every interval if shorter.
        let mut version_timer = tokio::time::interval(
            self.deps
                .config
                .version_interval
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
        );
        version_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let idle_deadline = self.idle_since.map(|since| since + idle);
            let presence_due = self.presence_due();
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.shut_down(&mut rx, &mut written_rx).await;
                    return;
                }
                Some(written) = written_rx.recv() => self.on_written(written).await,
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
                _ = sleep_until_opt(presence_due), if presence_due.is_some() => {
                    self.flush_presence();
                    Flow::Continue
                }
                _ = sleep_until_opt(idle_deadline), if idle_deadline.is_some() && !self.writing && self.queued.is_empty() => {
                    self.unload(&mut rx).await;
                    return;
                }
                _ = refresh.tick() => {
                    // Keeps `canvas:state:{id}` alive while people stay connected.
                    if !self.conns.is_empty() {
                        self.publish_active_users();
                    }
                    // Checkpoints after a while, not only after many updates, so a slowly
                    // edited canvas does not keep a long log.
                    if !self.writing && self.queued.is_empty() {
                        self.checkpoint().await;
                    }
                    Flow::Continue
                }
                _ = version_timer.tick() => {
                    if self.shared() {
                        self.refresh_versions().await;
                    }
                    if !self.writing && self.queued.is_empty() {
                        self.auto_version().await;
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
    async fn dispatch(&mut self, cmd: RoomCmd, written_rx: &mut mpsc::Receiver<Written>) -> Flow {
        match cmd {
            RoomCmd::Versions(cmd, reply) => self.version_command(cmd, reply, written_rx).await,
            cmd => self.handle(cmd).await,
        }
    }

    /// Whether a command is a document update from a connection of this room (those are
    /// judged and applied in batches).
    fn batchable(&self, cmd: &RoomCmd) -> bool {
        match cmd {
            RoomCmd::Message(
                conn_id,
                Message::Sync(SyncMessage::Update(_) | SyncMessage::SyncStep2(_)),
            ) => self.conns.contains_key(conn_id),
            _ => false,
        }
    }

    /// Group commit in memory too: when `first` is a batchable update, takes the batchable
    /// updates already waiting behind it (up to [`MAX_BATCH`]). Returns the batch (if any)
    /// and the first command that could not join it, to run after it.
    fn take_batch(
        &self,
        first: RoomCmd,
        rx: &mut mpsc::Receiver<RoomCmd>,
    ) -> (Option<Batch>, Option<RoomCmd>) {
        if !self.batchable(&first) {
            return (None, Some(first));
        }
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            if !self.batchable(&cmd) {
                return (Some(batch), Some(cmd));
            }
            if let RoomCmd::Message(
                conn_id,
                Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update)),
            ) = cmd
            {
                batch.push((conn_id, update));
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        (Some(batch), None)
    }

    /// Inspects and applies a batch of updates with one verdict each
    /// ([`CanvasDoc::apply_batch`]: runs of typing are merged and applied in one
    /// transaction): a refusal is answered, an accepted update (or merged run) is queued for
    /// the log, its blocks are stamped, and every sender is acknowledged. A single update is
    /// a batch of one ([`Room::update`]). Every accepted update is queued for the log before
    /// any attribution stamp, so the log stays in causal order. An admin's update that changes `sharing` ends a round: the change is audited
    /// and every connection's role recomputed before the updates after it are judged.
    fn update_batch(&mut self, batch: Batch) {
        let mut pending: Vec<Numbered> = Vec::with_capacity(batch.len());
        for (conn_id, update) in batch {
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                continue;
            };
            conn.received += 1;
            pending.push((conn_id, conn.received, conn.user_id, update));
        }
        let mut senders: Vec<ConnId> = pending.iter().map(|(conn_id, ..)| *conn_id).collect();
        while !pending.is_empty() {
            pending = self.judge_round(pending);
        }
        senders.dedup();
        for conn_id in senders {
            self.ack(conn_id);
        }
    }

    /// One round of [`Room::update_batch`]: judges `pending` with the connections' current
    /// roles (updates of a connection closed meanwhile are dropped, as a closed connection's
    /// are), queues the log entries, stamps attribution, and handles a change to `sharing`.
    /// Returns the updates `apply_batch` left unjudged after such a change.
    fn judge_round(&mut self, pending: Vec<Numbered>) -> Vec<Numbered> {
        let (roles, round): (Vec<Role>, Vec<Numbered>) = pending
            .into_iter()
            .filter_map(|p| Some((self.conns.get(&p.0)?.role, p)))
            .unzip();
        let BatchApplied { verdicts, entries } = self.canvas.apply_batch(
            roles
                .iter()
                .zip(&round)
                .map(|(role, (.., update))| (*role, update.as_slice())),
        );
        let judged = verdicts.len();
        let mut stamps: HashMap<Uuid, (Vec<String>, Vec<String>)> = HashMap::new();
        for ((conn_id, seq, user, _), verdict) in round.iter().zip(verdicts) {
            if let Some(applied) = self.settle(*conn_id, *seq, *user, verdict) {
                let (touched, created) = stamps.entry(*user).or_default();
                touched.extend(applied.touched_blocks);
                created.extend(applied.new_blocks);
            }
        }
        let last = judged
            .checked_sub(1)
            .and_then(|i| round.get(i))
            .map(|p| p.0);
        let mut round: Vec<Option<Numbered>> = round.into_iter().map(Some).collect();
        for entry in entries {
            let (members, merged) = match entry {
                LogEntry::One(i) => (vec![i], None),
                LogEntry::Merged { update, members } => (members, Some(update)),
            };
            let taken: Vec<Numbered> = members
                .iter()
                .filter_map(|i| round.get_mut(*i)?.take())
                .collect();
            let senders = taken
                .iter()
                .map(|(conn_id, seq, ..)| (*conn_id, *seq))
                .collect();
            let Some(update) = merged.or_else(|| taken.into_iter().next().map(|p| p.3)) else {
                continue;
            };
            self.queued.push(Accepted {
                senders,
                update,
                done: None,
            });
        }
        for (user, (mut touched, created)) in stamps {
            touched.sort_unstable();
            touched.dedup();
            self.stamp_blocks(user, &touched, &created);
        }
        if let Some(conn_id) = last {
            self.sharing_changed(ChangedBy::Conn(conn_id));
        }
        round.into_iter().skip(judged).flatten().collect()
    }

    async fn handle(&mut self, cmd: RoomCmd) -> Flow {
        match cmd {
            RoomCmd::Join(request, reply) => self.join(request, reply),
            RoomCmd::Message(conn_id, message) => self.message(conn_id, message),
            RoomCmd::Leave(conn_id) => self.leave(conn_id),
            RoomCmd::Read(access, reply) => {
                let view = self.read(&access);
                let _ = reply.send(view);
            }
            RoomCmd::Access(change) => self.access_changed(change),
            RoomCmd::Remote(kind, payload) => self.remote(kind, payload).await,
            RoomCmd::Edit(request, reply) => {
                let answer = self.server_edit(*request);
                let _ = reply.send(answer);
            }
            RoomCmd::Versions(_, reply) => {
                // `serve` runs these with the writer's channel; nothing else sends them here.
                let _ = reply.send(VersionReply::Gone);
            }
            RoomCmd::Close(code, reason) => {
                self.close_all(code, &reason);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn sharing(&self) -> Sharing {
        edits::sharing(&self.canvas.doc().transact())
    }

    /// A membership or an archiving of this canvas's project changed: the connections it
    /// concerns get their new role, or are closed.
    fn access_changed(&mut self, change: AccessChange) {
        let project = match change {
            AccessChange::ProjectRole { project_id, .. }
            | AccessChange::ProjectArchived { project_id, .. } => project_id,
        };
        if project != self.record.project_id {
            return;
        }
        for conn in self.conns.values_mut() {
            match change {
                AccessChange::ProjectRole { user_id, role, .. } if conn.user_id == user_id => {
                    conn.access.project_role = role;
                }
                AccessChange::ProjectArchived { archived, .. } => conn.access.archived = archived,
                AccessChange::ProjectRole { .. } => {}
            }
        }
        self.reauthorize();
    }

    /// Makes a change for a REST call: checks the caller's role, applies the change as a
    /// server edit, queues it for the durable log (it is relayed once durable, like any
    /// update) and audits what it did to sharing.
    fn server_edit(&mut self, request: EditRequest) -> EditReply {
        let role = effective_role(&request.access, &self.sharing());
        if role.is_none_or(|r| r < request.required) {
            return EditReply::Forbidden(role);
        }
        let (result, update) = self.canvas.edit(request.edit);
        let (done, durable) = oneshot::channel();
        let empty = versions::is_empty_update(&update);
        if let Err(message) = result {
            // An edit that fails must not have written anything: `edit` functions check
            // before they write.
            if empty {
                return EditReply::Invalid(message);
            }
            error!(canvas = %self.id, %message, "a failed server edit changed the document");
        }
        if empty {
            let _ = done.send(());
        } else {
            if let Some(user) = request.actor.user_id {
                self.dirty_by = Some(user);
            }
            self.queued.push(Accepted::server(update, Some(done)));
        }
        self.sharing_changed(ChangedBy::Rest(&request.actor));
        EditReply::Applied {
            durable,
            view: Box::new(RoomView {
                json: self.json(),
                sharing: self.sharing(),
            }),
        }
    }

    fn join(&mut self, request: JoinRequest, reply: oneshot::Sender<JoinReply>) {
        let Some(role) = effective_role(&request.access, &self.sharing()) else {
            let _ = reply.send(JoinReply::Forbidden);
            return;
        };
        if reply.send(JoinReply::Joined(role)).is_err() {
            return; // the connection went away while waiting
        }
        let out = request.out;
        // y-websocket: the server opens with its sync step 1, then the awareness it knows,
        // each as its own frame (the JS client reads one message per frame).
        let _ = out.try_send(Outbound::Frame(
            protocol::sync_step1(&self.canvas.state_vector()).into(),
        ));
        let known = self.presence.full_update();
        if !known.clients.is_empty() {
            let _ = out.try_send(Outbound::Frame(protocol::awareness(&known).into()));
        }
        debug!(canvas = %self.id, conn = request.conn_id, user = %request.access.user_id, %role, "joined");
        self.conns.insert(
            request.conn_id,
            Conn {
                user_id: request.access.user_id,
                access: request.access.clone(),
                username: request.username,
                role,
                out,
                wants_acks: request.wants_acks,
                received: 0,
                unsaved: VecDeque::new(),
                acked: 0,
                clients: HashSet::new(),
                actor: request.actor,
            },
        );
        self.idle_since = None;
        self.publish_active_users();
    }

    /// After a change: if it touched `sharing` (grants, visibility, link, embedding), audits
    /// it as the change of `by` and rechecks every connection's role. A change that did not
    /// touch sharing cannot change anyone's role.
    fn sharing_changed(&mut self, by: ChangedBy<'_>) {
        if !self.canvas.take_sharing_changed() {
            return;
        }
        let now = self.sharing();
        if now != self.last_sharing {
            let before = std::mem::replace(&mut self.last_sharing, now);
            let by = match by {
                ChangedBy::Conn(conn_id) => self
                    .conns
                    .get(&conn_id)
                    .map(|c| (c.actor.clone(), "document")),
                ChangedBy::Rest(actor) => Some((actor.clone(), "rest")),
                // Audited by the node where it was made.
                ChangedBy::OtherNode => None,
            };
            if let Some((actor, source)) = by {
                let changes = serde_json::json!({
                    "source": source,
                    "before": audit_sharing(&before),
                    "after": audit_sharing(&self.last_sharing),
                });
                self.deps.auditor.in_background(
                    actor,
                    "canvas.sharing.update",
                    ("canvas", Some(self.id)),
                    changes,
                );
            }
        }
        self.reauthorize();
    }

    /// Recomputes every connection's role from its project access and the current sharing
    /// settings: a connection left with no role is closed with 4403, the others get their
    /// new role for their next update.
    fn reauthorize(&mut self) {
        let sharing = self.sharing();
        let mut revoked = Vec::new();
        for (id, conn) in &mut self.conns {
            match effective_role(&conn.access, &sharing) {
                Some(role) => {
                    if role != conn.role {
                        info!(canvas = %self.id, conn = id, user = %conn.user_id, from = %conn.role, to = %role, "role changed");
                        conn.role = role;
                    }
                }
                None => revoked.push(*id),
            }
        }
        for id in revoked {
            info!(canvas = %self.id, conn = id, "access revoked; closing");
            self.close_conn(
                id,
                close::FORBIDDEN,
                "your access to this canvas was revoked".to_owned(),
            );
        }
    }

    /// Tells the shared store which users are connected here.
    fn publish_active_users(&self) {
        let mut users: Vec<Uuid> = self.conns.values().map(|c| c.user_id).collect();
        users.sort();
        users.dedup();
        self.shared_writer.send(SharedOp::Active(users));
    }

    /// Writes a user's presence from their connection's awareness state (throttled).
    fn write_presence(&mut self, conn_id: ConnId, changed: &[ClientID]) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let now = Instant::now();
        let held_back = self
            .presence_written
            .get(&conn.user_id)
            .is_some_and(|at| now.duration_since(*at) < PUT_INTERVAL);
        let state = changed
            .iter()
            .rev()
            .find_map(|id| self.presence.state(*id))
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .unwrap_or(serde_json::Value::Null);
        let entry = PresenceEntry {
            user_id: conn.user_id,
            username: conn.username.clone(),
            cursor: state
                .get("cursor")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            selection: state
                .get("selection")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            last_seen: chrono::Utc::now(),
        };
        if held_back {
            self.presence_pending.insert(conn.user_id, entry);
            return;
        }
        self.presence_pending.remove(&conn.user_id);
        self.presence_written.insert(conn.user_id, now);
        self.shared_writer.send(SharedOp::Put(entry));
    }

    /// When the next held-back presence write is due, if any.
    fn presence_due(&self) -> Option<Instant> {
        self.presence_pending
            .keys()
            .filter_map(|user| self.presence_written.get(user))
            .min()
            .map(|at| *at + PUT_INTERVAL)
    }

    /// Writes the held-back presence entries whose interval is over.
    fn flush_presence(&mut self) {
        let now = Instant::now();
        let due: Vec<Uuid> = self
            .presence_pending
            .keys()
            .filter(|user| {
                self.presence_written
                    .get(*user)
                    .is_none_or(|at| now.duration_since(*at) >= PUT_INTERVAL)
            })
            .copied()
            .collect();
        for user in due {
            if let Some(mut entry) = self.presence_pending.remove(&user) {
                entry.last_seen = chrono::Utc::now();
                self.presence_written.insert(user, now);
                self.shared_writer.send(SharedOp::Put(entry));
            }
        }
    }

    fn leave(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.remove(&conn_id) else {
            return;
        };
        let ids: Vec<ClientID> = conn.clients.iter().copied().collect();
        for id in &ids {
            self.awareness_owner.remove(id);
        }
        if let Some(removal) = self.presence.remove(&ids) {
            self.publish(LiveKind::Awareness, &removal.encode_v1());
            self.broadcast(None, protocol::awareness(&removal).into());
        }
        debug!(canvas = %self.id, conn = conn_id, "left");
        if !self.conns.values().any(|c| c.user_id == conn.user_id) {
            self.presence_written.remove(&conn.user_id);
            self.presence_pending.remove(&conn.user_id);
            self.shared_writer.send(SharedOp::Remove(conn.user_id));
        }
        self.publish_active_users();
        if self.conns.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    fn message(&mut self, conn_id: ConnId, message: Message) {
        if !self.conns.contains_key(&conn_id) {
            return;
        }
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let frame = self.step2_for(&sv);
                self.send(conn_id, frame);
            }
            Message::Sync(SyncMessage::SyncStep2(update))
            | Message::Sync(SyncMessage::Update(update)) => {
                self.update(conn_id, update);
            }
            Message::Awareness(update) => self.awareness(conn_id, update),
            Message::AwarenessQuery => {
                let known = self.presence.full_update();
                self.send(conn_id, protocol::awareness(&known).into());
            }
            // Auth messages are server-to-client only; custom messages from clients have no
            // meaning yet. Both are ignored, as y-websocket servers do.
            Message::Auth(_) | Message::Custom(..) => {}
        }
    }

    fn update(&mut self, conn_id: ConnId, update: Vec<u8>) {
        self.update_batch(vec![(conn_id, update)]);
    }

    /// What follows a verdict on one update: an accepted one waits for its durable write
    /// (the caller queues it for the log, even if its connection closed meanwhile: it is
    /// applied, so it must be stored and relayed) and is returned for attribution; a
    /// malformed one closes its connection; a refused one is answered with a typed error.
    fn settle(
        &mut self,
        conn_id: ConnId,
        seq: u64,
        user: Uuid,
        verdict: Result<Applied, Refusal>,
    ) -> Option<Applied> {
        match verdict {
            Ok(applied) if applied.noop => None,
            Ok(applied) => {
                if let Some(conn) = self.conns.get_mut(&conn_id) {
                    conn.unsaved.push_back(seq);
                }
                self.dirty_by = Some(user);
                Some(applied)
            }
            Err(refusal) if refusal.code == RefusalCode::MalformedUpdate => {
                warn!(canvas = %self.id, conn = conn_id, %refusal, "malformed update; closing");
                self.close_conn(
                    conn_id,
                    close::MALFORMED,
                    format!("malformed update: {}", refusal.message),
                );
                None
            }
            Err(refusal) => {
                debug!(canvas = %self.id, conn = conn_id, %refusal, "update refused");
                let body = Extension::Error(ErrorBody {
                    code: refusal.code.as_str().to_owned(),
                    message: refusal.message,
                    seq: Some(seq),
                });
                self.send(conn_id, protocol::encode_extension(&body).into());
                None
            }
        }
    }

    fn awareness(&mut self, conn_id: ConnId, mut update: AwarenessUpdate) {
        // A connection speaks only for the awareness clients it announced first: entries for
        // a client id another connection owns are dropped, so nobody can fake or erase
        // someone else's cursor.
        update.clients.retain(|id, _| {
            self.awareness_owner
                .get(id)
                .is_none_or(|owner| *owner == conn_id)
        });
        if update.clients.is_empty() {
            return;
        }
        let frame: Bytes = protocol::awareness(&update).into();
        if self.shared() {
            self.publish(LiveKind::Awareness, &update.encode_v1());
        }
        let change = self.presence.apply(&update);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            for id in change.added.iter().chain(&change.updated) {
                conn.clients.insert(*id);
                self.awareness_owner.insert(*id, conn_id);
            }
            for id in &change.removed {
                conn.clients.remove(id);
                self.awareness_owner.remove(id);
            }
        }
        let changed: Vec<ClientID> = change
            .added
            .iter()
            .chain(&change.updated)
            .copied()
            .collect();
        if !changed.is_empty() {
            self.write_presence(conn_id, &changed);
        }
        // Echo to the sender too: y-websocket drops a socket that hears nothing for 30 s,
        // and the echo of its 15 s awareness renewal keeps it alive.
        self.broadcast(None, frame);
    }

    /// Whether other server nodes may share this canvas.
    fn shared(&self) -> bool {
        self.deps.fanout.is_shared()
    }

    fn publish(&self, kind: LiveKind, payload: &[u8]) {
        if self.shared() {
            let message = encode_live(&self.deps.node_id, kind, payload);
            self.shared_writer.send(SharedOp::Publish(message));
        }
    }

    /// A live message from another node: its durable update is applied (without role or
    /// schema checks: its node checked it) and relayed to this node's connections; its
    /// awareness is merged and relayed.
    async fn remote(&mut self, kind: LiveKind, payload: Vec<u8>) {
        match kind {
            LiveKind::Update => {
                match self.canvas.apply_remote(&payload) {
                    Ok(()) => {}
                    Err(DocError::MissingDependency(_)) => {
                        // A message was missed (pub/sub delivers at most once): the log has it.
                        self.catch_up().await;
                        if let Err(cause) = self.canvas.apply_remote(&payload) {
                            warn!(canvas = %self.id, %cause, "remote update still not applicable");
                            return;
                        }
                    }
                    Err(cause) => {
                        warn!(canvas = %self.id, %cause, "bad update from another node");
                        return;
                    }
                }
                self.broadcast(None, protocol::update(&payload).into());
                self.sharing_changed(ChangedBy::OtherNode);
            }
            LiveKind::Access => match serde_json::from_slice::<AccessChange>(&payload) {
                Ok(change) => self.access_changed(change),
                Err(cause) => {
                    warn!(canvas = %self.id, %cause, "bad access change from another node")
                }
            },
            LiveKind::Awareness => {
                let Ok(update) = AwarenessUpdate::decode_v1(&payload) else {
                    warn!(canvas = %self.id, "bad awareness from another node");
                    return;
                };
                let change = self.presence.apply(&update);
                for id in change.added.iter().chain(&change.updated) {
                    self.awareness_owner.insert(*id, REMOTE);
                }
                for id in &change.removed {
                    self.awareness_owner.remove(id);
                }
                self.broadcast(None, protocol::awareness(&update).into());
            }
        }
    }

    /// Applies every durable log entry this document lacks (written by other nodes) and
    /// relays what was new to this node's connections. Returns the last log sequence number
    /// if the document now holds every entry up to it.
    async fn catch_up(&mut self) -> Option<i64> {
        let stored = match self.deps.canvases.load_document(self.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return None,
            Err(cause) => {
                warn!(canvas = %self.id, %cause, "cannot read the log to catch up");
                return None;
            }
        };
        let before = self.canvas.state_vector();
        let mut complete = true;
        let entries = std::iter::once(stored.snapshot.as_slice())
            .filter(|s| !s.is_empty())
            .chain(stored.updates.iter().map(|(_, u)| u.as_slice()));
        for entry in entries {
            if let Err(cause) = self.canvas.apply_remote(entry) {
                warn!(canvas = %self.id, %cause, "log entry not applicable while catching up");
                complete = false;
            }
        }
        if self.canvas.state_vector() != before {
            let diff = self.canvas.encode_diff(&before);
            self.broadcast(None, protocol::update(&diff).into());
            self.sharing_changed(ChangedBy::OtherNode);
        }
        complete.then(|| {
            stored
                .updates
                .last()
                .map_or(stored.snapshot_seq, |(seq, _)| *seq)
        })
    }

    /// Hands the queued updates to a writer task, if none is in flight.
    fn start_write(&mut self) {
        if self.writing || self.queued.is_empty() {
            return;
        }
        self.writing = true;
        let batch = std::mem::take(&mut self.queued);
        let store = self.deps.canvases.clone();
        let done = self.written_tx.clone();
        let id = self.id;
        self.deps.tasks.spawn(async move {
            let updates: Vec<Vec<u8>> = batch.iter().map(|a| a.update.clone()).collect();
            let result = store.append_updates(id, &updates).await;
            let _ = done.send(Written { batch, result }).await;
        });
    }

    async fn on_written(&mut self, written: Written) -> Flow {
        self.writing = false;
        match written.result {
            Ok(seq) => self.durable_seq = seq,
            Err(cause) => {
                // The updates are applied in memory but not durable. Close everyone: clients
                // keep their changes and resend them when they resync with a reloaded room.
                error!(canvas = %self.id, %cause, "durable write failed; closing the room");
                for conn in self.conns.values() {
                    let _ = conn
                        .out
                        .try_send(Outbound::Close(close::INTERNAL, "storage failure".into()));
                }
                self.conns.clear();
                return Flow::Stop;
            }
        }
        let mut senders = HashSet::new();
        for accepted in &written.batch {
            self.publish(LiveKind::Update, &accepted.update);
        }
        for accepted in written.batch {
            let except = accepted.relay_except();
            if let Some(done) = accepted.done {
                let _ = done.send(());
            }
            let frame: Bytes = protocol::update(&accepted.update).into();
            self.broadcast(except, frame);
            for (from, seq) in accepted.senders {
                if let Some(conn) = self.conns.get_mut(&from) {
                    if conn.unsaved.front() == Some(&seq) {
                        conn.unsaved.pop_front();
                    }
                    senders.insert(from);
                }
            }
        }
        for conn_id in senders {
            self.ack(conn_id);
        }
        if self.queued.is_empty()
            && checkpoint_due(
                self.durable_seq - self.checkpoint_seq,
                self.snapshot_bytes,
                self.deps.config.checkpoint_updates,
            )
        {
            self.checkpoint().await;
        }
        Flow::Continue
    }

    /// Sends the connection its durable acknowledgement, if it asked for them and it moved.
    fn ack(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let through = conn.ack_target();
        if !conn.wants_acks || through <= conn.acked {
            return;
        }
        conn.acked = through;
        let frame: Bytes = protocol::encode_extension(&Extension::Ack(Ack { through })).into();
        self.send(conn_id, frame);
    }

    /// Compacts the durable log into a snapshot. Only called with nothing queued or in
    /// flight, so the snapshot covers exactly the log up to `durable_seq`.
    async fn checkpoint(&mut self) {
        let mut upto = self.durable_seq;
        if self.shared() {
            // Other nodes append to the same log: the snapshot may only cover entries this
            // document holds, so take them all in first.
            match self.catch_up().await {
                Some(last) => upto = upto.max(last),
                None => return,
            }
        }
        if upto <= self.checkpoint_seq {
            return;
        }
        let state = self.canvas.encode_state();
        let view = self.json();
        match self
            .deps
            .canvases
            .checkpoint(self.id, &state, upto, &view)
            .await
        {
            Ok(()) => {
                debug!(canvas = %self.id, upto, bytes = state.len(), "checkpoint");
                self.checkpoint_seq = upto;
                self.snapshot_bytes = state.len() as u64;
            }
            // The log still holds everything: a failed checkpoint loses nothing.
            Err(cause) => warn!(canvas = %self.id, %cause, "checkpoint failed; will retry later"),
        }
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

    /// Sync step 2 for a client at `sv`. A client with an empty document (every new joiner)
    /// gets the cached encoding of the whole document while nothing has changed since.
    fn step2_for(&mut self, sv: &StateVector) -> Bytes {
        let encode =
            |canvas: &CanvasDoc| Bytes::from(protocol::sync_step2(&canvas.encode_diff(sv)));
        let Some(writes) = self.doc_writes.as_ref().filter(|_| sv.is_empty()) else {
            return encode(&self.canvas);
        };
        let now = writes.load(Ordering::Relaxed);
        if let Some((_, frame)) = self.full_state.as_ref().filter(|(at, _)| *at == now) {
            return frame.clone();
        }
        let frame = encode(&self.canvas);
        self.full_state = Some((now, frame.clone()));
        frame
    }

    fn send(&mut self, conn_id: ConnId, frame: Bytes) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        if conn.out.try_send(Outbound::Frame(frame)).is_err() {
            self.drop_slow(conn_id);
        }
    }

    /// Sends a frame to every connection but `except`.
    fn broadcast(&mut self, except: Option<ConnId>, frame: Bytes) {
        let mut slow = Vec::new();
        for (id, conn) in &self.conns {
            if Some(*id) != except && conn.out.try_send(Outbound::Frame(frame.clone())).is_err() {
                slow.push(*id);
            }
        }
        for id in slow {
            self.drop_slow(id);
        }
    }

    /// A connection whose queue is full (or whose task ended) is dropped: its writer sees the
    /// channel close and closes the socket with 1013; the client reconnects and resyncs.
    fn drop_slow(&mut self, conn_id: ConnId) {
        warn!(canvas = %self.id, conn = conn_id, "connection cannot keep up; dropping it");
        self.leave(conn_id);
    }

    /// Closes every connection and clears this node's presence for the canvas.
    fn close_all(&mut self, code: u16, reason: &str) {
        let mut users = HashSet::new();
        let mut clients = Vec::new();
        for conn in self.conns.values() {
            let _ = conn.out.try_send(Outbound::Close(code, reason.to_owned()));
            users.insert(conn.user_id);
            clients.extend(conn.clients.iter().copied());
        }
        // Other nodes' clients must see this node's people leave.
        if let Some(removal) = self.presence.remove(&clients) {
            self.publish(LiveKind::Awareness, &removal.encode_v1());
        }
        self.conns.clear();
        for user in users {
            self.shared_writer.send(SharedOp::Remove(user));
        }
        self.shared_writer.send(SharedOp::Active(Vec::new()));
    }

    fn close_conn(&mut self, conn_id: ConnId, code: u16, reason: String) {
        if let Some(conn) = self.conns.get(&conn_id) {
            let _ = conn.out.try_send(Outbound::Close(code, reason));
        }
        self.leave(conn_id);
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
        info!(canvas = %self.id, "room unloaded");
    }

    /// Server shutdown: finish the writes, checkpoint, close every connection with 1001.
    async fn shut_down(
        mut self,
        rx: &mut mpsc::Receiver<RoomCmd>,
        written_rx: &mut mpsc::Receiver<Written>,
    ) {
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                RoomCmd::Message(conn_id, message) => self.message(conn_id, message),
                other => reply_gone(other),
            }
        }
        loop {
            self.start_write();
            if !self.writing {
                break;
            }
            match written_rx.recv().await {
                Some(written) => {
                    if let Flow::Stop = self.on_written(written).await {
                        return;
                    }
                }
                None => break,
            }
        }
        self.auto_version().await;
        self.checkpoint().await;
        for conn in self.conns.values() {
            let _ = conn.out.try_send(Outbound::Close(
                close::GOING_AWAY,
                "server shutting down".into(),
            ));
        }
        self.unregister.now();
        info!(canvas = %self.id, "room flushed for shutdown");
    }
}

/// Hands the other nodes' live messages to the room (this node's own are left out).
async fn forward_remote(
    mut remote: mpsc::Receiver<Vec<u8>>,
    room: mpsc::WeakSender<RoomCmd>,
    node_id: String,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = remote.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let Some((node, kind, payload)) = decode_live(&message) else {
            warn!("malformed live message from another node");
            continue;
        };
        if node == node_id {
            continue;
        }
        let Some(room) = room.upgrade() else { return };
        if room
            .send(RoomCmd::Remote(kind, payload.to_vec()))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn reply_gone(cmd: RoomCmd) {
    match cmd {
        RoomCmd::Join(_, reply) => {
            let _ = reply.send(JoinReply::Gone);
        }
        RoomCmd::Read(_, reply) => {
            let _ = reply.send(ReadReply::Gone);
        }
        RoomCmd::Edit(request, reply) => {
            let _ = reply.send(EditReply::Gone(request));
        }
        RoomCmd::Versions(_, reply) => {
            let _ = reply.send(VersionReply::Gone);
        }
        RoomCmd::Message(..)
        | RoomCmd::Leave(_)
        | RoomCmd::Access(_)
        | RoomCmd::Remote(..)
        | RoomCmd::Close(..) => {}
    }
}

fn drain_as_gone(rx: &mut mpsc::Receiver<RoomCmd>) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        reply_gone(cmd);
    }
}

/// Snapshot bytes per log entry a room lets its log grow to before it compacts it.
const SNAPSHOT_BYTES_PER_LOG_ENTRY: u64 = 32;

/// Whether a room compacts its log now, after a write: once the log holds at least
/// `min_entries` entries (`--checkpoint-updates`) and at least one entry per
/// [`SNAPSHOT_BYTES_PER_LOG_ENTRY`] bytes of the last snapshot.
///
/// A checkpoint encodes and writes the whole document, so with a fixed entry count its cost
/// per update grows with the document: on the 104,852-character automerge-paper document
/// (a 267 KB snapshot) a checkpoint every 1,000 keystrokes took a quarter of the server's
/// time under W2 (BENCHMARKS.md). Scaling the interval with the snapshot keeps the cost per
/// update flat, and loading stays bounded: replaying an entry costs about as much as loading
/// 50 bytes of snapshot, so the log takes at most about 1.5x the snapshot's load time to
/// replay. Quiet rooms still checkpoint on `--checkpoint-secs`, and every room when it unloads.
fn checkpoint_due(entries: i64, snapshot_bytes: u64, min_entries: u64) -> bool {
    u64::try_from(entries)
        .is_ok_and(|n| n >= min_entries && n >= snapshot_bytes / SNAPSHOT_BYTES_PER_LOG_ENTRY)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How long shutdown waits for rooms to flush before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Sharing settings as the audit log records them: the public link token itself is a
/// secret, so only whether there is one.
fn audit_sharing(sharing: &Sharing) -> serde_json::Value {
    let mut value = serde_json::json!(sharing);
    if let Some(link) = value.get_mut("public_link") {
        *link = serde_json::json!(!link.is_null());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::checkpoint_due;

    #[test]
    fn small_documents_checkpoint_on_the_entry_count() {
        // a 2 KB canvas
        assert!(checkpoint_due(1000, 2_000, 1000));
        assert!(!checkpoint_due(999, 2_000, 1000));
        // a first checkpoint (no snapshot yet)
        assert!(checkpoint_due(1000, 0, 1000));
    }

    #[test]
    fn large_documents_let_the_log_grow_with_the_snapshot() {
        // the automerge-paper document: a 267 KB snapshot
        assert!(!checkpoint_due(1000, 267_000, 1000));
        assert!(!checkpoint_due(8_000, 267_000, 1000));
        assert!(checkpoint_due(8_400, 267_000, 1000));
    }

    #[test]
    fn a_log_behind_the_snapshot_never_checkpoints() {
        assert!(!checkpoint_due(-1, 0, 0));
    }
}
