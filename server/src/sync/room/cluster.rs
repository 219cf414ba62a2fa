//! Several server nodes sharing a canvas: this room publishes its durable updates and
//! awareness to the others, applies theirs, and catches up from the durable log when a live
//! message was missed.
//!
//! Pub/sub (Redis) delivers at most once, and a subscription breaks when its connection does
//! (Redis restarted, a network cut). The forwarder then subscribes again by itself, with a
//! backoff from [`RESUBSCRIBE_FIRST`] up to [`RESUBSCRIBE_MAX`], and tells the room, which
//! makes up for what the break lost: it catches up from the durable log (the other nodes'
//! edits meanwhile), publishes its people's awareness again and asks the other nodes for
//! theirs ([`LiveKind::PresenceQuery`]; a node that subscribed again earlier would otherwise
//! have published its own to nobody), and writes their presence to the shared store again (a
//! Redis without persistence restarts empty).

use super::Room;
use super::authz::ChangedBy;
use super::commands::{ConnId, RoomCmd};
use crate::sync::shared::{AccessChange, LiveKind, SharedOp, decode_live, encode_live};
use canvas_engine::canvas::DocError;
use canvas_engine::protocol::{self};
use canvas_engine::yrs::updates::encoder::Encode;
use canvas_storage::Fanout;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// The first wait before subscribing again after a subscription broke.
pub const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to subscribe again (so a room is back within
/// about this long after its fan-out service answers again).
pub const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// How long one attempt to subscribe may take (an unreachable host must not hang it).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

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
        self.deps.metrics.cluster_received.inc();
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
            LiveKind::PresenceQuery => self.announce_presence(),
            LiveKind::BlockData => self.remote_block_data(&payload),
            LiveKind::DataChanged => self.data_changed(),
        }
    }

    /// The subscription to the other nodes was made again after it broke: catch up on the
    /// edits they made meanwhile (from the log), tell them this node's people's presence and
    /// ask for theirs, and write this node's presence to the shared store again.
    pub(super) async fn resubscribed(&mut self) {
        self.catch_up().await;
        self.announce_presence();
        self.publish(LiveKind::PresenceQuery, &[]);
        for entry in self.live_presence() {
            self.shared_writer.send(SharedOp::Put(Box::new(entry)));
        }
        self.publish_active_users();
        info!("caught up with the other nodes after the subscription broke");
    }

    /// Publishes the awareness of every client connected to this node (not those relayed
    /// from other nodes).
    pub(super) fn announce_presence(&self) {
        let mut update = self.presence.full_update();
        update
            .clients
            .retain(|id, _| self.awareness_owner.get(id).is_some_and(|o| *o != REMOTE));
        if !update.clients.is_empty() {
            self.publish(LiveKind::Awareness, &update.encode_v1());
        }
    }

    /// Applies every durable log entry this document lacks (written by other nodes) and
    /// relays what was new to this node's connections. Returns the last log sequence number
    /// if the document now holds every entry up to it.
    pub(super) async fn catch_up(&mut self) -> Option<i64> {
        self.deps.metrics.cluster_catch_ups.inc();
        let stored = match self.deps.canvases.load_document(self.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return None,
            Err(cause) => {
                self.deps.metrics.storage_error(&cause);
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

/// Hands the other nodes' live messages to the room (this node's own are left out); when
/// the subscription of `canvas` on `fanout` breaks, subscribes again and tells the room.
pub(super) async fn forward_remote(
    mut remote: mpsc::Receiver<Vec<u8>>,
    (fanout, canvas): (Arc<dyn Fanout>, Uuid),
    room: mpsc::WeakSender<RoomCmd>,
    node_id: String,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = remote.recv() => message,
            _ = stop.cancelled() => return,
        };
        let Some(message) = message else {
            // Alone, the channel is closed from the start: there is nothing to subscribe to.
            if !fanout.is_shared() {
                return;
            }
            warn!("the subscription to the other nodes broke; subscribing again");
            let Some(again) = resubscribe(fanout.as_ref(), canvas, &stop).await else {
                return;
            };
            remote = again;
            let Some(room) = room.upgrade() else { return };
            if room.send(RoomCmd::Resubscribed).await.is_err() {
                return;
            }
            continue;
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

/// Subscribes to `canvas` again, waiting [`RESUBSCRIBE_FIRST`] and then twice as long after
/// each failed attempt, up to [`RESUBSCRIBE_MAX`]; `None` once `stop` is cancelled.
async fn resubscribe(
    fanout: &dyn Fanout,
    canvas: Uuid,
    stop: &CancellationToken,
) -> Option<mpsc::Receiver<Vec<u8>>> {
    let mut wait = RESUBSCRIBE_FIRST;
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return None,
        }
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, fanout.subscribe(canvas)).await {
            Ok(Ok(remote)) => {
                info!(attempt, "subscribed to the other nodes again");
                return Some(remote);
            }
            Ok(Err(cause)) => debug!(attempt, %cause, "cannot subscribe yet"),
            Err(_) => debug!(attempt, "no answer to the subscription yet"),
        }
        wait = (wait * 2).min(RESUBSCRIBE_MAX);
    }
}
