//! The durable log: an accepted update is relayed to the room's other connections at once
//! ([`Room::accept`]) and waits in a queue; one write is in flight at a time (group commit:
//! what arrives meanwhile is written together next), and once a write returns its updates
//! are published to the other nodes and acknowledged. `Room::flush` is the one way to wait
//! until everything queued is durable (shutdown and history commands use it); checkpoints
//! compact the log into a snapshot.
//!
//! Why relay before the write and acknowledge after it: the acknowledgement is the promise
//! (an acknowledged update survives a crash), and the sender keeps every unacknowledged
//! update and sends it again when it resyncs. A crash between the relay and the write can
//! leave peers holding an update the server lost; its author still holds it unacknowledged
//! and sends it again, so nothing is lost, only delayed. Other nodes learn an update only
//! once it is durable: they read the log to catch up, so what they relay is always there.

use super::commands::{ConnId, Queued, close};
use super::{Flow, Room};
use crate::sync::shared::LiveKind;
use bytes::Bytes;
use canvas_engine::protocol::{self, Ack, Extension};
use canvas_storage::StorageResult;
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use tracing::{debug, error, warn};

/// An accepted update waiting for, or in, a durable write: one connection's update, a run
/// of updates a batch merged into one (`CanvasDoc::apply_batch`), or a server edit.
pub(super) struct Accepted {
    /// The connections and acknowledgement sequence numbers it stands for, in order (none
    /// for a server edit).
    pub(super) senders: Vec<(ConnId, u64)>,
    pub(super) update: Bytes,
    /// Told when the update is durable (server edits made for REST calls).
    pub(super) done: Option<oneshot::Sender<()>>,
}

impl Accepted {
    /// A change the server made (attribution, a REST edit, a restore).
    pub(super) fn server(update: Vec<u8>, done: Option<oneshot::Sender<()>>) -> Self {
        Accepted {
            senders: Vec::new(),
            update: update.into(),
            done,
        }
    }

    /// The connection its relay skips: the sender, when it has one sender (a run merged
    /// from several connections goes back to them too; a Yjs client ignores what it has).
    pub(super) fn relay_except(&self) -> Option<ConnId> {
        let (first, _) = self.senders.first()?;
        self.senders
            .iter()
            .all(|(c, _)| c == first)
            .then_some(*first)
    }
}

/// The result of one durable write, sent back to the room by the writer task (boxed in its
/// channel: a tokio channel allocates room for 32 messages up front, for every room).
pub(super) struct Written {
    pub(super) batch: Vec<Accepted>,
    pub(super) result: StorageResult<i64>,
}

/// The room's durable log: accepted updates not yet handed to a writer, whether a write is
/// in flight (at most one at a time, keeping the log in order), and where the log and its
/// last snapshot stand.
pub(super) struct DurableLog {
    /// Accepted, applied in memory, not yet handed to a writer.
    queued: Vec<Accepted>,
    /// Whether a write is in flight.
    writing: bool,
    /// Where the writer task sends its result.
    written_tx: mpsc::Sender<Box<Written>>,
    /// Last sequence number known durable in the log.
    durable_seq: i64,
    /// Last sequence number covered by a snapshot.
    checkpoint_seq: i64,
    /// Size of the last snapshot (loaded or written).
    snapshot_bytes: u64,
    /// Entries ever queued, and entries written: entries are written in the order they
    /// were queued, so entry `n` is durable once `written >= n`.
    pushed: u64,
    written: u64,
    /// Told once the entries up to their number are durable (REST updates, see
    /// [`DurableLog::when_durable`]).
    waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl DurableLog {
    /// A log whose stored part ends at `durable_seq`, with a snapshot of `snapshot_bytes`
    /// covering it up to `checkpoint_seq`; and the receiver of its write results.
    pub(super) fn new(
        durable_seq: i64,
        checkpoint_seq: i64,
        snapshot_bytes: u64,
    ) -> (Self, mpsc::Receiver<Box<Written>>) {
        let (written_tx, written_rx) = mpsc::channel(1);
        let log = DurableLog {
            queued: Vec::new(),
            writing: false,
            written_tx,
            durable_seq,
            checkpoint_seq,
            snapshot_bytes,
            pushed: 0,
            written: 0,
            waiters: Vec::new(),
        };
        (log, written_rx)
    }

    /// Queues an accepted update for the next write (see [`Room::accept`]).
    fn push(&mut self, accepted: Accepted) {
        self.pushed += 1;
        self.queued.push(accepted);
    }

    /// Tells `done` once everything queued so far is durable (at once if it is). If a write
    /// fails, the room stops and `done` is dropped unsent.
    pub(super) fn when_durable(&mut self, done: oneshot::Sender<()>) {
        if self.written >= self.pushed {
            let _ = done.send(());
        } else {
            self.waiters.push((self.pushed, done));
        }
    }

    /// `n` more entries were written: tells the waiters they concern.
    fn entries_written(&mut self, n: usize) {
        self.written += n as u64;
        let written = self.written;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(upto, _)| *upto <= written);
        self.waiters = waiting;
        for (_, done) in due {
            let _ = done.send(());
        }
    }

