//! Sharing a canvas: visibility, per-user grants (`sharing.permissions`), the public link and
//! embed settings.
//!
//! Every change here is a server edit of the canvas document's `sharing` map, made inside the
//! canvas's room ([`crate::sync::rooms::Rooms::edit`]): it is stored and relayed like any
//! update, so an admin's editor sees it live, and the room rechecks every open connection at
//! once (a revoked grant or link closes the connections it allowed with 4403) and writes the
//! `canvas.sharing.update` audit entry. An admin changing `sharing` directly in the document
//! through a Yjs client is the same change, audited the same way (with `source: "document"`).
//!
//! Only admins and the owner change sharing; anyone with access may read it, but only admins
//! see the public link's token. The token never enters the document: the server keeps it
//! ([`PublicLink`], in the canvas record) and the document's `sharing.public_link` holds only
//! the link's id. When an admin is removed or demoted, the links they could read are replaced
//! ([`rotate_links`]).

use super::{ApiJson, ApiPath, ClientInfo};
use crate::access::{CanvasAccess, canvas_access};
use crate::auth::AuthUser;
use crate::domain::effective_role;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::sync::room::{EditReply, EditRequest, RoomView, ServerEdit};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_engine::sharing::{self, Sharing, Visibility};
use canvas_storage::PublicLink;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Most domains an embed allow-list may hold.
const MAX_DOMAINS: usize = 100;

/// Runs a change of a canvas's document for the caller, inside its room, and waits until
/// the change is durable. 403 if the caller's role is below `required` (404 without access),
/// 400 for an invalid change.
pub async fn room_edit(
    state: &AppState,
    caller: &AuthUser,
    client: &ClientInfo,
    found: &CanvasAccess,
    required: Role,
    edit: ServerEdit,
) -> ApiResult<RoomView> {
    let request = EditRequest {
        access: found.access.clone(),
        actor: client.actor(&caller.user),
        required,
        edit,
    };
    let reply = state
        .rooms
        .edit(found.canvas.id, request)
        .await
        .map_err(ApiError::internal)?;
    match reply {
        EditReply::Applied {
            durable,
            view,
            audited,
        } => {
            durable
                .await
                .map_err(|_| ApiError::internal("the change could not be stored"))?;
            if let Some(audited) = audited {
                audited
                    .await
                    .map_err(|e| ApiError::internal_in("writing the audit entry", e))?;
            }
            Ok(*view)
        }
        EditReply::Forbidden(None) => Err(ApiError::Forbidden(
            "you have no access to this canvas".into(),
        )),
        EditReply::Forbidden(Some(role)) if found.access.archived => Err(ApiError::Forbidden(
            format!("the project is archived: canvases are read-only (your role: {role})"),
        )),
        EditReply::Forbidden(Some(role)) => Err(ApiError::Forbidden(format!(
            "this needs the {required} role; yours is {role}"
        ))),
        EditReply::Invalid(message) => Err(ApiError::bad_request("invalid_change", message)),
        EditReply::Gone(_) => Err(ApiError::internal("canvas room unavailable")),
    }
}

/// The sharing settings as the API shows them. The public link's token (kept by the server,
/// never in the document: see [`PublicLink`]) only to admins, and only while it is the link
/// the document names.
pub fn sharing_json(
    sharing: &Sharing,
    role: Option<Role>,
    kept: Option<&PublicLink>,
) -> SharingSettings {
    let admin = role.is_some_and(Role::can_administer);
    let live = live_link(sharing, kept);
    SharingSettings {
        visibility: sharing.visibility.as_str().to_owned(),
        permissions: sharing.grants.clone(),
        public_link: match live {
            Some(link) if admin => Some(link.token.clone()),
            _ => None,
        },
        public_link_enabled: live.is_some(),
        embed_settings: EmbedSettings {
            enabled: sharing.embed_enabled,
            allowed_domains: sharing.allowed_domains.clone(),
        },
    }
}

