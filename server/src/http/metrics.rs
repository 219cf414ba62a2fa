//! `GET /metrics` (the Prometheus text format of [`crate::metrics::Metrics`]) and the
//! middleware that counts and times every HTTP request by method, matched route template
//! (never the raw path, which may carry ids or a public-link token) and status.

use crate::error::InternalCause;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use canvas_storage::StorageError;
use std::time::Instant;

/// `GET /metrics`: every series of this server, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.rooms_loaded.set(state.rooms.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Counts and times a request once its response is ready; a storage failure behind a 5xx
/// (the [`InternalCause`] the error left in the response) is counted by backend.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .http_request(method.as_str(), route, response.status(), started.elapsed());
    if let Some(cause) = response.extensions().get::<InternalCause>()
        && let Some(storage) = storage_error(&*cause.0)
    {
        state.metrics.storage_error(storage);
    }
    response
}

/// The first [`StorageError`] in an error's chain of sources.
fn storage_error<'a>(
    error: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a StorageError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<StorageError>() {
            return Some(found);
        }
        next = current.source();
    }
    None
}
