//! The audit trail of an organization, for its admins.

use super::ApiQuery;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use canvas_storage::{AuditEntry, AuditFilter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `GET /audit` query: all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    resource_type: Option<String>,
    resource_id: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// Most entries one page returns.
const MAX_LIMIT: u32 = 1000;

/// `GET /audit`: one page of entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// The page size used.
    pub limit: u32,
    /// The entries skipped.
    pub offset: u32,
}

/// The caller's organization's audit entries, newest first, filtered and paginated.
/// Organization admins only.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "The organization's audit entries", body = AuditPage),
        (status = 403, description = "Only organization admins read the audit log")))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let organization = caller
        .user
        .organization_id
        .filter(|_| caller.user.role == "admin")
        .ok_or_else(|| ApiError::Forbidden("only organization admins read the audit log".into()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let offset = query.offset.unwrap_or(0);
    let entries = state
        .storage
        .audit
        .list(AuditFilter {
            organization_id: Some(organization),
            resource_type: query.resource_type,
            resource_id: query.resource_id,
            since: query.since,
            until: query.until,
            limit: Some(limit),
            offset: Some(offset),
        })
        .await?;
    Ok(Json(AuditPage {
        entries,
        limit,
        offset,
    }))
}