/// A canvas's sharing settings (`GET` / `PATCH /canvases/{id}/sharing`, ...).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SharingSettings {
    /// `private`, `team` or `public`.
    pub visibility: String,
    /// The grants on this canvas.
    #[schema(value_type = Vec<GrantView>)]
    pub permissions: Vec<canvas_engine::sharing::Grant>,
    /// The public link's token: admins only, null otherwise or without a link.
    #[schema(required)]
    pub public_link: Option<String>,
    /// Whether the canvas has a working public link.
    pub public_link_enabled: bool,
    /// Who may embed the canvas.
    pub embed_settings: EmbedSettings,
}

/// One grant on a canvas (the document's `sharing.permissions` entry).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// The user the role is granted to.
    pub user_id: String,
    /// viewer, editor or admin.
    pub role: String,
    /// When it was granted (ISO 8601), if recorded.
    #[schema(required)]
    pub granted_at: Option<String>,
    /// Who granted it, if recorded.
    #[schema(required)]
    pub granted_by: Option<String>,
}

/// Embedding settings of a canvas.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmbedSettings {
    /// Whether other sites may embed the canvas.
    pub enabled: bool,
    /// The host names allowed to embed it (a leading `*.` allowed).
    pub allowed_domains: Vec<String>,
}

/// `POST /canvases/{id}/sharing/public-link`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicLinkCreated {
    /// The link's secret token (`?link=`).
    pub token: String,
    /// The canvas's REST address with the token.
    pub url: String,
    /// The canvas's WebSocket address with the token.
    pub websocket: String,
}

/// The kept link when the document names it (a link the document does not name, or a name
/// with no kept link, opens nothing).
fn live_link<'a>(sharing: &Sharing, kept: Option<&'a PublicLink>) -> Option<&'a PublicLink> {
    kept.filter(|k| sharing.public_link.as_deref() == Some(k.id.as_str()))
}

/// A new public link: a random id for the document and a random 256-bit token.
fn new_link() -> PublicLink {
    PublicLink {
        id: Uuid::new_v4().simple().to_string(),
        token: canvas_storage::random_secret(),
        created_at: chrono::Utc::now(),
    }
}

async fn current(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(CanvasAccess, RoomView, Option<Role>)> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let view = state
        .rooms
        .read(id, &found.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Forbidden("you have no access to this canvas".into()))?;
    let role = effective_role(&found.access, &view.sharing);
    Ok((found, view, role))
}

/// [`current`] for a change only admins may make: 403 below admin.
async fn current_as_admin(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<(CanvasAccess, RoomView)> {
    let (found, view, role) = current(state, caller, id).await?;
    match role {
        Some(role) if role.can_administer() => Ok((found, view)),
        Some(role) => Err(ApiError::Forbidden(format!(
            "this needs the admin role; yours is {role}"
        ))),
        None => Err(ApiError::Forbidden(
            "you have no access to this canvas".into(),
        )),
    }
}

/// The settings after an admin's change, with the kept link.
async fn admin_json(
    state: &AppState,
    id: Uuid,
    view: &RoomView,
) -> ApiResult<Json<SharingSettings>> {
    let kept = state.storage.canvases.public_link(id).await?;
    Ok(Json(sharing_json(
        &view.sharing,
        Some(Role::Admin),
        kept.as_ref(),
    )))
}

/// `GET /canvases/{id}/sharing`.
#[utoipa::path(get, path = "/canvases/{id}/sharing", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 200, description = "The sharing settings", body = SharingSettings),
        (status = 403, description = "No access to the canvas")))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SharingSettings>> {
    let (_, view, role) = current(&state, &caller, id).await?;
    let kept = state.storage.canvases.public_link(id).await?;
    Ok(Json(sharing_json(&view.sharing, role, kept.as_ref())))
}

/// `PATCH /canvases/{id}/sharing` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSharing {
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    embed_settings: Option<EmbedPatch>,
}

/// The embed part of [`PatchSharing`]; a missing field keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedPatch {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    allowed_domains: Option<Vec<String>>,
}

/// Checks an embed allow-list: host names (a leading `*.` allowed), lowercased.
fn valid_domains(domains: Vec<String>) -> ApiResult<Vec<String>> {
    if domains.len() > MAX_DOMAINS {
        return Err(ApiError::bad_request(
            "invalid_domains",
            format!("at most {MAX_DOMAINS} allowed domains"),
        ));
    }
    domains
        .into_iter()
        .map(|d| {
            let d = d.trim().to_ascii_lowercase();
            let host = d.strip_prefix("*.").unwrap_or(&d);
            let ok = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if ok {
                Ok(d)
            } else {
                Err(ApiError::bad_request(
                    "invalid_domains",
                    format!("{d:?} is not a host name (e.g. example.com or *.example.com)"),
                ))
            }
        })
        .collect()
}

