//! Data pipelines of a project (`/projects/{id}/pipelines`, `/pipelines/{id}`): create,
//! list, read, change, delete, run now (`POST /pipelines/{id}/run`).
//!
//! Project viewers list and read pipelines; admins manage and run them. Pipelines of a
//! project the caller is not a member of are invisible (404). Creating, changing, deleting
//! and running one is audited (`pipeline.*`). The schedule and the run are in
//! [`crate::data::pipelines`].

use super::data_access::{data_role, require, valid_name, visible_pipeline as visible};
use super::{ApiJson, ApiPath, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::data::pipelines::{self, Schedule};
use crate::data::sources;
use crate::data::sources::DataSourceView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_storage::{DataPipeline, DataPipelineUpdate, NewDataPipeline, PipelineOutcome};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

/// The pipeline as the API shows it: the seed's fields and the last run's outcome.
fn shown(p: &DataPipeline) -> PipelineView {
    let description = p
        .schedule_cron
        .as_deref()
        .and_then(|text| Schedule::parse(text, std::time::Duration::ZERO).ok())
        .map(|s| s.describe());
    PipelineView {
        id: p.id,
        project_id: p.project_id,
        name: p.name.clone(),
        source_id: p.source_id,
        pipeline_config: p.pipeline_config.clone(),
        schedule_cron: p.schedule_cron.clone(),
        schedule_description: description,
        is_active: p.is_active,
        last_run_at: p.last_run_at,
        next_run_at: p.next_run_at,
        last_status: p.last_status.clone(),
        last_error: p.last_error.clone(),
        run_count: p.run_count,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// A data pipeline as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineView {
    /// The pipeline.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// The source it syncs.
    pub source_id: Uuid,
    /// Its settings (a JSON object).
    #[schema(value_type = Object)]
    pub pipeline_config: Value,
    /// Its cron schedule.
    #[schema(required)]
    pub schedule_cron: Option<String>,
    /// The schedule in words.
    #[schema(required)]
    pub schedule_description: Option<String>,
    /// Whether it runs on its schedule.
    pub is_active: bool,
    /// When it last ran.
    #[schema(required)]
    pub last_run_at: Option<chrono::DateTime<Utc>>,
    /// When it runs next.
    #[schema(required)]
    pub next_run_at: Option<chrono::DateTime<Utc>>,
    /// `ok` or `error` after a run.
    #[schema(required)]
    pub last_status: Option<String>,
    /// The last run's error.
    #[schema(required)]
    pub last_error: Option<String>,
    /// How many times it ran.
    pub run_count: i64,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change time.
    pub updated_at: chrono::DateTime<Utc>,
}

/// `GET /projects/{id}/pipelines`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    /// The project's pipelines.
    pub pipelines: Vec<PipelineView>,
}

/// `POST /pipelines/{id}/run`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineRun {
    /// The pipeline after the run.
    pub pipeline: PipelineView,
    /// The source after its sync (null if it is gone).
    #[schema(required)]
    pub data_source: Option<DataSourceView>,
    /// `{status: "ok"}` or `{status: "error", error}`.
    pub outcome: RunOutcome,
}

/// How a pipeline run went.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunOutcome {
    /// `ok` or `error`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// A schedule the caller gave, or 400 `invalid_schedule` with the parser's reason.
fn schedule(state: &AppState, text: &str) -> ApiResult<Schedule> {
    Schedule::parse(text, state.data.pipelines.min_interval)
        .map_err(|message| ApiError::bad_request("invalid_schedule", message))
}

/// `pipeline_config`: a JSON object (`{}` when absent).
fn config(value: Option<Value>) -> ApiResult<Option<Value>> {
    match value {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_pipeline_config",
            "pipeline_config is a JSON object",
        )),
    }
}

/// `POST /projects/{id}/pipelines` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    name: String,
    source_id: Uuid,
    schedule_cron: String,
    #[serde(default)]
    pipeline_config: Option<Value>,
    #[serde(default)]
    is_active: Option<bool>,
}

/// Creates a pipeline (admins) on a source of the same project; its first run is the
/// schedule's next time (none while inactive).
#[utoipa::path(post, path = "/projects/{id}/pipelines", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")), request_body = CreatePipeline,
    responses((status = 201, description = "The new pipeline", body = PipelineView),
        (status = 403, description = "Only the project's admins manage pipelines")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreatePipeline>,
) -> ApiResult<(StatusCode, Json<PipelineView>)> {
    let role = data_role(&state, caller.user.id, project_id).await?;
    require(role, Role::Admin, "managing pipelines")?;
    let name = valid_name(&body.name, "a pipeline")?;
    let schedule = schedule(&state, &body.schedule_cron)?;
    let pipeline_config = config(body.pipeline_config)?.unwrap_or_else(|| json!({}));
    let source = state
        .storage
        .data
        .source(body.source_id)
        .await?
        .filter(|s| s.project_id == project_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "data source {} not found in project {project_id}",
                body.source_id
            ))
        })?;
    let is_active = body.is_active.unwrap_or(true);
    let row = state
        .storage
        .data
        .create_pipeline(NewDataPipeline {
            project_id,
            name,
            source_id: source.id,
            pipeline_config,
            schedule_cron: Some(body.schedule_cron.trim().to_owned()),
            is_active,
            next_run_at: is_active.then(|| schedule.next_after(Utc::now())).flatten(),
        })
        .await?;
    state.data.pipelines.wake.notify_one();
    audit(
        &state,
        &caller.user,
        &client,
        "pipeline.create",
        ("data_pipeline", Some(row.id)),
        json!({"project_id": project_id, "name": row.name, "source_id": row.source_id,
               "schedule_cron": row.schedule_cron, "is_active": row.is_active}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(shown(&row))))
}

