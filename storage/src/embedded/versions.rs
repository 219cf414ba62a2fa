//! [`VersionStore`] on `canvas_versions`; the canvas record's `version` (in `canvases`) is
//! kept equal to the latest number in the same transaction.

use super::{SqliteStore, get_ts, get_uuid, now, ts};
use crate::{
    NewVersion, StorageError, StorageResult, StoredVersion, VersionKind, VersionRecord,
    VersionStore,
};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

/// Inserts one version row (the caller picked the number, inside its write transaction).
pub(super) async fn insert_version(
    conn: &mut SqliteConnection,
    canvas_id: Uuid,
    record: &VersionRecord,
    state: &[u8],
    view: &serde_json::Value,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO canvas_versions (canvas_id, version, kind, changes, changed_by, \
         changed_at, state, view) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(canvas_id.to_string())
    .bind(record.version)
    .bind(record.kind.as_str())
    .bind(&record.changes)
    .bind(record.changed_by.to_string())
    .bind(ts(record.changed_at))
    .bind(state)
    .bind(view.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn record_from_row(row: &SqliteRow) -> StorageResult<VersionRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(VersionRecord {
        version: row.try_get("version")?,
        changes: row.try_get("changes")?,
        changed_by: get_uuid(row, "changed_by")?,
        changed_at: get_ts(row, "changed_at")?,
        kind: VersionKind::parse(&kind)
            .ok_or_else(|| StorageError::Corrupt(format!("version kind {kind:?}")))?,
    })
}

#[async_trait]
impl VersionStore for SqliteStore {
    async fn add_version(
        &self,
        canvas_id: Uuid,
        new: NewVersion,
        state: &[u8],
        view: &serde_json::Value,
    ) -> StorageResult<VersionRecord> {
        let id = canvas_id.to_string();
        // BEGIN IMMEDIATE: the write lock is held from the read of the last number on.
        let mut tx = self.begin_write().await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT max(c.version, coalesce((SELECT max(v.version) FROM canvas_versions v \
             WHERE v.canvas_id = c.id), 0)) FROM canvases c WHERE c.id = ?",
        )
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            return Err(StorageError::NotFound(format!("canvas {canvas_id}")));
        };
        let record = VersionRecord {
            version: last + 1,
            changes: new.changes,
            changed_by: new.changed_by,
            changed_at: now(),
            kind: new.kind,
        };
        insert_version(&mut tx, canvas_id, &record, state, view).await?;
        sqlx::query("UPDATE canvases SET version = ? WHERE id = ?")
            .bind(record.version)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn versions(&self, canvas_id: Uuid) -> StorageResult<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT version, kind, changes, changed_by, changed_at FROM canvas_versions \
             WHERE canvas_id = ? ORDER BY version",
        )
        .bind(canvas_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn version(&self, canvas_id: Uuid, version: i64) -> StorageResult<Option<StoredVersion>> {
        let row = sqlx::query(
            "SELECT version, kind, changes, changed_by, changed_at, state, view \
             FROM canvas_versions WHERE canvas_id = ? AND version = ?",
        )
        .bind(canvas_id.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let view: String = row.try_get("view")?;
        Ok(Some(StoredVersion {
            record: record_from_row(&row)?,
            state: row.try_get("state")?,
            view: serde_json::from_str(&view)
                .map_err(|e| StorageError::Corrupt(format!("version view: {e}")))?,
        }))
    }
}
