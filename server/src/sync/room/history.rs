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

use super::attribution::now_stamp;
use super::commands::{VersionCmd, VersionFailure, VersionOp, VersionOutcome, VersionReply};
use super::log::{Accepted, Written};
use super::{Flow, Room};
use crate::domain::effective_role;
use canvas_engine::attribution;
use canvas_engine::versions::{self as engine_versions, RestoreError};
use canvas_engine::yrs::Transact;
use canvas_engine::{Role, json as doc_json};
use canvas_storage::{NewVersion, StorageError, VersionKind, VersionRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

impl Room {
    /// Runs a history command and answers it.
    pub(super) async fn version_command(
        &mut self,
        cmd: VersionCmd,
        reply: oneshot::Sender<VersionReply>,
        written_rx: &mut mpsc::Receiver<Box<Written>>,
    ) -> Flow {
        let (result, flow) = self.run_version_command(cmd, written_rx).await;
        let _ = reply.send(VersionReply::Done(result));
        flow
    }

    async fn run_version_command(
        &mut self,
        cmd: VersionCmd,
        written_rx: &mut mpsc::Receiver<Box<Written>>,
    ) -> (Result<VersionOutcome, VersionFailure>, Flow) {
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
            let failure = VersionFailure::Internal("the durable log could not be written".into());
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
                    .map(VersionOutcome::Named)
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
        written_rx: &mut mpsc::Receiver<Box<Written>>,
    ) -> (Result<VersionOutcome, VersionFailure>, Flow) {
        let edited = match self.restore_edit(user, version, block_id.as_deref()).await {
            Ok(edited) => edited,
            Err(failure) => return (Err(failure), Flow::Continue),
        };
        if let Flow::Stop = self.flush(written_rx).await {
            let failure = VersionFailure::Internal("the durable log could not be written".into());
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
        info!(%user, version, block = ?block_id, changed = edited, "restored");
        let body = match block_id {
            None => VersionOutcome::Restored {
                version: record,
                canvas: self.json(),
            },
            Some(id) => {
                let block = doc_json::block_json(&self.canvas.doc().transact(), &id);
                VersionOutcome::BlockRestored {
                    version: record,
                    block,
                }
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
            .map_err(|e| VersionFailure::Internal(Box::new(e)))?;
        let ttxn = target.transact();
        let by = user.to_string();
        let at = now_stamp();
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
        for id in &changed {
            self.stamped.insert(id.clone(), (user, now));
        }
        // A restored binding (or a binding the restore removed) is resolved like an edit.
        self.blocks_changed(&changed, Some(user));
        let edited = update.is_some();
        if let Some(update) = update {
            self.accept(Accepted::server(update, None));
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
        self.announce(super::RoomEvent::VersionCreated(record.clone()));
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
            warn!(%cause, "cannot record an automatic version");
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
            Err(cause) => warn!(%cause, "cannot read the version history"),
        }
    }
}
