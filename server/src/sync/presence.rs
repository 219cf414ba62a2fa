//! Writes a room's presence to the shared presence store (`canvas:presence:{id}`,
//! `canvas:state:{id}`), in order, off the room's task.
//!
//! The room decides what to write (throttled: at most one write per user per
//! [`PUT_INTERVAL`]); a writer task per room performs the writes one after another, so a
//! removal never overtakes the put before it.

use canvas_storage::{PresenceEntry, PresenceStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Presence entries expire this long after their last write (seed: 5 minutes rolling).
pub const PRESENCE_TTL: Duration = Duration::from_secs(5 * 60);

/// A user's presence is written at most this often (awareness can change at 60 Hz).
pub const PUT_INTERVAL: Duration = Duration::from_secs(1);

/// One presence write.
#[derive(Debug)]
pub enum PresenceOp {
    /// A user's entry changed (cursor, selection) or needs a refresh.
    Put(PresenceEntry),
    /// A user's last connection to the canvas on this node closed.
    Remove(Uuid),
    /// The users connected to the canvas on this node now (empty when the room unloads).
    Active(Vec<Uuid>),
}

/// Sends presence writes to the room's writer task.
#[derive(Clone)]
pub struct PresenceWriter(mpsc::UnboundedSender<PresenceOp>);

impl PresenceWriter {
    /// Starts the writer task of a canvas's room.
    pub fn start(
        store: Arc<dyn PresenceStore>,
        canvas_id: Uuid,
        node_id: String,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tasks.spawn(async move {
            while let Some(op) = rx.recv().await {
                let result = match &op {
                    PresenceOp::Put(entry) => {
                        store.put_presence(canvas_id, entry, PRESENCE_TTL).await
                    }
                    PresenceOp::Remove(user) => store.remove_presence(canvas_id, *user).await,
                    PresenceOp::Active(users) => {
                        store.set_active_users(canvas_id, &node_id, users).await
                    }
                };
                if let Err(cause) = result {
                    tracing::warn!(canvas = %canvas_id, %cause, ?op, "presence write failed");
                }
            }
        });
        PresenceWriter(tx)
    }

    /// Queues a write (never blocks; the writer ends when the room drops its handle).
    pub fn send(&self, op: PresenceOp) {
        let _ = self.0.send(op);
    }
}
