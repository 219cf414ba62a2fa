//! A canvas's version history: list, name a version, read one, compare two, restore a whole
//! version or one block.
//!
//! Reads come from the version store; anything that changes the canvas (naming a version
//! snapshots the live document; restores edit it) runs in the canvas's room, which answers
//! once the change is durable and relayed (see `sync/room/history.rs`). Viewers may read,
//! editors and up may name and restore. Naming and restoring are audited
//! (`canvas.version.create`, `canvas.restore`, `canvas.block.restore`).

use super::canvases::live_view;
use super::views::{BlockRestored, CanvasDocument, CanvasView, Outcome, Restored};
use super::{ApiJson, ApiPath, ApiQuery, ClientInfo, audit};
use crate::access::canvas_access;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::sync::room::{VersionCmd, VersionFailure, VersionOp, VersionOutcome};
use crate::view;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::json::canvas_json;
use canvas_engine::versions::{diff as diff_views, load_version};
use canvas_engine::yrs::Transact;
use canvas_storage::VersionRecord;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Longest description of a named version, in characters.
pub const MAX_CHANGES_CHARS: usize = 500;

/// `POST /canvases/{id}/versions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameVersion {
    /// What changed, in words: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    changes: String,
}

/// `GET /canvases/{id}/versions/{v}/diff` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The newer version; the live document when absent.
    to: Option<i64>,
}

impl From<VersionFailure> for ApiError {
    fn from(failure: VersionFailure) -> Self {
        match failure {
            VersionFailure::Forbidden(m) => ApiError::Forbidden(m),
            VersionFailure::NotFound(m) => ApiError::NotFound(m),
            VersionFailure::Conflict(m) => ApiError::Conflict(m),
            VersionFailure::Internal(cause) => ApiError::internal_in("a history command", cause),
        }
    }
}

/// `GET /canvases/{id}/versions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    /// The history, newest first.
    pub versions: Vec<VersionRecord>,
}

/// `GET /canvases/{id}/versions/{v}/diff`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionDiffView {
    /// The older version.
    pub from: i64,
    /// The newer version (null: the live canvas).
    #[schema(required)]
    pub to: Option<i64>,
    /// Blocks only in the newer document.
    pub added: Vec<String>,
    /// Blocks only in the older document.
    pub removed: Vec<String>,
    /// Blocks whose position differs (`{id, from, to}`).
    #[schema(value_type = Vec<Object>)]
    pub moved: Vec<Value>,
    /// Blocks whose type or content differs.
    pub content_changed: Vec<String>,
}

/// `GET /canvases/{id}/versions`: the history, newest first.
#[utoipa::path(get, path = "/canvases/{id}/versions", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 200, description = "The version history, newest first", body = VersionList),
        (status = 403, description = "No access to the canvas")))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<VersionList>> {
    live_view(&state, &caller, id).await?;
    let mut versions = state.storage.versions.versions(id).await?;
    versions.reverse();
    Ok(Json(VersionList { versions }))
}

/// `POST /canvases/{id}/versions`: records the live document as a named version.
#[utoipa::path(post, path = "/canvases/{id}/versions", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    request_body = NameVersion,
    responses((status = 201, description = "The version recorded", body = VersionRecord),
        (status = 403, description = "No access to the canvas, or a viewer")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NameVersion>,
) -> ApiResult<(StatusCode, Json<Outcome>)> {
    let changes = body.changes.trim();
    if changes.is_empty() || changes.chars().count() > MAX_CHANGES_CHARS || changes.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_changes",
            format!("changes must be 1 to {MAX_CHANGES_CHARS} characters, without NUL"),
        ));
    }
    let op = VersionOp::Name {
        changes: changes.to_owned(),
    };
    let outcome = run(&state, &caller, id, op).await?;
    audit(
        &state,
        &caller.user,
        &client,
        "canvas.version.create",
        ("canvas", Some(id)),
        json!({ "version": outcome.version().version, "changes": changes }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(Outcome(outcome.into_json()))))
}

/// `GET /canvases/{id}/versions/{v}`: the canvas as it was at version `v`.
#[utoipa::path(get, path = "/canvases/{id}/versions/{version}", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("version" = i64, Path, description = "The version number")),
    responses((status = 200, description = "The canvas as it was at that version", body = CanvasDocument),
        (status = 403, description = "No access to the canvas")))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, version)): ApiPath<(Uuid, i64)>,
) -> ApiResult<Json<CanvasView>> {
    live_view(&state, &caller, id).await?;
    Ok(Json(CanvasView(version_json(&state, id, version).await?.0)))
}

