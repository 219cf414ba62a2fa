//! A project's webhooks (`/projects/{id}/webhooks`): subscribe a URL to events, list,
//! delete, and read a subscription's delivery log. Admins only (others 403; non-members 404).
//! Creating and deleting one is audited (`webhook.create`, `webhook.delete`). Events, the
//! outbox and delivery are in [`crate::webhooks`].

use super::data_access::{data_role, require};
use super::{ApiJson, ApiPath, ApiQuery, ClientInfo, audit};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::webhooks::EventType;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_storage::{NewWebhook, Webhook, WebhookAttempt, WebhookDelivery};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Longest URL accepted.
const MAX_URL_CHARS: usize = 2048;
/// Shortest and longest secret accepted.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;
/// Characters of the secret shown back.
const HINT_CHARS: usize = 4;
/// Subscriptions per project.
const MAX_PER_PROJECT: usize = 50;
/// Deliveries a log page shows by default, and at most.
const DEFAULT_LOG: u32 = 50;
const MAX_LOG: u32 = 200;

/// The subscription as the API shows it: never the secret, only its last characters.
fn shown(hook: &Webhook) -> WebhookView {
    WebhookView {
        id: hook.id,
        project_id: hook.project_id,
        url: hook.url.clone(),
        events: hook.events.clone(),
        secret_hint: format!("…{}", hook.secret_hint),
        is_active: hook.is_active,
        created_by: hook.created_by,
        created_at: hook.created_at,
        updated_at: hook.updated_at,
    }
}

/// A webhook subscription as the API shows it (never the secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// The subscription.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// The events it receives.
    pub events: Vec<String>,
    /// The secret's last characters, after `…`.
    pub secret_hint: String,
    /// Whether it receives events.
    pub is_active: bool,
    /// Who made it.
    #[schema(required)]
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change time.
    pub updated_at: DateTime<Utc>,
}

/// `GET /projects/{id}/webhooks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// The project's subscriptions.
    pub webhooks: Vec<WebhookView>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    /// 1, 2, ...
    pub attempt: i64,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    #[schema(required)]
    pub status_code: Option<i64>,
    /// Why it failed.
    #[schema(required)]
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// One delivery with its attempts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// The delivery.
    pub id: Uuid,
    /// The event (the same for every subscription it went to).
    pub event_id: Uuid,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// The next attempt (pending deliveries only).
    #[schema(required)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it is given up.
    pub expires_at: DateTime<Utc>,
    /// When it was delivered.
    #[schema(required)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last HTTP status.
    #[schema(required)]
    pub last_status_code: Option<i64>,
    /// The last error.
    #[schema(required)]
    pub last_error: Option<String>,
    /// The event's data.
    pub data: Value,
    /// Every attempt, in order.
    pub attempt_log: Vec<AttemptView>,
}

/// `GET /projects/{id}/webhooks/{webhook_id}/deliveries`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryLog {
    /// The latest deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
}

/// `POST /projects/{id}/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are posted (http or https).
    #[schema(max_length = 2048)]
    url: String,
    /// Event types, e.g. `canvas.updated`.
    events: Vec<String>,
    /// The signing secret: 16 to 256 characters.
    #[schema(min_length = 16, max_length = 256)]
    secret: String,
}

/// The caller's role, which must be admin.
async fn admin(state: &AppState, caller: &AuthUser, project_id: Uuid) -> ApiResult<()> {
    let role = data_role(state, caller.user.id, project_id).await?;
    require(role, Role::Admin, "managing webhooks")
}

/// The event names, known and without repeats, in the order given; else 400.
fn events(names: &[String]) -> ApiResult<Vec<String>> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_events",
            "events lists at least one event type",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let Some(event) = EventType::parse(name) else {
            let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::bad_request(
                "unknown_event",
                format!(
                    "unknown event type {shown:?}; the event types are {}",
                    known.join(", ")
                ),
            ));
        };
        if !out.iter().any(|e| e == event.as_str()) {
            out.push(event.as_str().to_owned());
        }
    }
    Ok(out)
}

/// An http(s) URL with a host, no credentials, that the SSRF guard lets through: a literal
/// internal address, or a name that resolves to one, is refused unless private targets are
/// allowed.
async fn target(state: &AppState, text: &str) -> ApiResult<url::Url> {
    let invalid = |message: String| ApiError::bad_request("invalid_url", message);
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_URL_CHARS {
        return Err(invalid(format!(
            "url is an http or https URL of at most {MAX_URL_CHARS} characters"
        )));
    }
    let url = url::Url::parse(text).map_err(|e| invalid(format!("url is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("url must be http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url must not carry credentials; receivers check the signature instead".into(),
        ));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("url has no host".into()));
    };
    let allow_private = state.webhooks.settings().allow_private;
    canvas_analytics::net::check_url(&url, allow_private).map_err(ApiError::from)?;
    if !allow_private && matches!(url.host(), Some(url::Host::Domain(_))) {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| invalid(format!("the host {host} does not resolve: {e}")))?;
        for addr in addrs {
            if canvas_analytics::net::is_internal(addr.ip()) {
                return Err(ApiError::bad_request(
                    "forbidden_target",
                    format!(
                        "{host} resolves to the internal address {}; private targets are not \
                         allowed (--allow-private-targets / CANVAS_ALLOW_PRIVATE_TARGETS=1)",
                        addr.ip()
                    ),
                ));
            }
        }
    }
    Ok(url)
}

