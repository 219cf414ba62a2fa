//! `POST /canvases/{id}/blocks/{block_id}/refresh` (editors and up): the block's query runs
//! again, past the result cache, and the new result reaches every connection of the canvas
//! as message 102 (and the narratives that read it); the answer is that message's body.
//!
//! `GET /canvases/{id}/blocks/{block_id}/data?page=&sort=&filter=`: a bound block's data as
//! JSON, with the fields of extension message 102 (`block_id`, `status`, `execution_id`,
//! `columns`, `rows`, `total_rows`, `computed_at`, `from_cache`), plus `series` for a chart
//! and, for a table, the page asked for (`page`, `page_size`, `pages`, `sort`, `filter`;
//! `rows` and `total_rows` are then the page's and the filtered count). Anyone who can read
//! the canvas may ask (viewers too). The result comes from the shared cache, or is computed.

use super::views::{BlockData, BlockDataJson};
use super::{ApiPath, ApiQuery};
use crate::access::canvas_access;
use crate::auth::AuthUser;
use crate::data::{bound, shape};
use crate::domain::effective_role;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::sync::room::bound::{block_body, running_body};
use crate::sync::shared::{LiveKind, encode_live};
use axum::Json;
use axum::extract::State;
use canvas_engine::Role;
use canvas_engine::bindings::{self, BINDABLE, BoundBlock};
use canvas_engine::protocol::{BLOCK_DATA_ROWS, BlockDataBody};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use utoipa::IntoParams;
use uuid::Uuid;

/// The query string of a table's page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    page: Option<usize>,
    sort: Option<String>,
    filter: Option<String>,
}

fn refusal(code: &str, message: String) -> ApiError {
    match code {
        "query_not_found" => ApiError::NotFound(message),
        "forbidden_query" => ApiError::Forbidden(message),
        "unavailable" => ApiError::Unavailable(message.into()),
        "invalid_binding" => ApiError::bad_request("invalid_binding", message),
        "unknown_column" => ApiError::bad_request("unknown_column", message),
        "invalid_config" => ApiError::bad_request("invalid_config", message),
        "invalid_request" => ApiError::bad_request("invalid_request", message),
        "execution_failed" => ApiError::bad_request("execution_failed", message),
        _ => ApiError::bad_request("invalid_binding", message),
    }
}

/// The block `block_id` of the canvas as the view shows it: its type and content, and its
/// binding (`not_bound` for a block without one, `invalid_binding` for an unusable one).
fn bound_block_of(
    view: &Value,
    canvas: Uuid,
    block_id: &str,
) -> ApiResult<(String, Value, bindings::QueryBinding)> {
    let block = view["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["id"] == block_id))
        .ok_or_else(|| ApiError::NotFound(format!("canvas {canvas} has no block {block_id}")))?;
    let kind = block["type"].as_str().unwrap_or_default().to_owned();
    let content = block["content"].clone();
    if !BINDABLE.contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "not_bound",
            format!("block {block_id} is a {kind:?} block: only charts and tables have data"),
        ));
    }
    let binding = bindings::query_binding(&content).ok_or_else(|| {
        ApiError::bad_request(
            "not_bound",
            format!("block {block_id} has no data_source of type \"query\""),
        )
    })?;
    let binding = binding.map_err(|m| ApiError::bad_request("invalid_binding", m))?;
    Ok((kind, content, binding))
}

/// Publishes a 102 body to the other nodes' rooms of canvas `id` (for when this node has no
/// room to do it).
async fn tell_other_nodes(state: &AppState, id: Uuid, body: &BlockDataBody) {
    if !state.storage.fanout.is_shared() {
        return;
    }
    match rmp_serde::to_vec_named(body) {
        Ok(payload) => {
            let message = encode_live(&state.node_id, LiveKind::BlockData, &payload);
            if let Err(e) = state.storage.fanout.publish(id, message).await {
                tracing::warn!(canvas = %id, error = %e, "cannot tell the other nodes");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode block data"),
    }
}

/// `POST /canvases/{id}/blocks/{block_id}/refresh`: see the module's documentation.
#[utoipa::path(post, path = "/canvases/{id}/blocks/{block_id}/refresh", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("block_id" = String, Path, description = "The block")),
    responses((status = 200, description = "The block's fresh data (message 102's body)", body = BlockData),
        (status = 403, description = "No access to the canvas, or not allowed to run its query")))]
