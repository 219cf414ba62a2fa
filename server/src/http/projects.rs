//! Projects and their members.

use super::{ApiJson, ApiPath, ApiQuery, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_storage::{NewMember, NewProject, Project, ProjectUpdate};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// `POST /projects` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
    description: Option<String>,
}

/// `POST /projects/{id}/members` body: the user by email or id, and a role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    email: Option<String>,
    user_id: Option<Uuid>,
    role: String,
}

/// Checks a display name: 1 to 255 characters, not blank, one line, without control or
/// text-direction characters ([`is_unsafe_in_name`]).
pub fn valid_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > canvas_engine::schema::MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 255 characters",
        ));
    }
    if let Some(c) = name.chars().find(|&c| is_unsafe_in_name(c)) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "name must not contain control or text-direction characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(name.to_owned())
}

pub use canvas_engine::schema::is_unsafe_in_name;

/// Checks an optional description: at most 10,000 characters.
pub fn valid_description(description: Option<String>) -> ApiResult<Option<String>> {
    match description {
        Some(d) if d.chars().count() > 10_000 || d.contains('\0') => Err(ApiError::bad_request(
            "invalid_description",
            "description must be at most 10000 characters",
        )),
        other => Ok(other),
    }
}

/// The project and the caller's role in it; 404 if unknown, 403 if the caller is not a member.
pub async fn project_role(state: &AppState, user_id: Uuid, id: Uuid) -> ApiResult<(Project, Role)> {
    let project = state
        .storage
        .projects
        .project(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id} not found")))?;
    let role = state
        .storage
        .projects
        .member_role(id, user_id)
        .await?
        .ok_or_else(|| ApiError::Forbidden("you are not a member of this project".into()))?;
    Ok((project, role))
}

fn project_json(project: &Project, role: Role) -> Value {
    let mut value = json!(project);
    value["role"] = json!(role);
    value
}

/// Creates a project owned by the caller, in their organization.
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = state
        .storage
        .projects
        .create_project(NewProject {
            name: valid_name(&body.name)?,
            description: valid_description(body.description)?,
            organization_id: caller.user.organization_id,
            owner_id: caller.user.id,
        })
        .await?;
    audit(
        &state,
        &caller.user,
        &client,
        "project.create",
        ("project", Some(project.id)),
        json!({ "name": project.name }),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(project_json(&project, Role::Owner)),
    ))
}

/// `GET /projects` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListProjects {
    /// `true` lists the archived projects instead of the active ones.
    #[serde(default)]
    archived: bool,
}

/// The caller's projects (`?archived=true`: their archived projects).
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ListProjects>,
) -> ApiResult<Json<Value>> {
    let projects = state
        .storage
        .projects
        .projects_for_user(caller.user.id, query.archived)
        .await?;
    let mut out = Vec::with_capacity(projects.len());
    for project in &projects {
        let role = state
            .storage
            .projects
            .member_role(project.id, caller.user.id)
            .await?;
        out.push(project_json(project, role.unwrap_or(Role::Viewer)));
    }
    Ok(Json(json!({ "projects": out })))
}

/// `PATCH /projects/{id}` body; a missing field keeps its value, `"description": null`
/// clears it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    is_archived: Option<bool>,
}

/// Tells a present `null` (`Some(None)`) from a missing field (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Renames, archives or restores a project. Admins and the owner. Archiving hides the
/// project from lists and makes its canvases read-only for everyone at once, open
/// connections included; restoring gives the roles back.
pub async fn update(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<Json<Value>> {
    let (before, role) = project_role(&state, caller.user.id, id).await?;
    if !role.can_administer() {
        return Err(ApiError::Forbidden(
            "only admins and the owner change a project".into(),
        ));
    }
    let update = ProjectUpdate {
        name: body.name.as_deref().map(valid_name).transpose()?,
        description: match body.description {
            Some(description) => Some(valid_description(description)?),
            None => None,
        },
        is_archived: body.is_archived,
    };
    let project = state
        .storage
        .projects
        .update_project(id, update)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id} not found")))?;
    if project.is_archived != before.is_archived {
        state.rooms.project_archived(id, project.is_archived).await;
        let action = if project.is_archived {
            "project.archive"
        } else {
            "project.restore"
        };
        audit(
            &state,
            &caller.user,
            &client,
            action,
            ("project", Some(id)),
            json!({ "name": project.name }),
        )
        .await;
    }
    if project.name != before.name || project.description != before.description {
        audit(
            &state,
            &caller.user,
            &client,
            "project.update",
            ("project", Some(id)),
            json!({
                "before": { "name": before.name, "description": before.description },
                "after": { "name": project.name, "description": project.description },
            }),
        )
        .await;
    }
    Ok(Json(project_json(&project, role)))
}

