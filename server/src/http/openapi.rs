//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: every route is registered through utoipa-axum's
//! `routes!` (see [`super::router`]), so the router and the document are built from the same
//! `#[utoipa::path]` annotations and cannot name different paths. The bodies are the typed
//! structs the handlers take and return (`ToSchema`). What every operation shares is added
//! here, once, by [`Shared`]:
//!
//! - the bearer-token security scheme (`bearer`), named by the operations that need it;
//! - the error responses: each operation lists the statuses it can answer with an error, all
//!   with the [`ErrorBody`] schema (`{"error": {"code", "message"}}`, see [`crate::error`]).
//!
//! The document is built once and kept ([`document`]).

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";

/// The error statuses an operation may answer with, and what each means here.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "The request is malformed or a field is invalid (a bad path, query or body)",
    ),
    ("401", "No, malformed, expired or unknown credentials"),
    (
        "403",
        "Authenticated, but not allowed (`forbidden`, `read_only`)",
    ),
    ("404", "No such resource, or not visible to the caller"),
    ("409", "A unique value is taken"),
    ("413", "The request body is too large"),
    (
        "422",
        "Well-formed, but refused by a rule of the document (the inspector's codes)",
    ),
    ("429", "Too many calls; see `Retry-After`"),
    (
        "500",
        "Something failed inside the server (the cause is logged)",
    ),
    (
        "503",
        "The server is busy or a backing service is unavailable; see `Retry-After`",
    ),
];

/// Operations that read no credentials: everything but a 401 can still happen.
fn is_public(op: &Operation) -> bool {
    op.security.as_ref().is_none_or(Vec::is_empty)
}

/// A unique operation id from the method and path: `GET /api/v1/projects/{id}/canvases` is
/// `get_projects_by_id_canvases` (handlers' names repeat across modules).
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.trim_start_matches("/api/v1").split('/') {
        if segment.is_empty() {
            continue;
        }
        id.push('_');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                id.push_str("by_");
                id.push_str(param);
            }
            None => id.extend(segment.chars().map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' => c,
                _ => '_',
            })),
        }
    }
    id
}

/// Adds the security scheme and every operation's error responses (those it does not
/// declare itself, e.g. `/readyz`'s 503 with its own body).
struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/v1/auth/signup or /auth/login, \
                         sent as `Authorization: Bearer <token>`",
                    ))
                    .build(),
            ),
        );
        let (name, schema) = (ErrorBody::name(), ErrorBody::schema());
        components.schemas.insert(name.to_string(), schema);
        let detail = (ErrorDetail::name(), ErrorDetail::schema());
        components.schemas.insert(detail.0.to_string(), detail.1);
        let error_ref = RefOr::Ref(Ref::from_schema_name(ErrorBody::name()));
        for (path, item) in &mut openapi.paths.paths {
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ]
            .into_iter()
            .filter_map(|(method, op)| Some((method, op.as_mut()?)))
            {
                op.operation_id = Some(operation_id(method, path));
                let public = is_public(op);
                for (status, description) in ERRORS {
                    if public && *status == "401" {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(error_ref.clone()))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// The document, built once from [`super::router`]'s annotations.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, mut openapi) = super::router().split_for_parts();
        openapi.info.title = "Canvas server API".to_owned();
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        openapi.info.description = Some(
            "The REST API of the canvas server. Authenticated calls carry \
             `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\"}}`."
                .to_owned(),
        );
        openapi.info.license = None;
        openapi.info.contact = None;
        utoipa::Modify::modify(&Shared, &mut openapi);
        openapi
    })
}

/// The document as JSON text, rendered once (or why it could not be).
fn document_json() -> Result<&'static str, &'static str> {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(String::as_str)
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> Result<Response, ApiError> {
    let json = document_json()
        .map_err(|e| ApiError::internal_in("rendering the OpenAPI document", e.to_owned()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}
