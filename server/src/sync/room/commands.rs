//! What a room is asked and what it answers: the commands connections, REST handlers and
//! other nodes send it, and the typed replies (a view of the document, a version record).

use crate::domain::{Actor, ProjectAccess};
use crate::sync::shared::{AccessChange, LiveKind};

use bytes::Bytes;
use canvas_analytics::QueryResult;
use canvas_engine::Role;
use canvas_engine::bindings::QueryBinding;
use canvas_engine::inspect::Refusal;
use canvas_engine::protocol::DataError;
use canvas_engine::sharing::Sharing;
use canvas_engine::yrs::sync::Message;
use canvas_engine::yrs::{StateVector, TransactionMut};
use canvas_storage::{StorageError, VersionRecord};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// Close codes of the wire protocol (docs/PROTOCOL.md, "Close codes").
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
    /// The connection broke a rule that is not about its input (it sent nothing within the
    /// first-message timeout); clients may reconnect.
    pub const POLICY: u16 = 1008;
    /// Something failed inside the server; clients reconnect and resync.
    pub const INTERNAL: u16 = 1011;
    /// The connection could not keep up with the room; it may reconnect.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// What a room sends to a connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One protocol message, as one binary frame.
    Frame(Bytes),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// One item of a connection's queue: an [`Outbound`] behind one pointer. A tokio channel
/// allocates its first block of 32 slots when it is made, so every connection pays 32 times
/// the item's size while idle: 256 bytes at 8 bytes an item instead of 1,280 with the enum
/// inline (W4, memory per connection). A relayed frame is one allocation shared by every
/// connection it goes to.
#[derive(Debug, Clone)]
pub struct Queued(std::sync::Arc<Outbound>);

const _: () = assert!(std::mem::size_of::<Queued>() == 8);

impl Queued {
    /// A frame to send.
    pub fn frame(frame: Bytes) -> Queued {
        Queued(std::sync::Arc::new(Outbound::Frame(frame)))
    }

    /// A close with this code and reason.
    pub fn close(code: u16, reason: impl Into<String>) -> Queued {
        Queued(std::sync::Arc::new(Outbound::Close(code, reason.into())))
    }

    /// What it carries.
    pub fn get(&self) -> &Outbound {
        &self.0
    }

