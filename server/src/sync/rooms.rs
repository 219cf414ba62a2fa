//! The registry of loaded rooms: one per open canvas, loaded on first use, unloaded when idle.

use super::room::bound::{Fetched, RunningFor};
use super::room::{
    EditReply, EditRequest, JoinReply, JoinRequest, ReadReply, Room, RoomCmd, RoomDeps, RoomView,
    StateReply, SubmitReply, SubmitRequest, Unregister, VersionCmd, VersionFailure, VersionOutcome,
    VersionReply,
};
use super::shared::{AccessChange, LiveKind, encode_live};
use crate::domain::ProjectAccess;
use canvas_engine::bindings::QueryBinding;
use canvas_engine::yrs::StateVector;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

/// Commands waiting for one room. Bounded so a flood of frames slows its senders down
/// instead of growing memory.
const ROOM_QUEUE: usize = 4096;

/// How many times a caller retries when it reaches a room that is just unloading.
const RETRIES: usize = 5;

/// A handle to a loaded room: where to send its commands.
#[derive(Clone)]
struct RoomHandle {
    tx: mpsc::Sender<RoomCmd>,
    generation: u64,
}

/// The loaded rooms, keyed by canvas id, and what a room needs to load.
pub struct Rooms {
    map: Arc<DashMap<Uuid, RoomHandle>>,
    generations: AtomicU64,
    deps: RoomDeps,
}

/// Why a room could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The room kept unloading or failing to load.
    #[error("canvas room unavailable")]
    Unavailable,
}

/// A canvas's document as a REST read gets it.
#[derive(Debug)]
pub struct DocState {
    /// The whole document, or the diff from the state vector asked with (yrs v1).
    pub update: Vec<u8>,
    /// The document's state vector (yrs v1).
    pub state_vector: Vec<u8>,
    /// The reader's role on the canvas.
    pub role: canvas_engine::Role,
}

/// How a join ended.
pub enum Joined {
    /// Joined with a role; frames go to the returned sender.
    Yes(canvas_engine::Role, RoomSender),
    /// The user has no role on the canvas.
    Forbidden,
}

/// Sends commands to the room a connection joined.
#[derive(Clone)]
pub struct RoomSender(mpsc::Sender<RoomCmd>);

impl RoomSender {
    /// Sends a command; `false` if the room is gone.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.0.send(cmd).await.is_ok()
    }
}

impl Rooms {
    /// An empty registry whose rooms get `deps`.
    pub fn new(deps: RoomDeps) -> Self {
        Rooms {
            map: Arc::default(),
            generations: AtomicU64::new(0),
            deps,
        }
    }

