//! Judging updates: batches of the updates waiting in the room's queue are checked by the
//! engine's inspector with each sender's role, one verdict each; accepted ones are queued for
//! the durable log (merged runs as one entry), refused ones answered with a typed error.
//! An update that changes `sharing` (only an admin's can) ends a round: the change is audited
//! and every connection's role recomputed before the updates after it are judged.

use super::Room;
use super::authz::ChangedBy;
use super::commands::{ConnId, RoomCmd, SubmitReply, SubmitRequest, close};
use super::log::Accepted;
use crate::domain::effective_role;
use canvas_engine::Role;
use canvas_engine::canvas::{Applied, BatchApplied, LogEntry};
use canvas_engine::inspect::{Refusal, RefusalCode};
use canvas_engine::protocol::{self, ErrorBody, Extension};
use canvas_engine::yrs::sync::{Message, SyncMessage};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use uuid::Uuid;

/// Most updates applied as one batch (see [`Room::update_batch`]).
const MAX_BATCH: usize = 256;

/// Document updates waiting in a room's queue, with the connections that sent them.
pub(super) type Batch = Vec<(ConnId, Vec<u8>)>;

/// An update of a batch with its sender, the sender's acknowledgement number and user.
pub(super) type Numbered = (ConnId, u64, Uuid, Vec<u8>);

impl Room {
    /// Whether a command is a document update from a connection of this room (those are
    /// judged and applied in batches).
    pub(super) fn batchable(&self, cmd: &RoomCmd) -> bool {
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
    pub(super) fn take_batch(
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
    pub(super) fn update_batch(&mut self, batch: Batch) {
        let mut pending: Vec<Numbered> = Vec::with_capacity(batch.len());
        for (conn_id, update) in batch {
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                continue;
            };
            conn.received += 1;
            self.deps.metrics.update_bytes.observe(update.len() as f64);
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
    pub(super) fn judge_round(&mut self, pending: Vec<Numbered>) -> Vec<Numbered> {
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
            self.accept(Accepted {
                senders,
                update: update.into(),
                done: None,
            });
        }
        for (user, (mut touched, created)) in stamps {
            touched.sort_unstable();
            touched.dedup();
            self.stamp_blocks(user, &touched, &created);
            self.blocks_changed(&touched, Some(user));
        }
        if let Some(conn_id) = last {
            self.sharing_changed(ChangedBy::Conn(conn_id));
        }
        round.into_iter().skip(judged).flatten().collect()
    }

    /// An update submitted over REST, judged like a connection's: the caller's role from
    /// their access and the document's sharing (no role, or a viewer's, is refused before
    /// the inspector: `Forbidden`), then [`CanvasDoc::apply_batch`] with that role, the
    /// same metrics, the accepted update relayed to every connection at once and queued for
    /// the log (published to the other nodes once durable), its blocks stamped with the caller,
    /// bound blocks resolved as the caller, a sharing change audited and roles recomputed.
    /// The reply's `durable` completes once the update and its stamps are in the log.
    pub(super) fn submit(&mut self, request: SubmitRequest) -> SubmitReply {
        let role = effective_role(&request.access, &self.sharing());
        let role = match role {
            Some(role) if role >= Role::Editor => role,
            Some(_) => {
                self.deps.metrics.update_refused(RefusalCode::ReadOnly);
                return SubmitReply::Forbidden(role);
            }
            None => return SubmitReply::Forbidden(None),
        };
        let user = request.access.user_id;
        // a script editing a canvas nobody has open keeps its room loaded while it works
        if self.idle_since.is_some() {
            self.idle_since = Some(tokio::time::Instant::now());
        }
        self.deps
            .metrics
            .update_bytes
            .observe(request.update.len() as f64);
        let BatchApplied { verdicts, entries } = self
            .canvas
            .apply_batch(std::iter::once((role, request.update.as_slice())));
        let verdict = verdicts.into_iter().next().unwrap_or_else(|| {
            Err(Refusal {
                code: RefusalCode::MalformedUpdate,
                message: "the update was not judged".into(),
            })
        });
        match &verdict {
            Ok(applied) => self.deps.metrics.update_accepted(applied.noop),
            Err(refusal) => self.deps.metrics.update_refused(refusal.code),
        }
        let applied = match verdict {
            Ok(applied) => applied,
            Err(refusal) => {
                debug!(%user, %refusal, "REST update refused");
                return SubmitReply::Refused(refusal);
            }
        };
        let mut update = Some(request.update);
        for entry in entries {
            let bytes = match entry {
                LogEntry::One(_) => update.take(),
                LogEntry::Merged { update, .. } => Some(update),
            };
            if let Some(bytes) = bytes {
                self.accept(Accepted {
                    senders: Vec::new(),
                    update: bytes.into(),
                    done: None,
                });
            }
        }
        if !applied.noop {
            self.dirty_by = Some(user);
            let mut touched = applied.touched_blocks;
            touched.sort_unstable();
            touched.dedup();
            self.stamp_blocks(user, &touched, &applied.new_blocks);
            self.blocks_changed(&touched, Some(user));
        }
        let audited = self.sharing_changed(ChangedBy::Rest(&request.actor));
        let (done, durable) = oneshot::channel();
        self.log.when_durable(done);
        let block = request.block.as_deref().and_then(|id| self.block_view(id));
        SubmitReply::Accepted {
            durable,
            audited,
            block,
            noop: applied.noop,
        }
    }

    pub(super) fn update(&mut self, conn_id: ConnId, update: Vec<u8>) {
        self.update_batch(vec![(conn_id, update)]);
    }

    /// What follows a verdict on one update: an accepted one waits for its durable write
    /// (the caller queues it for the log, even if its connection closed meanwhile: it is
    /// applied, so it must be stored and relayed) and is returned for attribution; a
    /// malformed one closes its connection; a refused one is answered with a typed error.
    pub(super) fn settle(
        &mut self,
        conn_id: ConnId,
        seq: u64,
        user: Uuid,
        verdict: Result<Applied, Refusal>,
    ) -> Option<Applied> {
        match &verdict {
            Ok(applied) => self.deps.metrics.update_accepted(applied.noop),
            Err(refusal) => self.deps.metrics.update_refused(refusal.code),
        }
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
                warn!(conn = conn_id, %refusal, "malformed update; closing");
                self.close_conn(
                    conn_id,
                    close::MALFORMED,
                    format!("malformed update: {}", refusal.message),
                );
                None
            }
            Err(refusal) => {
                debug!(conn = conn_id, %refusal, "update refused");
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
}
