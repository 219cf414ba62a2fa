//! Webhooks: a project's admins subscribe a URL to some of its events; each event is written
//! to a durable outbox (PostgreSQL, or the embedded SQLite file: the same database as the
//! other relational data, whatever backs the canvases) and posted, signed, by a delivery
//! worker on every node, retried with exponential backoff for 24 hours.
//!
//! - [`events`]: the event types, [`Webhooks::emit`] (the outbox write) and what rooms tell
//!   (`canvas.updated`, coalesced; versions; sharing; presence).
//! - [`deliver`]: the worker: claims due deliveries (each once across nodes), posts them,
//!   records every attempt and what becomes of the delivery.
//! - [`signature`]: `Canvas-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! The REST handlers are in `http/webhooks.rs`.

pub mod deliver;
pub mod events;
pub mod signature;

pub use events::EventType;

use crate::metrics::Metrics;
use canvas_analytics::SecretKey;
use canvas_storage::{NewWebhookDelivery, Webhook, WebhookStore};
use chrono::Utc;
use dashmap::DashMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// How long no attempt at a delivery starts any more, after its first due time.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// How long a node keeps a project's subscriptions before reading them again (a subscription
/// made or deleted on this node is seen at once; on another node within this time).
const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(2);

/// Deliveries posted at once by one node.
const DELIVERIES_PER_NODE: usize = 16;

/// The delivery settings, from the server's flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest sleep of the worker between two looks at the outbox.
    pub tick: Duration,
    /// Wait before the second attempt (doubling after each, at most [`MAX_BACKOFF`]).
    pub retry_base: Duration,
    /// At most one `canvas.updated` per canvas and subscription per this.
    pub coalesce: Duration,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// Whether loopback and private addresses may be targets.
    pub allow_private: bool,
    /// How long an ended delivery stays in the log (`None`: for ever).
    pub retention: Option<Duration>,
}

impl Settings {
    /// The settings the configuration gives.
    pub fn from_config(config: &crate::config::Config) -> Settings {
        Settings {
            tick: Duration::from_millis(config.webhook_tick_ms.max(10)),
            retry_base: Duration::from_millis(config.webhook_retry_base_ms.max(1)),
            coalesce: Duration::from_millis(config.webhook_coalesce_ms),
            timeout: Duration::from_millis(config.webhook_timeout_ms.max(1)),
            allow_private: config.allow_private_targets,
            retention: (config.webhook_retention_secs > 0)
                .then(|| Duration::from_secs(config.webhook_retention_secs)),
        }
    }

    /// The wait after `attempts` failed attempts: base, 2 x base, 4 x base, ... at most
    /// [`MAX_BACKOFF`].
    pub fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.retry_base
            .saturating_mul(1u32 << doublings)
            .min(MAX_BACKOFF)
    }
}

/// The outbound side: the settings and the HTTP client (the SSRF guard of api sources,
/// without redirects). Built before the state, since building the client can fail.
pub struct Outbound {
    settings: Settings,
    client: reqwest::Client,
}

impl Outbound {
    /// The client for these settings.
    pub fn new(settings: Settings) -> canvas_analytics::Result<Outbound> {
        let client = canvas_analytics::net::webhook_client(
            settings.allow_private,
            concat!("canvas-webhooks/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Outbound { settings, client })
    }
}

/// The webhooks of a server: the outbox, the sealing key, the delivery settings. Cheap to
/// clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn WebhookStore>,
    key: SecretKey,
    outbound: Outbound,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    /// Woken when an event is queued on this node.
    wake: Notify,
    /// Attempts in flight on this node.
    slots: Arc<Semaphore>,
    /// Each project's subscriptions as last read, and when.
    subscriptions: DashMap<Uuid, (Instant, Arc<Vec<Webhook>>)>,
}

impl Webhooks {
    /// The webhooks over their store.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        key: SecretKey,
        outbound: Outbound,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
    ) -> Webhooks {
        Webhooks {
            inner: Arc::new(Inner {
                store,
                key,
                outbound,
                metrics,
                tasks,
                wake: Notify::new(),
                slots: Arc::new(Semaphore::new(DELIVERIES_PER_NODE)),
                subscriptions: DashMap::new(),
            }),
        }
    }

