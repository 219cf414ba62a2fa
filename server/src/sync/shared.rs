//! What a room tells the other server nodes: presence (`canvas:presence:{id}`,
//! `canvas:state:{id}`) and live messages (fan-out of durable updates and awareness), written
//! in order, off the room's task.
//!
//! The room decides what to write (presence is throttled: at most one write per user per
//! [`PUT_INTERVAL`]); a writer task per room performs the writes one after another, so a
//! removal never overtakes the put before it and updates go out in the order they became
//! durable.
//!
//! A live message is `[kind][node id length][node id][payload]`: kind 0 is a yrs v1 update,
//! 1 an awareness update, 2 an access change (JSON [`AccessChange`]: a membership or an
//! archiving changed through another node's REST API), 3 a presence query (empty: a node
//! that subscribed again after losing its subscription asks the others to publish their
//! people's awareness again); the node id lets a node skip its own messages.

use crate::metrics::{Metrics, PresenceOp};
use canvas_storage::{Fanout, PresenceEntry, PresenceStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

/// Presence entries expire this long after their last write (seed: 5 minutes rolling).
pub const PRESENCE_TTL: Duration = Duration::from_secs(5 * 60);

/// A user's presence is written at most this often (awareness can change at 60 Hz).
pub const PUT_INTERVAL: Duration = Duration::from_secs(1);

/// One presence write.
#[derive(Debug)]
pub enum SharedOp {
    /// A user's entry changed (cursor, selection) or needs a refresh.
    Put(Box<PresenceEntry>),
    /// A user's last connection to the canvas on this node closed.
    Remove(Uuid),
    /// The users connected to the canvas on this node now (empty when the room unloads).
    Active(Vec<Uuid>),
    /// A live message for the other nodes (see [`encode_live`]).
    Publish(Vec<u8>),
}

// Every room's writer channel allocates room for 32 of these up front (see `RoomCmd`).
const _: () = assert!(std::mem::size_of::<SharedOp>() <= 32);

/// What a live message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKind {
    /// A durable document update (yrs v1).
    Update = 0,
    /// An awareness update.
    Awareness = 1,
    /// An [`AccessChange`] (JSON).
    Access = 2,
    /// Publish the awareness of your connections again (no payload).
    PresenceQuery = 3,
    /// A bound block's data (the MessagePack body of extension message 102).
    BlockData = 4,
    /// A data source of the canvas's project changed: resolve bound blocks again (no
    /// payload).
    DataChanged = 5,
}

/// A change of who may do what that a REST call made on one node and every node's rooms of
/// the project's canvases must apply to their connections.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessChange {
    /// A user's project role changed (`None`: no longer a member).
    ProjectRole {
        /// The project.
        project_id: Uuid,
        /// The user.
        user_id: Uuid,
        /// The new role.
        role: Option<canvas_engine::Role>,
    },
    /// A project was archived or restored.
    ProjectArchived {
        /// The project.
        project_id: Uuid,
        /// Whether it is archived now.
        archived: bool,
    },
}

/// Encodes a live message from this node.
pub fn encode_live(node_id: &str, kind: LiveKind, payload: &[u8]) -> Vec<u8> {
    let node = node_id.as_bytes();
    let node = &node[..node.len().min(255)];
    let mut out = Vec::with_capacity(2 + node.len() + payload.len());
    out.push(kind as u8);
    out.push(node.len() as u8);
    out.extend_from_slice(node);
    out.extend_from_slice(payload);
    out
}

/// Decodes a live message: its sender node, kind and payload; `None` if malformed.
pub fn decode_live(message: &[u8]) -> Option<(&str, LiveKind, &[u8])> {
    let (&kind, rest) = message.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let node = std::str::from_utf8(rest.get(..len as usize)?).ok()?;
    let payload = rest.get(len as usize..)?;
    let kind = match kind {
        0 => LiveKind::Update,
        1 => LiveKind::Awareness,
        2 => LiveKind::Access,
        3 => LiveKind::PresenceQuery,
        4 => LiveKind::BlockData,
        5 => LiveKind::DataChanged,
        _ => return None,
    };
    Some((node, kind, payload))
}

/// Sends presence writes to the room's writer task.
#[derive(Clone)]
pub struct SharedWriter(mpsc::UnboundedSender<SharedOp>);

impl SharedWriter {
    /// Starts the writer task of a canvas's room (in the caller's span: the room's).
    pub fn start(
        store: Arc<dyn PresenceStore>,
        fanout: Arc<dyn Fanout>,
        canvas_id: Uuid,
        node_id: String,
        (tasks, metrics): (&tokio_util::task::TaskTracker, Arc<Metrics>),
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tasks.spawn(
            async move {
                while let Some(op) = rx.recv().await {
                    let result = match &op {
                        SharedOp::Put(entry) => {
                            metrics.presence_write(PresenceOp::Put);
                            store.put_presence(canvas_id, entry, PRESENCE_TTL).await
                        }
                        SharedOp::Remove(user) => {
                            metrics.presence_write(PresenceOp::Remove);
                            store.remove_presence(canvas_id, *user).await
                        }
                        SharedOp::Active(users) => {
                            metrics.presence_write(PresenceOp::Active);
                            store.set_active_users(canvas_id, &node_id, users).await
                        }
                        SharedOp::Publish(message) => {
                            metrics.cluster_published.inc();
                            fanout.publish(canvas_id, message.clone()).await
                        }
                    };
                    if let Err(cause) = result {
                        metrics.storage_error(&cause);
                        // Other nodes catch up from the durable log before their next checkpoint.
                        tracing::warn!(%cause, "shared write failed");
                    }
                }
            }
            .in_current_span(),
        );
        SharedWriter(tx)
    }

    /// Queues a write (never blocks; the writer ends when the room drops its handle).
    pub fn send(&self, op: SharedOp) {
        let _ = self.0.send(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_messages_round_trip_and_garbage_is_rejected() {
        let m = encode_live("node-a", LiveKind::Awareness, &[1, 2, 3]);
        assert_eq!(
            decode_live(&m),
            Some(("node-a", LiveKind::Awareness, &[1u8, 2, 3][..]))
        );
        assert_eq!(decode_live(&[]), None);
        assert_eq!(decode_live(&[0, 9, b'x']), None);
        assert_eq!(decode_live(&[7, 0]), None);
        let query = encode_live("node-b", LiveKind::PresenceQuery, &[]);
        assert_eq!(
            decode_live(&query),
            Some(("node-b", LiveKind::PresenceQuery, &[][..]))
        );
    }
}
