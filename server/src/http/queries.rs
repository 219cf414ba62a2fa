//! Saved queries of a project (`/projects/{id}/queries`, `/queries/{id}`) and running them
//! (`POST /queries/{id}/execute`).
//!
//! Viewers list, read and run queries; editors create, change and delete them (audited).
//! A query's text and parameters are checked when it is saved: `{{name}}` markers must be
//! declared, declarations well formed, the type `sql` (`python` and `natural_language` are
//! refused with `unsupported_query_type`). A query with a `data_source_id` runs on that
//! `database` source (push-down); any other reads the project's file, api and streaming
//! sources as tables named after them.

use super::data_access::{data_role, require, valid_name, visible_query};
use super::executions::{ExecutionView, ResultPage, execution_json};
use super::{ApiJson, ApiPath, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::data::executions::{self, Started};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_analytics::Query;
use canvas_engine::Role;
use canvas_storage::{NewSavedQuery, SavedQuery, SavedQueryUpdate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest query text, in bytes.
const MAX_TEXT: usize = 256 * 1024;
/// Rows of the result an `execute` answer carries; the rest is paged from `/result`.
pub const FIRST_PAGE: usize = 1000;

/// Checks a query as it would be saved: text, type and parameters.
fn check(query_type: &str, text: &str, parameters: &Value) -> ApiResult<()> {
    if text.len() > MAX_TEXT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("a query's text is at most {MAX_TEXT} bytes"),
        ));
    }
    Query::new(query_type, text, parameters)?;
    Ok(())
}

/// Checks that a query's source is a `database` source of the same project.
async fn check_source(state: &AppState, project_id: Uuid, source: Option<Uuid>) -> ApiResult<()> {
    let Some(id) = source else { return Ok(()) };
    match state.storage.data.source(id).await? {
        Some(s) if s.project_id == project_id && s.kind == "database" => Ok(()),
        Some(s) if s.project_id == project_id => Err(ApiError::bad_request(
            "invalid_data_source",
            format!(
                "data source {id} is a {} source: only database sources take a query of their \
                 own; query file, api and streaming sources by their name",
                s.kind
            ),
        )),
        _ => Err(ApiError::bad_request(
            "invalid_data_source",
            format!("no data source {id} in this project"),
        )),
    }
}

/// `POST /projects/{id}/queries` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    name: String,
    query_text: String,
    #[serde(default = "sql")]
    query_type: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    data_source_id: Option<Uuid>,
    #[serde(default)]
    is_public: bool,
}

fn sql() -> String {
    "sql".into()
}

/// `GET /projects/{id}/queries`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryList {
    /// The project's saved queries, newest first.
    pub queries: Vec<SavedQuery>,
}

/// `POST /queries/{id}/execute`: the execution, and the first page of its result when it
/// is at hand (200), or the execution alone to poll (202).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Executed {
    /// The execution.
    pub execution: ExecutionView,
    /// The first page of the result (200 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ResultPage>, nullable = false)]
    pub result: Option<Value>,
    /// Why the result holds fewer rows than the query produced (`row_limit`, `byte_limit`),
    /// or null (200 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub truncated: Option<Value>,
}

/// Saves a query (editors).
#[utoipa::path(post, path = "/projects/{id}/queries", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")), request_body = CreateQuery,
    responses((status = 201, description = "The saved query", body = SavedQuery),
        (status = 403, description = "Only the project's editors and admins save queries")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateQuery>,
) -> ApiResult<(StatusCode, Json<SavedQuery>)> {
    let role = data_role(&state, caller.user.id, project_id).await?;
    require(role, Role::Editor, "saving queries")?;
    let name = valid_name(&body.name, "a query")?;
    let parameters = body.parameters.unwrap_or(json!({}));
    check(&body.query_type, &body.query_text, &parameters)?;
    check_source(&state, project_id, body.data_source_id).await?;
    let query = state
        .storage
        .data
        .create_query(NewSavedQuery {
            project_id,
            name,
            query_text: body.query_text,
            query_type: body.query_type,
            parameters,
            created_by: Some(caller.user.id),
            is_public: body.is_public,
            data_source_id: body.data_source_id,
        })
        .await?;
    audit(
        &state,
        &caller.user,
        &client,
        "query.create",
        ("query", Some(query.id)),
        json!({"project_id": project_id, "name": query.name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(query)))
}

/// `GET /projects/{id}/queries`: newest first.
#[utoipa::path(get, path = "/projects/{id}/queries", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project's saved queries", body = QueryList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
) -> ApiResult<Json<QueryList>> {
    data_role(&state, caller.user.id, project_id).await?;
    let queries = state.storage.data.queries_in_project(project_id).await?;
    Ok(Json(QueryList { queries }))
}

