//! Request tracing: every HTTP request runs in a `request` span (method and matched route,
//! never the raw path, which may carry a public-link token), and errors are logged here,
//! once, at the end of the request: a 500's cause (an [`InternalCause`] left in the
//! response by [`crate::error::ApiError`]) with its whole chain of sources.

use crate::error::InternalCause;
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use std::time::Duration;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// The tracing layer the application wraps around every route.
pub type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    (),
    LogResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
>;

/// The layer: a span per request, one log line per failed request (errors are logged
/// by [`LogResponse`] only, so `on_failure` is silent).
pub fn layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(LogResponse)
        .on_failure(())
}

/// Makes the `request` span: method and the route that matched (`/api/v1/canvases/{id}`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("unmatched");
        tracing::info_span!("request", method = %request.method(), route)
    }
}

/// Logs the end of a request: an error with its cause for a 5xx, a warning for a 503 the
/// server chose (no capacity, e.g. every password-hashing slot taken: nothing failed),
/// debug otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let unavailable = response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE;
        match response.extensions().get::<InternalCause>() {
            Some(cause) if unavailable => {
                tracing::warn!(status, latency_ms, %cause, "request refused: a service is unavailable")
            }
            Some(cause) => tracing::error!(status, latency_ms, %cause, "request failed"),
            None if unavailable => {
                tracing::warn!(status, latency_ms, "request refused: the server is busy")
            }
            None if response.status().is_server_error() => {
                tracing::error!(status, latency_ms, "request failed")
            }
            None => tracing::debug!(status, latency_ms, "request finished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::test_log::Captured;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the canvas failed")]
    struct ReadFailed(#[source] std::io::Error);

    async fn boom() -> Result<(), ApiError> {
        Err(ApiError::internal(ReadFailed(std::io::Error::other(
            "connection reset",
        ))))
    }

    async fn missing() -> Result<(), ApiError> {
        Err(ApiError::NotFound("no such canvas".into()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_request_is_logged_once_in_its_span_with_its_cause() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let app = Router::new()
            .route("/canvases/{id}", get(boom))
            .route("/missing/{id}", get(missing))
            .layer(layer());
        for uri in ["/canvases/secret-token-123", "/missing/1"] {
            let request = Request::get(uri).body(Body::empty()).expect("request");
            let _ = app.clone().oneshot(request).await.expect("infallible");
        }

        let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
        let failures: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("request failed"))
            .collect();
        assert_eq!(failures.len(), 1, "one error line for one 500:\n{log}");
        let line = failures[0];
        assert!(line.contains("ERROR"), "{line}");
        assert!(
            line.contains(r#"request{method=GET route="/canvases/{id}"}"#),
            "{line}"
        );
        assert!(
            line.contains("cause=reading the canvas failed: connection reset"),
            "{line}"
        );
        assert!(line.contains("status=500"), "{line}");
        assert!(
            !log.contains("secret-token-123"),
            "raw paths stay out:\n{log}"
        );
        assert!(
            log.lines()
                .any(|l| l.contains("request finished") && l.contains("status=404")),
            "{log}"
        );
    }
}
