//! The REST door to the document, for scripts and server-side integrations:
//!
//! - `GET /canvases/{id}/state[?sv=]`: the document as one yrs v1 update
//!   (`application/octet-stream`), or only what a peer with state vector `sv` (base64 of a
//!   yrs v1 state vector) lacks; the `x-state-vector` header holds the document's state
//!   vector as it was read (URL-safe base64), to ask for the next diff. Anyone who may read
//!   the canvas (a `?link=` public-link token too).
//! - `POST /canvases/{id}/updates`: a yrs v1 update (`application/octet-stream`, at most
//!   `--max-message-bytes`, like a WebSocket frame) that enters the canvas's room as a
//!   connection's update does ([`crate::sync::room::SubmitRequest`]): judged by the inspector
//!   with the caller's role, stamped, written to the durable log, relayed to every
//!   connection and node. Answers 200 once durable; 403 for a viewer; 422 with the code of
//!   message 101 for a refused update; 400 `malformed_update` for bytes that are not one.
//! - `PATCH /canvases/{id}/blocks/{block_id}` `{position?, content?}`: a typed block edit
//!   made into such an update ([`canvas_engine::patch`]) and submitted the same way; answers
//!   the block's JSON view.

use super::views::{BlockJson, BlockPatchBody, BlockView};
use super::{ApiJson, ApiPath, ApiQuery, ClientInfo};
use crate::access::{canvas_access, link_access, matched_link};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::sync::room::{SubmitReply, SubmitRequest};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use canvas_engine::Role;
use canvas_engine::inspect::RefusalCode;
use canvas_engine::patch::{BlockPatch, PatchError, block_patch_update};
use canvas_engine::yrs::StateVector;
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::updates::encoder::Encode;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The response header holding the document's state vector (URL-safe base64, no padding).
pub const STATE_VECTOR_HEADER: &str = "x-state-vector";

/// `GET /canvases/{id}/state` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// A yrs v1 state vector, base64 (standard or URL-safe, padded or not).
    sv: Option<String>,
    /// A public link token: read-only access without an account.
    link: Option<String>,
}

/// Decodes a base64 state vector; a clear 400 when it is not one.
fn state_vector(text: &str) -> ApiResult<StateVector> {
    let bad = |why: String| {
        ApiError::bad_request(
            "invalid_state_vector",
            format!("sv must be a base64 yrs v1 state vector: {why}"),
        )
    };
    // a `+` of standard base64 left unescaped in a query string arrives as a space
    let text = text.trim().replace(' ', "+");
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&text).ok())
        .ok_or_else(|| bad("not base64".into()))?;
    StateVector::decode_v1(&bytes).map_err(|e| bad(e.to_string()))
}

/// See the module's documentation.
#[utoipa::path(get, path = "/canvases/{id}/state", tag = "document", security(("bearer" = []), ()),
    params(("id" = Uuid, Path, description = "The canvas"), StateQuery),
    responses((status = 200, description = "The document (or the diff a peer lacks) as one yrs v1 update",
        content_type = "application/octet-stream", body = Vec<u8>,
        headers(("x-state-vector" = String, description = "The document's state vector, URL-safe base64"))),
        (status = 403, description = "No access to the canvas")))]
pub async fn state(
    State(state): State<AppState>,
    caller: Result<AuthUser, ApiError>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<StateQuery>,
) -> ApiResult<Response> {
    let sv = query.sv.as_deref().map(state_vector).transpose()?;
    let link = query.link.filter(|l| !l.is_empty());
    let (mut found, signed_in) = match (caller, link.as_deref()) {
        (Ok(caller), _) => (canvas_access(&state.storage, &caller.user, id).await?, true),
        (Err(ApiError::Unauthorized(_)), Some(link)) => {
            (link_access(&state.storage, id, link).await?, false)
        }
        (Err(e), _) => return Err(e),
    };
    if let (Some(token), true) = (link.as_deref(), signed_in) {
        found.access.link = matched_link(&state.storage, id, token).await?;
    }
    let doc = state
        .rooms
        .state(id, &found.access, sv)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| match signed_in {
            true => ApiError::Forbidden("you have no access to this canvas".into()),
            // do not tell a stranger whether the canvas exists
            false => ApiError::NotFound(format!("canvas {id} not found")),
        })?;
    let sv_header = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(&doc.state_vector))
        .map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::HeaderName::from_static(STATE_VECTOR_HEADER),
                sv_header,
            ),
        ],
        doc.update,
    )
        .into_response())
}

