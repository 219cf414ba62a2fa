//! [`SessionStore`] on `sessions`.
//!
//! A token is `{user_id}.{secret}`, the secret 32 random bytes in unpadded base64url. Only the
//! hex SHA-256 of the whole token is stored (`sessions.token_hash`), so a copy of the database
//! does not hold usable tokens. The secret has 256 bits of entropy, so a plain (unsalted, fast)
//! hash is enough: there is nothing to brute-force.

use super::{SqliteStore, get_ts, now, parse_uuid, ts};
use crate::token::{new_token, session_ttl, token_hash, token_user};
use crate::{Session, SessionStore, StorageResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, user_id: Uuid, ttl: Duration) -> StorageResult<String> {
        let token = new_token(user_id);

        let now = now();
        let ttl = session_ttl(ttl);
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

    async fn session(&self, token: &str) -> StorageResult<Option<Session>> {
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
        Ok(Some(Session {
            user_id,
            expires_at,
        }))
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