    /// The handle of a loaded room, loading it (in its own task) if needed.
    fn handle(&self, id: Uuid) -> RoomHandle {
        self.map
            .entry(id)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_QUEUE);
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("room", canvas = %id);
                let own = tx.downgrade();
                let map = self.map.clone();
                let unregister = Unregister::new(move || {
                    map.remove_if(&id, |_, h| h.generation == generation);
                });
                let room = Room::run(id, self.deps.clone(), unregister, rx, own);
                self.deps.tasks.spawn(room.instrument(span));
                RoomHandle { tx, generation }
            })
            .clone()
    }

    /// Removes a room from the registry if it is still this instance.
    fn forget(&self, id: Uuid, generation: u64) {
        self.map.remove_if(&id, |_, h| h.generation == generation);
    }

    /// The live presence of a canvas's connections on this node, if its room is loaded
    /// (a presence read never loads a room).
    pub async fn live_presence(&self, id: Uuid) -> Option<Vec<canvas_storage::PresenceEntry>> {
        let tx = self.map.get(&id)?.tx.clone();
        let (reply, answer) = oneshot::channel();
        tx.send(RoomCmd::Presence(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Whether a room is loaded.
    pub fn is_loaded(&self, id: Uuid) -> bool {
        self.map.contains_key(&id)
    }

    /// Number of loaded rooms.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no room is loaded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Joins a connection to a canvas's room.
    pub async fn join(
        &self,
        id: Uuid,
        make: impl Fn() -> JoinRequest,
    ) -> Result<Joined, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            if handle
                .tx
                .send(RoomCmd::Join(Box::new(make()), reply))
                .await
                .is_err()
            {
                self.forget(id, handle.generation);
                continue;
            }
            match answer.await {
                Ok(JoinReply::Joined(role)) => return Ok(Joined::Yes(role, RoomSender(handle.tx))),
                Ok(JoinReply::Forbidden) => return Ok(Joined::Forbidden),
                Ok(JoinReply::Gone) | Err(_) => self.forget(id, handle.generation),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Reads the live view of a canvas for a user; `Ok(None)` if they have no role on it.
    pub async fn read(
        &self,
        id: Uuid,
        access: &ProjectAccess,
    ) -> Result<Option<RoomView>, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            if handle
                .tx
                .send(RoomCmd::Read(Box::new(access.clone()), reply))
                .await
                .is_err()
            {
                self.forget(id, handle.generation);
                continue;
            }
            match answer.await {
                Ok(ReadReply::View(view)) => return Ok(Some(*view)),
                Ok(ReadReply::Forbidden) => return Ok(None),
                Ok(ReadReply::Gone) | Err(_) => self.forget(id, handle.generation),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Makes a change to a canvas's document for a REST call, inside its room (loading it
    /// if needed).
    pub async fn edit(&self, id: Uuid, mut request: EditRequest) -> Result<EditReply, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            if let Err(refused) = handle
                .tx
                .send(RoomCmd::Edit(Box::new(request), reply))
                .await
            {
                self.forget(id, handle.generation);
                match refused.0 {
                    RoomCmd::Edit(back, _) => request = *back,
                    _ => return Err(RoomError::Unavailable),
                }
                continue;
            }
            match answer.await {
                Ok(EditReply::Gone(back)) => {
                    self.forget(id, handle.generation);
                    request = *back;
                }
                Ok(other) => return Ok(other),
                Err(_) => {
                    self.forget(id, handle.generation);
                    return Err(RoomError::Unavailable);
                }
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Submits a yrs update to a canvas's room (loading it if needed, as a join does; it
    /// unloads again when idle), judged like a connection's update.
    pub async fn submit(
        &self,
        id: Uuid,
        mut request: SubmitRequest,
    ) -> Result<SubmitReply, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            if let Err(refused) = handle
                .tx
                .send(RoomCmd::Submit(Box::new(request), reply))
                .await
            {
                self.forget(id, handle.generation);
                match refused.0 {
                    RoomCmd::Submit(back, _) => request = *back,
                    _ => return Err(RoomError::Unavailable),
                }
                continue;
            }
            match answer.await {
                Ok(SubmitReply::Gone(back)) => {
                    self.forget(id, handle.generation);
                    request = *back;
                }
                Ok(other) => return Ok(other),
                Err(_) => {
                    self.forget(id, handle.generation);
                    return Err(RoomError::Unavailable);
                }
            }
        }
        Err(RoomError::Unavailable)
    }

    /// The state of a canvas's document for a user (the diff from `sv`, or everything), its
    /// state vector (both yrs v1) and the user's role; `Ok(None)` if they have no role.
    pub async fn state(
        &self,
        id: Uuid,
        access: &ProjectAccess,
        sv: Option<StateVector>,
    ) -> Result<Option<DocState>, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            let cmd = RoomCmd::State(Box::new((access.clone(), sv.clone())), reply);
            if handle.tx.send(cmd).await.is_err() {
                self.forget(id, handle.generation);
                continue;
            }
            match answer.await {
                Ok(StateReply::State {
                    update,
                    state_vector,
                    role,
                }) => {
                    return Ok(Some(DocState {
                        update,
                        state_vector,
                        role,
                    }));
                }
                Ok(StateReply::Forbidden) => return Ok(None),
                Ok(StateReply::Gone) | Err(_) => self.forget(id, handle.generation),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Runs a version history command (name, restore, block restore) in the canvas's room,
    /// loading it if needed. Answers once the change is durable.
    pub async fn versions(
        &self,
        id: Uuid,
        cmd: VersionCmd,
    ) -> Result<Result<VersionOutcome, VersionFailure>, RoomError> {
        for _ in 0..RETRIES {
            let handle = self.handle(id);
            let (reply, answer) = oneshot::channel();
            if handle
                .tx
                .send(RoomCmd::Versions(Box::new(cmd.clone()), reply))
                .await
                .is_err()
            {
                self.forget(id, handle.generation);
                continue;
            }
            match answer.await {
                Ok(VersionReply::Done(result)) => return Ok(result),
                Ok(VersionReply::Gone) | Err(_) => self.forget(id, handle.generation),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Tells every loaded room, here and on the other nodes, that a user's role in a
    /// project changed; rooms of that project's canvases recheck the user's connections at
    /// once.
    pub async fn project_role_changed(
        &self,
        project_id: Uuid,
        user_id: Uuid,
        role: Option<canvas_engine::Role>,
    ) {
        self.access_changed(AccessChange::ProjectRole {
            project_id,
            user_id,
            role,
        })
        .await;
    }

    /// Tells every loaded room, here and on the other nodes, that a project was archived
    /// or restored.
    pub async fn project_archived(&self, project_id: Uuid, archived: bool) {
        self.access_changed(AccessChange::ProjectArchived {
            project_id,
            archived,
        })
        .await;
    }

    async fn access_changed(&self, change: AccessChange) {
        self.apply_access_change(&change).await;
        if !self.deps.fanout.is_shared() {
            return;
        }
        let project_id = match change {
            AccessChange::ProjectRole { project_id, .. }
            | AccessChange::ProjectArchived { project_id, .. } => project_id,
        };
        // Rooms listen on their canvas's channel: tell each canvas of the project.
        let canvases = match self.deps.canvases.canvases_in_project(project_id).await {
            Ok(canvases) => canvases,
            Err(cause) => {
                tracing::error!(%cause, "cannot tell other nodes about an access change");
                return;
            }
        };
        let Ok(payload) = serde_json::to_vec(&change) else {
            return;
        };
        let message = encode_live(&self.deps.node_id, LiveKind::Access, &payload);
        for canvas in canvases {
            if let Err(cause) = self.deps.fanout.publish(canvas.id, message.clone()).await {
                tracing::error!(%cause, canvas = %canvas.id, "cannot tell other nodes about an access change");
            }
        }
    }

    /// Applies an access change to this node's loaded rooms.
    async fn apply_access_change(&self, change: &AccessChange) {
        let handles: Vec<RoomHandle> = self.map.iter().map(|h| h.value().clone()).collect();
        for handle in handles {
            let _ = handle.tx.send(RoomCmd::Access(change.clone())).await;
        }
    }

    /// Tells a loaded room that a data source of its project changed; `false` if the canvas
    /// has no room on this node.
    pub async fn data_changed(&self, id: Uuid) -> bool {
        let handle = self.map.get(&id).map(|h| h.clone());
        match handle {
            Some(handle) => handle.tx.send(RoomCmd::DataChanged).await.is_ok(),
            None => false,
        }
    }

    /// Hands a loaded room the fresh result of a block refreshed by hand; `false` if the
    /// canvas has no room on this node.
    pub async fn block_refreshed(
        &self,
        id: Uuid,
        block_id: String,
        binding: QueryBinding,
        fetched: Fetched,
    ) -> bool {
        let handle = self.map.get(&id).map(|h| h.clone());
        match handle {
            Some(handle) => handle
                .tx
                .send(RoomCmd::Refreshed(
                    block_id,
                    Box::new(binding),
                    Box::new(fetched),
                ))
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Tells a loaded room that an execution started for a block refreshed by hand (with
    /// `binding`); `false` if the canvas has no room on this node.
    pub async fn block_running(
        &self,
        id: Uuid,
        block_id: String,
        binding: QueryBinding,
        execution: Uuid,
    ) -> bool {
        let handle = self.map.get(&id).map(|h| h.clone());
        match handle {
            Some(handle) => handle
                .tx
                .send(RoomCmd::BlockRunning(
                    block_id,
                    RunningFor::Refresh(Box::new(binding)),
                    execution,
                ))
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Closes every connection of a loaded room with `code` and stops it (canvas deleted).
    pub async fn close(&self, id: Uuid, code: u16, reason: &str) {
        let handle = self.map.get(&id).map(|h| h.clone());
        if let Some(handle) = handle {
            let _ = handle
                .tx
                .send(RoomCmd::Close(code, reason.to_owned()))
                .await;
        }
    }
}
