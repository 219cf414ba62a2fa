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
//!   with the [`ErrorBody`] schema (`{"error": {"code", "message"}}`, see [`crate::error`]):
//!   those that follow from its shape (a body, a token, a path naming a resource) are derived
//!   here ([`derived_errors`]); those only its handler answers (403, 409, 422, ...) are in its
//!   `#[utoipa::path(responses(...))]`. The test suite checks every status its REST calls get
//!   against this document (`tests/src/contract.rs`), and Schemathesis does the same.
//!
//! The document is built once and kept ([`document`]).

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::response::Response as OpenApiResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";

/// What each error status means here: the description of a status an operation answers
/// by its shape (see [`derived_errors`]). A handler declaring a status itself gives its own.
fn describe(status: &str) -> &'static str {
    match status {
        "400" => "The request is malformed or a field is invalid (a bad path, query or body)",
        "401" => "No, malformed, expired or unknown credentials",
        "403" => "Authenticated, but not allowed (`forbidden`, `read_only`)",
        "404" => "No such resource, or not visible to the caller",
        "409" => "A unique value is taken",
        "413" => "The request body is too large",
        "422" => "Well-formed, but refused by a rule of the document (the inspector's codes)",
        "429" => "Too many calls to this route in the current minute; see `Retry-After`",
        "500" => "Something failed inside the server (the cause is logged)",
        "503" => "A backing service is unavailable or the server is busy; see `Retry-After`",
        _ => "An error",
    }
}

/// Whether an operation reads a bearer token (optionally, too: a bad one is still a 401).
fn reads_token(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|s| {
        s.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get(BEARER).is_some()))
    })
}

/// Whether a parameter's value can be malformed: anything but free text (a UUID, a number,
/// an enum), and every query parameter (the query string is parsed as a whole).
fn can_be_malformed(param: &Parameter) -> bool {
    if matches!(param.parameter_in, ParameterIn::Query) {
        return true;
    }
    let schema = serde_json::to_value(&param.schema).unwrap_or_default();
    let free_text = schema.get("type").and_then(|t| t.as_str()) == Some("string")
        && schema.get("format").is_none()
        && schema.get("enum").is_none()
        && schema.get("pattern").is_none();
    !free_text
}

/// The error statuses an operation answers because of its shape, whatever its handler does:
///
/// - 400 when it takes a body, a query or a path parameter that can be malformed (the
///   extractors refuse a bad one before the handler runs);
/// - 401, 429 and 503 when it reads a bearer token: the token is checked against the stored
///   sessions (503 when storage is unreachable) and every authenticated call counts against
///   the caller's per-route limit;
/// - 404 when its path names a resource;
/// - 413 when it takes a body (the server's body limit);
/// - 500 for every operation.
///
/// What only some handlers answer (403, 409, 422, a public route's 429 or 503) is declared
/// in the handler's own `responses(...)`, and [`Shared`] gives those the error body.
fn derived_errors(op: &Operation) -> Vec<&'static str> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let body = op.request_body.is_some();
    let mut statuses = Vec::new();
    if body || params.iter().any(can_be_malformed) {
        statuses.push("400");
    }
    if reads_token(op) {
        statuses.extend(["401", "429", "503"]);
    }
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    {
        statuses.push("404");
    }
    if body {
        statuses.push("413");
    }
    statuses.push("500");
    statuses
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

/// Adds the security scheme and every operation's error responses: those of its shape
/// ([`derived_errors`]) and, with the error body, those its handler declares.
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
                for status in derived_errors(op) {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| OpenApiResponse::new(describe(status)).into());
                }
                // every error, derived or declared by the handler, has the error body
                for (status, response) in &mut op.responses.responses {
                    if let (Some('4' | '5'), RefOr::T(response)) = (status.chars().next(), response)
                        && response.content.is_empty()
                    {
                        response.content.insert(
                            "application/json".to_owned(),
                            ContentBuilder::new()
                                .schema(Some(error_ref.clone()))
                                .build(),
                        );
                    }
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
