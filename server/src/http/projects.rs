//! Projects and their members.

use super::{ApiJson, ApiPath, ApiQuery, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_storage::{Member, NewMember, NewProject, Project, ProjectUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `POST /projects` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /projects/{id}/members` body: the user by email or id, and a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    user_id: Option<Uuid>,
    /// `viewer`, `editor` or `admin`.
    #[schema(pattern = "^(viewer|editor|admin)$")]
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

/// A project and the caller's role in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectView {
    /// The project.
    #[serde(flatten)]
    pub project: Project,
    /// The caller's role: owner, admin, editor or viewer.
    #[schema(value_type = String)]
    pub role: Role,
}

/// `GET /projects`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    /// The caller's projects.
    pub projects: Vec<ProjectView>,
}

/// `GET /projects/{id}/members`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    /// The project's owner (not among `members`).
    pub owner_id: Uuid,
    /// The members and their roles.
    pub members: Vec<Member>,
}

fn project_json(project: &Project, role: Role) -> ProjectView {
    ProjectView {
        project: project.clone(),
        role,
    }
}

/// Creates a project owned by the caller, in their organization.
#[utoipa::path(post, path = "/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProject,
    responses((status = 201, description = "The new project", body = ProjectView)))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProjects {
    /// `true` lists the archived projects instead of the active ones.
    #[serde(default)]
    archived: bool,
}

/// The caller's projects (`?archived=true`: their archived projects).
#[utoipa::path(get, path = "/projects", tag = "projects", security(("bearer" = [])),
    params(ListProjects),
    responses((status = 200, description = "The caller's projects with their role", body = ProjectList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ListProjects>,
) -> ApiResult<Json<ProjectList>> {
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
    Ok(Json(ProjectList { projects: out }))
}

/// `PATCH /projects/{id}` body; a missing field keeps its value, `"description": null`
/// clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default)]
    is_archived: Option<bool>,
}

/// Tells a present `null` (`Some(None)`) from a missing field (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Renames, archives or restores a project. Admins and the owner. Archiving hides the
/// project from lists and makes its canvases read-only for everyone at once, open
/// connections included; restoring gives the roles back.
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    request_body = UpdateProject,
    responses((status = 200, description = "The project as changed", body = ProjectView),
        (status = 403, description = "Not a member, or not an admin of the project")))]
pub async fn update(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<Json<ProjectView>> {
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
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project and the caller's role", body = ProjectView),
        (status = 403, description = "Not a member of the project")))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ProjectView>> {
    let (project, role) = project_role(&state, caller.user.id, id).await?;
    Ok(Json(project_json(&project, role)))
}

/// The members of a project the caller belongs to.
#[utoipa::path(get, path = "/projects/{id}/members", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The owner and the members", body = MemberList),
        (status = 403, description = "Not a member of the project")))]
pub async fn members(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MemberList>> {
    let (project, _) = project_role(&state, caller.user.id, id).await?;
    let members = state.storage.projects.members(id).await?;
    Ok(Json(MemberList {
        owner_id: project.owner_id,
        members,
    }))
}

/// Adds a member or changes their role. Admins and the owner only.
#[utoipa::path(post, path = "/projects/{id}/members", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    request_body = AddMember,
    responses((status = 201, description = "The membership", body = Member),
        (status = 403, description = "Not a member, or not an admin of the project")))]
pub async fn add_member(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
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
    Ok((StatusCode::CREATED, Json(member)))
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
#[utoipa::path(delete, path = "/projects/{id}/members/{user_id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project"), ("user_id" = Uuid, Path, description = "The member")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not a member, or not an admin of the project")))]
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
