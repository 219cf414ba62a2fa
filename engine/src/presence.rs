//! A room's awareness table (who is there and what they announced), sans-IO.
//!
//! It follows y-protocols' `applyAwarenessUpdate`: each entry carries the client's clock,
//! and an entry is taken only if its clock is newer than the known one, or equal with a
//! `null` state while the client is still present (that is how a peer or the server marks a
//! client offline). Removed clients are remembered with their clock (as y-protocols keeps
//! their `meta`), so a late, older update cannot bring them back.
//!
//! One difference from y-protocols: an update about a client the table has never seen is
//! taken whatever its clock (as yrs does), while y-protocols ignores clock 0 from an unknown
//! client. A y-websocket client's very first state has clock 0, and the server should list
//! it as present.

use std::collections::HashMap;
use std::sync::Arc;

use yrs::ClientID;
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;

/// The JSON text of a removed state, as y-protocols encodes it.
const NULL_STATE: &str = "null";

#[derive(Debug, Clone)]
struct Entry {
    clock: u32,
    /// `None` once the client is removed.
    state: Option<Arc<str>>,
}

/// What one [`PresenceTable::apply`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceChange {
    /// Clients that were not present before and now are.
    pub added: Vec<ClientID>,
    /// Present clients whose entry was renewed (newer clock), whether or not the state differs.
    pub updated: Vec<ClientID>,
    /// Clients that were present and now are not.
    pub removed: Vec<ClientID>,
}

impl PresenceChange {
    /// Whether nothing changed (the update was stale or only about absent clients).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// The awareness states of one room, keyed by Yjs client id.
#[derive(Debug, Clone, Default)]
pub struct PresenceTable {
    entries: HashMap<ClientID, Entry>,
}

impl PresenceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies an incoming awareness update and says what changed. Lists in the result are
    /// sorted by client id.
    pub fn apply(&mut self, update: &AwarenessUpdate) -> PresenceChange {
        let mut change = PresenceChange::default();
        for (&client, AwarenessUpdateEntry { clock, json }) in &update.clients {
            let clock = *clock;
            let incoming = if json.as_ref() == NULL_STATE {
                None
            } else {
                Some(json.clone())
            };
            match self.entries.get_mut(&client) {
                Some(entry) => {
                    let present = entry.state.is_some();
                    let newer = entry.clock < clock;
                    let equal_removal = entry.clock == clock && incoming.is_none() && present;
                    if !(newer || equal_removal) {
                        continue;
                    }
                    entry.clock = clock;
                    match (present, incoming.is_some()) {
                        (false, true) => change.added.push(client),
                        (true, true) => change.updated.push(client),
                        (true, false) => change.removed.push(client),
                        (false, false) => {}
                    }
                    entry.state = incoming;
                }
                None => {
                    if incoming.is_some() {
                        change.added.push(client);
                    }
                    self.entries.insert(
                        client,
                        Entry {
                            clock,
                            state: incoming,
                        },
                    );
                }
            }
        }
        change.added.sort();
        change.updated.sort();
        change.removed.sort();
        change
    }

    /// Every present client's state, to send to a new joiner or to answer a query awareness.
    /// When nobody is present the update has no entries (`clients.is_empty()`): callers can
    /// skip sending it (sending it is harmless too: it encodes as a zero-length list).
    pub fn full_update(&self) -> AwarenessUpdate {
        let clients = self
            .entries
            .iter()
            .filter_map(|(&id, e)| {
                e.state.as_ref().map(|json| {
                    (
                        id,
                        AwarenessUpdateEntry {
                            clock: e.clock,
                            json: json.clone(),
                        },
                    )
                })
            })
            .collect();
        AwarenessUpdate { clients }
    }

    /// Removes these clients (for example every client id a closed connection announced) and
    /// returns the update to broadcast, or `None` if none of them was present.
    ///
    /// The update carries each client's current clock with a `null` state, exactly as the
    /// y-websocket server sends after y-protocols' `removeAwarenessStates`: peers drop a
    /// present client on an equal clock with a null state, and the client's own next update
    /// (clock + 1) is still taken if it comes back.
    pub fn remove(&mut self, ids: &[ClientID]) -> Option<AwarenessUpdate> {
        let mut clients = HashMap::new();
        for id in ids {
            if let Some(entry) = self.entries.get_mut(id)
                && entry.state.take().is_some()
            {
                clients.insert(
                    *id,
                    AwarenessUpdateEntry {
                        clock: entry.clock,
                        json: Arc::from(NULL_STATE),
                    },
                );
            }
        }
        if clients.is_empty() {
            None
        } else {
            Some(AwarenessUpdate { clients })
        }
    }

