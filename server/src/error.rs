//! The REST layer's error: a status, a stable code and a message, rendered as
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! An internal failure keeps its cause as a [`std::error::Error`] source. The cause is never
//! sent to the client: [`ApiError::into_response`](IntoResponse) leaves it in the response's
//! extensions as an [`InternalCause`], and the request-tracing layer ([`crate::http::trace`])
//! logs it once, inside the request's span, with the whole chain of sources.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canvas_storage::StorageError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The body of every error (schema `Error` of the OpenAPI document): `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `not_found`, `invalid_field`, `read_only`.
    pub code: String,
    /// What is wrong, for a developer (not stable).
    pub message: String,
}

/// Any error, kept as the cause of an [`ApiError::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a REST call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid (400).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code, e.g. `invalid_json`.
        code: &'static str,
        /// What is wrong, for a developer.
        message: String,
    },
    /// No, malformed, expired or unknown credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Authenticated and allowed to read, but only to read (403 `read_only`).
    #[error("{0}")]
    ReadOnly(String),
    /// No such resource, or not visible to the caller (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but does not serve this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A unique value is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but refused by a rule of the document (422), e.g. an update the
    /// inspector refuses, with its code (`forbidden`, `invalid_schema`, ...).
    #[error("{message}")]
    Unprocessable {
        /// Stable machine-readable code.
        code: &'static str,
        /// Why, for a developer.
        message: String,
    },
    /// The request body is larger than allowed (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many calls in the current minute (429).
    #[error("rate limited")]
    TooManyRequests {
        /// Seconds until the window ends (sent as `Retry-After`).
        retry_after_secs: u32,
    },
    /// The server has no capacity for this call now, e.g. every password-hashing slot is
    /// taken (503, with `Retry-After`).
    #[error("busy")]
    Busy {
        /// Seconds after which trying again makes sense (sent as `Retry-After`).
        retry_after_secs: u32,
    },
    /// A backing service (PostgreSQL, MongoDB, Redis) cannot be reached now (503, with
    /// `Retry-After`); the cause is logged, never sent.
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    /// Something failed inside the server (500); the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// A 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 500 whose cause (an error, or a message saying what failed) is kept for the log.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// A 500 that says what was being done when `cause` failed, keeping `cause` as the source.
    pub fn internal_in(doing: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        ApiError::Internal(Box::new(Failed {
            doing: doing.into(),
            cause: cause.into(),
        }))
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, code, message.clone())
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            ApiError::ReadOnly(m) => (StatusCode::FORBIDDEN, "read_only", m.clone()),
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message.clone())
            }
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                m.clone(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            ApiError::TooManyRequests { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {retry_after_secs} s"),
            ),
            ApiError::Busy { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is busy; retry in {retry_after_secs} s"),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "a service the server depends on is unavailable; retry shortly".to_owned(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error".to_owned(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Busy { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
            }
            ApiError::Unavailable(cause) => {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, 1.into());
                response
                    .extensions_mut()
                    .insert(InternalCause(Arc::from(cause)));
            }
            ApiError::Internal(cause) => {
                response
                    .extensions_mut()
                    .insert(InternalCause(Arc::from(cause)));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::domain::NotGrantable> for ApiError {
    fn from(e: crate::domain::NotGrantable) -> Self {
        ApiError::bad_request("invalid_role", e.to_string())
    }
}

impl From<canvas_analytics::Error> for ApiError {
    /// The engine's errors: the caller's input is a 400 with the engine's code and message
    /// (a syntax error names its line and column), an oversized body a 413, a source that
    /// cannot be reached a 400 `source_unavailable` (where no execution records it), and our
    /// own object store, keys or disk a 500.
    fn from(e: canvas_analytics::Error) -> Self {
        use canvas_analytics::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidInput | ErrorKind::ExecutionFailed => {
                let message = match &e {
                    canvas_analytics::Error::Syntax {
                        message,
                        line: Some(line),
                        column: Some(column),
                    } => format!("syntax error at line {line}, column {column}: {message}"),
                    other => other.to_string(),
                };
                ApiError::BadRequest {
                    code: e.code(),
                    message,
                }
            }
            ErrorKind::TooLarge => ApiError::PayloadTooLarge(e.to_string()),
            ErrorKind::Internal => ApiError::internal(e),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Conflict(what) => ApiError::Conflict(format!("{what} is already taken")),
            StorageError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            other if other.is_unavailable() => ApiError::Unavailable(Box::new(other)),
            other => ApiError::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                ApiError::bad_request("invalid_field", e.body_text())
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("invalid_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(e) => {
                ApiError::bad_request("invalid_content_type", e.body_text())
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(e.body_text())
            }
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

/// What was being done when an internal error happened, with the error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{doing} failed")]
struct Failed {
    doing: String,
    #[source]
    cause: BoxError,
}

/// The cause of a 500, carried from [`ApiError`] to the request-tracing layer in the
/// response's extensions (so it is logged once, in the request's span, and never sent).
#[derive(Clone)]
pub struct InternalCause(pub Arc<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Display for InternalCause {
    /// The error and each of its sources, outermost first: `a: b: c`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Chain(&*self.0).fmt(f)
    }
}

/// Displays an error and each of its sources, outermost first: `a: b: c`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Result of a REST handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    #[error("query failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_internal_error_keeps_its_cause_as_source() {
        let err = ApiError::internal(Outer(std::io::Error::other("disk on fire")));
        let source = err.source().map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("query failed"));
    }

    #[tokio::test]
    async fn the_cause_travels_to_the_log_and_never_to_the_client() {
        let err = ApiError::internal(Outer(std::io::Error::other("disk on fire")));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response
            .extensions()
            .get::<InternalCause>()
            .map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("query failed: disk on fire"));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal server error");
        assert!(!body.to_string().contains("disk"), "{body}");
    }

    #[test]
    fn other_errors_carry_no_cause() {
        let response = ApiError::NotFound("no such canvas".into()).into_response();
        assert!(response.extensions().get::<InternalCause>().is_none());
    }
}