/// One project the caller belongs to.
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let (project, role) = project_role(&state, caller.user.id, id).await?;
    Ok(Json(project_json(&project, role)))
}

/// The members of a project the caller belongs to.
pub async fn members(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let (project, _) = project_role(&state, caller.user.id, id).await?;
    let members = state.storage.projects.members(id).await?;
    Ok(Json(
        json!({ "owner_id": project.owner_id, "members": members }),
    ))
}

/// Adds a member or changes their role. Admins and the owner only.
pub async fn add_member(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, role) = project_role(&state, caller.user.id, id).await?;
    if !role.can_administer() {
        return Err(ApiError::Forbidden(
            "only admins and the owner manage members".into(),
        ));
    }
    let new_role = crate::domain::grantable_role(&body.role)?;
    let user = match (body.user_id, body.email.as_deref()) {
        (Some(user_id), None) => state.storage.users.user_by_id(user_id).await?,
        (None, Some(email)) => state
            .storage
            .users
            .user_by_email(email.trim())
            .await?
            .map(|(u, _)| u),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_member",
                "give exactly one of email or user_id",
            ));
        }
    }
    .ok_or_else(|| ApiError::NotFound("no such user".into()))?;
    if user.id == project.owner_id {
        return Err(ApiError::bad_request(
            "invalid_member",
            "the owner's role cannot be changed",
        ));
    }
    let before = state.storage.projects.member_role(id, user.id).await?;
    let member = state
        .storage
        .projects
        .put_member(NewMember {
            project_id: id,
            user_id: user.id,
            role: new_role,
            invited_by: Some(caller.user.id),
        })
        .await?;
    state
        .rooms
        .project_role_changed(id, user.id, Some(new_role))
        .await;
    if before.is_some_and(Role::can_administer) && !new_role.can_administer() {
        rotate_project_links(&state, &caller, &client, id).await?;
    }
    audit(
        &state,
        &caller.user,
        &client,
        "member.add",
        ("project", Some(id)),
        json!({ "user_id": user.id, "role": new_role }),
    )
    .await;
    let roles = (before, Some(new_role));
    state
        .webhooks
        .member(id, user.id, roles, caller.user.id)
        .await;
    Ok((StatusCode::CREATED, Json(json!(member))))
}

/// An admin of the project could read the public link token of every canvas in it: when
/// they are removed or demoted, those links are replaced ([`super::sharing::rotate_links`]).
async fn rotate_project_links(
    state: &AppState,
    caller: &AuthUser,
    client: &ClientInfo,
    project_id: Uuid,
) -> ApiResult<()> {
    let canvases: Vec<Uuid> = state
        .storage
        .canvases
        .canvases_in_project(project_id)
        .await?
        .iter()
        .map(|c| c.id)
        .collect();
    super::sharing::rotate_links(state, caller, client, &canvases).await?;
    Ok(())
}

/// Removes a member. Admins and the owner only.
pub async fn remove_member(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (_, role) = project_role(&state, caller.user.id, id).await?;
    if !role.can_administer() {
        return Err(ApiError::Forbidden(
            "only admins and the owner manage members".into(),
        ));
    }
    let before = state.storage.projects.member_role(id, user_id).await?;
    if !state.storage.projects.remove_member(id, user_id).await? {
        return Err(ApiError::NotFound(format!(
            "user {user_id} is not a member"
        )));
    }
    // Live revocation: their open connections to this project's canvases lose the role
    // they had from membership at once (closed with 4403 if nothing else grants one).
    state.rooms.project_role_changed(id, user_id, None).await;
    if before.is_some_and(Role::can_administer) {
        rotate_project_links(&state, &caller, &client, id).await?;
    }
    audit(
        &state,
        &caller.user,
        &client,
        "member.remove",
        ("project", Some(id)),
        json!({ "user_id": user_id }),
    )
    .await;
    let roles = (before, None);
    state
        .webhooks
        .member(id, user_id, roles, caller.user.id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
