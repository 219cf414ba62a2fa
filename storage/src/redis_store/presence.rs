//! [`PresenceStore`] on `canvas:presence:{canvas_id}` and `canvas:state:{canvas_id}`.
//!
//! `canvas:presence:{canvas_id}` is a hash of user id -> [`PresenceEntry`] as JSON. Every
//! write sets the key's TTL to the writer's `ttl` (5 minutes in the server): the rolling TTL of
//! the seed, so a canvas nobody is on any more disappears by itself. Redis (before 7.4) has no
//! per-field TTL, so readers skip entries whose `last_seen` is older than `ttl` and delete
//! them (only if unchanged since they were read, so a concurrent refresh is never lost).
//!
//! `canvas:state:{canvas_id}` is a hash; field `active_users:{node_id}` holds the JSON array of
//! the users with an open connection to the canvas on that node. A node replaces its own field
//! and clears it (an empty list deletes the field; Redis deletes the key with its last field).
//! The seed calls it "persistent with cleanup": the cleanup is the key's [`STATE_TTL`],
//! refreshed by every write from any node, which removes what a node that died without
//! clearing its field left behind once the canvas has been quiet that long. While other nodes
//! keep writing, a dead node's field stays: a node should clear (or rewrite) its fields when it
//! starts, under a stable node id.

use super::{RedisStore, millis};
use crate::{PresenceEntry, PresenceStore, StorageError, StorageResult};
use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// Lifetime of `canvas:state:{canvas_id}` after its last write.
pub const STATE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Prefix of the fields of `canvas:state:{canvas_id}` holding a node's active users.
const ACTIVE_FIELD: &str = "active_users:";

/// Deletes hash fields that still hold the value they were read with.
/// `KEYS[1]` the hash; `ARGV` pairs of field, expected value.
static DELETE_IF_UNCHANGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
",
    )
});

impl RedisStore {
    fn presence_key(&self, canvas_id: Uuid) -> String {
        self.key(format_args!("canvas:presence:{canvas_id}"))
    }

    fn state_key(&self, canvas_id: Uuid) -> String {
        self.key(format_args!("canvas:state:{canvas_id}"))
    }
}

#[async_trait]
impl PresenceStore for RedisStore {
    async fn put_presence(
        &self,
        canvas_id: Uuid,
        entry: &PresenceEntry,
        ttl: Duration,
    ) -> StorageResult<()> {
        let value = serde_json::to_string(entry)
            .map_err(|e| StorageError::Corrupt(format!("presence entry: {e}")))?;
        let key = self.presence_key(canvas_id);
        redis::pipe()
            .atomic()
            .hset(&key, entry.user_id.to_string(), value)
            .ignore()
            .pexpire(&key, millis(ttl))
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn remove_presence(&self, canvas_id: Uuid, user_id: Uuid) -> StorageResult<()> {
        let _: usize = self
            .conn()
            .hdel(self.presence_key(canvas_id), user_id.to_string())
            .await?;
        Ok(())
    }

    async fn presence(&self, canvas_id: Uuid, ttl: Duration) -> StorageResult<Vec<PresenceEntry>> {
        let key = self.presence_key(canvas_id);
        let mut conn = self.conn();
        let all: HashMap<String, String> = conn.hgetall(&key).await?;
        let mut live = Vec::with_capacity(all.len());
        let mut stale: Vec<(&str, &str)> = Vec::new();
        for (field, value) in &all {
            match serde_json::from_str::<PresenceEntry>(value) {
                Ok(entry) if entry.is_fresh(ttl) => live.push(entry),
                Ok(_) => stale.push((field, value)),
                Err(e) => {
                    // Presence is transient: an unreadable entry is dropped rather than
                    // failing every reader until the (rolling) key expires.
                    tracing::warn!(%key, %field, error = %e, "dropping unreadable presence entry");
                    stale.push((field, value));
                }
            }
        }
        if !stale.is_empty() {
            let mut call = DELETE_IF_UNCHANGED.key(&key);
            for (field, value) in stale {
                call.arg(field).arg(value);
            }
            call.invoke_async::<()>(&mut conn).await?;
        }
        live.sort_by_key(|e| e.user_id);
        Ok(live)
    }

    async fn set_active_users(
        &self,
        canvas_id: Uuid,
        node_id: &str,
        users: &[Uuid],
    ) -> StorageResult<()> {
        let key = self.state_key(canvas_id);
        let field = format!("{ACTIVE_FIELD}{node_id}");
        let mut conn = self.conn();
        if users.is_empty() {
            let _: usize = conn.hdel(&key, &field).await?;
            return Ok(());
        }
        let value = serde_json::to_string(users)
            .map_err(|e| StorageError::Corrupt(format!("active users: {e}")))?;
        redis::pipe()
            .atomic()
            .hset(&key, &field, value)
            .ignore()
            .pexpire(&key, millis(STATE_TTL))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn active_users(&self, canvas_id: Uuid) -> StorageResult<Vec<Uuid>> {
        let key = self.state_key(canvas_id);
        let all: HashMap<String, String> = self.conn().hgetall(&key).await?;
        let mut users = BTreeSet::new();
        for (field, value) in &all {
            if !field.starts_with(ACTIVE_FIELD) {
                // Room for the seed's other canvas state (current_state, locks).
                continue;
            }
            let list: Vec<Uuid> = serde_json::from_str(value).map_err(|e| {
                StorageError::Corrupt(format!("{key} field {field}: {e}: {value:?}"))
            })?;
            users.extend(list);
        }
        Ok(users.into_iter().collect())
    }
}
