//! The data side of bound blocks: a block's binding resolved to a result (the shared result
//! cache, or an execution run to its end under the usual limits), for the rooms
//! ([`BlockResolver`]) and for `GET /canvases/{id}/blocks/{block_id}/data`.
//!
//! A binding is checked before anything runs: its `query_id` must be a saved query of the
//! canvas's project (`query_not_found` otherwise; `forbidden_query` for another project's,
//! which is neither run nor described), and its parameters must bind (`invalid_binding`).

use super::executions::{self, Started};
use crate::error::ApiError;
use crate::state::{AppState, Shared};
use crate::sync::room::bound::{BlockResolver, CachedFuture, FetchFuture, Fetched, StartedTx};
use crate::sync::shared::{LiveKind, encode_live};
use canvas_engine::bindings::QueryBinding;
use canvas_engine::protocol::DataError;
use std::sync::{Arc, Weak};
use uuid::Uuid;

fn error(code: &str, message: impl Into<String>) -> DataError {
    DataError {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Resolves `binding` for a canvas of `project` (see the module's documentation).
pub async fn fetch(
    state: &AppState,
    project: Uuid,
    user: Option<Uuid>,
    binding: &QueryBinding,
) -> Fetched {
    fetch_with(state, project, user, binding, false, None).await
}

/// Like [`fetch`]; `fresh` runs the query again instead of reading the result cache (a
/// manual refresh: `POST /canvases/{id}/blocks/{block_id}/refresh`). `started` hears the
/// execution's id when one starts.
pub async fn fetch_with(
    state: &AppState,
    project: Uuid,
    user: Option<Uuid>,
    binding: &QueryBinding,
    fresh: bool,
    started: Option<StartedTx>,
) -> Fetched {
    let Ok(query_id) = binding.query_id.parse::<Uuid>() else {
        return Fetched::failed(error(
            "query_not_found",
            format!(
                "data_source.query_id {:?} is not a query id",
                binding.query_id
            ),
        ));
    };
    let query = match state.storage.data.query(query_id).await {
        Ok(Some(query)) => query,
        Ok(None) => {
            return Fetched::failed(error(
                "query_not_found",
                format!("there is no saved query {query_id}"),
            ));
        }
        Err(e) => {
            tracing::warn!(query = %query_id, error = %e, "cannot read a bound block's query");
            return Fetched::failed(error("unavailable", "the query could not be read now"));
        }
    };
    if query.project_id != project {
        return Fetched::failed(error(
            "forbidden_query",
            format!(
                "query {query_id} belongs to another project: a block may only use the queries \
                 of its canvas's project"
            ),
        ));
    }
    match executions::run_to_end(state, &query, &binding.parameters, fresh, user, started).await {
        Ok(Started::Done(execution, result)) => Fetched {
            execution_id: Some(execution.id),
            from_cache: execution.from_cache,
            key: execution.query_hash.clone(),
            result: Ok(Arc::new(*result)),
        },
        Ok(Started::Pending(execution)) => Fetched {
            execution_id: Some(execution.id),
            from_cache: false,
            key: None,
            result: Err(error(
                "execution_failed",
                execution
                    .error_message
                    .unwrap_or_else(|| format!("the execution ended {}", execution.status)),
            )),
        },
        Err(ApiError::BadRequest { code, message }) => {
            let code = match code {
                "invalid_parameter" => "invalid_binding",
                other => other,
            };
            Fetched::failed(error(code, message))
        }
        Err(e) => {
            tracing::warn!(query = %query_id, error = %e, "a bound block's query did not run");
            Fetched::failed(error("execution_failed", e.to_string()))
        }
    }
}

/// Source `source` of `project` has new data (an upload, a sync that worked, a pipeline
/// run): the canvases of the project compute their bound blocks again
/// ([`sources_changed`]), and whoever listens on this node and the others hears it
/// (`crate::data::refresh`).
pub async fn source_refreshed(state: &AppState, project: Uuid, source: Uuid) {
    sources_changed(state, project).await;
    state
        .data
        .refreshes
        .announce(&*state.storage.fanout, source)
        .await;
}

/// A data source of `project` was uploaded or synced: every canvas of the project resolves
/// its bound blocks again, once: in its room on this node if it has one (which sends the
/// results to the other nodes), else in the rooms of the other nodes (told through the
/// live channel).
pub async fn sources_changed(state: &AppState, project: Uuid) {
    let canvases = match state.storage.canvases.canvases_in_project(project).await {
        Ok(canvases) => canvases,
        Err(e) => {
            tracing::warn!(%project, error = %e, "cannot list the canvases to refresh");
            return;
        }
    };
    for canvas in canvases {
        if state.rooms.data_changed(canvas.id).await || !state.storage.fanout.is_shared() {
            continue;
        }
        let message = encode_live(&state.node_id, LiveKind::DataChanged, &[]);
        if let Err(e) = state.storage.fanout.publish(canvas.id, message).await {
            tracing::warn!(canvas = %canvas.id, error = %e, "cannot tell the other nodes");
        }
    }
}

/// The rooms' handle on [`fetch`]: holds the server's state weakly (the state holds the
/// rooms, which hold this).
pub struct Resolver(pub Weak<Shared>);

impl BlockResolver for Resolver {
    fn fetch(
        &self,
        project: Uuid,
        user: Option<Uuid>,
        binding: QueryBinding,
        started: StartedTx,
    ) -> FetchFuture {
        let shared = self.0.upgrade();
        Box::pin(async move {
            match shared {
                Some(shared) => {
                    let state = AppState::from_shared(shared);
                    fetch_with(&state, project, user, &binding, false, Some(started)).await
                }
                None => Fetched::failed(error("unavailable", "the server is shutting down")),
            }
        })
    }

    fn cached(&self, key: String) -> CachedFuture {
        let shared = self.0.upgrade();
        Box::pin(async move {
            let state = AppState::from_shared(shared?);
            executions::cached_result(&state, &key).await.map(Arc::new)
        })
    }
}
