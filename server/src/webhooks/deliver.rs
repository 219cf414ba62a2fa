//! The delivery worker: one task per node that claims due deliveries from the outbox and
//! posts them.
//!
//! - **Claiming**: `WebhookStore::claim_deliveries` counts the attempt and leases the row
//!   until the attempt's timeout plus [`LEASE_MARGIN`], in one compare-and-set (`FOR UPDATE
//!   SKIP LOCKED` on PostgreSQL): each attempt is made by one node. A node killed mid-attempt
//!   leaves the row due again when the lease ends, so the event is posted again (receivers
//!   deduplicate on the payload's `id`: delivery is at least once).
//! - **An attempt** opens the subscription's secret, checks the URL against the SSRF guard,
//!   posts `{id, type, created_at, data}` with `Canvas-Signature`, and waits at most
//!   `--webhook-timeout-ms`. A 2xx answer delivers it; anything else (another status, a
//!   refused connection, a timeout, a refused target) is retried after
//!   `--webhook-retry-base-ms` x 2^(attempts - 1) (at most an hour), until 24 hours after
//!   the event, then the delivery is `failed`.
//! - Every attempt is recorded with its status, error and duration (the delivery log), only
//!   by the lease's holder.
//! - **Pruning**: ended deliveries (delivered, or failed for good) are deleted with their
//!   attempts once they are older than `--webhook-retention-secs` (7 days by default), in
//!   batches of [`PRUNE_BATCH`], every quarter of the retention (at least every second, at
//!   most every hour). Every node prunes; the statements are safe to run at once.

