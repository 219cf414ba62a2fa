//! The Redis backend of [`SessionStore`](crate::SessionStore),
//! [`PresenceStore`](crate::PresenceStore) and [`RateLimiter`](crate::RateLimiter), on the
//! seed's key patterns.
//!
//! | key | type | content | TTL |
//! |---|---|---|---|
//! | `session:{user_id}` | hash | hex SHA-256 of a token -> `{"created_at","expires_at"}` | the latest `expires_at` of its sessions |
//! | `canvas:presence:{canvas_id}` | hash | user id -> [`PresenceEntry`](crate::PresenceEntry) as JSON | the `ttl` of the last write (5 minutes, rolling) |
//! | `canvas:state:{canvas_id}` | hash | `active_users:{node_id}` -> JSON array of user ids | [`STATE_TTL`], refreshed on every write |
//! | `rate_limit:{user_id}:{endpoint}` | string | the call count of the current window | 60 s from the window's first call |
//!
//! Every key starts with the store's key prefix (empty in production; tests use a unique one
//! each, so they share one server).
//!
//! Each file holds one concern: `redis_store/sessions.rs`, `redis_store/presence.rs`,
//! `redis_store/rate_limit.rs`. Writes that must be atomic are a `MULTI` pipeline or a
//! small Lua script (which Redis runs atomically); nothing depends on Redis 7's `EXPIRE`
//! options or on per-field TTLs (Redis 7.4), so Redis 6 works as well.

mod fanout;
mod presence;
mod rate_limit;
mod results;
mod sessions;

pub use presence::STATE_TTL;

use crate::{StorageError, StorageResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// How long [`RedisStore::connect`] tries (connecting and the first `PING`) before it
/// reports the server unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a single command may take before it fails (a hung server must not hang requests).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions, presence and rate limits in one Redis database. Cheap to clone: clones share
/// one multiplexed connection, which reconnects by itself after a failure.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// For the dedicated pub/sub connections of [`crate::Fanout`] subscriptions.
    client: redis::Client,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host:port/db`, or `rediss://`) and checks the
    /// server answers `PING`. Every key the store touches starts with `key_prefix` (`""` in
    /// production).
    ///
    /// Fails within about [`CONNECT_TIMEOUT`] with [`StorageError::Unreachable`] naming Redis
    /// when the URL is invalid, the server cannot be reached, or it refuses the connection
    /// (e.g. a wrong password). The cause never contains the URL's password.
    pub async fn connect(url: &str, key_prefix: &str) -> StorageResult<RedisStore> {
        let info = redis::IntoConnectionInfo::into_connection_info(url).ok();
        let password = info
            .as_ref()
            .and_then(|info| info.redis_settings().password().map(str::to_owned));
        // Where, for the message: host and port (or socket path), never the credentials.
        let addr = info.map_or_else(String::new, |info| format!("{}: ", info.addr()));
        let unreachable = |cause: String| StorageError::Unreachable {
            service: "Redis",
            cause: scrub(&format!("{addr}{cause}"), password.as_deref()),
        };

        let client =
            redis::Client::open(url).map_err(|e| unreachable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let attempt = async {
            let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer to PING within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(RedisStore {
            conn,
            client,
            prefix: key_prefix.to_owned(),
        })
    }

    /// The prefix of every key of this store.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle on the shared connection (clones are cheap).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `{prefix}{key}`.
    fn key(&self, key: std::fmt::Arguments<'_>) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// `text` with every occurrence of `secret` (if any, and not empty) replaced by `***`.
fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

/// Milliseconds of a duration for `PEXPIRE`: at least 1 (0 would delete the key), at most
/// what Redis accepts.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX)
        .clamp(1, MAX_EXPIRE_MS)
}

/// Largest relative expiry used: 100 years (far below Redis's overflow limit).
const MAX_EXPIRE_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

#[async_trait::async_trait]
impl crate::Probe for RedisStore {
    fn service(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StorageResult<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_the_password() {
        assert_eq!(scrub("a hunter2 b", Some("hunter2")), "a *** b");
        assert_eq!(scrub("a b", Some("")), "a b");
        assert_eq!(scrub("a b", None), "a b");
    }

    #[test]
    fn millis_is_clamped() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), MAX_EXPIRE_MS);
    }
}