/// Reads a binary request body of at most `limit` bytes: 413 beyond (checked on the
/// declared length first, then while reading), 400 for a body of another media type.
async fn update_body(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"))
        .unwrap_or("application/octet-stream");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/octet-stream") {
        return Err(ApiError::bad_request(
            "unsupported_media_type",
            format!("send the update as application/octet-stream, not {content_type:?}"),
        ));
    }
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "an update may be at most {limit} bytes (--max-message-bytes)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("invalid_body", format!("reading the body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A refusal of the inspector as a REST error: the codes of message 101 with 422 (403 for
/// `read_only`), 400 `malformed_update` for bytes that are not an update.
fn refused(code: RefusalCode, message: String) -> ApiError {
    match code {
        RefusalCode::MalformedUpdate => ApiError::bad_request("malformed_update", message),
        RefusalCode::ReadOnly => ApiError::ReadOnly(message),
        other => ApiError::Unprocessable {
            code: other.as_str(),
            message,
        },
    }
}

fn not_allowed(role: Option<Role>) -> ApiError {
    match role {
        Some(_) => ApiError::ReadOnly("viewers cannot change the canvas".into()),
        None => ApiError::Forbidden("you have no access to this canvas".into()),
    }
}

/// Submits an update to the canvas's room and waits until it is durable; the block's view
/// if one was asked for, and whether the update changed anything.
async fn submit(state: &AppState, id: Uuid, request: SubmitRequest) -> ApiResult<(Value, bool)> {
    let reply = state
        .rooms
        .submit(id, request)
        .await
        .map_err(ApiError::internal)?;
    match reply {
        SubmitReply::Accepted {
            durable,
            audited,
            block,
            noop,
        } => {
            durable.await.map_err(|_| {
                ApiError::Unavailable("the update could not be written to the durable log".into())
            })?;
            if let Some(audited) = audited {
                let _ = audited.await;
            }
            Ok((block.unwrap_or(Value::Null), !noop))
        }
        SubmitReply::Forbidden(role) => Err(not_allowed(role)),
        SubmitReply::Refused(refusal) => Err(refused(refusal.code, refusal.message)),
        SubmitReply::Gone(_) => Err(ApiError::internal("the canvas room went away")),
    }
}

/// `POST /canvases/{id}/updates`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Applied {
    /// Whether the update changed the document (false for one it already had).
    pub applied: bool,
}

/// See the module's documentation.
#[utoipa::path(post, path = "/canvases/{id}/updates", tag = "document", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "One yrs v1 update"),
    responses((status = 200, description = "Applied and durable", body = Applied),
        (status = 403, description = "No access to the canvas (`forbidden`), or a viewer (`read_only`)"),
        (status = 422, description = "The update is refused by a rule of the document, with the same codes as message 101 (`invalid_schema`, ...)")))]
pub async fn post_update(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Applied>> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let update = update_body(&headers, body, state.config.max_message_bytes).await?;
    let request = SubmitRequest {
        access: found.access,
        actor: client.actor(&caller.user),
        update,
        block: None,
    };
    let (_, applied) = submit(&state, id, request).await?;
    Ok(Json(Applied { applied }))
}

/// See the module's documentation.
#[utoipa::path(patch, path = "/canvases/{id}/blocks/{block_id}", tag = "document", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("block_id" = String, Path, description = "The block")),
    request_body = BlockPatchBody,
    responses((status = 200, description = "The block as changed", body = BlockView),
        (status = 403, description = "No access to the canvas (`forbidden`), or a viewer (`read_only`)"),
        (status = 422, description = "The change is refused by a rule of the document, with the same codes as message 101")))]
pub async fn patch_block(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((id, block_id)): ApiPath<(Uuid, String)>,
    ApiJson(patch): ApiJson<BlockPatch>,
) -> ApiResult<Json<BlockJson>> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let doc = state
        .rooms
        .state(id, &found.access, None)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_allowed(None))?;
    if doc.role < Role::Editor {
        return Err(not_allowed(Some(doc.role)));
    }
    let wanted = block_id.clone();
    let made =
        tokio::task::spawn_blocking(move || block_patch_update(&doc.update, &wanted, &patch))
            .await
            .map_err(ApiError::internal)?;
    let update = match made {
        Ok(Some(update)) => update,
        // nothing to change: an empty update still checks the role and answers the block
        Ok(None) => canvas_engine::yrs::Update::new().encode_v1(),
        Err(PatchError::NoSuchBlock(_)) => {
            return Err(ApiError::NotFound(format!(
                "canvas {id} has no block {block_id}"
            )));
        }
        Err(e @ (PatchError::Invalid(_) | PatchError::Malformed { .. })) => {
            return Err(refused(RefusalCode::InvalidSchema, e.to_string()));
        }
        Err(e @ PatchError::Doc(_)) => return Err(ApiError::internal(e)),
    };
    let request = SubmitRequest {
        access: found.access,
        actor: client.actor(&caller.user),
        update,
        block: Some(block_id.clone()),
    };
    let (block, _) = submit(&state, id, request).await?;
    if block.is_null() {
        // deleted meanwhile by someone else
        return Err(ApiError::NotFound(format!(
            "canvas {id} has no block {block_id}"
        )));
    }
    Ok(Json(BlockJson(block)))
}
