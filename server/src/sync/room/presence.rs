//! Presence: awareness updates are relayed to every connection, and each user's cursor and
//! selection are written to the shared presence store at most once per [`PUT_INTERVAL`]
//! (the last one held back is written when the interval is over).

use super::Room;
use super::commands::ConnId;
use crate::sync::shared::{LiveKind, PUT_INTERVAL, SharedOp};
use bytes::Bytes;
use canvas_engine::protocol::{self};
use canvas_engine::yrs::ClientID;
use canvas_engine::yrs::sync::awareness::AwarenessUpdate;
use canvas_engine::yrs::updates::encoder::Encode;
use canvas_storage::PresenceEntry;
use tokio::time::Instant;
use uuid::Uuid;

impl Room {
    /// Writes a user's presence from their connection's awareness state (throttled).
    pub(super) fn write_presence(&mut self, conn_id: ConnId, changed: &[ClientID]) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let now = Instant::now();
        let held_back = self
            .presence_written
            .get(&conn.user_id)
            .is_some_and(|at| now.duration_since(*at) < PUT_INTERVAL);
        let state = changed
            .iter()
            .rev()
            .find_map(|id| self.presence.state(*id))
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .unwrap_or(serde_json::Value::Null);
        let entry = PresenceEntry {
            user_id: conn.user_id,
            username: conn.username.clone(),
            cursor: state
                .get("cursor")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            selection: state
                .get("selection")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            last_seen: chrono::Utc::now(),
        };
        if held_back {
            self.presence_pending.insert(conn.user_id, entry);
            return;
        }
        self.presence_pending.remove(&conn.user_id);
        self.presence_written.insert(conn.user_id, now);
        self.shared_writer.send(SharedOp::Put(entry));
    }

    /// When the next held-back presence write is due, if any.
    pub(super) fn presence_due(&self) -> Option<Instant> {
        self.presence_pending
            .keys()
            .filter_map(|user| self.presence_written.get(user))
            .min()
            .map(|at| *at + PUT_INTERVAL)
    }

    /// Writes the held-back presence entries whose interval is over.
    pub(super) fn flush_presence(&mut self) {
        let now = Instant::now();
        let due: Vec<Uuid> = self
            .presence_pending
            .keys()
            .filter(|user| {
                self.presence_written
                    .get(*user)
                    .is_none_or(|at| now.duration_since(*at) >= PUT_INTERVAL)
            })
            .copied()
            .collect();
        for user in due {
            if let Some(mut entry) = self.presence_pending.remove(&user) {
                entry.last_seen = chrono::Utc::now();
                self.presence_written.insert(user, now);
                self.shared_writer.send(SharedOp::Put(entry));
            }
        }
    }

    pub(super) fn awareness(&mut self, conn_id: ConnId, mut update: AwarenessUpdate) {
        // A connection speaks only for the awareness clients it announced first: entries for
        // a client id another connection owns are dropped, so nobody can fake or erase
        // someone else's cursor.
        update.clients.retain(|id, _| {
            self.awareness_owner
                .get(id)
                .is_none_or(|owner| *owner == conn_id)
        });
        if update.clients.is_empty() {
            return;
        }
        let frame: Bytes = protocol::awareness(&update).into();
        if self.shared() {
            self.publish(LiveKind::Awareness, &update.encode_v1());
        }
        let change = self.presence.apply(&update);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            for id in change.added.iter().chain(&change.updated) {
                conn.clients.insert(*id);
                self.awareness_owner.insert(*id, conn_id);
            }
            for id in &change.removed {
                conn.clients.remove(id);
                self.awareness_owner.remove(id);
            }
        }
        let changed: Vec<ClientID> = change
            .added
            .iter()
            .chain(&change.updated)
            .copied()
            .collect();
        if !changed.is_empty() {
            self.write_presence(conn_id, &changed);
        }
        // Echo to the sender too: y-websocket drops a socket that hears nothing for 30 s,
        // and the echo of its 15 s awareness renewal keeps it alive.
        self.broadcast(None, frame);
    }
}
