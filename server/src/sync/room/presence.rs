//! Presence: awareness updates are relayed to every connection, and each user's cursor and
//! selection are written to the shared presence store at most once per [`PUT_INTERVAL`]
//! (the last one held back is written when the interval is over).

use super::Room;
use super::commands::ConnId;
use crate::sync::shared::{LiveKind, PUT_INTERVAL, SharedOp};
use bytes::Bytes;
use canvas_engine::presence::vet_state;
use canvas_engine::protocol::{self, ErrorBody, Extension};
use canvas_engine::yrs::ClientID;
use canvas_engine::yrs::sync::awareness::AwarenessUpdate;
use canvas_engine::yrs::updates::encoder::Encode;
use canvas_storage::PresenceEntry;
use std::collections::HashMap;
use tokio::time::Instant;
use tracing::debug;
use uuid::Uuid;

/// Awareness client ids one connection may announce (a y-websocket client has one per
/// document; more than a few is someone faking a crowd).
pub const MAX_CLIENTS_PER_CONN: usize = 4;

/// What presence messages a connection may send.
#[derive(Debug, Clone, Copy)]
pub struct AwarenessLimits {
    /// The longest awareness state (JSON text) accepted, in bytes.
    pub max_state_bytes: usize,
    /// Awareness messages per second one connection may send (bursts of twice that).
    pub per_second: u32,
}

/// A token bucket on the room's clock: `per_second` tokens a second, holding at most two
/// seconds' worth, so a burst of cursor moves passes and a flood does not.
#[derive(Debug)]
pub(super) struct Budget {
    tokens: f64,
    at: Option<Instant>,
}

impl Budget {
    /// A full bucket.
    pub(super) fn new() -> Self {
        Budget {
            tokens: f64::INFINITY,
            at: None,
        }
    }