/// `GET /canvases/{id}/versions/{v}/diff?to={w}`: what changed from version `v` to version
/// `w` (or to the live document).
#[utoipa::path(get, path = "/canvases/{id}/versions/{version}/diff", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("version" = i64, Path, description = "The version number"), DiffQuery),
    responses((status = 200, description = "What changed", body = VersionDiffView),
        (status = 403, description = "No access to the canvas")))]
pub async fn diff(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, version)): ApiPath<(Uuid, i64)>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> ApiResult<Json<VersionDiffView>> {
    let live = live_view(&state, &caller, id).await?;
    let (_, from) = version_json(&state, id, version).await?;
    let to = match query.to {
        Some(to) => version_json(&state, id, to).await?.1,
        None => live.json,
    };
    let d = diff_views(&from, &to);
    let moved = d
        .moved
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(VersionDiffView {
        from: version,
        to: query.to,
        added: d.added,
        removed: d.removed,
        moved,
        content_changed: d.content_changed,
    }))
}

/// `POST /canvases/{id}/versions/{v}/restore`: makes the canvas equal to version `v` again
/// (except its sharing settings), as a new change by the caller.
#[utoipa::path(post, path = "/canvases/{id}/versions/{version}/restore", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("version" = i64, Path, description = "The version number")),
    responses((status = 200, description = "The version recorded and the canvas", body = Restored),
        (status = 403, description = "No access to the canvas, or a viewer")))]
pub async fn restore(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, version)): ApiPath<(Uuid, i64)>,
) -> ApiResult<Json<Outcome>> {
    let outcome = run(&state, &caller, id, VersionOp::Restore { version }).await?;
    audit(
        &state,
        &caller.user,
        &client,
        "canvas.restore",
        ("canvas", Some(id)),
        json!({ "restored_version": version, "version": outcome.version().version }),
    )
    .await;
    Ok(Json(Outcome(outcome.into_json())))
}

/// `POST /canvases/{id}/versions/{v}/blocks/{block_id}/restore`: brings one block back as
/// it was in version `v`.
#[utoipa::path(post, path = "/canvases/{id}/versions/{version}/blocks/{block_id}/restore", tag = "versions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("version" = i64, Path, description = "The version number"), ("block_id" = String, Path, description = "The block")),
    responses((status = 200, description = "The block as restored and the version recorded", body = BlockRestored),
        (status = 403, description = "No access to the canvas, or a viewer"),
        (status = 409, description = "The block no longer fits the canvas's grid")))]
pub async fn restore_block(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, version, block_id)): ApiPath<(Uuid, i64, String)>,
) -> ApiResult<Json<Outcome>> {
    let op = VersionOp::RestoreBlock {
        version,
        block_id: block_id.clone(),
    };
    let outcome = run(&state, &caller, id, op).await?;
    audit(
        &state,
        &caller.user,
        &client,
        "canvas.block.restore",
        ("canvas", Some(id)),
        json!({
            "restored_version": version,
            "block_id": block_id,
            "version": outcome.version().version,
        }),
    )
    .await;
    Ok(Json(Outcome(outcome.into_json())))
}

/// Runs a history command in the canvas's room.
async fn run(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    op: VersionOp,
) -> ApiResult<VersionOutcome> {
    let access = canvas_access(&state.storage, &caller.user, id).await?;
    let cmd = VersionCmd {
        access: access.access,
        op,
    };
    Ok(state
        .rooms
        .versions(id, cmd)
        .await
        .map_err(ApiError::internal)??)
}

/// Version `version` of a canvas: its full JSON (the seed shape, `version` set to it and the
/// history up to it) and the engine's view of its document alone.
async fn version_json(state: &AppState, id: Uuid, version: i64) -> ApiResult<(Value, Value)> {
    let not_found = || ApiError::NotFound(format!("version {version} not found"));
    let stored = state
        .storage
        .versions
        .version(id, version)
        .await?
        .ok_or_else(not_found)?;
    let mut record = state
        .storage
        .canvases
        .canvas(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("canvas {id} not found")))?;
    let doc = load_version(&stored.state)
        .map_err(|e| ApiError::internal_in(format!("loading version {version} of {id}"), e))?;
    let document = canvas_json(&doc.transact());
    record.version = version;
    record.updated_at = stored.record.changed_at;
    let mut history = state.storage.versions.versions(id).await?;
    history.retain(|v| v.version <= version);
    let full = view::with_history(view::canvas_view(&record, document.clone()), &history);
    Ok((full, document))
}
