//! Open WebSockets by login session, so that ending a session closes them at once (4401),
//! on every node.
//!
//! A connection admitted with a token registers under the token's hash and gets a
//! cancellation token; logout cancels every connection of the session here and tells the
//! other nodes, which do the same (`crate::control`: the message `session_ended` on the
//! control channel). Expiry needs no message: each connection knows when its session
//! expires and closes then.

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a connection keys its session by: the hex SHA-256 of the token (never the token,
/// which must not travel between nodes).
pub fn session_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
}
