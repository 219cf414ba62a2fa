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
pub mod openapi;
pub mod pipelines;
pub mod projects;
pub mod queries;
pub mod sharing;
pub mod templates;
pub mod trace;
pub mod versions;
pub mod views;
pub mod webhooks;

use crate::access::LookupError;
pub use crate::domain::ClientInfo;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use canvas_storage::User;
use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
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

/// Every route and the OpenAPI document describing it: each handler is registered with
/// utoipa-axum's `routes!`, which takes its path and method from its `#[utoipa::path]`, so no
/// route is served without being in the document ([`openapi`]). Handlers sharing a path are
/// registered together.
pub fn router() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(projects::get, projects::update))
        .routes(routes!(projects::add_member, projects::members))
        .routes(routes!(projects::remove_member))
        .routes(routes!(canvases::create, canvases::list))
        .routes(routes!(canvases::get, canvases::delete))
        .routes(routes!(canvases::presence))
        .routes(routes!(blocks::data))
        .routes(routes!(document::state))
        .routes(routes!(document::post_update))
        .routes(routes!(document::patch_block))
        .routes(routes!(blocks::refresh))
        .routes(routes!(canvases::put_favorite, canvases::delete_favorite))
        .routes(routes!(canvases::favorites))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(templates::get))
        .routes(routes!(sharing::get, sharing::patch))
        .routes(routes!(sharing::put_permission, sharing::delete_permission))
        .routes(routes!(sharing::create_link, sharing::delete_link))
        .routes(routes!(versions::list, versions::create))
        .routes(routes!(versions::get))
        .routes(routes!(versions::diff))
        .routes(routes!(versions::restore))
        .routes(routes!(versions::restore_block))
        .routes(routes!(audit::list))
        .routes(routes!(data_sources::create, data_sources::list))
        .routes(routes!(
            data_sources::get,
            data_sources::patch,
            data_sources::delete
        ))
        .routes(routes!(data_sources::upload))
        .routes(routes!(data_sources::sync))
        .routes(routes!(queries::create, queries::list))
        .routes(routes!(queries::get, queries::patch, queries::delete))
        .routes(routes!(queries::execute))
        .routes(routes!(executions::get))
        .routes(routes!(executions::result))
        .routes(routes!(executions::cancel))
        .routes(routes!(pipelines::create, pipelines::list))
        .routes(routes!(pipelines::get, pipelines::patch, pipelines::delete))
        .routes(routes!(pipelines::run))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries));
    OpenApiRouter::new()
        .nest("/api/v1", api)
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(demo::index))
        .routes(routes!(demo::asset))
        .routes(routes!(crate::sync::connection::ws_handler))
}

/// The routes of [`router`], without the document.
pub fn routes() -> Router<AppState> {
    router().split_for_parts().0
}