    /// What it carries, owned (cloned when the item is shared).
    pub fn into_inner(self) -> Outbound {
        std::sync::Arc::unwrap_or_clone(self.0)
    }
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
    pub out: mpsc::Sender<Queued>,
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
        /// The audit write of the sharing change it made, if it made one: a REST call
        /// answers only once its change is in the audit trail.
        audited: Option<tokio::task::JoinHandle<()>>,
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

/// A yrs v1 update submitted over REST (`POST /canvases/{id}/updates`, or a block `PATCH`
/// made into one): judged by the inspector with the caller's role, applied, stamped, made
/// durable and relayed exactly like a connection's update.
pub struct SubmitRequest {
    /// The caller's access; the room adds the sharing part.
    pub access: ProjectAccess,
    /// Who is asking, for the audit of a sharing change the update makes.
    pub actor: Actor,
    /// The update (yrs v1).
    pub update: Vec<u8>,
    /// A block whose JSON view the reply carries, as it is after the update.
    pub block: Option<String>,
}

impl std::fmt::Debug for SubmitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitRequest")
            .field("user", &self.access.user_id)
            .field("bytes", &self.update.len())
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

/// The room's answer to a submitted update.
#[derive(Debug)]
pub enum SubmitReply {
    /// Accepted (or already in the document: nothing to do).
    Accepted {
        /// Completes once the update and the server's edits it caused (attribution stamps)
        /// are in the durable log, with everything accepted before them; fails if a write
        /// failed.
        durable: oneshot::Receiver<()>,
        /// The audit write of the sharing change it made, if it made one.
        audited: Option<tokio::task::JoinHandle<()>>,
        /// The JSON view of the block asked for (`None`: not asked, or not in the document).
        block: Option<serde_json::Value>,
        /// Whether the update changed nothing.
        noop: bool,
    },
    /// The caller may not change the canvas: no role at all (`None`), or a viewer's.
    Forbidden(Option<Role>),
    /// The inspector refused the update (the codes of message 101); nothing changed.
    Refused(Refusal),
    /// This room instance is unloading or failed; ask the registry again with the request.
    Gone(Box<SubmitRequest>),
}

/// The room's answer to a read of the document's state.
#[derive(Debug)]
pub enum StateReply {
    /// What a peer with the given state vector lacks (everything, without one), and the
    /// document's state vector at that moment; both yrs v1.
    State {
        /// The update.
        update: Vec<u8>,
        /// The document's state vector.
        state_vector: Vec<u8>,
        /// The caller's role on the canvas.
        role: Role,
    },
    /// The user has no role on this canvas.
    Forbidden,
    /// This room instance is unloading or failed; ask the registry again.
    Gone,
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
    Join(Box<JoinRequest>, oneshot::Sender<JoinReply>),
    /// A decoded protocol message from a connection.
    Message(ConnId, Message),
    /// A connection left.
    Leave(ConnId),
    /// A REST read of the live document, by a user with this project access.
    Read(Box<ProjectAccess>, oneshot::Sender<ReadReply>),
    /// A membership or an archiving changed (on this node or another): the connections it
    /// concerns get their new role, or are closed with 4403.
    Access(AccessChange),
    /// A live message from another server node (a durable update or awareness).
    Remote(LiveKind, Vec<u8>),
    /// The subscription to the other nodes' live messages broke and was made again: what
    /// they published in between is lost.
    Resubscribed,
    /// A change of the document for a REST call.
    Edit(Box<EditRequest>, oneshot::Sender<EditReply>),
    /// A yrs update submitted over REST; answered once it is durable (or refused).
    Submit(Box<SubmitRequest>, oneshot::Sender<SubmitReply>),
    /// A REST read of the document's state (the diff from a state vector, if given).
    State(
        Box<(ProjectAccess, Option<StateVector>)>,
        oneshot::Sender<StateReply>,
    ),
    /// A version history command (name a version, restore); answered once durable.
    Versions(Box<VersionCmd>, oneshot::Sender<VersionReply>),
    /// The canvas was deleted: close every connection with this code and stop.
    Close(u16, String),
    /// The data side answered request `ticket` for a bound block (see `bound.rs`).
    BlockData(String, u64, Box<Fetched>),
    /// An execution started for a bound block (its result was not in the cache): every
    /// connection hears that the block's data is being computed.
    BlockRunning(String, RunningFor, Uuid),
    /// A data source of the canvas's project was uploaded or synced: bound blocks are
    /// resolved again.
    DataChanged,
    /// A block was refreshed by hand (`POST .../blocks/{block_id}/refresh`): this result,
    /// computed fresh for `binding`, supersedes any request in flight (see `bound.rs`).
    Refreshed(String, Box<QueryBinding>, Box<Fetched>),
    /// The live presence of the users connected here (what every connected client sees
    /// now, not the throttled shared store).
    Presence(oneshot::Sender<Vec<canvas_storage::PresenceEntry>>),
}

// A tokio channel allocates its first block of 32 messages when it is made, so every loaded
// room pays 32 times the size of a command whether anything is sent or not: large requests
// travel boxed (W4, memory per room, BENCHMARKS.md).
const _: () = assert!(std::mem::size_of::<RoomCmd>() <= 64);

pub(super) fn reply_gone(cmd: RoomCmd) {
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
        RoomCmd::Submit(request, reply) => {
            let _ = reply.send(SubmitReply::Gone(request));
        }
        RoomCmd::State(_, reply) => {
            let _ = reply.send(StateReply::Gone);
        }
        RoomCmd::Versions(_, reply) => {
            let _ = reply.send(VersionReply::Gone);
        }
        RoomCmd::Presence(reply) => {
            let _ = reply.send(Vec::new());
        }
        RoomCmd::Message(..)
        | RoomCmd::Leave(_)
        | RoomCmd::Access(_)
        | RoomCmd::Remote(..)
        | RoomCmd::Resubscribed
        | RoomCmd::BlockData(..)
        | RoomCmd::BlockRunning(..)
        | RoomCmd::DataChanged
        | RoomCmd::Refreshed(..)
        | RoomCmd::Close(..) => {}
    }
}

pub(super) fn drain_as_gone(rx: &mut mpsc::Receiver<RoomCmd>) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        reply_gone(cmd);
    }
}

/// What a user asks of a canvas's history.
#[derive(Debug, Clone)]
pub enum VersionOp {
    /// Record the live document as a named version.
    Name {
        /// The version's description (1 to 500 characters).
        changes: String,
    },
    /// Make the document equal to version `version` (except `sharing`).
    Restore {
        /// The version to restore.
        version: i64,
    },
    /// Bring one block back as it was in version `version`.
    RestoreBlock {
        /// The version to take the block from.
        version: i64,
        /// The block id.
        block_id: String,
    },
}

/// A history command with who asks.
#[derive(Debug, Clone)]
pub struct VersionCmd {
    /// The caller's project access (the room adds sharing grants); editors and up may.
    pub access: ProjectAccess,
    /// What to do.
    pub op: VersionOp,
}

