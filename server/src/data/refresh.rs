//! "This source has new data": announced after a source is re-synced (a pipeline run or
//! `POST /data-sources/{id}/sync`), so whatever shows its numbers (the bound blocks of open
//! canvases) computes them again.
//!
//! On a node, [`Refreshes::subscribe`] gives a `tokio::sync::broadcast` receiver of the ids
//! of refreshed sources. [`Refreshes::announce`] sends the id to this node's subscribers and,
//! when the fan-out is shared (Redis), publishes `{"kind": "source_refreshed", "source":
//! "<uuid>"}` on the control channel (`canvas:control`); every other node's listener
//! ([`Refreshes::listen`]) hands it to its own subscribers. A subscriber that falls behind
//! by more than [`CAPACITY`] ids gets `RecvError::Lagged` and should refresh everything it
//! shows. Delivery is best effort, like the other control messages: a node whose
//! subscription is broken at that moment misses it (and shows the new numbers at the next
//! execution of the query).

use canvas_storage::Fanout;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
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

    /// Hands the other nodes' `source_refreshed` messages to this node's subscribers until
    /// `stop` (resubscribing after a broken subscription). Other kinds of control message
    /// are someone else's and are skipped. The first subscription is made before this
    /// returns.
    pub async fn listen(
        self: &Arc<Self>,
        fanout: Arc<dyn Fanout>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) {
        if !fanout.is_shared() {
            return;
        }
        let first = match fanout.subscribe_control().await {
            Ok(rx) => Some(rx),
            Err(cause) => {
                tracing::warn!(%cause, "cannot subscribe to control messages; retrying");
                None
            }
        };
        let refreshes = self.clone();
        tasks.spawn(async move {
            let mut subscription = first;
            while !stop.is_cancelled() {
                let mut rx = match subscription.take() {
                    Some(rx) => rx,
                    None => match fanout.subscribe_control().await {
                        Ok(rx) => rx,
                        Err(cause) => {
                            tracing::warn!(%cause, "cannot subscribe to control messages; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                () = stop.cancelled() => return,
                            }
                        }
                    },
                };
                loop {
                    let message = tokio::select! {
                        message = rx.recv() => message,
                        () = stop.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    if let Some(source) = parse(&message) {
                        refreshes.here(source);
                    }
                }
            }
        });
    }
}

/// The source of a `source_refreshed` message; `None` for any other message.
fn parse(message: &[u8]) -> Option<Uuid> {
    let message: SourceRefreshed = serde_json::from_slice(message).ok()?;
    (message.kind == KIND).then_some(message.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_source_refreshed_messages_are_taken() {
        let id = Uuid::new_v4();
        let bytes = serde_json::to_vec(&SourceRefreshed {
            kind: KIND.into(),
            source: id,
        })
        .expect("json");
        assert_eq!(parse(&bytes), Some(id));
        assert_eq!(parse(br#"{"kind":"session_ended","session":"ab"}"#), None);
        assert_eq!(
            parse(format!(r#"{{"kind":"execution_cancelled","source":"{id}"}}"#).as_bytes()),
            None
        );
        assert_eq!(parse(b"not json"), None);
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