    /// Takes one token at `now`; `false` when there is none.
    pub(super) fn take(&mut self, now: Instant, per_second: u32) -> bool {
        let rate = f64::from(per_second.max(1));
        let capacity = 2.0 * rate;
        let refill = self
            .at
            .map_or(capacity, |at| now.duration_since(at).as_secs_f64() * rate);
        self.tokens = (self.tokens + refill).min(capacity);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A user's presence entry from their connection's awareness state (JSON): its `cursor` and
/// `selection`, null when absent.
fn presence_entry(
    (user_id, username): (uuid::Uuid, &str),
    state: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> PresenceEntry {
    let state: serde_json::Value = state
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    PresenceEntry {
        user_id,
        username: username.to_owned(),
        cursor: state.get("cursor").cloned().unwrap_or_default(),
        selection: state.get("selection").cloned().unwrap_or_default(),
        last_seen: now,
    }
}

/// The presence throttle: at most one write per user per [`PUT_INTERVAL`]; the latest entry
/// held back is written once the interval is over, so the shared store ends with the last
/// cursor, not a stale one.
#[derive(Debug, Default)]
pub(super) struct PresenceThrottle {
    /// When each user's presence was last written.
    written: HashMap<Uuid, Instant>,
    /// The latest entry of each user whose write is held back.
    pending: HashMap<Uuid, PresenceEntry>,
}

impl PresenceThrottle {
    /// A user's new entry at `now`: returned if it is to be written now, else held back
    /// (replacing an entry held back before it).
    pub(super) fn offer(&mut self, entry: PresenceEntry, now: Instant) -> Option<PresenceEntry> {
        let user = entry.user_id;
        let held_back = self
            .written
            .get(&user)
            .is_some_and(|at| now.duration_since(*at) < PUT_INTERVAL);
        if held_back {
            self.pending.insert(user, entry);
            return None;
        }
        self.pending.remove(&user);
        self.written.insert(user, now);
        Some(entry)
    }

    /// When the next held-back entry is due, if any.
    pub(super) fn due(&self) -> Option<Instant> {
        self.pending
            .keys()
            .filter_map(|user| self.written.get(user))
            .min()
            .map(|at| *at + PUT_INTERVAL)
    }

    /// The held-back entries whose interval is over at `now`, counted as written then.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<PresenceEntry> {
        let due: Vec<Uuid> = self
            .pending
            .keys()
            .filter(|user| {
                self.written
                    .get(*user)
                    .is_none_or(|at| now.duration_since(*at) >= PUT_INTERVAL)
            })
            .copied()
            .collect();
        let mut entries = Vec::with_capacity(due.len());
        for user in due {
            if let Some(entry) = self.pending.remove(&user) {
                self.written.insert(user, now);
                entries.push(entry);
            }
        }
        entries
    }

    /// Forgets a user (their last connection left): nothing of theirs is written any more.
    pub(super) fn forget(&mut self, user: Uuid) {
        self.written.remove(&user);
        self.pending.remove(&user);
    }
}

impl Room {
    /// Writes a user's presence from their connection's awareness state (throttled).
    pub(super) fn write_presence(&mut self, conn_id: ConnId, changed: &[ClientID]) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let state = changed.iter().rev().find_map(|id| self.presence.state(*id));
        let entry = presence_entry((conn.user_id, &conn.username), state, chrono::Utc::now());
        if let Some(entry) = self.presence_throttle.offer(entry, Instant::now()) {
            self.shared_writer.send(SharedOp::Put(Box::new(entry)));
        }
    }

    /// Each user connected here who announced an awareness state, with its cursor and
    /// selection, as every connected client sees them now (sorted by user id).
    pub(super) fn live_presence(&self) -> Vec<PresenceEntry> {
        let mut users: HashMap<Uuid, PresenceEntry> = HashMap::new();
        let now = chrono::Utc::now();
        for conn in self.conns.values() {
            // As in the store: a user is listed once one of their connections announced an
            // awareness state; a connection with a cursor or selection wins.
            let Some(state) = conn.clients.iter().find_map(|id| self.presence.state(*id)) else {
                continue;
            };
            let entry = presence_entry((conn.user_id, &conn.username), Some(state), now);
            let bare = entry.cursor.is_null() && entry.selection.is_null();
            match users.entry(conn.user_id) {
                std::collections::hash_map::Entry::Occupied(_) if bare => {}
                slot => {
                    slot.insert_entry(entry);
                }
            }
        }
        let mut entries: Vec<PresenceEntry> = users.into_values().collect();
        entries.sort_by_key(|e| e.user_id);
        entries
    }

    /// When the next held-back presence write is due, if any.
    pub(super) fn presence_due(&self) -> Option<Instant> {
        self.presence_throttle.due()
    }

    /// Writes the held-back presence entries whose interval is over.
    pub(super) fn flush_presence(&mut self) {
        for mut entry in self.presence_throttle.take_due(Instant::now()) {
            entry.last_seen = chrono::Utc::now();
            self.shared_writer.send(SharedOp::Put(Box::new(entry)));
        }
    }

    pub(super) fn awareness(&mut self, conn_id: ConnId, mut update: AwarenessUpdate) {
        let limits = self.deps.config.awareness;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        // Too many presence messages from one connection: dropped (its next move, after the
        // burst, is taken again).
        if !conn
            .awareness_budget
            .take(Instant::now(), limits.per_second)
        {
            debug!(conn = conn_id, "awareness over its rate; dropped");
            return;
        }
        // A connection speaks only for the awareness clients it announced first: entries for
        // a client id another connection owns are dropped, so nobody can fake or erase
        // someone else's cursor. It may announce a few client ids, not thousands.
        let owners = &self.awareness_owner;
        let mut announced = conn.clients.len();
        update.clients.retain(|id, _| match owners.get(id) {
            Some(owner) => *owner == conn_id,
            None if announced < MAX_CLIENTS_PER_CONN => {
                announced += 1;
                true
            }
            None => false,
        });
        // Every state must be JSON every peer can parse, within the size limit; it carries
        // the sender's authenticated name.
        let mut refused = None;
        let name = conn.username.as_str();
        update.clients.retain(|_, entry| {
            match vet_state(&entry.json, limits.max_state_bytes, name) {
                Ok(json) => {
                    entry.json = json;
                    true
                }
                Err(refusal) => {
                    refused = Some(refusal);
                    false
                }
            }
        });
        if let Some(refusal) = refused {
            debug!(conn = conn_id, %refusal, "awareness state refused");
            let body = Extension::Error(ErrorBody {
                code: "invalid_awareness".to_owned(),
                message: refusal.to_string(),
                seq: None,
            });
            self.send(conn_id, protocol::encode_extension(&body).into());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(user: Uuid, x: i64) -> PresenceEntry {
        PresenceEntry {
            user_id: user,
            username: "ann".into(),
            cursor: serde_json::json!({ "x": x, "y": 0 }),
            selection: serde_json::Value::Null,
            last_seen: chrono::Utc::now(),
        }
    }

    /// Offers cursor moves 1..=n every `step` and drains what is due, as the room's loop
    /// does; returns the cursors written, in order.
    async fn run(throttle: &mut PresenceThrottle, user: Uuid, n: i64, step: Duration) -> Vec<i64> {
        let mut written = Vec::new();
        let mut record = |e: PresenceEntry| written.push(e.cursor["x"].as_i64().unwrap_or(-1));
        for x in 1..=n {
            if let Some(e) = throttle.offer(entry(user, x), Instant::now()) {
                record(e);
            }
            tokio::time::advance(step).await;
        }
        while let Some(due) = throttle.due() {
            tokio::time::sleep_until(due).await;
            throttle
                .take_due(Instant::now())
                .into_iter()
                .for_each(&mut record);
        }
        written
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_cursor_moves_is_written_twice_first_and_last() {
        let mut throttle = PresenceThrottle::default();
        let user = Uuid::new_v4();
        let start = Instant::now();
        let written = run(&mut throttle, user, 5, Duration::from_millis(10)).await;
        assert_eq!(
            written,
            vec![1, 5],
            "the first at once, the last when the interval ends"
        );
        assert_eq!(
            Instant::now() - start,
            PUT_INTERVAL,
            "the last waits out the interval"
        );
        assert_eq!(throttle.due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn moves_slower_than_the_interval_are_all_written_at_once() {
        let mut throttle = PresenceThrottle::default();
        let written = run(&mut throttle, Uuid::new_v4(), 3, PUT_INTERVAL).await;
        assert_eq!(written, vec![1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_awareness_budget_lets_a_burst_through_and_refills_at_its_rate() {
        let mut budget = Budget::new();
        let now = Instant::now();
        let passed = (0..100).filter(|_| budget.take(now, 10)).count();
        assert_eq!(passed, 20, "a burst of two seconds' worth");
        assert!(!budget.take(now, 10));
        tokio::time::advance(Duration::from_millis(500)).await;
        let passed = (0..100).filter(|_| budget.take(Instant::now(), 10)).count();
        assert_eq!(passed, 5, "half a second refills five");
        tokio::time::advance(Duration::from_secs(60)).await;
        let passed = (0..100).filter(|_| budget.take(Instant::now(), 10)).count();
        assert_eq!(passed, 20, "never more than the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn users_are_throttled_apart_and_a_leaver_is_forgotten() {
        let mut throttle = PresenceThrottle::default();
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Instant::now();
        assert!(throttle.offer(entry(ann, 1), now).is_some());
        assert!(throttle.offer(entry(bob, 1), now).is_some(), "another user");
        assert!(throttle.offer(entry(ann, 2), now).is_none(), "held back");
        throttle.forget(ann);
        assert_eq!(throttle.due(), None, "nothing of a leaver is written");
        assert!(
            throttle.offer(entry(ann, 3), now).is_some(),
            "a rejoin starts afresh"
        );
    }
}
