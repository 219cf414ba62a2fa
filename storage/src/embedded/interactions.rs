//! [`InteractionStore`] on `canvas_interactions` (counters) and `canvas_favorites`.

use super::{SqliteStore, get_opt_ts, get_uuid, now, ts};
use crate::{InteractionStore, Interactions, StorageResult};
use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

#[async_trait]
impl InteractionStore for SqliteStore {
    async fn record_views(&self, views: &[(Uuid, u64)]) -> StorageResult<()> {
        if views.is_empty() {
            return Ok(());
        }
        // One transaction on the writer: one fsync for the whole batch, and no write on a
        // reader connection (which would drop every connection's page cache).
        let at = ts(now());
        let mut tx = self.begin_write().await?;
        for (canvas_id, n) in views {
            sqlx::query(
                "INSERT INTO canvas_interactions (canvas_id, views, last_viewed_at) \
                 SELECT ?1, ?3, ?2 WHERE EXISTS (SELECT 1 FROM canvases WHERE id = ?1) \
                 ON CONFLICT (canvas_id) DO UPDATE SET views = views + excluded.views, \
                 last_viewed_at = excluded.last_viewed_at",
            )
            .bind(canvas_id.to_string())
            .bind(&at)
            .bind(i64::try_from(*n).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn interactions(&self, canvas_id: Uuid) -> StorageResult<Interactions> {
        let row = sqlx::query(
            "SELECT views, last_viewed_at, comments_count, favorites_count \
             FROM canvas_interactions WHERE canvas_id = ?",
        )
        .bind(canvas_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Interactions::default());
        };
        Ok(Interactions {
            views: row.try_get("views")?,
            last_viewed_at: get_opt_ts(&row, "last_viewed_at")?,
            comments_count: row.try_get("comments_count")?,
            favorites_count: row.try_get("favorites_count")?,
        })
    }

    async fn set_favorite(&self, user_id: Uuid, canvas_id: Uuid, on: bool) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = if on {
            sqlx::query(
                "INSERT INTO canvas_favorites (user_id, canvas_id, created_at) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM canvases WHERE id = ?2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(user_id.to_string())
            .bind(canvas_id.to_string())
            .bind(ts(now()))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        } else {
            sqlx::query("DELETE FROM canvas_favorites WHERE user_id = ? AND canvas_id = ?")
                .bind(user_id.to_string())
                .bind(canvas_id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        };
        if changed {
            let delta: i64 = if on { 1 } else { -1 };
            sqlx::query(
                "INSERT INTO canvas_interactions (canvas_id, favorites_count) VALUES (?1, MAX(?2, 0)) \
                 ON CONFLICT (canvas_id) DO UPDATE SET \
                 favorites_count = MAX(favorites_count + ?2, 0)",
            )
            .bind(canvas_id.to_string())
            .bind(delta)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn is_favorite(&self, user_id: Uuid, canvas_id: Uuid) -> StorageResult<bool> {
        let row = sqlx::query("SELECT 1 FROM canvas_favorites WHERE user_id = ? AND canvas_id = ?")
            .bind(user_id.to_string())
            .bind(canvas_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn favorites(&self, user_id: Uuid) -> StorageResult<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT canvas_id FROM canvas_favorites WHERE user_id = ? \
             ORDER BY created_at DESC, rowid DESC",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| get_uuid(r, "canvas_id")).collect()
    }

    async fn forget_canvas(&self, canvas_id: Uuid) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        for statement in [
            "DELETE FROM canvas_favorites WHERE canvas_id = ?",
            "DELETE FROM canvas_interactions WHERE canvas_id = ?",
        ] {
            sqlx::query(statement)
                .bind(canvas_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