    /// Every present client's state parsed as JSON, sorted by client id. States that are
    /// not valid JSON are skipped.
    pub fn states(&self) -> Vec<(ClientID, serde_json::Value)> {
        let mut out: Vec<(ClientID, serde_json::Value)> = self
            .entries
            .iter()
            .filter_map(|(&id, e)| {
                let json = e.state.as_ref()?;
                serde_json::from_str(json).ok().map(|v| (id, v))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// One client's raw state JSON, if present.
    pub fn state(&self, id: ClientID) -> Option<&str> {
        self.entries.get(&id)?.state.as_deref()
    }

    /// The last clock seen for a client, present or removed.
    pub fn clock(&self, id: ClientID) -> Option<u32> {
        self.entries.get(&id).map(|e| e.clock)
    }

    /// Whether a client is present.
    pub fn contains(&self, id: ClientID) -> bool {
        self.state(id).is_some()
    }

    /// How many clients are present.
    pub fn len(&self) -> usize {
        self.entries.values().filter(|e| e.state.is_some()).count()
    }

    /// Whether nobody is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the clocks of removed clients (they are kept so that stale updates cannot
    /// revive them). Call this when the room empties, to bound memory.
    pub fn forget_removed(&mut self) {
        self.entries.retain(|_, e| e.state.is_some());
    }
}

/// Why an awareness state was refused (it is dropped: neither applied nor relayed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    /// The state's JSON text is longer than the limit.
    #[error("awareness state of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The state's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The state is not JSON (y-protocols' `applyAwarenessUpdate` would throw on it).
    #[error("awareness state is not JSON: {0}")]
    NotJson(String),
}

/// Checks one incoming awareness state and stamps the sender's authenticated name into it;
/// returns the JSON text to apply and relay.
///
/// Every peer runs `JSON.parse` on every state it receives, so a state that is not JSON must
/// never be relayed: it throws inside the standard client's message handler. `null` (the
/// client going offline) passes unchanged. An object state gets `user.name` set to `name`
/// (creating `user` when it is missing or not an object; its other fields, such as `color`,
/// stay), so nobody can appear under someone else's name. Other JSON values pass unchanged.
pub fn vet_state(json: &str, max_bytes: usize, name: &str) -> Result<Arc<str>, StateRefusal> {
    if json.len() > max_bytes {
        return Err(StateRefusal::TooLarge {
            size: json.len(),
            limit: max_bytes,
        });
    }
    if json == NULL_STATE {
        return Ok(Arc::from(NULL_STATE));
    }
    let mut value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| StateRefusal::NotJson(e.to_string()))?;
    let serde_json::Value::Object(state) = &mut value else {
        return Ok(Arc::from(json));
    };
    let user = state
        .entry("user")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !user.is_object() {
        *user = serde_json::Value::Object(Default::default());
    }
    if let serde_json::Value::Object(user) = user {
        if user.get("name").and_then(|n| n.as_str()) == Some(name) {
            return Ok(Arc::from(json));
        }
        user.insert("name".to_owned(), serde_json::Value::from(name));
    }
    Ok(Arc::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u64) -> ClientID {
        ClientID::new(n)
    }

    fn upd(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|&(c, clock, s)| {
                    (
                        id(c),
                        AwarenessUpdateEntry {
                            clock,
                            json: Arc::from(s),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn vetting_refuses_what_peers_cannot_parse_and_stamps_the_name() {
        let max = 64;
        assert_eq!(
            vet_state("not json", max, "ann"),
            Err(StateRefusal::NotJson(
                "expected ident at line 1 column 2".into()
            ))
        );
        assert!(matches!(
            vet_state(&"x".repeat(65), max, "ann"),
            Err(StateRefusal::TooLarge {
                size: 65,
                limit: 64
            })
        ));
        assert_eq!(vet_state("null", max, "ann").as_deref(), Ok("null"));
        assert_eq!(vet_state("42", max, "ann").as_deref(), Ok("42"));
        let stamped = |json| {
            let out = vet_state(json, max, "ann").expect("valid");
            serde_json::from_str::<serde_json::Value>(&out).expect("json")
        };
        assert_eq!(
            stamped(r#"{"user":{"name":"Owner (admin)","color":"red"},"cursor":1}"#),
            json!({"user": {"name": "ann", "color": "red"}, "cursor": 1})
        );
        assert_eq!(
            stamped(r#"{"cursor":1}"#),
            json!({"user": {"name": "ann"}, "cursor": 1})
        );
        assert_eq!(
            stamped(r#"{"user":"Bob"}"#),
            json!({"user": {"name": "ann"}})
        );
        // Already right: the text passes as it came.
        let same = r#"{"user": {"name":"ann"}}"#;
        assert_eq!(vet_state(same, max, "ann").as_deref(), Ok(same));
    }

    #[test]
    fn follows_awareness_clock_rules() {
        let mut t = PresenceTable::new();
        let c = t.apply(&upd(&[
            (1, 0, r#"{"user":"a"}"#),
            (2, 3, r#"{"user":"b"}"#),
        ]));
        assert_eq!(c.added, vec![id(1), id(2)]);
        assert_eq!(t.len(), 2);

        // Same clock with a state: ignored. Older clock: ignored.
        assert!(t.apply(&upd(&[(1, 0, r#"{"user":"x"}"#)])).is_empty());
        assert!(t.apply(&upd(&[(2, 2, r#"{"user":"x"}"#)])).is_empty());
        assert_eq!(t.state(id(1)), Some(r#"{"user":"a"}"#));

        // Newer clock: updated (even if the state is the same).
        let c = t.apply(&upd(&[(1, 1, r#"{"user":"a"}"#)]));
        assert_eq!(c.updated, vec![id(1)]);

        // Equal clock + null: removed.
        let c = t.apply(&upd(&[(2, 3, "null")]));
        assert_eq!(c.removed, vec![id(2)]);
        assert!(!t.contains(id(2)));
        // A stale update cannot revive it; a newer one can.
        assert!(t.apply(&upd(&[(2, 3, r#"{"user":"b"}"#)])).is_empty());
        let c = t.apply(&upd(&[(2, 4, r#"{"user":"b"}"#)]));
        assert_eq!(c.added, vec![id(2)]);

        // Null for an unknown client: remembered, not added.
        assert!(t.apply(&upd(&[(9, 5, "null")])).is_empty());
        assert_eq!(t.clock(id(9)), Some(5));
        assert!(t.apply(&upd(&[(9, 4, "{}")])).is_empty());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn remove_broadcasts_equal_clock_null() {
        let mut t = PresenceTable::new();
        t.apply(&upd(&[(1, 7, "{}"), (2, 1, "{}")]));
        let u = t.remove(&[id(1), id(3)]).expect("update");
        assert_eq!(u, upd(&[(1, 7, "null")]));
        assert_eq!(t.remove(&[id(1)]), None);
        assert_eq!(t.len(), 1);

        // A peer table that receives the removal drops the client too.
        let mut peer = PresenceTable::new();
        peer.apply(&upd(&[(1, 7, "{}")]));
        assert_eq!(peer.apply(&u).removed, vec![id(1)]);
        // And the client coming back with its next clock is taken.
        assert_eq!(peer.apply(&upd(&[(1, 8, "{}")])).added, vec![id(1)]);
        assert_eq!(t.apply(&upd(&[(1, 8, "{}")])).added, vec![id(1)]);
    }

    #[test]
    fn full_update_and_states() {
        let mut t = PresenceTable::new();
        assert!(t.full_update().clients.is_empty());
        assert!(t.is_empty());
        t.apply(&upd(&[
            (2, 1, r#"{"b":1}"#),
            (1, 1, r#"{"a":1}"#),
            (3, 1, "not json"),
        ]));
        t.apply(&upd(&[(4, 1, "{}")]));
        t.remove(&[id(4)]);
        let full = t.full_update();
        assert_eq!(
            full,
            upd(&[
                (1, 1, r#"{"a":1}"#),
                (2, 1, r#"{"b":1}"#),
                (3, 1, "not json")
            ])
        );
        assert_eq!(
            t.states(),
            vec![(id(1), json!({"a": 1})), (id(2), json!({"b": 1}))]
        );
        // A fresh table fed the full update knows the same clients.
        let mut other = PresenceTable::new();
        assert_eq!(other.apply(&full).added, vec![id(1), id(2), id(3)]);
        t.forget_removed();
        assert_eq!(t.clock(id(4)), None);
        assert_eq!(t.len(), 3);
    }
}
