//! Open WebSockets by login session, so that ending a session closes them at once (4401),
//! on every node.
//!
//! A connection admitted with a token registers under the token's hash and gets a
//! cancellation token; logout cancels every connection of the session here and publishes
//! `{"kind": "session_ended", "session": "<hash>"}` on the control channel (Redis
//! `canvas:control`), and every node that receives it does the same. Expiry needs no
//! message: each connection knows when its session expires and closes then.

use canvas_storage::Fanout;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a connection keys its session by: the hex SHA-256 of the token (never the token,
/// which must not travel between nodes).
pub fn session_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A control message between nodes.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    /// A login session ended (logout): close its connections.
    SessionEnded {
        /// [`session_key`] of the session.
        session: String,
    },
    /// A source has new data: the data layer's refresh listener takes it on its own.
    SourceRefreshed {
        /// The source's id.
        source: uuid::Uuid,
    },
}

/// The open connections of each login session on this node.
#[derive(Default)]
pub struct LiveSessions {
    conns: DashMap<String, HashMap<u64, CancellationToken>>,
}

/// A connection's registration; dropping it unregisters.
pub struct Registration {
    sessions: Arc<LiveSessions>,
    key: String,
    conn: u64,
    /// Cancelled when the session ends.
    pub ended: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.conns.remove_if_mut(&self.key, |_, conns| {
            conns.remove(&self.conn);
            conns.is_empty()
        });
    }
}

impl LiveSessions {
    /// Registers a connection of the session with this key.
    pub fn register(self: &Arc<Self>, key: String, conn: u64) -> Registration {
        let ended = CancellationToken::new();
        self.conns
            .entry(key.clone())
            .or_default()
            .insert(conn, ended.clone());
        Registration {
            sessions: self.clone(),
            key,
            conn,
            ended,
        }
    }

    /// Closes this node's connections of a session; how many there were.
    pub fn end_here(&self, key: &str) -> usize {
        let Some((_, conns)) = self.conns.remove(key) else {
            return 0;
        };
        for ended in conns.values() {
            ended.cancel();
        }
        conns.len()
    }

    /// Ends a session's connections on this node and tells the other nodes.
    pub async fn end_everywhere(&self, key: &str, fanout: &dyn Fanout) {
        self.end_here(key);
        if !fanout.is_shared() {
            return;
        }
        let message = Control::SessionEnded {
            session: key.to_owned(),
        };
        let Ok(bytes) = serde_json::to_vec(&message) else {
            return;
        };
        if let Err(cause) = fanout.publish_control(bytes).await {
            // The other nodes' connections of this session end at its expiry instead.
            tracing::warn!(%cause, "cannot tell the other nodes that a session ended");
        }
    }

    /// Listens to the other nodes' control messages until `stop` (resubscribing after a
    /// broken subscription). The first subscription is made before this returns, so a
    /// logout anywhere after the server started serving reaches this node.
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
        let sessions = self.clone();
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
                    match serde_json::from_slice::<Control>(&message) {
                        Ok(Control::SessionEnded { session }) => {
                            sessions.end_here(&session);
                        }
                        Ok(Control::SourceRefreshed { .. }) => {}
                        Err(cause) => tracing::warn!(%cause, "bad control message"),
                    }
                }
            }
        });
    }
}

/// How long until a session expiring at `expires_at` ends (zero if it already has).
pub fn until(expires_at: chrono::DateTime<chrono::Utc>) -> Duration {
    (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_session_cancels_only_its_connections() {
        let sessions = Arc::new(LiveSessions::default());
        let a1 = sessions.register(session_key("a"), 1);
        let a2 = sessions.register(session_key("a"), 2);
        let b = sessions.register(session_key("b"), 3);
        assert_eq!(sessions.end_here(&session_key("a")), 2);
        assert!(a1.ended.is_cancelled() && a2.ended.is_cancelled());
        assert!(!b.ended.is_cancelled());
        drop(b);
        assert_eq!(
            sessions.end_here(&session_key("b")),
            0,
            "unregistered on drop"
        );
    }

    #[test]
    fn control_messages_round_trip() {
        let m = Control::SessionEnded {
            session: "ab".into(),
        };
        let bytes = serde_json::to_vec(&m).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"kind":"session_ended","session":"ab"}"#
        );
        assert_eq!(serde_json::from_slice::<Control>(&bytes).ok(), Some(m));
    }
}
