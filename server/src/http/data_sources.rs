//! Data sources of a project (`/projects/{id}/data-sources`, `/data-sources/{id}`): create,
//! list, read, change, delete, upload a file (`PUT .../file`), sync (`POST .../sync`).
//!
//! Project viewers list and read sources (secrets redacted); admins manage them. Sources of
//! a project the caller is not a member of are invisible (404). Creating, changing and
//! deleting a source is audited. The engine work is in [`crate::data`].

use super::data_access::{data_role, require, valid_name, visible_source as visible};
use super::{ApiJson, ApiPath, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::data::sources;
use crate::data::sources::DataSourceView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use canvas_analytics::{FileFormat, SourceConfig, SourceKind};
use canvas_engine::Role;
use canvas_storage::{DataSourceUpdate, NewDataSource, StorageError};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

fn taken(e: StorageError, name: &str) -> ApiError {
    match e {
        StorageError::Conflict(field) if field == "name" => ApiError::Conflict(format!(
            "the project already has a data source named {name:?} (names are table names: \
             unique in any case)"
        )),
        e => e.into(),
    }
}

/// `POST /projects/{id}/data-sources` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    name: String,
    /// `file`, `database`, `api` or `streaming`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(file|database|api|streaming)$")]
    kind: String,
    #[serde(default)]
    connection_config: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// `GET /projects/{id}/data-sources`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DataSourceList {
    /// The project's sources, by name.
    pub data_sources: Vec<DataSourceView>,
}

/// Creates a source (admins). Its secrets are sealed before they are stored.
#[utoipa::path(post, path = "/projects/{id}/data-sources", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")), request_body = CreateSource,
    responses((status = 201, description = "The new source", body = DataSourceView),
        (status = 403, description = "Only the project's admins manage data sources"),
        (status = 409, description = "The project has a data source of this name")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateSource>,
) -> ApiResult<(StatusCode, Json<DataSourceView>)> {
    let role = data_role(&state, caller.user.id, project_id).await?;
    require(role, Role::Admin, "managing data sources")?;
    let name = valid_name(&body.name, "a data source")?;
    let kind: SourceKind = body.kind.parse()?;
    let config = SourceConfig::parse(kind, &body.connection_config.unwrap_or(json!({})))?;
    let metadata = match body.metadata {
        None => json!({}),
        Some(m @ Value::Object(_)) => m,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                "metadata is a JSON object",
            ));
        }
    };
    // Secrets are sealed for the source's id: chosen here, before anything is stored.
    let id = Uuid::new_v4();
    let sealed = config.seal(id, &state.data.key)?;
    let row = state
        .storage
        .data
        .create_source(NewDataSource {
            id,
            project_id,
            name: name.clone(),
            kind: kind.as_str().to_owned(),
            connection_config: sealed,
            metadata,
        })
        .await
        .map_err(|e| taken(e, &name))?;
    audit(
        &state,
        &caller.user,
        &client,
        "data_source.create",
        ("data_source", Some(row.id)),
        json!({"project_id": project_id, "name": row.name, "type": row.kind}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(sources::json(&state.data, &row))))
}

/// `GET /projects/{id}/data-sources`: the project's sources, by name.
#[utoipa::path(get, path = "/projects/{id}/data-sources", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project's sources", body = DataSourceList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
) -> ApiResult<Json<DataSourceList>> {
    data_role(&state, caller.user.id, project_id).await?;
    let rows = state.storage.data.sources_in_project(project_id).await?;
    let data_sources = rows.iter().map(|r| sources::json(&state.data, r)).collect();
    Ok(Json(DataSourceList { data_sources }))
}

/// `GET /data-sources/{id}`.
#[utoipa::path(get, path = "/data-sources/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The data source")),
    responses((status = 200, description = "The source", body = DataSourceView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<DataSourceView>> {
    let (row, _) = visible(&state, &caller, id).await?;
    Ok(Json(sources::json(&state.data, &row)))
}

/// `PATCH /data-sources/{id}` body; a missing field keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    connection_config: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Changes a source (admins). Secrets sent back as shown (redacted) keep their value.
#[utoipa::path(patch, path = "/data-sources/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The data source")), request_body = PatchSource,
    responses((status = 200, description = "The source as changed", body = DataSourceView),
        (status = 403, description = "Only the project's admins manage data sources"),
        (status = 409, description = "The project has a data source of this name")))]
