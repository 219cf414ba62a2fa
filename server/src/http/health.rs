//! Liveness.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// `GET /healthz`: the server is up; how many rooms are loaded.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "rooms": state.rooms.len() }))
}