/// Subscribes a URL to events of the project (admins).
#[utoipa::path(post, path = "/projects/{id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")), request_body = CreateWebhook,
    responses((status = 201, description = "The subscription", body = WebhookView),
        (status = 403, description = "Only the project's admins manage webhooks")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    admin(&state, &caller, project_id).await?;
    let events = events(&body.events)?;
    let secret = body.secret.as_str();
    let count = secret.chars().count();
    if !SECRET_CHARS.contains(&count) || secret.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_secret",
            format!(
                "secret is {} to {} characters without control characters",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            ),
        ));
    }
    let url = target(&state, &body.url).await?;
    let store = state.webhooks.store();
    if store.webhooks_in_project(project_id).await?.len() >= MAX_PER_PROJECT {
        return Err(ApiError::bad_request(
            "too_many_webhooks",
            format!("a project has at most {MAX_PER_PROJECT} webhooks"),
        ));
    }
    let id = Uuid::new_v4();
    let secret_sealed = state
        .webhooks
        .seal_secret(id, secret)
        .map_err(|e| ApiError::internal_in("sealing the webhook secret", e))?;
    let secret_hint: String = secret
        .chars()
        .skip(count.saturating_sub(HINT_CHARS))
        .collect();
    let hook = store
        .create_webhook(NewWebhook {
            id,
            project_id,
            url: url.to_string(),
            events,
            secret_sealed,
            secret_hint,
            created_by: Some(caller.user.id),
        })
        .await?;
    state.webhooks.subscriptions_changed(project_id);
    audit(
        &state,
        &caller.user,
        &client,
        "webhook.create",
        ("webhook", Some(hook.id)),
        json!({"project_id": project_id, "url": hook.url, "events": hook.events}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(shown(&hook))))
}

/// `GET /projects/{id}/webhooks` (admins).
#[utoipa::path(get, path = "/projects/{id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project's subscriptions", body = WebhookList),
        (status = 403, description = "Only the project's admins manage webhooks")))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(project_id): ApiPath<Uuid>,
) -> ApiResult<Json<WebhookList>> {
    admin(&state, &caller, project_id).await?;
    let hooks = state
        .webhooks
        .store()
        .webhooks_in_project(project_id)
        .await?;
    let webhooks = hooks.iter().map(shown).collect();
    Ok(Json(WebhookList { webhooks }))
}

/// A subscription of the project, or 404.
async fn of_project(state: &AppState, project_id: Uuid, id: Uuid) -> ApiResult<Webhook> {
    state
        .webhooks
        .store()
        .webhook(id)
        .await?
        .filter(|h| h.project_id == project_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!("webhook {id} not found in project {project_id}"))
        })
}

/// `DELETE /projects/{id}/webhooks/{webhook_id}` (admins): its pending deliveries are dropped.
#[utoipa::path(delete, path = "/projects/{id}/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project"), ("webhook_id" = Uuid, Path, description = "The subscription")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only the project's admins manage webhooks")))]
pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    admin(&state, &caller, project_id).await?;
    let hook = of_project(&state, project_id, id).await?;
    if !state.webhooks.store().delete_webhook(id).await? {
        return Err(ApiError::NotFound(format!("webhook {id} not found")));
    }
    state.webhooks.subscriptions_changed(project_id);
    audit(
        &state,
        &caller.user,
        &client,
        "webhook.delete",
        ("webhook", Some(id)),
        json!({"project_id": project_id, "url": hook.url}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../deliveries` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    limit: Option<u32>,
}

/// One delivery with its attempts, as the log shows it.
fn delivery_json(d: &WebhookDelivery, attempts: &[&WebhookAttempt]) -> DeliveryView {
    let mut log: Vec<AttemptView> = attempts
        .iter()
        .map(|a| AttemptView {
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
        })
        .collect();
    log.sort_by_key(|a| a.attempt);
    DeliveryView {
        id: d.id,
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        created_at: d.created_at,
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        expires_at: d.expires_at,
        delivered_at: d.delivered_at,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        data: d.data.clone(),
        attempt_log: log,
    }
}

/// `GET /projects/{id}/webhooks/{webhook_id}/deliveries?limit=`: the latest deliveries,
/// newest first, each with every attempt (admins).
#[utoipa::path(get, path = "/projects/{id}/webhooks/{webhook_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project"), ("webhook_id" = Uuid, Path, description = "The subscription"), LogQuery),
    responses((status = 200, description = "The delivery log", body = DeliveryLog),
        (status = 403, description = "Only the project's admins manage webhooks")))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Json<DeliveryLog>> {
    admin(&state, &caller, project_id).await?;
    of_project(&state, project_id, id).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LOG);
    if !(1..=MAX_LOG).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit is 1 to {MAX_LOG}"),
        ));
    }
    let store = state.webhooks.store();
    let deliveries = store.deliveries_of_webhook(id, limit).await?;
    let attempts = store.attempts_of_webhook(id, limit).await?;
    let mut by_delivery: HashMap<Uuid, Vec<&WebhookAttempt>> = HashMap::new();
    for a in &attempts {
        by_delivery.entry(a.delivery_id).or_default().push(a);
    }
    let deliveries = deliveries
        .iter()
        .map(|d| delivery_json(d, by_delivery.get(&d.id).map_or(&[][..], Vec::as_slice)))
        .collect();
    Ok(Json(DeliveryLog { deliveries }))
}
