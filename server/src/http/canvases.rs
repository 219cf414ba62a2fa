//! Canvases: create (blank or from a template), list, read as JSON (also anonymously through
//! a public link), delete, presence, favorites.

use super::projects::{is_unsafe_in_name, project_role, valid_description, valid_name};
use super::views::{CanvasDocument, CanvasView};
use super::{ApiJson, ApiPath, ApiQuery, ClientInfo, audit};
use crate::access::{LookupError, canvas_access, link_access, matched_link};
use crate::auth::AuthUser;
use crate::data::templates as data_templates;
use crate::error::{ApiError, ApiResult};
use crate::http::templates::{template_blocks, visible_template};
use crate::state::AppState;
use crate::sync::room::{RoomView, close};
use crate::sync::shared::PRESENCE_TTL;
use crate::view;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::blocks;
use canvas_engine::init::{self, CanvasMeta};
use canvas_engine::{CanvasDoc, Role, json as doc_json};
use canvas_storage::PresenceEntry;
use canvas_storage::{CanvasRecord, INITIAL_CHANGES, NewCanvas, VersionKind, VersionRecord};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `POST /projects/{id}/canvases` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCanvas {
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    template_id: Option<String>,
    /// With `template_id`: the source whose data the template's bound blocks show (its
    /// columns must cover the template's `required_fields`).
    #[serde(default)]
    data_source_id: Option<Uuid>,
    /// The table of a `database` source with several.
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// `GET /projects/{id}/canvases` and `GET /favorites`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CanvasList {
    /// The canvases.
    pub canvases: Vec<CanvasRecord>,
}

/// `PUT` / `DELETE /canvases/{id}/favorite`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FavoriteState {
    /// The canvas.
    pub canvas_id: Uuid,
    /// Whether it is now one of the caller's favorites.
    pub is_favorite: bool,
    /// How many users marked it.
    pub favorites_count: i64,
}

/// `GET /canvases/{id}/presence`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Presence {
    /// The canvas.
    pub canvas_id: Uuid,
    /// Connected users with cursor, selection and when they were last heard from.
    pub presence: Vec<PresenceEntry>,
    /// The ids of the connected users.
    pub active_users: Vec<Uuid>,
}

/// Creates a canvas in a project. Editors, admins and the owner may.
#[utoipa::path(post, path = "/projects/{id}/canvases", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    request_body = CreateCanvas,
    responses((status = 201, description = "The new canvas", body = CanvasDocument),
        (status = 403, description = "Not a member of the project, or a viewer")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateCanvas>,
) -> ApiResult<(StatusCode, Json<CanvasView>)> {
    let (project, role) = project_role(&state, caller.user.id, project_id).await?;
    if !role.can_edit() {
        return Err(ApiError::Forbidden("viewers cannot create canvases".into()));
    }
    if project.is_archived {
        return Err(ApiError::Forbidden(
            "the project is archived: restore it to add canvases".into(),
        ));
    }
    let template = match &body.template_id {
        Some(id) => Some(visible_template(&state, &caller.user, id).await?),
        None => None,
    };
    let mut blocks = match &template {
        Some(template) => template_blocks(template, caller.user.id)?,
        None => Vec::new(),
    };
    let chosen = match (&template, body.data_source_id) {
        (Some(template), Some(source_id)) => {
            let chosen =
                data_templates::choose_source(&state, project_id, source_id, body.table.as_deref())
                    .await?;
            data_templates::check_required(template, &chosen)?;
            Some(chosen)
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_data_source",
                "data_source_id goes with a template_id: it binds the template's blocks",
            ));
        }
        _ => None,
    };
    if body.tags.len() > 64
        || body
            .tags
            .iter()
            .any(|t| t.is_empty() || t.chars().count() > 64 || t.chars().any(is_unsafe_in_name))
    {
        return Err(ApiError::bad_request(
            "invalid_tags",
            "at most 64 tags of 1 to 64 characters, without control or text-direction characters",
        ));
    }
    let new = NewCanvas {
        id: Uuid::new_v4(),
        project_id,
        owner_id: caller.user.id,
        name: valid_name(&body.name)?,
        description: valid_description(body.description)?,
    };
    let meta = CanvasMeta {
        name: new.name.clone(),
        description: new.description.clone(),
        project_id: project_id.to_string(),
        owner_id: caller.user.id.to_string(),
        tags: body.tags,
    };
    let made = data_templates::bind_blocks(
        &state,
        project_id,
        caller.user.id,
        &new.name,
        &mut blocks,
        chosen.as_ref(),
    )
    .await?;
    let mut canvas = CanvasDoc::new();
    let (added, _) = canvas.edit(|txn| {
        init::init_canvas(txn, &meta);
        blocks
            .iter()
            .try_for_each(|block| blocks::add_block(txn, block))
    });
    if let Err(e) = added {
        data_templates::forget(&state, &made).await;
        return Err(ApiError::bad_request("invalid_template", e.to_string()));
    }
    let state_bytes = canvas.encode_state();
    let now = Utc::now();
    let provisional = CanvasRecord {
        id: new.id,
        project_id,
        owner_id: new.owner_id,
        name: new.name.clone(),
        description: new.description.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let view = {
        use canvas_engine::yrs::Transact;
        view::canvas_view(
            &provisional,
            doc_json::canvas_json(&canvas.doc().transact()),
        )
    };
    let record = match state
        .storage
        .canvases
        .create_canvas(new, &state_bytes, &view)
        .await
    {
        Ok(record) => record,
        Err(e) => {
            data_templates::forget(&state, &made).await;
            return Err(e.into());
        }
    };
    audit(
        &state,
        &caller.user,
        &client,
        "canvas.create",
        ("canvas", Some(record.id)),
        json!({
            "name": record.name,
            "project_id": project_id,
            "template_id": body.template_id,
            "data_source_id": body.data_source_id,
            "queries": made.iter().map(|q| q.id).collect::<Vec<_>>(),
        }),
    )
    .await;
    state.webhooks.canvas_created(&record, caller.user.id).await;
    if let Some(template) = &template {
        state.storage.templates.count_use(&template.id).await?;
        audit(
            &state,
            &caller.user,
            &client,
            "template.use",
            ("canvas", Some(record.id)),
            json!({ "template_id": template.id, "template_name": template.name }),
        )
        .await;
    }
    // The history as stored: version 1, made with the canvas.
    let initial = VersionRecord {
        version: 1,
        changes: INITIAL_CHANGES.into(),
        changed_by: record.owner_id,
        changed_at: record.created_at,
        kind: VersionKind::Initial,
    };
    let mut body = view::with_history(view, &[initial]);
    body["id"] = json!(record.id);
    Ok((StatusCode::CREATED, Json(CanvasView(body))))
}

