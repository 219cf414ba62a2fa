//! [`SessionStore`] on `session:{user_id}`.
//!
//! Tokens are those of the embedded store: `{user_id}.{secret}`, the secret 32 random bytes
//! in unpadded base64url, and only the hex SHA-256 of the whole token is stored. Each user has
//! one hash; a field per session, named by the token's hash, holds
//! `{"created_at": ..., "expires_at": ...}` (RFC 3339). The key expires with the latest of
//! its sessions (a write only ever extends its TTL); an expired field is dropped when it is
//! looked up or when the user next logs in.

use super::{RedisStore, millis};
use crate::token::{new_token, session_ttl, token_hash, token_user};
use crate::{Session, SessionStore, StorageError, StorageResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// What a session's field holds.
#[derive(Debug, Serialize, Deserialize)]
struct SessionRecord {
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Adds a session and sweeps expired ones, atomically.
/// `KEYS[1]` the user's hash; `ARGV[1]` the new field, `ARGV[2]` its value, `ARGV[3]` its
/// TTL in ms, `ARGV[4..]` expired fields to drop. The key's TTL is only ever extended (what
/// `EXPIRE NX` then `EXPIRE GT` do on Redis 7): `PTTL` is -1 on a key without expiry.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 4, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local want = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1
",
    )
});

impl RedisStore {
    fn session_key(&self, user_id: Uuid) -> String {
        self.key(format_args!("session:{user_id}"))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(&self, user_id: Uuid, ttl: Duration) -> StorageResult<String> {
        let token = new_token(user_id);

        let now = Utc::now();
        let ttl = session_ttl(ttl);
        let record = SessionRecord {
            created_at: now,
            expires_at: now + ttl,
        };
        let value = serde_json::to_string(&record)
            .map_err(|e| StorageError::Corrupt(format!("session record: {e}")))?;

        let key = self.session_key(user_id);
        let mut conn = self.conn();
        // Sweep this user's expired sessions so the hash does not grow without bound. A
        // field is written once, so deleting one read as expired cannot drop a live session.
        let existing: HashMap<String, String> = conn.hgetall(&key).await?;
        let expired = existing
            .iter()
            .filter(|(_, v)| parse_record(v).is_none_or(|r| r.expires_at <= now))
            .map(|(field, _)| field.as_str());

        let mut call = CREATE.key(&key);
        call.arg(token_hash(&token))
            .arg(value)
            .arg(millis(ttl.to_std().unwrap_or_default()));
        for field in expired {
            call.arg(field);
        }
        call.invoke_async::<()>(&mut conn).await?;
        Ok(token)
    }

    async fn session(&self, token: &str) -> StorageResult<Option<Session>> {
        let Some(user_id) = token_user(token) else {
            return Ok(None);
        };
        let key = self.session_key(user_id);
        let field = token_hash(token);
        let mut conn = self.conn();
        let value: Option<String> = conn.hget(&key, &field).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let record = parse_record(&value)
            .ok_or_else(|| StorageError::Corrupt(format!("session record in {key}: {value:?}")))?;
        if record.expires_at <= Utc::now() {
            let _: usize = conn.hdel(&key, &field).await?;
            return Ok(None);
        }
        Ok(Some(Session {
            user_id,
            expires_at: record.expires_at,
        }))
    }

    async fn delete_session(&self, token: &str) -> StorageResult<()> {
        let Some(user_id) = token_user(token) else {
            return Ok(());
        };
        let _: usize = self
            .conn()
            .hdel(self.session_key(user_id), token_hash(token))
            .await?;
        Ok(())
    }
}

fn parse_record(value: &str) -> Option<SessionRecord> {
    serde_json::from_str(value).ok()
}
