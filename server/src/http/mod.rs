//! The REST API under `/api/v1` (JSON in and out, bearer tokens), plus `/healthz`, `/readyz`,
//! `/metrics` ([`metrics`]) and the demo page at `/` ([`demo`]).
//!
//! Handlers are thin: they check input and permissions, call storage or a room, and audit.

pub mod audit;
pub mod auth;
pub mod blocks;
pub mod canvases;
pub mod data_access;
pub mod data_sources;
pub mod demo;
pub mod document;
pub mod executions;
pub mod health;
pub mod metrics;
pub mod pipelines;
pub mod projects;
pub mod queries;
pub mod sharing;
pub mod templates;
pub mod trace;
pub mod versions;
pub mod webhooks;

use crate::access::LookupError;
pub use crate::domain::ClientInfo;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::routing::{delete, get, patch, post, put};
use canvas_storage::User;
use std::net::SocketAddr;
use uuid::Uuid;

/// JSON body extractor whose rejections are our JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query-string extractor whose rejections are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientInfo {
            ip: crate::domain::client_ip(peer, &forwarded, state.config.trusted_proxies),
            user_agent: user_agent(&parts.headers),
        })
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// Records an audit entry for a signed-in caller; a failure is logged, never shown to the
/// caller (the action itself succeeded).
pub async fn audit(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    action: &str,
    resource: (&str, Option<Uuid>),
    changes: serde_json::Value,
) {
    state
        .auditor
        .record(client.actor(user), action, resource, changes)
        .await;
}

impl From<LookupError> for ApiError {
    fn from(err: LookupError) -> Self {
        match err {
            LookupError::NotFound(_) => ApiError::NotFound(err.to_string()),
            LookupError::Storage(cause) => ApiError::from(cause),
        }
    }
}

/// What an unknown path answers: 404 in the documented error shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::NotFound(format!("no route for {path}"))
}

/// What a known path answers to a method it does not serve: 405 in the documented error
/// shape (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed here"))
}

/// The REST routes.
pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/projects", post(projects::create).get(projects::list))
        .route("/projects/{id}", get(projects::get).patch(projects::update))
        .route(
            "/projects/{id}/members",
            post(projects::add_member).get(projects::members),
        )
        .route(
            "/projects/{id}/members/{user_id}",
            delete(projects::remove_member),
        )
        .route(
            "/projects/{id}/canvases",
            post(canvases::create).get(canvases::list),
        )
        .route(
            "/canvases/{id}",
            get(canvases::get).delete(canvases::delete),
        )
        .route("/canvases/{id}/presence", get(canvases::presence))
        .route("/canvases/{id}/blocks/{block_id}/data", get(blocks::data))
        .route("/canvases/{id}/state", get(document::state))
        .route("/canvases/{id}/updates", post(document::post_update))
        .route(
            "/canvases/{id}/blocks/{block_id}",
            patch(document::patch_block),
        )
        .route(
            "/canvases/{id}/blocks/{block_id}/refresh",
            post(blocks::refresh),
        )
        .route(
            "/canvases/{id}/favorite",
            put(canvases::put_favorite).delete(canvases::delete_favorite),
        )
        .route("/favorites", get(canvases::favorites))
        .route("/templates", get(templates::list).post(templates::create))
        .route("/templates/{id}", get(templates::get))
        .route(
            "/canvases/{id}/sharing",
            get(sharing::get).patch(sharing::patch),
        )
        .route(
            "/canvases/{id}/sharing/permissions/{user_id}",
            put(sharing::put_permission).delete(sharing::delete_permission),
        )
        .route(
            "/canvases/{id}/sharing/public-link",
            post(sharing::create_link).delete(sharing::delete_link),
        )
        .route(
            "/canvases/{id}/versions",
            get(versions::list).post(versions::create),
        )
        .route("/canvases/{id}/versions/{version}", get(versions::get))
        .route(
            "/canvases/{id}/versions/{version}/diff",
            get(versions::diff),
        )
        .route(
            "/canvases/{id}/versions/{version}/restore",
            post(versions::restore),
        )
        .route(
            "/canvases/{id}/versions/{version}/blocks/{block_id}/restore",
            post(versions::restore_block),
        )
        .route("/audit", get(audit::list))
        .route(
            "/projects/{id}/data-sources",
            post(data_sources::create).get(data_sources::list),
        )
        .route(
            "/data-sources/{id}",
            get(data_sources::get)
                .patch(data_sources::patch)
                .delete(data_sources::delete),
        )
        .route("/data-sources/{id}/file", put(data_sources::upload))
        .route("/data-sources/{id}/sync", post(data_sources::sync))
        .route(
            "/projects/{id}/queries",
            post(queries::create).get(queries::list),
        )
        .route(
            "/queries/{id}",
            get(queries::get)
                .patch(queries::patch)
                .delete(queries::delete),
        )
        .route("/queries/{id}/execute", post(queries::execute))
        .route("/executions/{id}", get(executions::get))
        .route("/executions/{id}/result", get(executions::result))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route(
            "/projects/{id}/pipelines",
            post(pipelines::create).get(pipelines::list),
        )
        .route(
            "/pipelines/{id}",
            get(pipelines::get)
                .patch(pipelines::patch)
                .delete(pipelines::delete),
        )
        .route("/pipelines/{id}/run", post(pipelines::run))
        .route(
            "/projects/{id}/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/projects/{id}/webhooks/{webhook_id}",
            delete(webhooks::delete),
        )
        .route(
            "/projects/{id}/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        );
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(demo::index))
        .route("/assets/{file}", get(demo::asset))
}