/// Changes visibility and embed settings. Admins and the owner.
#[utoipa::path(patch, path = "/canvases/{id}/sharing", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    request_body = PatchSharing,
    responses((status = 200, description = "The sharing settings as changed", body = SharingSettings),
        (status = 403, description = "Not allowed to change the canvas's sharing")))]
pub async fn patch(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchSharing>,
) -> ApiResult<Json<SharingSettings>> {
    let visibility: Option<Visibility> = body.visibility.map(|v| v.parse()).transpose().map_err(
        |e: sharing::UnknownVisibility| ApiError::bad_request("invalid_visibility", e.to_string()),
    )?;
    let embed = match body.embed_settings {
        Some(EmbedPatch {
            enabled,
            allowed_domains,
        }) => Some((enabled, allowed_domains.map(valid_domains).transpose()?)),
        None => None,
    };
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let edit: ServerEdit = Box::new(move |txn| {
        if let Some(visibility) = visibility {
            sharing::set_visibility(txn, visibility);
        }
        if let Some((enabled, domains)) = embed {
            let now = sharing::sharing(&*txn);
            let enabled = enabled.unwrap_or(now.embed_enabled);
            let domains = domains.unwrap_or(now.allowed_domains);
            sharing::set_embed(txn, enabled, &domains);
        }
        Ok(())
    });
    let view = room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    admin_json(&state, id, &view).await
}

/// `PUT /canvases/{id}/sharing/permissions/{user_id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPermission {
    role: String,
}

/// Grants a role on this canvas to a user (or changes their grant). Admins and the owner.
#[utoipa::path(put, path = "/canvases/{id}/sharing/permissions/{user_id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("user_id" = Uuid, Path, description = "The user")),
    request_body = PutPermission,
    responses((status = 200, description = "The sharing settings with the grant", body = SharingSettings),
        (status = 403, description = "Not allowed to change the canvas's sharing")))]
pub async fn put_permission(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PutPermission>,
) -> ApiResult<Json<SharingSettings>> {
    let role = crate::domain::grantable_role(&body.role)?;
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    if state.storage.users.user_by_id(user_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("user {user_id} not found")));
    }
    let by = caller.user.id.to_string();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::grant(txn, &user_id.to_string(), role, &by, &at);
        Ok(())
    });
    let before = found_grant(&state, &found, user_id).await?;
    let view = room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    if before.is_some_and(Role::can_administer) && !role.can_administer() {
        rotate_links(&state, &caller, &client, &[id]).await?;
        let view = current(&state, &caller, id).await?.1;
        return admin_json(&state, id, &view).await;
    }
    admin_json(&state, id, &view).await
}

/// Removes a user's grant; their open connections lose what it gave them at once.
#[utoipa::path(delete, path = "/canvases/{id}/sharing/permissions/{user_id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("user_id" = Uuid, Path, description = "The user")),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "Not allowed to change the canvas's sharing")))]
pub async fn delete_permission(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (found, view, _) = current(&state, &caller, id).await?;
    let user = user_id.to_string();
    let Some(had) = view
        .sharing
        .grants
        .iter()
        .find(|g| g.user_id == user)
        .map(|g| g.role)
    else {
        return Err(ApiError::NotFound(format!(
            "user {user_id} has no grant on this canvas"
        )));
    };
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::revoke(txn, &user);
        Ok(())
    });
    room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    if had.can_administer() {
        // They could read the link's token: it must not outlive their grant.
        rotate_links(&state, &caller, &client, &[id]).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The role a user's grant on the canvas gives now, if they have one.
async fn found_grant(
    state: &AppState,
    found: &CanvasAccess,
    user_id: Uuid,
) -> ApiResult<Option<Role>> {
    let view = state
        .rooms
        .read(found.canvas.id, &found.access)
        .await
        .map_err(ApiError::internal)?;
    let user = user_id.to_string();
    Ok(view.and_then(|v| {
        v.sharing
            .grants
            .iter()
            .find(|g| g.user_id == user)
            .map(|g| g.role)
    }))
}

/// Creates (or replaces) the public link: a new random token that gives read-only access
/// with no account, and visibility "public". Admins and the owner.
///
/// The token is kept by the server ([`PublicLink`]); the document gets only the link's id.
/// The kept link is written first, then the document: if the second step fails, the id the
/// document names is not the kept one and no link opens anything until the admin tries again.
#[utoipa::path(post, path = "/canvases/{id}/sharing/public-link", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 201, description = "The new link", body = PublicLinkCreated),
        (status = 403, description = "Not allowed to change the canvas's sharing")))]
