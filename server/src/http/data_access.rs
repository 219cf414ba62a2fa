//! Who may see and change a project's data: the lookups the data-source, query and execution
//! handlers share. Anything of a project the caller is not a member of is a 404 (it is
//! invisible, not forbidden); an archived project is read-only (viewer at most).

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use canvas_engine::Role;
use canvas_storage::{DataPipeline, DataSource, QueryExecution, SavedQuery};
use uuid::Uuid;

/// Longest name of a source or a query.
const MAX_NAME: usize = 255;

/// The caller's role in a project for its data; a 404 when they are not a member (or there
/// is no such project).
pub async fn data_role(state: &AppState, user_id: Uuid, project_id: Uuid) -> ApiResult<Role> {
    let not_found = || ApiError::NotFound(format!("project {project_id} not found"));
    let project = state
        .storage
        .projects
        .project(project_id)
        .await?
        .ok_or_else(not_found)?;
    let role = state
        .storage
        .projects
        .member_role(project_id, user_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(if project.is_archived {
        role.min(Role::Viewer)
    } else {
        role
    })
}

/// 403 unless `role` reaches `needed`.
pub fn require(role: Role, needed: Role, what: &str) -> ApiResult<()> {
    if role >= needed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{what} needs the {needed} role in the project; yours is {role}"
        )))
    }
}

/// A trimmed name of 1 to 255 characters without control characters.
pub fn valid_name(name: &str, of: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("{of}'s name is 1 to {MAX_NAME} characters, no control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// The caller's role in `project_id`, with "not a member" reported as `not_found` (so the
/// thing looked up is invisible rather than its project).
async fn role_or(
    state: &AppState,
    caller: &AuthUser,
    project_id: Uuid,
    not_found: impl Fn() -> ApiError,
) -> ApiResult<Role> {
    data_role(state, caller.user.id, project_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => not_found(),
            e => e,
        })
}

/// A source and the caller's role in its project; 404 when it is not visible to them.
pub async fn visible_source(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(DataSource, Role)> {
    let not_found = || ApiError::NotFound(format!("data source {id} not found"));
    let source = state.storage.data.source(id).await?.ok_or_else(not_found)?;
    let role = role_or(state, caller, source.project_id, not_found).await?;
    Ok((source, role))
}

/// A query and the caller's role in its project; 404 when it is not visible to them.
pub async fn visible_query(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(SavedQuery, Role)> {
    let not_found = || ApiError::NotFound(format!("query {id} not found"));
    let query = state.storage.data.query(id).await?.ok_or_else(not_found)?;
    let role = role_or(state, caller, query.project_id, not_found).await?;
    Ok((query, role))
}

/// An execution and the caller's role in its query's project; 404 when it is not visible.
pub async fn visible_execution(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(QueryExecution, Role)> {
    let not_found = || ApiError::NotFound(format!("execution {id} not found"));
    let execution = state
        .storage
        .data
        .execution(id)
        .await?
        .ok_or_else(not_found)?;
    let query = state
        .storage
        .data
        .query(execution.query_id)
        .await?
        .ok_or_else(not_found)?;
    let role = role_or(state, caller, query.project_id, not_found).await?;
    Ok((execution, role))
}

/// A pipeline and the caller's role in its project; 404 when it is not visible to them.
pub async fn visible_pipeline(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(DataPipeline, Role)> {
    let not_found = || ApiError::NotFound(format!("pipeline {id} not found"));
    let pipeline = state
        .storage
        .data
        .pipeline(id)
        .await?
        .ok_or_else(not_found)?;
    let role = role_or(state, caller, pipeline.project_id, not_found).await?;
    Ok((pipeline, role))
}
