//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: every backing
//! service answers).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;
use utoipa::ToSchema;

/// How long one service may take to answer a readiness ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the server is up; how many rooms are loaded. It says "ok" through service
/// outages (the process is alive); `/readyz` says whether it can serve.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        rooms: state.rooms.len(),
    })
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// How many canvas rooms are loaded.
    pub rooms: usize,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Each backing service and its state (`ok`, or `unavailable: ...`).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub services: Map<String, Value>,
}

/// `GET /readyz`: 200 when every backing service answers a ping, else 503; the body names
/// each service and its state, e.g. `{"status": "unavailable", "services": {"postgresql":
/// "ok", "redis": "unavailable: ..."}}`.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "Every backing service answers", body = Readiness),
        (status = 503, description = "A backing service does not answer", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let checks = state.storage.probes.iter().map(|probe| async move {
        let result = tokio::time::timeout(PING_TIMEOUT, probe.ping()).await;
        let answer = match result {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(cause)) => format!("unavailable: {cause}"),
            Err(_) => format!("unavailable: no answer within {} s", PING_TIMEOUT.as_secs()),
        };
        (probe.service(), answer)
    });
    let answers = futures_util::future::join_all(checks).await;
    let ready = answers.iter().all(|(_, answer)| answer == "ok");
    let services: Map<String, Value> = answers
        .into_iter()
        .map(|(service, answer)| (service.to_owned(), Value::from(answer)))
        .collect();
    let status = if ready { "ok" } else { "unavailable" };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Readiness {
            status: status.to_owned(),
            services,
        }),
    )
}
