//! Version history inside a room: naming a version, restoring a version or one block, and
//! automatic versions.
//!
//! Restores run here, in the room actor, as commands: the forward edit the engine computes
//! ([`canvas_engine::versions`]) is queued like any accepted update, so it goes through the
//! same path: written to the durable log, relayed to every connection of this node and
//! published to the other nodes. The room waits for that write before it records the new
//! version (kind `restore`) and answers, so a version never describes a state the log lacks.
//! With several server nodes, the room first catches up from the durable log, so a
//! snapshot or a restore also covers what other nodes accepted.
//!
//! Automatic versions: a room remembers whether its document changed since the last version
//! (and who changed it last). When it has, and `--version-interval-secs` have passed since
//! the last version, it records one (kind `auto`, attributed to that user) on its version
//! timer, when it unloads and at shutdown, always with nothing queued or in flight, so the
//! snapshot matches the durable log. Updates from other nodes do not count: the node that
//! accepted them records their version.

use super::{Accepted, Flow, Room, Written};
use crate::domain::{ProjectAccess, effective_role};
use canvas_engine::attribution;
use canvas_engine::versions::{self as engine_versions, RestoreError};
use canvas_engine::yrs::Transact;
use canvas_engine::{Role, json as doc_json};
use canvas_storage::{NewVersion, StorageError, VersionKind, VersionRecord};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

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
    /// Storage failed or the stored version is unreadable.
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for VersionFailure {
    fn from(e: StorageError) -> Self {
        VersionFailure::Internal(e.to_string())
    }
}

/// The room's answer to a history command.
#[derive(Debug)]
pub enum VersionReply {
    /// The result: for `Name`, the version record; for `Restore`, `{version, canvas}`; for
    /// `RestoreBlock`, `{block, version}`.
    Done(Result<Value, VersionFailure>),
    /// This room instance is unloading or failed; ask the registry again.
    Gone,
}

impl Room {
    /// Runs a history command and answers it.
    pub(super) async fn version_command(
        &mut self,
        cmd: VersionCmd,
        reply: oneshot::Sender<VersionReply>,
        written_rx: &mut mpsc::Receiver<Written>,
    ) -> Flow {
        let (result, flow) = self.run_version_command(cmd, written_rx).await;
        let _ = reply.send(VersionReply::Done(result));
        flow
    }

    async fn run_version_command(
        &mut self,
        cmd: VersionCmd,
        written_rx: &mut mpsc::Receiver<Written>,
    ) -> (Result<Value, VersionFailure>, Flow) {
        match effective_role(&cmd.access, &self.sharing()) {
            Some(role) if role >= Role::Editor => {}
            Some(_) => {
                let refusal = "viewers cannot change the version history".to_owned();
                return (Err(VersionFailure::Forbidden(refusal)), Flow::Continue);
            }
            None => {
                let refusal = "you have no access to this canvas".to_owned();
                return (Err(VersionFailure::Forbidden(refusal)), Flow::Continue);
            }
        }
        let user = cmd.access.user_id;
        // Whatever is queued becomes durable first: the version must match the log.
        if let Flow::Stop = self.flush(written_rx).await {
            let failure = VersionFailure::Internal("storage failure".into());
            return (Err(failure), Flow::Stop);
        }
        // Other nodes' durable updates this node missed belong in the snapshot (and a
        // restore must undo them too).
        if self.shared() {
            self.catch_up().await;
        }
        match cmd.op {
            VersionOp::Name { changes } => {
                let result = self
                    .record_version(VersionKind::Named, changes, user)
                    .await
                    .map(|record| json!(record))
                    .map_err(VersionFailure::from);
                (result, Flow::Continue)
            }
            VersionOp::Restore { version } => self.restore(user, version, None, written_rx).await,
            VersionOp::RestoreBlock { version, block_id } => {
                self.restore(user, version, Some(block_id), written_rx)
                    .await
            }
        }
    }

    /// Restores version `version` (or one block of it) as a forward edit by `user`.
    async fn restore(
        &mut self,
        user: Uuid,
        version: i64,
        block_id: Option<String>,
        written_rx: &mut mpsc::Receiver<Written>,
    ) -> (Result<Value, VersionFailure>, Flow) {
        let edited = match self.restore_edit(user, version, block_id.as_deref()).await {
            Ok(edited) => edited,
            Err(failure) => return (Err(failure), Flow::Continue),
        };
        if let Flow::Stop = self.flush(written_rx).await {
            let failure = VersionFailure::Internal("storage failure".into());
            return (Err(failure), Flow::Stop);
        }
        let changes = match &block_id {
            None => format!("Restored version {version}"),
            Some(id) => format!("Restored block {id} from version {version}"),
        };
        let record = match self
            .record_version(VersionKind::Restore, changes, user)
            .await
        {
            Ok(record) => record,
            Err(e) => return (Err(e.into()), Flow::Continue),
        };
        info!(canvas = %self.id, %user, version, block = ?block_id, changed = edited, "restored");
        let body = match block_id {
            None => json!({ "version": record, "canvas": self.json() }),
            Some(id) => {
                let block = doc_json::block_json(&self.canvas.doc().transact(), &id);
                json!({ "block": block, "version": record })
            }
        };
        (Ok(body), Flow::Continue)
    }

