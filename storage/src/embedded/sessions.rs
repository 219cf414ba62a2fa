//! [`SessionStore`] on `sessions`.
//!
//! A token is `{user_id}.{secret}`, the secret 32 random bytes in unpadded base64url. Only the
//! hex SHA-256 of the whole token is stored (`sessions.token_hash`), so a copy of the database
//! does not hold usable tokens. The secret has 256 bits of entropy, so a plain (unsalted, fast)
//! hash is enough: there is nothing to brute-force.

use super::{SqliteStore, get_ts, now, parse_uuid, ts};
use crate::{SessionStore, StorageResult};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::fmt::Write;
use std::time::Duration;
use uuid::Uuid;

/// Random bytes in a token's secret.
const SECRET_BYTES: usize = 32;

/// Longest session accepted; longer TTLs are cut to it (keeps `expires_at` in range).
const MAX_TTL: TimeDelta = TimeDelta::days(365 * 100);

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, user_id: Uuid, ttl: Duration) -> StorageResult<String> {
        let mut secret = [0u8; SECRET_BYTES];
        // `ThreadRng` is a CSPRNG seeded from the OS.
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{user_id}.{}", URL_SAFE_NO_PAD.encode(secret));

        let now = now();
        let ttl = TimeDelta::from_std(ttl).unwrap_or(MAX_TTL).min(MAX_TTL);
        let expires_at = now + ttl;
        let mut tx = self.begin_write().await?;
        // Sweep expired sessions here so the table does not grow without bound.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, expires_at, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash(&token))
        .bind(user_id.to_string())
        .bind(ts(expires_at))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn session_user(&self, token: &str) -> StorageResult<Option<Uuid>> {
        let Some(user_id) = token_user(token) else {
            return Ok(None);
        };
        let hash = token_hash(token);
        let row = sqlx::query("SELECT user_id, expires_at FROM sessions WHERE token_hash = ?")
            .bind(&hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored_user: String = row.try_get("user_id")?;
        if parse_uuid(&stored_user, "sessions.user_id")? != user_id {
            return Ok(None);
        }
        let expires_at: DateTime<Utc> = get_ts(&row, "expires_at")?;
        if expires_at <= now() {
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                .bind(&hash)
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        Ok(Some(user_id))
    }

    async fn delete_session(&self, token: &str) -> StorageResult<()> {
        if token_user(token).is_none() {
            return Ok(());
        }
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The user id of a well-formed token (`{uuid}.{non-empty secret}`), else `None`.
fn token_user(token: &str) -> Option<Uuid> {
    let (user, secret) = token.split_once('.')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::parse_str(user).ok()
}

/// Lowercase hex SHA-256 of the token: the stored key of a session.
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
