//! [`AuditStore`] on `audit_logs`.

use super::{PgStore, now, ts};
use crate::sql::{
    AUDIT_COLUMNS, AUDIT_INSERT, AUDIT_NEWEST_FIRST, audit_entry_from_row, missing_reference,
};
use crate::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry, StorageResult};
use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// Entries listed when the filter sets no limit (as in the embedded store).
pub const DEFAULT_LIMIT: u32 = 100;
/// Most entries one call lists, whatever the filter asks (as in the embedded store).
pub const MAX_LIMIT: u32 = 1000;

#[async_trait]
impl AuditStore for PgStore {
    async fn record(&self, entry: NewAuditEntry) -> StorageResult<()> {
        sqlx::query(AUDIT_INSERT)
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
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE TRUE"
        ));
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
        q.push(AUDIT_NEWEST_FIRST)
            .push(" LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset.unwrap_or(0)));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_entry_from_row).collect()
    }
}
