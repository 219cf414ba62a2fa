//! Several server nodes sharing a canvas: this room publishes its durable updates and
//! awareness to the others, applies theirs, and catches up from the durable log when a live
//! message was missed.

use super::Room;
use super::authz::ChangedBy;
use super::commands::{ConnId, RoomCmd};
use crate::sync::shared::{AccessChange, LiveKind, SharedOp, decode_live, encode_live};
use canvas_engine::canvas::DocError;
use canvas_engine::protocol::{self};
use tokio::sync::mpsc;
use tracing::warn;

/// The owner recorded for awareness client ids announced through another server node.
pub(super) const REMOTE: ConnId = 0;

impl Room {
    /// Whether other server nodes may share this canvas.
    pub(super) fn shared(&self) -> bool {
        self.deps.fanout.is_shared()
    }

    pub(super) fn publish(&self, kind: LiveKind, payload: &[u8]) {
        if self.shared() {
            let message = encode_live(&self.deps.node_id, kind, payload);
            self.shared_writer.send(SharedOp::Publish(message));
        }
    }

    /// A live message from another node: its durable update is applied (without role or
    /// schema checks: its node checked it) and relayed to this node's connections; its
    /// awareness is merged and relayed.
    pub(super) async fn remote(&mut self, kind: LiveKind, payload: Vec<u8>) {
        match kind {
            LiveKind::Update => {
                match self.canvas.apply_remote(&payload) {
                    Ok(()) => {}
                    Err(DocError::MissingDependency(_)) => {
                        // A message was missed (pub/sub delivers at most once): the log has it.
                        self.catch_up().await;
                        if let Err(cause) = self.canvas.apply_remote(&payload) {
                            warn!(%cause, "remote update still not applicable");
                            return;
                        }
                    }
                    Err(cause) => {
                        warn!(%cause, "bad update from another node");
                        return;
                    }
                }
                self.relay_update(None, payload.into());
                self.sharing_changed(ChangedBy::OtherNode);
            }
            LiveKind::Access => match serde_json::from_slice::<AccessChange>(&payload) {
                Ok(change) => self.access_changed(change),
                Err(cause) => {
                    warn!(%cause, "bad access change from another node")
                }
            },
            LiveKind::Awareness => {
                // Checked like a client's (no client id above 53 bits, no reservation for
                // a declared count): yrs's own decoder trusts what it reads.
                let update = match protocol::decode_awareness_update(&payload) {
                    Ok(update) => update,
                    Err(cause) => {
                        warn!(%cause, "bad awareness from another node");
                        return;
                    }
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
    pub(super) async fn catch_up(&mut self) -> Option<i64> {
        let stored = match self.deps.canvases.load_document(self.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return None,
            Err(cause) => {
                warn!(%cause, "cannot read the log to catch up");
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
                warn!(%cause, "log entry not applicable while catching up");
                complete = false;
            }
        }
        if self.canvas.state_vector() != before {
            let diff = self.canvas.encode_diff(&before);
            self.relay_update(None, diff.into());
            self.sharing_changed(ChangedBy::OtherNode);
        }
        complete.then(|| {
            stored
                .updates
                .last()
                .map_or(stored.snapshot_seq, |(seq, _)| *seq)
        })
    }
}

/// Hands the other nodes' live messages to the room (this node's own are left out).
pub(super) async fn forward_remote(
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
