//! "This source has new data": announced after a source is re-synced (a pipeline run or
//! `POST /data-sources/{id}/sync`), so whatever shows its numbers (the bound blocks of open
//! canvases) computes them again.
//!
//! On a node, [`Refreshes::subscribe`] gives a `tokio::sync::broadcast` receiver of the ids
//! of refreshed sources. [`Refreshes::announce`] sends the id to this node's subscribers and,
//! when the fan-out is shared (Redis), publishes `{"kind": "source_refreshed", "source":
//! "<uuid>"}` on the control channel (`canvas:control`); every other node's control
//! listener (`crate::control`) hands it to its own subscribers ([`Refreshes::here`]). A subscriber that falls behind
//! by more than [`CAPACITY`] ids gets `RecvError::Lagged` and should refresh everything it
//! shows. Delivery is best effort, like the other control messages: a node whose
//! subscription is broken at that moment misses it (and shows the new numbers at the next
//! execution of the query).

use canvas_storage::Fanout;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Ids a slow subscriber may fall behind by before it is told it lagged.
pub const CAPACITY: usize = 1024;

/// The control message's `kind`.
const KIND: &str = "source_refreshed";

/// The control message, as sent on the channel.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct SourceRefreshed {
    kind: String,
    source: Uuid,
}

/// Refreshed sources on this node: the sender every subscriber hangs on.
pub struct Refreshes {
    tx: broadcast::Sender<Uuid>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Refreshes {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Refreshes {
    /// The ids of the sources refreshed from now on, on any node.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }

    /// Tells this node's subscribers (nobody listening is fine).
    pub fn here(&self, source: Uuid) {
        let _ = self.tx.send(source);
    }

    /// Tells this node's subscribers and the other nodes.
    pub async fn announce(&self, fanout: &dyn Fanout, source: Uuid) {
        self.here(source);
        if !fanout.is_shared() {
            return;
        }
        let message = SourceRefreshed {
            kind: KIND.into(),
            source,
        };
        let Ok(bytes) = serde_json::to_vec(&message) else {
            return;
        };
        if let Err(cause) = fanout.publish_control(bytes).await {
            tracing::warn!(%cause, %source, "cannot tell the other nodes that a source was refreshed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_control_channels_source_refreshed() {
        let id = Uuid::nil();
        let bytes = serde_json::to_vec(&SourceRefreshed {
            kind: KIND.into(),
            source: id,
        })
        .unwrap_or_default();
        // what crate::control parses (its own test reads this text back)
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            format!(r#"{{"kind":"source_refreshed","source":"{id}"}}"#)
        );
    }

    #[tokio::test]
    async fn every_subscriber_of_the_node_sees_a_refresh() {
        let refreshes = Refreshes::default();
        let mut a = refreshes.subscribe();
        let mut b = refreshes.subscribe();
        let id = Uuid::new_v4();
        refreshes
            .announce(&canvas_storage::memory::SingleNode, id)
            .await;
        assert_eq!(a.recv().await.ok(), Some(id));
        assert_eq!(b.recv().await.ok(), Some(id));
    }
}