    /// Makes the forward edit of a restore and queues it (with the attribution stamps of the
    /// blocks it changed). Returns whether it changed anything.
    async fn restore_edit(
        &mut self,
        user: Uuid,
        version: i64,
        block_id: Option<&str>,
    ) -> Result<bool, VersionFailure> {
        let stored = self
            .deps
            .versions
            .version(self.id, version)
            .await?
            .ok_or_else(|| VersionFailure::NotFound(format!("version {version} not found")))?;
        let target = engine_versions::load_version(&stored.state)
            .map_err(|e| VersionFailure::Internal(format!("version {version}: {e}")))?;
        let ttxn = target.transact();
        let by = user.to_string();
        let at = super::attribution::now_stamp();
        // One transaction: the restore and the restorer's stamp on the blocks it changed
        // reach every client as one update.
        let (result, update) = self.canvas.edit(|txn| {
            let changed = match block_id {
                None => engine_versions::restore(txn, &ttxn),
                Some(id) => match engine_versions::restore_block(txn, &ttxn, id) {
                    Ok(true) => vec![id.to_owned()],
                    Ok(false) => Vec::new(),
                    Err(e) => return Err(e),
                },
            };
            for id in &changed {
                // A restored block keeps the creator it had in the version.
                attribution::stamp(txn, id, &by, &at, false);
            }
            Ok(changed)
        });
        drop(ttxn);
        let changed = match result {
            Ok(changed) => changed,
            Err(e @ RestoreError::NoSuchBlock(_)) => {
                return Err(VersionFailure::NotFound(format!("version {version}: {e}")));
            }
            Err(e @ RestoreError::OutOfGrid { .. }) => {
                return Err(VersionFailure::Conflict(e.to_string()));
            }
        };
        let now = Instant::now();
        for id in changed {
            self.stamped.insert(id, (user, now));
        }
        let edited = !is_empty_update(&update);
        if edited {
            self.queued.push(Accepted::server(update, None));
        }
        Ok(edited)
    }

    /// Records the live document as a version (the caller made sure nothing is queued or in
    /// flight) and keeps the room's copy of the history current.
    pub(super) async fn record_version(
        &mut self,
        kind: VersionKind,
        changes: String,
        by: Uuid,
    ) -> Result<VersionRecord, StorageError> {
        let state = self.canvas.encode_state();
        let view = self.json();
        let new = NewVersion {
            kind,
            changes,
            changed_by: by,
        };
        let record = self
            .deps
            .versions
            .add_version(self.id, new, &state, &view)
            .await?;
        self.record.version = self.record.version.max(record.version);
        self.versions.push(record.clone());
        self.versions.sort_by_key(|v| v.version);
        self.dirty_by = None;
        self.last_version_at = Instant::now();
        Ok(record)
    }

    /// Records an automatic version if the document changed since the last one and the
    /// interval has passed. Only call with nothing queued or in flight.
    pub(super) async fn auto_version(&mut self) {
        let Some(user) = self.dirty_by else {
            return;
        };
        if self.last_version_at.elapsed() < self.deps.config.version_interval {
            return;
        }
        if let Err(cause) = self
            .record_version(VersionKind::Auto, "Automatic version".into(), user)
            .await
        {
            warn!(canvas = %self.id, %cause, "cannot record an automatic version");
        }
    }

    /// Reloads the history from storage (other nodes add versions too).
    pub(super) async fn refresh_versions(&mut self) {
        match self.deps.versions.versions(self.id).await {
            Ok(list) => {
                if let Some(last) = list.last() {
                    self.record.version = self.record.version.max(last.version);
                }
                self.versions = list;
            }
            Err(cause) => warn!(canvas = %self.id, %cause, "cannot read the version history"),
        }
    }

    /// Writes everything queued, waiting for writes in flight. `Stop` if storage failed.
    async fn flush(&mut self, written_rx: &mut mpsc::Receiver<Written>) -> Flow {
        loop {
            self.start_write();
            if !self.writing {
                return Flow::Continue;
            }
            match written_rx.recv().await {
                Some(written) => {
                    if let Flow::Stop = self.on_written(written).await {
                        return Flow::Stop;
                    }
                }
                None => return Flow::Stop,
            }
        }
    }
}

/// Whether a v1 update changes nothing (what yrs encodes for an empty transaction).
pub(super) fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}
