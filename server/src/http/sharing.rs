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
//! see the public link's token.

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
use serde::Deserialize;
use serde_json::{Value, json};
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

/// The sharing settings as the API shows them; the public link token only to admins.
pub fn sharing_json(sharing: &Sharing, role: Option<Role>) -> Value {
    let admin = role.is_some_and(Role::can_administer);
    json!({
        "visibility": sharing.visibility,
        "permissions": sharing.grants,
        "public_link": if admin { json!(sharing.public_link) } else { Value::Null },
        "public_link_enabled": sharing.public_link.is_some(),
        "embed_settings": {
            "enabled": sharing.embed_enabled,
            "allowed_domains": sharing.allowed_domains,
        },
    })
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

/// `GET /canvases/{id}/sharing`.
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let (_, view, role) = current(&state, &caller, id).await?;
    Ok(Json(sharing_json(&view.sharing, role)))
}

/// `PATCH /canvases/{id}/sharing` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSharing {
    visibility: Option<String>,
    embed_settings: Option<EmbedPatch>,
}

/// The embed part of [`PatchSharing`]; a missing field keeps its value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedPatch {
    enabled: Option<bool>,
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
pub async fn patch(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchSharing>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(sharing_json(&view.sharing, Some(Role::Admin))))
}

/// `PUT /canvases/{id}/sharing/permissions/{user_id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPermission {
    role: String,
}

/// Grants a role on this canvas to a user (or changes their grant). Admins and the owner.
pub async fn put_permission(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PutPermission>,
) -> ApiResult<Json<Value>> {
    let role = super::projects::grantable_role(&body.role)?;
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
    let view = room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    Ok(Json(sharing_json(&view.sharing, Some(Role::Admin))))
}

/// Removes a user's grant; their open connections lose what it gave them at once.
pub async fn delete_permission(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (found, view, _) = current(&state, &caller, id).await?;
    let user = user_id.to_string();
    if !view.sharing.grants.iter().any(|g| g.user_id == user) {
        return Err(ApiError::NotFound(format!(
            "user {user_id} has no grant on this canvas"
        )));
    }
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::revoke(txn, &user);
        Ok(())
    });
    room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates (or replaces) the public link: a new random token that gives read-only access
/// with no account, and visibility "public". Admins and the owner.
pub async fn create_link(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let token = canvas_storage::random_secret();
    let link = token.clone();
    let edit: ServerEdit = Box::new(move |txn| {
        sharing::set_visibility(txn, Visibility::Public);
        sharing::set_public_link(txn, Some(&link));
        Ok(())
    });
    room_edit(&state, &caller, &client, &found, Role::Admin, edit).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "url": format!("/api/v1/canvases/{id}?link={token}"),
            "websocket": format!("/ws/{id}?link={token}"),
        })),
    ))
}

/// Revokes the public link: connections opened with it close with 4403 at once, and a
/// "public" canvas becomes "private" (public without a link would mean nothing).
pub async fn delete_link(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (found, view, _) = current(&state, &caller, id).await?;
    if view.sharing.public_link.is_none() {
        return Err(ApiError::NotFound("this canvas has no public link".into()));
    }
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