/// `GET /projects/{id}/pipelines`: the project's pipelines, by name.
#[utoipa::path(get, path = "/projects/{id}/pipelines", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project's pipelines", body = PipelineList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
) -> ApiResult<Json<PipelineList>> {
    data_role(&state, caller.user.id, project_id).await?;
    let rows = state.storage.data.pipelines_in_project(project_id).await?;
    let pipelines = rows.iter().map(shown).collect();
    Ok(Json(PipelineList { pipelines }))
}

/// `GET /pipelines/{id}`.
#[utoipa::path(get, path = "/pipelines/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pipeline")),
    responses((status = 200, description = "The pipeline", body = PipelineView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PipelineView>> {
    let (row, _) = visible(&state, &caller, id).await?;
    Ok(Json(shown(&row)))
}

/// `PATCH /pipelines/{id}` body; a missing field keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPipeline {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    schedule_cron: Option<String>,
    #[serde(default)]
    pipeline_config: Option<Value>,
    #[serde(default)]
    is_active: Option<bool>,
}

/// Changes a pipeline (admins). A new schedule, or turning it on, sets the next run to the
/// schedule's next time from now; turning it off clears it.
#[utoipa::path(patch, path = "/pipelines/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pipeline")), request_body = PatchPipeline,
    responses((status = 200, description = "The pipeline as changed", body = PipelineView),
        (status = 403, description = "Only the project's admins manage pipelines")))]
pub async fn patch(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchPipeline>,
) -> ApiResult<Json<PipelineView>> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "managing pipelines")?;
    let name = body
        .name
        .as_deref()
        .map(|n| valid_name(n, "a pipeline"))
        .transpose()?;
    let new_schedule = body
        .schedule_cron
        .as_deref()
        .map(|text| schedule(&state, text))
        .transpose()?;
    let pipeline_config = config(body.pipeline_config)?;
    let active = body.is_active.unwrap_or(row.is_active);
    let rescheduled = new_schedule.is_some() || body.is_active.is_some_and(|a| a != row.is_active);
    let next_run_at = if !rescheduled {
        None
    } else if !active {
        Some(None)
    } else {
        let schedule = match new_schedule {
            Some(s) => Some(s),
            // Turned on again: its stored schedule from now.
            None => row
                .schedule_cron
                .as_deref()
                .and_then(|t| Schedule::parse(t, std::time::Duration::ZERO).ok()),
        };
        Some(schedule.and_then(|s| s.next_after(Utc::now())))
    };
    let changed: Vec<&str> = [
        name.as_ref().map(|_| "name"),
        body.schedule_cron.as_ref().map(|_| "schedule_cron"),
        pipeline_config.as_ref().map(|_| "pipeline_config"),
        body.is_active.map(|_| "is_active"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let row = state
        .storage
        .data
        .update_pipeline(
            id,
            DataPipelineUpdate {
                name,
                pipeline_config,
                schedule_cron: body.schedule_cron.map(|t| Some(t.trim().to_owned())),
                is_active: body.is_active,
                next_run_at,
            },
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("pipeline {id} not found")))?;
    state.data.pipelines.wake.notify_one();
    audit(
        &state,
        &caller.user,
        &client,
        "pipeline.update",
        ("data_pipeline", Some(id)),
        json!({"changed": changed}),
    )
    .await;
    Ok(Json(shown(&row)))
}

/// Deletes a pipeline (admins); a run in progress finishes and is not recorded.
#[utoipa::path(delete, path = "/pipelines/{id}", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pipeline")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only the project's admins manage pipelines")))]
pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (row, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "managing pipelines")?;
    if !state.storage.data.delete_pipeline(id).await? {
        return Err(ApiError::NotFound(format!("pipeline {id} not found")));
    }
    audit(
        &state,
        &caller.user,
        &client,
        "pipeline.delete",
        ("data_pipeline", Some(id)),
        json!({"project_id": row.project_id, "name": row.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /pipelines/{id}/run`: runs it now (admins), whether or not it is active; the
/// schedule is unchanged. Answers `{pipeline, data_source, outcome}` once the source has
/// synced (a failed sync is a 200 with `outcome.status: "error"`, as on the pipeline).
#[utoipa::path(post, path = "/pipelines/{id}/run", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pipeline")),
    responses((status = 200, description = "The run's outcome", body = PipelineRun),
        (status = 403, description = "Only the project's admins run pipelines")))]
pub async fn run(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PipelineRun>> {
    let (_, role) = visible(&state, &caller, id).await?;
    require(role, Role::Admin, "running pipelines")?;
    let started = Utc::now();
    let pipeline = state
        .storage
        .data
        .start_pipeline_run(id, started)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("pipeline {id} not found")))?;
    let report = pipelines::run(&state, &pipeline, started).await;
    let outcome = match &report.outcome {
        PipelineOutcome::Ok => RunOutcome {
            status: "ok".into(),
            error: None,
        },
        PipelineOutcome::Error(message) => RunOutcome {
            status: "error".into(),
            error: Some(message.clone()),
        },
    };
    audit(
        &state,
        &caller.user,
        &client,
        "pipeline.run",
        ("data_pipeline", Some(id)),
        json!({"source_id": pipeline.source_id, "outcome": outcome}),
    )
    .await;
    let pipeline = state.storage.data.pipeline(id).await?.unwrap_or(pipeline);
    Ok(Json(PipelineRun {
        pipeline: shown(&pipeline),
        data_source: report
            .source
            .as_ref()
            .map(|s| sources::json(&state.data, s)),
        outcome,
    }))
}
