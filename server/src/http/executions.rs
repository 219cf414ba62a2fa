//! Executions of saved queries (`/executions/{id}`): status, the result page by page, and
//! cancellation. Any node answers for any execution: the record is in the relational store,
//! the result in the result cache, the progress in `processing:{job_id}`.

use super::data_access::{require, visible_execution as visible};
use super::{ApiPath, ApiQuery};
use crate::auth::AuthUser;
use crate::control;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use canvas_analytics::QueryResult;
use canvas_engine::Role;
use canvas_storage::{ExecutionUpdate, QueryExecution};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most rows one result page holds.
const MAX_PAGE: usize = 10_000;

/// An execution as the API shows it, with its progress while it runs.
pub fn execution_json(execution: &QueryExecution, progress: Option<Value>) -> ExecutionView {
    ExecutionView {
        execution: execution.clone(),
        progress,
    }
}

/// An execution as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    /// The execution's record.
    #[serde(flatten)]
    pub execution: QueryExecution,
    /// How far it got, while it runs (when the engine reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub progress: Option<Value>,
}

/// A page of a result (`GET /executions/{id}/result`; `result` of `POST /queries/{id}/execute`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResultPageJson(pub Value);

/// A page of a result (`result` of `POST /queries/{id}/execute`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResultPage {
    /// The columns, `{name, type}`.
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Value>,
    /// The rows of the page.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the result has.
    pub total_rows: u64,
    /// The first row of the page.
    pub offset: u64,
}

/// `GET /executions/{id}/result`: a page, and about the whole result (the schema of
/// [`ResultPageJson`]).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionResult {
    /// The page.
    #[serde(flatten)]
    pub page: ResultPage,
    /// Why the result holds fewer rows than the query produced (`row_limit`,
    /// `byte_limit`), or null.
    #[schema(required)]
    pub truncated: Option<String>,
    /// When it was computed.
    pub computed_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /executions/{id}`.
#[utoipa::path(get, path = "/executions/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The execution")),
    responses((status = 200, description = "The execution", body = ExecutionView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ExecutionView>> {
    let (execution, _) = visible(&state, &caller, id).await?;
    let progress = if execution.is_final() {
        None
    } else {
        state.storage.results.progress(id).await?
    };
    Ok(Json(execution_json(&execution, progress)))
}

/// `GET /executions/{id}/result` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

/// `GET /executions/{id}/result?offset=&limit=`: `{columns: [{name, type}], rows,
/// total_rows, offset}` of a completed execution. 409 while it runs or when it failed; 404
/// once its result has left the cache (run the query again).
#[utoipa::path(get, path = "/executions/{id}/result", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The execution"), Page),
    responses((status = 200, description = "A page of the result", body = ExecutionResult),
        (status = 409, description = "The execution is still running, or it failed")))]
pub async fn result(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<ResultPageJson>> {
    let (execution, _) = visible(&state, &caller, id).await?;
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("limit is 1 to {MAX_PAGE}"),
        ));
    }
    match execution.status.as_str() {
        "completed" => {}
        "failed" | "cancelled" => {
            return Err(ApiError::Conflict(format!(
                "execution {id} {}: {}",
                execution.status,
                execution.error_message.as_deref().unwrap_or("no result")
            )));
        }
        _ => {
            return Err(ApiError::Conflict(format!(
                "execution {id} is {}: poll GET /executions/{id} until it is completed",
                execution.status
            )));
        }
    }
    let gone = || {
        ApiError::NotFound(format!(
            "the result of execution {id} is no longer kept; run the query again"
        ))
    };
    let key = execution.query_hash.as_deref().ok_or_else(gone)?;
    let bytes = state.storage.results.result(key).await?.ok_or_else(gone)?;
    let result = QueryResult::from_msgpack(&bytes)?;
    let mut body = json!(result.page(page.offset, page.limit));
    body["truncated"] = json!(result.truncated);
    body["computed_at"] = json!(result.computed_at);
    Ok(Json(ResultPageJson(body)))
}

/// `POST /executions/{id}/cancel`: stops a pending or running execution (whoever ran it, or
/// an editor). The query stops at once on the node running it, this one or another (told on
/// the control channel, `crate::control`); the record says `cancelled` everywhere, and a
/// result that arrives later is not recorded.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The execution")),
    responses((status = 200, description = "The execution, cancelled", body = ExecutionView),
        (status = 403, description = "Only editors cancel another user's execution"),
        (status = 409, description = "The execution has already ended")))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ExecutionView>> {
    let (execution, role) = visible(&state, &caller, id).await?;
    if execution.executed_by != Some(caller.user.id) {
        require(role, Role::Editor, "cancelling another user's execution")?;
    }
    if execution.is_final() {
        return Err(ApiError::Conflict(format!(
            "execution {id} has already ended ({})",
            execution.status
        )));
    }
    let update = ExecutionUpdate {
        status: Some("cancelled".into()),
        error_message: Some("cancelled by a user".into()),
        completed_at: Some(chrono::Utc::now()),
        ..ExecutionUpdate::default()
    };
    let ended = state.storage.data.update_execution(id, update).await?;
    // Stop it here, or tell the node that runs it (the record already says `cancelled`, so
    // its result is never recorded even if that message is lost).
    if !state.data.jobs.cancel(id) && ended.is_some() {
        control::publish(
            &*state.storage.fanout,
            &control::Control::ExecutionCancelled { execution: id },
        )
        .await;
    }
    let now = match ended {
        Some(execution) => execution,
        None => state
            .storage
            .data
            .execution(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))?,
    };
    Ok(Json(execution_json(&now, None)))
}
