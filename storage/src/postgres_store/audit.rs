//! [`AuditStore`] on `audit_logs`.

use super::{PgStore, get_ts, now, ts};
use crate::sql::missing_reference;
use crate::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry, StorageResult};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// Entries listed when the filter sets no limit (as in the embedded store).
pub const DEFAULT_LIMIT: u32 = 100;
/// Most entries one call lists, whatever the filter asks (as in the embedded store).
pub const MAX_LIMIT: u32 = 1000;

#[async_trait]
impl AuditStore for PgStore {
    async fn record(&self, entry: NewAuditEntry) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO audit_logs (id, user_id, organization_id, action, resource_type, \
             resource_id, changes, ip_address, user_agent, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::new_v4())
        .bind(entry.user_id)
        .bind(entry.organization_id)
        .bind(&entry.action)
        .bind(&entry.resource_type)
        .bind(entry.resource_id)
        .bind(entry.changes.as_ref().map(Json))
        .bind(entry.ip_address)
        .bind(&entry.user_agent)
        .bind(ts(now()))
        .execute(&self.pool)
        .await
        .map_err(|e| missing_reference(e, "user or organization"))?;
        Ok(())
    }

    async fn list(&self, filter: AuditFilter) -> StorageResult<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT id, user_id, organization_id, action, resource_type, resource_id, changes, \
             ip_address, user_agent, created_at FROM audit_logs WHERE TRUE",
        );
        if let Some(org) = filter.organization_id {
            q.push(" AND organization_id = ").push_bind(org);
        }
        if let Some(kind) = filter.resource_type {
            q.push(" AND resource_type = ").push_bind(kind);
        }
        if let Some(id) = filter.resource_id {
            q.push(" AND resource_id = ").push_bind(id);
        }
        if let Some(since) = filter.since {
            q.push(" AND created_at >= ").push_bind(ts(since));
        }
        if let Some(until) = filter.until {
            q.push(" AND created_at < ").push_bind(ts(until));
        }
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        // Entries of the same microsecond are ordered by id: a total order, so pages do not
        // overlap or skip.
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset.unwrap_or(0)));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(entry_from_row).collect()
    }
}

fn entry_from_row(row: &PgRow) -> StorageResult<AuditEntry> {
    let changes: Option<Json<serde_json::Value>> = row.try_get("changes")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        organization_id: row.try_get("organization_id")?,
        action: row.try_get("action")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        changes: changes.map(|Json(c)| c),
        ip_address: row.try_get("ip_address")?,
        user_agent: row.try_get("user_agent")?,
        created_at: get_ts(row, "created_at")?,
    })
}