pub async fn refresh(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, block_id)): ApiPath<(Uuid, String)>,
) -> ApiResult<Json<BlockDataJson>> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let view = state
        .rooms
        .read(id, &found.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Forbidden("you have no access to this canvas".into()))?;
    match effective_role(&found.access, &view.sharing) {
        Some(role) if role >= Role::Editor => {}
        role => {
            let yours = role.map_or_else(|| "none".to_owned(), |r| r.to_string());
            return Err(ApiError::Forbidden(format!(
                "refreshing a block needs the editor role on the canvas; yours is {yours}"
            )));
        }
    }
    let (kind, content, binding) = bound_block_of(&view.json, id, &block_id)?;
    let block = BoundBlock {
        id: block_id.clone(),
        kind,
        binding: Ok(binding.clone()),
        content,
    };
    // everyone sees the block's execution under way, not only the one who asked
    let (started, on_start) = oneshot::channel();
    let running = async {
        let Ok(execution) = on_start.await else {
            return;
        };
        if !state
            .rooms
            .block_running(id, block_id.clone(), binding.clone(), execution)
            .await
        {
            tell_other_nodes(&state, id, &running_body(&block, execution)).await;
        }
    };
    let fetch = bound::fetch_with(
        &state,
        found.canvas.project_id,
        Some(caller.user.id),
        &binding,
        true,
        Some(started),
    );
    let (fetched, ()) = tokio::join!(fetch, running);
    let body = block_body(&block, &fetched);
    if !state
        .rooms
        .block_refreshed(id, block_id, binding, fetched)
        .await
    {
        // the room unloaded meanwhile: the other nodes' rooms still hear it
        tell_other_nodes(&state, id, &body).await;
    }
    if let Some(e) = &body.error {
        return Err(refusal(&e.code, e.message.clone()));
    }
    Ok(Json(BlockDataJson(
        serde_json::to_value(&body).map_err(ApiError::internal)?,
    )))
}

/// See the module's documentation.
#[utoipa::path(get, path = "/canvases/{id}/blocks/{block_id}/data", tag = "data", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The canvas"), ("block_id" = String, Path, description = "The block"), DataQuery),
    responses((status = 200, description = "The block's data", body = BlockData),
        (status = 403, description = "No access to the canvas, or not allowed to run its query")))]
pub async fn data(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, block_id)): ApiPath<(Uuid, String)>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> ApiResult<Json<BlockDataJson>> {
    let found = canvas_access(&state.storage, &caller.user, id).await?;
    let view = state
        .rooms
        .read(id, &found.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Forbidden("you have no access to this canvas".into()))?;
    let (kind, content, binding) = bound_block_of(&view.json, id, &block_id)?;
    let fetched = bound::fetch(
        &state,
        found.canvas.project_id,
        Some(caller.user.id),
        &binding,
    )
    .await;
    let result = match &fetched.result {
        Ok(result) => result.clone(),
        Err(e) => return Err(refusal(&e.code, e.message.clone())),
    };
    let block = BoundBlock {
        id: block_id,
        kind: kind.clone(),
        binding: Ok(binding),
        content: content.clone(),
    };
    let body = block_body(&block, &fetched);
    if let Some(e) = &body.error {
        return Err(refusal(&e.code, e.message.clone()));
    }
    let mut answer = serde_json::to_value(&body).map_err(ApiError::internal)?;
    if kind == "table" {
        let settings =
            shape::TableSettings::from_content(&content).map_err(|e| refusal(e.code, e.message))?;
        let request = shape::TableRequest {
            page: query.page,
            sort: query.sort,
            filter: query.filter,
        };
        let page = shape::table_page(&result.columns, &result.rows, &settings, &request)
            .map_err(|e| refusal(e.code, e.message))?;
        answer["columns"] = json!(page.columns);
        answer["rows"] = json!(page.rows);
        answer["total_rows"] = json!(page.total_rows);
        answer["page"] = json!(page.page);
        answer["page_size"] = json!(page.page_size);
        answer["pages"] = json!(page.pages);
        answer["sort"] = json!(page.sort);
        answer["filter"] = json!(page.filter);
    } else {
        answer["rows_shown"] = json!(result.rows.len().min(BLOCK_DATA_ROWS));
    }
    Ok(Json(BlockDataJson(answer)))
}