    /// Nothing queued and nothing in flight: the document matches the durable log.
    pub(super) fn is_idle(&self) -> bool {
        !self.writing && self.queued.is_empty()
    }
}

impl Room {
    /// Takes an update the room judged and applied: relays it to the room's other
    /// connections now and queues it for the durable log (acknowledged, published to the
    /// other nodes and `done` told once it is written).
    pub(super) fn accept(&mut self, accepted: Accepted) {
        self.relay_update(accepted.relay_except(), accepted.update.clone());
        self.log.push(accepted);
    }

    /// Hands the queued updates to a writer task, if none is in flight.
    pub(super) fn start_write(&mut self) {
        if self.log.writing || self.log.queued.is_empty() {
            return;
        }
        self.log.writing = true;
        let batch = std::mem::take(&mut self.log.queued);
        let store = self.deps.canvases.clone();
        let done = self.log.written_tx.clone();
        let id = self.id;
        let metrics = self.deps.metrics.clone();
        self.deps.tasks.spawn(
            async move {
                let updates: Vec<Vec<u8>> = batch.iter().map(|a| a.update.to_vec()).collect();
                let started = std::time::Instant::now();
                let result = store.append_updates(id, &updates).await;
                metrics
                    .durable_write_seconds
                    .observe(started.elapsed().as_secs_f64());
                let _ = done.send(Box::new(Written { batch, result })).await;
            }
            .in_current_span(),
        );
    }

    pub(super) async fn on_written(&mut self, written: Box<Written>) -> Flow {
        self.log.writing = false;
        match written.result {
            Ok(seq) => self.log.durable_seq = seq,
            Err(cause) => {
                self.deps.metrics.storage_error(&cause);
                // The updates are applied in memory but not durable. Close everyone: clients
                // keep their changes and resend them when they resync with a reloaded room.
                error!(%cause, "durable write failed; closing the room");
                for conn in self.conns.values() {
                    let _ = conn
                        .out
                        .try_send(Queued::close(close::INTERNAL, "storage failure"));
                }
                self.conns.clear();
                return Flow::Stop;
            }
        }
        let entries = written.batch.len();
        let mut senders = HashSet::new();
        let by = written
            .batch
            .iter()
            .rev()
            .flat_map(|a| a.senders.iter().rev())
            .find_map(|(conn, _)| self.conns.get(conn).map(|c| c.user_id))
            .or(self.dirty_by);
        self.announce(super::RoomEvent::Updated {
            version: self.log.durable_seq,
            by,
        });
        for accepted in &written.batch {
            self.publish(LiveKind::Update, &accepted.update);
        }
        for accepted in written.batch {
            if let Some(done) = accepted.done {
                let _ = done.send(());
            }
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
        self.log.entries_written(entries);
        if self.log.queued.is_empty()
            && checkpoint_due(
                self.log.durable_seq - self.log.checkpoint_seq,
                self.log.snapshot_bytes,
                self.deps.config.checkpoint_updates,
            )
        {
            self.checkpoint().await;
        }
        Flow::Continue
    }

    /// Sends the connection its durable acknowledgement, if it asked for them and it moved.
    pub(super) fn ack(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let through = conn.ack_target();
        if !conn.wants_acks || through <= conn.acked {
            return;
        }
        let frame: Bytes = protocol::encode_extension(&Extension::Ack(Ack { through })).into();
        // Not sent (the connection lags): it is sent again when the connection catches up.
        if self.send(conn_id, frame)
            && let Some(conn) = self.conns.get_mut(&conn_id)
        {
            conn.acked = through;
        }
    }

    /// Writes everything queued, waiting for writes in flight. `Stop` if storage failed.
    pub(super) async fn flush(&mut self, written_rx: &mut mpsc::Receiver<Box<Written>>) -> Flow {
        loop {
            self.start_write();
            if !self.log.writing {
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

    /// Compacts the durable log into a snapshot. Only called with nothing queued or in
    /// flight, so the snapshot covers exactly the log up to `durable_seq`.
    pub(super) async fn checkpoint(&mut self) {
        let mut upto = self.log.durable_seq;
        if self.shared() {
            // Other nodes append to the same log: the snapshot may only cover entries this
            // document holds, so take them all in first.
            match self.catch_up().await {
                Some(last) => upto = upto.max(last),
                None => return,
            }
        }
        if upto <= self.log.checkpoint_seq {
            return;
        }
        let state = self.canvas.encode_state();
        let view = self.json();
        let started = std::time::Instant::now();
        let written = self
            .deps
            .canvases
            .checkpoint(self.id, &state, upto, &view)
            .await;
        self.deps
            .metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        match written {
            Ok(()) => {
                debug!(upto, bytes = state.len(), "checkpoint");
                self.log.checkpoint_seq = upto;
                self.log.snapshot_bytes = state.len() as u64;
            }
            // The log still holds everything: a failed checkpoint loses nothing.
            Err(cause) => {
                self.deps.metrics.storage_error(&cause);
                warn!(%cause, "checkpoint failed; will retry later")
            }
        }
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
