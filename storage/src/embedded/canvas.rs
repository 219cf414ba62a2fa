//! [`CanvasStore`] on `canvases` (record, view and snapshot) and `canvas_updates` (the log).
//!
//! The last sequence number of a canvas is `max(snapshot_seq, max(canvas_updates.seq))`: a
//! checkpoint drops the entries it covers, so after one the log may be empty and the snapshot
//! carries the count on.

use super::{SqliteStore, get_opt_ts, get_ts, get_uuid, now, ts};
use crate::{
    CanvasRecord, CanvasStore, INITIAL_CHANGES, NewCanvas, PublicLink, StorageError, StorageResult,
    StoredDocument, VersionKind, VersionRecord,
};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

/// `SELECT` of every column a [`CanvasRecord`] needs, with the rest of the query.
macro_rules! select_record {
    ($rest:literal) => {
        concat!(
            "SELECT id, project_id, owner_id, name, description, version, created_at, ",
            "updated_at FROM canvases ",
            $rest
        )
    };
}

/// Rows per INSERT statement when appending (4 bound values each, well under SQLite's limit
/// of 32,766 variables per statement).
const APPEND_CHUNK: usize = 1000;

#[async_trait]
impl CanvasStore for SqliteStore {
    async fn create_canvas(
        &self,
        new: NewCanvas,
        state: &[u8],
        view: &serde_json::Value,
    ) -> StorageResult<CanvasRecord> {
        let now = now();
        let record = CanvasRecord {
            id: new.id,
            project_id: new.project_id,
            owner_id: new.owner_id,
            name: new.name,
            description: new.description,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO canvases (id, project_id, owner_id, name, description, version, view, \
             snapshot, snapshot_seq, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(record.id.to_string())
        .bind(record.project_id.to_string())
        .bind(record.owner_id.to_string())
        .bind(&record.name)
        .bind(&record.description)
        .bind(record.version)
        .bind(view.to_string())
        .bind(state)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Conflict(format!("canvas {}", record.id))
            }
            e => StorageError::Database(e),
        })?;
        let initial = VersionRecord {
            version: 1,
            changes: INITIAL_CHANGES.into(),
            changed_by: record.owner_id,
            changed_at: now,
            kind: VersionKind::Initial,
        };
        super::versions::insert_version(&mut tx, record.id, &initial, state, view).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn canvas(&self, id: Uuid) -> StorageResult<Option<CanvasRecord>> {
        let row = sqlx::query(select_record!("WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| record_from_row(&row)).transpose()
    }

    async fn canvases_in_project(&self, project_id: Uuid) -> StorageResult<Vec<CanvasRecord>> {
        let rows = sqlx::query(select_record!(
            "WHERE project_id = ? ORDER BY created_at DESC, rowid DESC"
        ))
        .bind(project_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn delete_canvas(&self, id: Uuid) -> StorageResult<bool> {
        let id = id.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM canvas_updates WHERE canvas_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM canvas_versions WHERE canvas_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM canvases WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn load_document(&self, id: Uuid) -> StorageResult<Option<StoredDocument>> {
        let id = id.to_string();
        // One read transaction: the snapshot and the log come from the same database state,
        // so a checkpoint committed in between cannot drop entries the snapshot lacks.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT snapshot, snapshot_seq FROM canvases WHERE id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let snapshot: Vec<u8> = row.try_get("snapshot")?;
        let snapshot_seq: i64 = row.try_get("snapshot_seq")?;
        let updates: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, data FROM canvas_updates WHERE canvas_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(&id)
        .bind(snapshot_seq)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(StoredDocument {
            snapshot,
            snapshot_seq,
            updates,
        }))
    }

    async fn append_updates(&self, id: Uuid, updates: &[Vec<u8>]) -> StorageResult<i64> {
        let canvas_id = id.to_string();
        if updates.is_empty() {
            let mut conn = self.pool.acquire().await?;
            return last_seq(&mut conn, &canvas_id)
                .await?
                .ok_or_else(|| StorageError::NotFound(format!("canvas {id}")));
        }
        let mut tx = self.begin_write().await?;
        let Some(mut seq) = last_seq(&mut tx, &canvas_id).await? else {
            return Err(StorageError::NotFound(format!("canvas {id}")));
        };
        let created_at = ts(now());
        // One multi-row INSERT per chunk: each statement is a round trip to SQLite's worker
        // thread, which would otherwise dominate a large group commit.
        for chunk in updates.chunks(APPEND_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO canvas_updates (canvas_id, seq, data, created_at) ",
            );
            insert.push_values(chunk, |mut row, data| {
                seq += 1;
                row.push_bind(&canvas_id)
                    .push_bind(seq)
                    .push_bind(data.as_slice())
                    .push_bind(&created_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        // With synchronous = FULL this commit fsyncs the WAL: durable once it returns.
        tx.commit().await?;
        Ok(seq)
    }

    async fn checkpoint(
        &self,
        id: Uuid,
        state: &[u8],
        upto_seq: i64,
        view: &serde_json::Value,
    ) -> StorageResult<()> {
        let canvas_id = id.to_string();
        let mut tx = self.begin_write().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT snapshot_seq FROM canvases WHERE id = ?")
                .bind(&canvas_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Err(StorageError::NotFound(format!("canvas {id}")));
        };
        if upto_seq < current {
            // A newer snapshot is already stored (checkpoints raced): keep it.
            tracing::debug!(%id, upto_seq, current, "ignoring stale checkpoint");
            return Ok(());
        }
        let name = view.get("name").and_then(serde_json::Value::as_str);
        // `Some(x)`: set the description to `x`; `None`: keep it.
        let description = match view.get("description") {
            Some(serde_json::Value::String(s)) => Some(Some(s.as_str())),
            Some(serde_json::Value::Null) => Some(None),
            _ => None,
        };
        sqlx::query(
            "UPDATE canvases SET snapshot = ?, snapshot_seq = ?, view = ?, \
             name = COALESCE(?, name), \
             description = CASE WHEN ? THEN ? ELSE description END, \
             updated_at = ? WHERE id = ?",
        )
        .bind(state)
        .bind(upto_seq)
        .bind(view.to_string())
        .bind(name)
        .bind(description.is_some())
        .bind(description.flatten())
        .bind(ts(now()))
        .bind(&canvas_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM canvas_updates WHERE canvas_id = ? AND seq <= ?")
            .bind(&canvas_id)
            .bind(upto_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn public_link(&self, id: Uuid) -> StorageResult<Option<PublicLink>> {
        let row = sqlx::query(
            "SELECT public_link_id, public_link_token, public_link_created_at FROM canvases \
             WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (Some(id), Some(token), Some(created_at)) = (
            row.try_get::<Option<String>, _>("public_link_id")?,
            row.try_get::<Option<String>, _>("public_link_token")?,
            get_opt_ts(&row, "public_link_created_at")?,
        ) else {
            return Ok(None);
        };
        Ok(Some(PublicLink {
            id,
            token,
            created_at,
        }))
    }

    async fn set_public_link(&self, id: Uuid, link: Option<&PublicLink>) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE canvases SET public_link_id = ?, public_link_token = ?, \
             public_link_created_at = ? WHERE id = ?",
        )
        .bind(link.map(|l| l.id.as_str()))
        .bind(link.map(|l| l.token.as_str()))
        .bind(link.map(|l| ts(l.created_at)))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("canvas {id}")));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The canvas's last sequence number, or `None` if there is no such canvas.
async fn last_seq(conn: &mut SqliteConnection, canvas_id: &str) -> StorageResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT max(c.snapshot_seq, coalesce((SELECT max(u.seq) FROM canvas_updates u \
         WHERE u.canvas_id = c.id), 0)) FROM canvases c WHERE c.id = ?",
    )
    .bind(canvas_id)
    .fetch_optional(conn)
    .await?)
}

fn record_from_row(row: &SqliteRow) -> StorageResult<CanvasRecord> {
    Ok(CanvasRecord {
        id: get_uuid(row, "id")?,
        project_id: get_uuid(row, "project_id")?,
        owner_id: get_uuid(row, "owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        version: row.try_get("version")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}
