//! [`SessionStore`] on `session:{user_id}`.
//!
//! Tokens are those of the embedded store: `{user_id}.{secret}`, the secret 32 random bytes
//! in unpadded base64url, and only the hex SHA-256 of the whole token is stored. Each user has
//! one hash; a field per session, named by the token's hash, holds
//! `{"created_at": ..., "expires_at": ...}` (RFC 3339). The key expires with the latest of
//! its sessions (a write only ever extends its TTL); an expired field is dropped when it is
//! looked up or when the user next logs in.

use super::{RedisStore, millis};
use crate::{SessionStore, StorageError, StorageResult};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// Random bytes in a token's secret.
const SECRET_BYTES: usize = 32;

/// Longest session accepted; longer TTLs are cut to it (as in the embedded store).
const MAX_TTL: TimeDelta = TimeDelta::days(365 * 100);

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
        let mut secret = [0u8; SECRET_BYTES];
        // `ThreadRng` is a CSPRNG seeded from the OS.
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{user_id}.{}", URL_SAFE_NO_PAD.encode(secret));

        let now = Utc::now();
        let ttl = TimeDelta::from_std(ttl).unwrap_or(MAX_TTL).min(MAX_TTL);
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

    async fn session_user(&self, token: &str) -> StorageResult<Option<Uuid>> {
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
        Ok(Some(user_id))
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

/// The user id of a well-formed token (`{uuid}.{non-empty secret}`), else `None`.
/// (The same rule as the embedded store's.)
fn token_user(token: &str) -> Option<Uuid> {
    let (user, secret) = token.split_once('.')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::parse_str(user).ok()
}

/// Lowercase hex SHA-256 of the token: the field of a session.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parsing() {
        let id = Uuid::new_v4();
        assert_eq!(token_user(&format!("{id}.abc")), Some(id));
        assert_eq!(token_user(&format!("{id}.")), None);
        assert_eq!(token_user(&id.to_string()), None);
        assert_eq!(token_user("nope.abc"), None);
        assert_eq!(token_user(""), None);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