/// Why a history command failed.
#[derive(Debug, thiserror::Error)]
pub enum VersionFailure {
    /// The caller has no role on the canvas, or only a viewer's.
    #[error("{0}")]
    Forbidden(String),
    /// No such version, or no such block in it.
    #[error("{0}")]
    NotFound(String),
    /// The block cannot be restored into the current document.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed or the stored version is unreadable; the cause is kept (its message
    /// and source are this error's).
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl From<StorageError> for VersionFailure {
    fn from(e: StorageError) -> Self {
        VersionFailure::Internal(Box::new(e))
    }
}

/// What a history command did, once durable.
#[derive(Debug, Clone)]
pub enum VersionOutcome {
    /// `Name`: the version recorded.
    Named(VersionRecord),
    /// `Restore`: the version recorded (kind `restore`) and the canvas after it.
    Restored {
        /// The new version.
        version: VersionRecord,
        /// The canvas as JSON (the seed's shape) after the restore.
        canvas: Value,
    },
    /// `RestoreBlock`: the version recorded and the block as it is now.
    BlockRestored {
        /// The new version.
        version: VersionRecord,
        /// The block as JSON, as it is after the restore (`None`: not in the document).
        block: Option<Value>,
    },
}

impl VersionOutcome {
    /// The version the command recorded.
    pub fn version(&self) -> &VersionRecord {
        match self {
            VersionOutcome::Named(version)
            | VersionOutcome::Restored { version, .. }
            | VersionOutcome::BlockRestored { version, .. } => version,
        }
    }

    /// The REST body: the version record for `Name`, `{version, canvas}` for `Restore`,
    /// `{block, version}` for `RestoreBlock`.
    pub fn into_json(self) -> Value {
        match self {
            VersionOutcome::Named(version) => serde_json::json!(version),
            VersionOutcome::Restored { version, canvas } => {
                serde_json::json!({ "version": version, "canvas": canvas })
            }
            VersionOutcome::BlockRestored { version, block } => {
                serde_json::json!({ "block": block, "version": version })
            }
        }
    }
}

/// The room's answer to a history command.
#[derive(Debug)]
pub enum VersionReply {
    /// What the command did, or why it failed.
    Done(Result<VersionOutcome, VersionFailure>),
    /// This room instance is unloading or failed; ask the registry again.
    Gone,
}

/// What the data side answers for a binding.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The execution recorded for it (looked up in the cache, or run), if one was.
    pub execution_id: Option<Uuid>,
    /// The result, or why there is none.
    pub result: Result<Arc<QueryResult>, DataError>,
    /// Whether the result came from the cache.
    pub from_cache: bool,
    /// The result's key in the shared result cache (to read it again without running it).
    pub key: Option<String>,
}

impl Fetched {
    /// Nothing fetched, for this reason.
    pub fn failed(error: DataError) -> Fetched {
        Fetched {
            execution_id: None,
            result: Err(error),
            from_cache: false,
            key: None,
        }
    }
}

/// What [`BlockResolver::fetch`] returns: a future the room runs off its task.
pub type FetchFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Fetched> + Send>>;

/// What [`BlockResolver::cached`] returns.
pub type CachedFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Arc<QueryResult>>> + Send>>;

/// Told the id of the execution when one starts (the result was not in the cache).
pub type StartedTx = oneshot::Sender<Uuid>;

/// Who asked for the execution a [`RoomCmd::BlockRunning`] is about.
#[derive(Debug)]
pub enum RunningFor {
    /// The room's own request with this ticket.
    Request(u64),
    /// A refresh by hand of this binding.
    Refresh(Box<QueryBinding>),
}

/// The data side of the server, as a room sees it (implemented in `data/bound.rs`).
pub trait BlockResolver: Send + Sync + 'static {
    /// The result of `binding` for a canvas of `project`: checks the query is one of the
    /// project's (else `query_not_found` / `forbidden_query`, nothing run), then reads the
    /// shared cache or executes it and waits for the end. `started` hears the execution's id
    /// if one starts (it is dropped on a cache hit or a refusal).
    fn fetch(
        &self,
        project: Uuid,
        user: Option<Uuid>,
        binding: QueryBinding,
        started: StartedTx,
    ) -> FetchFuture;

    /// The result kept under `key` in the shared result cache, if it is still there.
    fn cached(&self, key: String) -> CachedFuture;
}

/// Something that happened in a room that the server announces to the outside (webhooks),
/// told once, by the node where it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// Updates were made durable: `version` is the log's sequence number after them (it only
    /// grows), `by` the user who sent the last of them (`None`: a server edit).
    Updated {
        /// The durable log's sequence number.
        version: i64,
        /// Who changed it.
        by: Option<Uuid>,
    },
    /// A version was recorded (named, automatic or a restore).
    VersionCreated(canvas_storage::VersionRecord),
    /// The sharing settings changed (`before`/`after` as audited: the link as a flag).
    SharingChanged {
        /// Who changed them.
        by: Option<Uuid>,
        /// `document` (a Yjs client) or `rest`.
        source: &'static str,
        /// The settings before.
        before: serde_json::Value,
        /// The settings after.
        after: serde_json::Value,
    },
    /// A user's first connection to the canvas on this node.
    PresenceJoined(Uuid),
    /// A user's last connection to the canvas on this node went away.
    PresenceLeft(Uuid),
}

/// Where a room tells what happened in it (implemented by the webhooks). Must not block: it
/// is called on the room's task.
pub trait RoomEvents: Send + Sync + 'static {
    /// `event` happened on canvas `canvas` of project `project`.
    fn room_event(&self, canvas: Uuid, project: Uuid, event: RoomEvent);
}