use super::{Webhooks, signature};
use canvas_storage::{DeliveryOutcome, WebhookAttempt, WebhookDelivery};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How much longer than the request timeout a lease lasts (recording the attempt, clock skew
/// between nodes).
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Shortest sleep of the worker.
const MIN_SLEEP: Duration = Duration::from_millis(20);

/// The longest error text kept per attempt.
const MAX_ERROR_CHARS: usize = 500;

/// Ended deliveries deleted by one statement (a prune repeats it until fewer go).
pub const PRUNE_BATCH: u32 = 500;

/// The longest wait between two prunes.
const MAX_PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

impl Webhooks {
    /// Starts this node's delivery worker on the task tracker; it stops when `shutdown` is
    /// cancelled (attempts in flight finish first: the tracker waits for them).
    pub fn start(&self, shutdown: CancellationToken) {
        let hooks = self.clone();
        self.inner.tasks.spawn(async move {
            let prune = hooks.settings().retention.map(|retention| {
                let every = (retention / 4).clamp(Duration::from_secs(1), MAX_PRUNE_EVERY);
                (retention, every)
            });
            let mut next_prune = Instant::now();
            loop {
                hooks.look().await;
                let mut sleep = hooks.until_next().await;
                if let Some((retention, every)) = prune {
                    if Instant::now() >= next_prune {
                        hooks.prune(retention).await;
                        next_prune = Instant::now() + every;
                    }
                    sleep = sleep.min(next_prune.saturating_duration_since(Instant::now()));
                }
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    () = hooks.inner.wake.notified() => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Deletes the deliveries that ended longer than the retention ago, with their attempts,
    /// a batch at a time.
    async fn prune(&self, retention: Duration) {
        let Some(cutoff) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| Utc::now().checked_sub_signed(r))
        else {
            return;
        };
        let mut pruned = 0;
        loop {
            match self.inner.store.prune_deliveries(cutoff, PRUNE_BATCH).await {
                Ok(n) => {
                    pruned += n;
                    if n < u64::from(PRUNE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    self.inner.metrics.storage_error(&e);
                    tracing::warn!(error = %e, "cannot prune ended webhook deliveries");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, %cutoff, "pruned ended webhook deliveries");
        }
    }

    /// How long to sleep: until the earliest due delivery, within [`MIN_SLEEP`] and the tick.
    async fn until_next(&self) -> Duration {
        let tick = self.settings().tick;
        match self.inner.store.next_delivery_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(MIN_SLEEP, tick),
            Ok(None) => tick,
            Err(e) => {
                self.inner.metrics.storage_error(&e);
                tracing::warn!(error = %e, "cannot read the next webhook delivery time");
                tick
            }
        }
    }

    /// Claims as many due deliveries as this node has free slots, and starts them.
    async fn look(&self) {
        loop {
            let free = self.inner.slots.available_permits();
            if free == 0 {
                return;
            }
            let now = Utc::now();
            let lease = now + self.settings().timeout + LEASE_MARGIN;
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            let claimed = match self.inner.store.claim_deliveries(now, lease, limit).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    self.inner.metrics.storage_error(&e);
                    tracing::warn!(error = %e, "cannot claim webhook deliveries");
                    return;
                }
            };
            let full = claimed.len() >= free;
            for delivery in claimed {
                let Ok(permit) = self.inner.slots.clone().try_acquire_owned() else {
                    // Cannot happen (only this task takes slots); the lease brings it back.
                    return;
                };
                let hooks = self.clone();
                self.inner.tasks.spawn(async move {
                    let _permit = permit;
                    hooks.attempt(delivery).await;
                });
            }
            if !full {
                return;
            }
        }
    }

    /// One attempt at a claimed delivery, recorded with what becomes of it.
    async fn attempt(&self, delivery: WebhookDelivery) {
        let Some(lease) = delivery.lease_until else {
            return;
        };
        let attempted_at = Utc::now();
        let started = Instant::now();
        let answer = self.post(&delivery, attempted_at).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error, outcome) = match answer {
            Post::Gone => return,
            Post::Answered(code) if (200..300).contains(&code) => {
                (Some(code), None, DeliveryOutcome::Delivered)
            }
            Post::Answered(code) => (
                Some(code),
                Some(format!("the receiver answered {code}")),
                self.retry_or_fail(&delivery),
            ),
            Post::Failed(message) => (None, Some(message), self.retry_or_fail(&delivery)),
            Post::Undeliverable(message) => (None, Some(message), DeliveryOutcome::Failed),
        };
        let error = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
        let label = match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry(_) => "retry",
            DeliveryOutcome::Failed => "failed",
        };
        if let Some(e) = &error {
            tracing::info!(delivery = %delivery.id, webhook = %delivery.webhook_id, attempt = delivery.attempts, error = %e, outcome = label, "webhook attempt failed");
        }
        let record = WebhookAttempt {
            delivery_id: delivery.id,
            attempt: delivery.attempts,
            attempted_at,
            status_code,
            error,
            duration_ms,
        };
        match self
            .inner
            .store
            .finish_attempt(lease, &record, outcome)
            .await
        {
            Ok(true) => self.inner.metrics.webhook_delivery(label),
            Ok(false) => {
                tracing::warn!(delivery = %delivery.id, "a webhook attempt outlived its lease; not recorded");
            }
            Err(e) => {
                self.inner.metrics.storage_error(&e);
                tracing::warn!(delivery = %delivery.id, error = %e, "a webhook attempt could not be recorded; it is tried again when its lease ends");
            }
        }
        if let DeliveryOutcome::Retry(_) = outcome {
            self.inner.wake.notify_one();
        }
    }

    /// The next attempt's time, or `Failed` once it would start after the delivery expires.
    fn retry_or_fail(&self, delivery: &WebhookDelivery) -> DeliveryOutcome {
        let next: DateTime<Utc> = Utc::now() + self.settings().backoff(delivery.attempts);
        if next > delivery.expires_at {
            DeliveryOutcome::Failed
        } else {
            DeliveryOutcome::Retry(next)
        }
    }

    /// Posts a delivery to its subscription's URL.
    async fn post(&self, delivery: &WebhookDelivery, now: DateTime<Utc>) -> Post {
        let hook = match self.inner.store.webhook(delivery.webhook_id).await {
            Ok(Some(hook)) => hook,
            // Deleted with its deliveries meanwhile.
            Ok(None) => return Post::Gone,
            Err(e) => {
                self.inner.metrics.storage_error(&e);
                return Post::Failed(format!("storage: {e}"));
            }
        };
        // A node whose server key differs from the one that sealed the secret (nodes must
        // share --secret-key) cannot sign: retried, so a node with the right key can.
        let secret = match self.open_secret(&hook) {
            Ok(secret) => secret,
            Err(e) => {
                return Post::Failed(format!("the secret cannot be opened on this node: {e}"));
            }
        };
        let url = match url::Url::parse(&hook.url) {
            Ok(url) => url,
            Err(e) => return Post::Undeliverable(format!("the URL is invalid: {e}")),
        };
        if let Err(e) = canvas_analytics::net::check_url(&url, self.settings().allow_private) {
            return Post::Failed(e.to_string());
        }
        let body = payload(delivery);
        let header = signature::sign(secret.as_bytes(), now.timestamp(), &body);
        let request = self
            .inner
            .outbound
            .client
            .post(url)
            .timeout(self.settings().timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, header)
            .header("Canvas-Event", delivery.event_type.as_str())
            .header("Canvas-Delivery", delivery.id.to_string())
            .body(body);
        match request.send().await {
            Ok(response) => Post::Answered(i64::from(response.status().as_u16())),
            Err(e) => Post::Failed(describe(&e)),
        }
    }
}

/// What posting came to.
enum Post {
    /// The subscription is gone (nothing to record).
    Gone,
    /// The receiver answered with this status.
    Answered(i64),
    /// No answer (refused, timed out, a refused target, storage): retried.
    Failed(String),
    /// It can never be delivered as stored (a URL that does not parse): given up.
    Undeliverable(String),
}

/// The body of a delivery: `{id, type, created_at, data}`, the same bytes on every attempt.
pub fn payload(delivery: &WebhookDelivery) -> Vec<u8> {
    let value = json!({
        "id": delivery.event_id,
        "type": delivery.event_type,
        "created_at": delivery.created_at,
        "data": delivery.data,
    });
    value.to_string().into_bytes()
}

/// A request error with its causes (reqwest's own message hides the interesting one).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