    /// The delivery settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.outbound.settings
    }

    /// The store of subscriptions, deliveries and attempts.
    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.inner.store
    }

    /// Seals a subscription's secret for storage (bound to its id).
    pub fn seal_secret(&self, id: Uuid, secret: &str) -> canvas_analytics::Result<String> {
        self.inner.key.seal(secret, &secret_context(id))
    }

    /// Opens a stored secret.
    fn open_secret(&self, hook: &Webhook) -> canvas_analytics::Result<String> {
        self.inner
            .key
            .open(&hook.secret_sealed, &secret_context(hook.id))
    }

    /// Forgets what this node read of a project's subscriptions (after a change here).
    pub fn subscriptions_changed(&self, project: Uuid) {
        self.inner.subscriptions.remove(&project);
    }

    /// False only when the project's subscriptions, as read less than
    /// [`SUBSCRIPTIONS_TTL`] ago, want none of `event`.
    fn may_want(&self, project: Uuid, event: EventType) -> bool {
        match self.inner.subscriptions.get(&project) {
            Some(entry) if entry.0.elapsed() < SUBSCRIPTIONS_TTL => {
                entry.1.iter().any(|h| wants(h, event))
            }
            _ => true,
        }
    }

    async fn subscriptions(&self, project: Uuid) -> Option<Arc<Vec<Webhook>>> {
        if let Some(entry) = self.inner.subscriptions.get(&project)
            && entry.0.elapsed() < SUBSCRIPTIONS_TTL
        {
            return Some(entry.1.clone());
        }
        match self.inner.store.webhooks_in_project(project).await {
            Ok(list) => {
                let list = Arc::new(list);
                self.inner
                    .subscriptions
                    .insert(project, (Instant::now(), list.clone()));
                Some(list)
            }
            Err(e) => {
                self.inner.metrics.storage_error(&e);
                tracing::warn!(%project, error = %e, "cannot read the project's webhooks; event not queued");
                None
            }
        }
    }

    /// Writes one event for every subscription that wants it to the outbox.
    async fn enqueue(
        &self,
        project: Uuid,
        event: EventType,
        data: Value,
        coalesce: Option<(String, i64)>,
    ) {
        let Some(hooks) = self.subscriptions(project).await else {
            return;
        };
        let now = Utc::now();
        let first = match coalesce {
            Some(_) => now + self.settings().coalesce,
            None => now,
        };
        let event_id = Uuid::new_v4();
        let rows: Vec<NewWebhookDelivery> = hooks
            .iter()
            .filter(|h| wants(h, event))
            .map(|h| NewWebhookDelivery {
                id: Uuid::new_v4(),
                webhook_id: h.id,
                event_id,
                event_type: event.as_str().to_owned(),
                data: data.clone(),
                created_at: now,
                next_attempt_at: first,
                expires_at: first + RETRY_WINDOW,
                coalesce: coalesce.clone(),
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        match self.inner.store.enqueue_deliveries(&rows).await {
            Ok(()) => {
                self.inner
                    .metrics
                    .webhook_queued(event.as_str(), rows.len());
                self.inner.wake.notify_one();
            }
            Err(e) => {
                self.inner.metrics.storage_error(&e);
                tracing::warn!(%project, event = event.as_str(), error = %e, "a webhook event could not be queued");
            }
        }
    }
}

/// Whether an active subscription asked for `event`.
fn wants(hook: &Webhook, event: EventType) -> bool {
    hook.is_active && hook.events.iter().any(|e| e == event.as_str())
}

/// What a sealed secret is bound to: its subscription.
fn secret_context(id: Uuid) -> Vec<u8> {
    format!("webhook:{id}:secret").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_an_hour() {
        let s = Settings {
            tick: Duration::from_secs(1),
            retry_base: Duration::from_secs(10),
            coalesce: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            allow_private: false,
            retention: None,
        };
        let waits: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320]);
        assert_eq!(s.backoff(10), Duration::from_secs(3600));
        assert_eq!(s.backoff(1000), MAX_BACKOFF);
        assert_eq!(s.backoff(0), Duration::from_secs(10));
    }
}