/// The canvases of a project the caller belongs to.
#[utoipa::path(get, path = "/projects/{id}/canvases", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project's canvases", body = CanvasList),
        (status = 403, description = "Not a member of the project")))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
) -> ApiResult<Json<CanvasList>> {
    project_role(&state, caller.user.id, project_id).await?;
    let canvases = state
        .storage
        .canvases
        .canvases_in_project(project_id)
        .await?;
    Ok(Json(CanvasList { canvases }))
}

/// The live view of a canvas, if the caller has any role on it (403 otherwise, 404 for an
/// unknown canvas).
pub(super) async fn live_view(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<RoomView> {
    let access = canvas_access(&state.storage, &caller.user, id).await?;
    state
        .rooms
        .read(id, &access.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Forbidden("you have no access to this canvas".into()))
}

/// `GET /canvases/{id}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetCanvas {
    /// A public link token: read-only access without an account.
    link: Option<String>,
}

/// The canvas in the seed's MongoDB shape, with the live blocks and current `interactions`
/// (and `is_favorite` for a signed-in caller). Without credentials, `?link=TOKEN` reads a
/// canvas shared publicly.
#[utoipa::path(get, path = "/canvases/{id}", tag = "canvases", security(("bearer" = []), ()),
    params(("id" = Uuid, Path, description = "The canvas"), GetCanvas),
    responses((status = 200, description = "The canvas with its live blocks", body = CanvasDocument),
        (status = 403, description = "No access to the canvas")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Result<AuthUser, ApiError>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<GetCanvas>,
) -> ApiResult<Json<CanvasView>> {
    let link = query.link.filter(|l| !l.is_empty());
    let (mut found, user) = match (caller, link.as_deref()) {
        (Ok(caller), _) => (
            canvas_access(&state.storage, &caller.user, id).await?,
            Some(caller.user),
        ),
        (Err(ApiError::Unauthorized(_)), Some(link)) => {
            (link_access(&state.storage, id, link).await?, None)
        }
        (Err(e), _) => return Err(e),
    };
    if let (Some(token), Some(_)) = (link.as_deref(), &user) {
        found.access.link = matched_link(&state.storage, id, token).await?;
    }
    let view = state
        .rooms
        .read(id, &found.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| match user {
            Some(_) => ApiError::Forbidden("you have no access to this canvas".into()),
            // Do not tell a stranger whether the canvas exists.
            None => ApiError::NotFound(format!("canvas {id} not found")),
        })?;
    let mut body = view.json;
    let interactions = state.storage.interactions.interactions(id).await?;
    body["interactions"] = json!(interactions);
    if let Some(user) = user {
        body["is_favorite"] = json!(state.storage.interactions.is_favorite(user.id, id).await?);
    }
    Ok(Json(CanvasView(body)))
}