pub async fn patch(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchSource>,
) -> ApiResult<Json<DataSourceView>> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "managing data sources")?;
    let name = body
        .name
        .as_deref()
        .map(|n| valid_name(n, "a data source"))
        .transpose()?;
    let connection_config = match &body.connection_config {
        Some(new) => {
            let kind = sources::kind(&row)?;
            let previous = sources::open(&state.data, &row)?.config;
            let config = SourceConfig::parse(kind, new)?.keep_redacted(&previous);
            Some(config.seal(row.id, &state.data.key)?)
        }
        None => None,
    };
    let metadata = match body.metadata {
        None => None,
        Some(Value::Object(mut m)) => {
            // The engine's own entries stay the engine's.
            for key in [sources::DATA_VERSION, sources::LAST_ERROR] {
                match row.metadata.get(key) {
                    Some(v) => m.insert(key.to_owned(), v.clone()),
                    None => m.remove(key),
                };
            }
            Some(Value::Object(m))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                "metadata is a JSON object",
            ));
        }
    };
    let changed: Vec<&str> = [
        name.as_ref().map(|_| "name"),
        connection_config.as_ref().map(|_| "connection_config"),
        metadata.as_ref().map(|_| "metadata"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let shown_name = name.clone().unwrap_or_else(|| row.name.clone());
    let row = state
        .storage
        .data
        .update_source(
            id,
            DataSourceUpdate {
                name,
                connection_config,
                metadata,
                ..DataSourceUpdate::default()
            },
        )
        .await
        .map_err(|e| taken(e, &shown_name))?
        .ok_or_else(|| ApiError::NotFound(format!("data source {id} not found")))?;
    audit(
        &state,
        &caller.user,
        &client,
        "data_source.update",
        ("data_source", Some(id)),
        json!({"changed": changed}),
    )
    .await;
    Ok(Json(sources::json(&state.data, &row)))
}

/// Deletes a source (admins) with its stored file or snapshot; 409 while a saved query
/// runs on it.
#[utoipa::path(delete, path = "/data-sources/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The data source")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only the project's admins manage data sources"),
        (status = 409, description = "A saved query or pipeline uses the source")))]
pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "managing data sources")?;
    if !state.storage.data.delete_source(id).await? {
        return Err(ApiError::NotFound(format!("data source {id} not found")));
    }
    if let Err(e) = state.data.analytics.remove_source(id).await {
        tracing::warn!(source = %id, error = %e, "the deleted source's files were not removed");
    }
    audit(
        &state,
        &caller.user,
        &client,
        "data_source.delete",
        ("data_source", Some(id)),
        json!({"project_id": row.project_id, "name": row.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /data-sources/{id}/file`: the file of a `file` source (admins), streamed from the
/// body (`text/csv`, `application/vnd.apache.parquet`, `application/x-ndjson`). Past
/// `--max-upload-bytes` it stops reading and answers 413; a file that does not parse is a
/// 400 naming the line. Either way the previous file stays. Answers the source with its new
/// `schema_info`.
#[utoipa::path(put, path = "/data-sources/{id}/file", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The data source")),
    request_body(description = "The file: CSV, Parquet or NDJSON", content(
        (Vec<u8> = "text/csv"),
        (Vec<u8> = "application/vnd.apache.parquet"),
        (Vec<u8> = "application/x-ndjson"))),
    responses((status = 200, description = "The source with its new schema_info", body = DataSourceView),
        (status = 403, description = "Only the project's admins manage data sources")))]
pub async fn upload(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DataSourceView>> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "managing data sources")?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = FileFormat::from_content_type(content_type)
        .map_err(|e| ApiError::bad_request("unsupported_media_type", e.to_string()))?;
    let source = sources::open(&state.data, &row)?;
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let report = state
        .data
        .analytics
        .upload_file(&source, format, stream)
        .await?;
    let row = state
        .storage
        .data
        .update_source(id, sources::synced(&row, &report))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("data source {id} not found")))?;
    audit(
        &state,
        &caller.user,
        &client,
        "data_source.upload",
        ("data_source", Some(id)),
        json!({"format": format.extension(), "data_version": report.data_version}),
    )
    .await;
    crate::data::bound::source_refreshed(&state, row.project_id, id).await;
    Ok(Json(sources::json(&state.data, &row)))
}

/// `POST /data-sources/{id}/sync`: reads the source's schema again (and an api source's
/// data); the source's `status` says whether it worked (`error` with the message). A sync
/// that worked is announced (`crate::data::refresh`) like a pipeline run.
#[utoipa::path(post, path = "/data-sources/{id}/sync", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The data source")),
    responses((status = 200, description = "The source after the sync (`status` says whether it worked)", body = DataSourceView),
        (status = 403, description = "Only the project's admins sync data sources")))]
pub async fn sync(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<DataSourceView>> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "syncing data sources")?;
    let source = sources::open(&state.data, &row)?;
    let report = state.data.analytics.sync(&source).await;
    let row = state
        .storage
        .data
        .update_source(id, sources::synced(&row, &report))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("data source {id} not found")))?;
    if report.status == canvas_analytics::SourceStatus::Active {
        crate::data::bound::source_refreshed(&state, row.project_id, id).await;
    }
    Ok(Json(sources::json(&state.data, &row)))
}