/// `GET /queries/{id}`.
#[utoipa::path(get, path = "/queries/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The saved query")),
    responses((status = 200, description = "The saved query", body = SavedQuery)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SavedQuery>> {
    let (query, _) = visible_query(&state, &caller, id).await?;
    Ok(Json(query))
}

/// `PATCH /queries/{id}` body; a missing field keeps its value (`data_source_id: null`
/// removes the source).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchQuery {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    query_text: Option<String>,
    #[serde(default)]
    query_type: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    is_public: Option<bool>,
    #[serde(default, with = "serde_with_double_option")]
    #[schema(value_type = Option<Uuid>)]
    data_source_id: Option<Option<Uuid>>,
}

/// `Option<Option<T>>` for "absent" versus `null`.
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Changes a query (editors).
#[utoipa::path(patch, path = "/queries/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The saved query")), request_body = PatchQuery,
    responses((status = 200, description = "The saved query as changed", body = SavedQuery),
        (status = 403, description = "Only the project's editors and admins change queries")))]
pub async fn patch(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchQuery>,
) -> ApiResult<Json<SavedQuery>> {
    let (query, role) = visible_query(&state, &caller, id).await?;
    require(role, Role::Editor, "changing queries")?;
    let name = body
        .name
        .as_deref()
        .map(|n| valid_name(n, "a query"))
        .transpose()?;
    check(
        body.query_type.as_deref().unwrap_or(&query.query_type),
        body.query_text.as_deref().unwrap_or(&query.query_text),
        body.parameters.as_ref().unwrap_or(&query.parameters),
    )?;
    if let Some(source) = body.data_source_id {
        check_source(&state, query.project_id, source).await?;
    }
    let changed: Vec<&str> = [
        name.as_ref().map(|_| "name"),
        body.query_text.as_ref().map(|_| "query_text"),
        body.query_type.as_ref().map(|_| "query_type"),
        body.parameters.as_ref().map(|_| "parameters"),
        body.is_public.as_ref().map(|_| "is_public"),
        body.data_source_id.as_ref().map(|_| "data_source_id"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let query = state
        .storage
        .data
        .update_query(
            id,
            SavedQueryUpdate {
                name,
                query_text: body.query_text,
                query_type: body.query_type,
                parameters: body.parameters,
                is_public: body.is_public,
                data_source_id: body.data_source_id,
            },
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("query {id} not found")))?;
    audit(
        &state,
        &caller.user,
        &client,
        "query.update",
        ("query", Some(id)),
        json!({"changed": changed}),
    )
    .await;
    Ok(Json(query))
}

/// Deletes a query with its executions (editors).
#[utoipa::path(delete, path = "/queries/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The saved query")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only the project's editors and admins delete queries")))]
pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (query, role) = visible_query(&state, &caller, id).await?;
    require(role, Role::Editor, "deleting queries")?;
    if !state.storage.data.delete_query(id).await? {
        return Err(ApiError::NotFound(format!("query {id} not found")));
    }
    audit(
        &state,
        &caller.user,
        &client,
        "query.delete",
        ("query", Some(id)),
        json!({"project_id": query.project_id, "name": query.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /queries/{id}/execute` body.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Execute {
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    fresh: bool,
}

/// Runs a query (viewers): 200 `{execution, result}` when the result is at hand (from the
/// cache, or computed within `--execute-wait-ms`), else 202 `{execution}` to poll at
/// `GET /executions/{id}`. `fresh: true` skips the cache.
#[utoipa::path(post, path = "/queries/{id}/execute", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The saved query")),
    request_body(content = Option<Execute>, description = "Optional; no body is `{}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The execution and the first page of its result", body = Executed),
        (status = 202, description = "The execution, under way: poll GET /executions/{id}", body = Executed)))]
pub async fn execute(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Executed>)> {
    // No body is the same as `{}`.
    let body: Execute = if body.iter().all(u8::is_ascii_whitespace) {
        Execute::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid body: {e}")))?
    };
    let (query, _) = visible_query(&state, &caller, id).await?;
    let parameters = body.parameters.unwrap_or(json!({}));
    match executions::start(
        &state,
        &query,
        &parameters,
        body.fresh,
        Some(caller.user.id),
    )
    .await?
    {
        Started::Done(execution, result) => Ok((
            StatusCode::OK,
            Json(Executed {
                execution: execution_json(&execution, None),
                result: Some(
                    serde_json::to_value(result.page(0, FIRST_PAGE)).map_err(ApiError::internal)?,
                ),
                truncated: Some(json!(result.truncated)),
            }),
        )),
        Started::Pending(execution) => Ok((
            StatusCode::ACCEPTED,
            Json(Executed {
                execution: execution_json(&execution, None),
                result: None,
                truncated: None,
            }),
        )),
    }
}