pub async fn create_link(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<PublicLinkCreated>)> {
    let (found, _) = current_as_admin(&state, &caller, id).await?;
    let link = new_link();
    state
        .storage
        .canvases
        .set_public_link(id, Some(&link))
        .await?;
    let link_id = link.id.clone();
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::set_visibility(txn, Visibility::Public);
        sharing::set_public_link(txn, Some(&link_id));
        Ok(())
    });
    room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    let token = link.token;
    Ok((
        StatusCode::CREATED,
        Json(PublicLinkCreated {
            url: format!("/api/v1/canvases/{id}?link={token}"),
            websocket: format!("/ws/{id}?link={token}"),
            token,
        }),
    ))
}

/// Revokes the public link: connections opened with it close with 4403 at once, and a
/// "public" canvas becomes "private" (public without a link would mean nothing).
#[utoipa::path(delete, path = "/canvases/{id}/sharing/public-link", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "Not allowed to change the canvas's sharing")))]
pub async fn delete_link(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (found, view) = current_as_admin(&state, &caller, id).await?;
    let kept = state.storage.canvases.public_link(id).await?;
    if view.sharing.public_link.is_none() && kept.is_none() {
        return Err(ApiError::NotFound("this canvas has no public link".into()));
    }
    // The kept token first: from here on it opens nothing, on every node.
    state.storage.canvases.set_public_link(id, None).await?;
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::set_public_link(txn, None);
        if sharing::sharing(&*txn).visibility == Visibility::Public {
            sharing::set_visibility(txn, Visibility::Private);
        }
        Ok(())
    });
    room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the public link of each of these canvases that has one with a new token, after
/// someone who could read the old token (an admin of the canvas) lost that right: a copy
/// they kept opens nothing any more, and the connections it opened close with 4403. The
/// canvas stays public; its admins read the new token from `GET .../sharing`. It is the
/// server's act, recorded under the caller who removed or demoted the admin (who may have
/// been that admin: an admin leaving a project still has the old token replaced).
pub async fn rotate_links(
    state: &AppState,
    caller: &AuthUser,
    client: &ClientInfo,
    canvases: &[Uuid],
) -> ApiResult<usize> {
    let mut rotated = 0;
    for &id in canvases {
        if state.storage.canvases.public_link(id).await?.is_none() {
            continue;
        }
        let mut found = canvas_access(&state.storage, &caller.user, id).await?;
        found.access.project_role = Some(Role::Owner);
        found.access.archived = false;
        let link = new_link();
        state
            .storage
            .canvases
            .set_public_link(id, Some(&link))
            .await?;
        let edit: ServerEdit = Box::new(move |txn| {
            if sharing::sharing(&*txn).public_link.is_some() {
                sharing::set_public_link(txn, Some(&link.id));
            }
            Ok(())
        });
        room_edit(state, caller, client, &found, Role::Admin, edit).await?;
        tracing::info!(canvas = %id, "public link replaced: an admin who could read it left");
        rotated += 1;
    }
    Ok(rotated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_host_names() {
        assert_eq!(
            valid_domains(vec!["Example.com".into(), "*.partner.io".into()]).expect("valid"),
            vec!["example.com", "*.partner.io"]
        );
        for bad in [
            "",
            "http://x.com",
            "a..b",
            "x.com/path",
            "exa mple.com",
            "*.",
        ] {
            assert!(valid_domains(vec![bad.into()]).is_err(), "{bad:?}");
        }
        assert!(valid_domains(vec!["a.com".into(); MAX_DOMAINS + 1]).is_err());
    }
}