/// Marks the canvas as one of the caller's favorites (anyone who can read it).
#[utoipa::path(put, path = "/canvases/{id}/favorite", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 200, description = "Marked", body = FavoriteState),
        (status = 403, description = "No access to the canvas")))]
pub async fn put_favorite(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<FavoriteState>> {
    set_favorite(&state, &caller, id, true).await
}

/// Removes the canvas from the caller's favorites.
#[utoipa::path(delete, path = "/canvases/{id}/favorite", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 200, description = "Unmarked", body = FavoriteState),
        (status = 403, description = "No access to the canvas")))]
pub async fn delete_favorite(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<FavoriteState>> {
    set_favorite(&state, &caller, id, false).await
}

async fn set_favorite(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    on: bool,
) -> ApiResult<Json<FavoriteState>> {
    live_view(state, caller, id).await?;
    let interactions = &state.storage.interactions;
    interactions.set_favorite(caller.user.id, id, on).await?;
    let counts = interactions.interactions(id).await?;
    Ok(Json(FavoriteState {
        canvas_id: id,
        is_favorite: on,
        favorites_count: counts.favorites_count,
    }))
}

/// The caller's favorite canvases that they can still open, most recently marked first.
#[utoipa::path(get, path = "/favorites", tag = "canvases", security(("bearer" = [])),
    responses((status = 200, description = "The caller's favorite canvases", body = CanvasList)))]
pub async fn favorites(
    State(state): State<AppState>,
    caller: AuthUser,
) -> ApiResult<Json<CanvasList>> {
    let ids = state.storage.interactions.favorites(caller.user.id).await?;
    let mut canvases = Vec::with_capacity(ids.len());
    for id in ids {
        let found = match canvas_access(&state.storage, &caller.user, id).await {
            Ok(found) => found,
            Err(LookupError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        // Members see it; others only while a grant or team visibility still lets them.
        let readable = found.access.project_role.is_some()
            || state
                .rooms
                .read(id, &found.access)
                .await
                .map_err(ApiError::internal)?
                .is_some();
        if readable {
            canvases.push(found.canvas);
        }
    }
    Ok(Json(CanvasList { canvases }))
}

/// Who is connected to the canvas now (on any server node), with their cursor, selection
/// and when they were last heard from.
#[utoipa::path(get, path = "/canvases/{id}/presence", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 200, description = "Who is connected now", body = Presence),
        (status = 403, description = "No access to the canvas")))]
pub async fn presence(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Presence>> {
    live_view(&state, &caller, id).await?;
    let mut entries = state.storage.presence.presence(id, PRESENCE_TTL).await?;
    let mut active = state.storage.presence.active_users(id).await?;
    // The store is written at most once a second per user; the room here has what every
    // connected client already sees. Its users replace their stored entries; users on other
    // nodes come from the store.
    if let Some(live) = state.rooms.live_presence(id).await {
        entries.retain(|stored| !live.iter().any(|l| l.user_id == stored.user_id));
        for entry in &live {
            if !active.contains(&entry.user_id) {
                active.push(entry.user_id);
            }
        }
        entries.extend(live);
        entries.sort_by_key(|e| e.user_id);
    }
    Ok(Json(Presence {
        canvas_id: id,
        presence: entries,
        active_users: active,
    }))
}

/// Deletes a canvas: project admins, the project owner and the canvas's creator may.
/// Open connections are closed with 4404.
#[utoipa::path(delete, path = "/canvases/{id}", tag = "canvases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "No access to the canvas, or not allowed to delete it")))]
pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let access = canvas_access(&state.storage, &caller.user, id).await?;
    let allowed = access.access.project_role.is_some_and(Role::can_administer)
        || access.canvas.owner_id == caller.user.id;
    if !allowed {
        return Err(if access.access.project_role.is_some() {
            ApiError::Forbidden(
                "only admins, the owner and the canvas's creator delete canvases".into(),
            )
        } else {
            ApiError::Forbidden("you have no access to this canvas".into())
        });
    }
    state
        .rooms
        .close(id, close::NOT_FOUND, "canvas deleted")
        .await;
    state.storage.canvases.delete_canvas(id).await?;
    state.storage.interactions.forget_canvas(id).await?;
    audit(
        &state,
        &caller.user,
        &client,
        "canvas.delete",
        ("canvas", Some(id)),
        json!({ "name": access.canvas.name }),
    )
    .await;
    state
        .webhooks
        .canvas_deleted(&access.canvas, caller.user.id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
