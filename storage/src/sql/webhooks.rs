//! [`WebhookStore`](crate::WebhookStore) for both SQL backends: the statements (PostgreSQL's
//! placeholders, rewritten for SQLite), the row mappings, and one implementation written once
//! in [`impl_webhook_store!`].
//!
//! **Claiming.** A delivery is claimed with one `UPDATE ... RETURNING` that counts the
//! attempt and moves `next_attempt_at` to the end of a lease (`lease_until`), only for rows
//! still pending and due: a compare-and-set, so of two nodes that read the same due row one
//! gets it. On PostgreSQL the inner `SELECT` takes its rows `FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers skip each other's rows instead of queueing on them ([`CLAIM_PG`]);
//! SQLite has one writer at a time and needs no more ([`CLAIM_SQLITE`]). An attempt is
//! recorded only by the holder of the lease (`lease_until` equal to the one claimed): a node
//! that died mid-attempt leaves a row that is due again when its lease ends.
//!
//! **Coalescing.** A coalesced event (`canvas.updated`) is inserted with `coalesce_open`
//! set; a unique index on `(webhook_id, coalesce_key) WHERE coalesce_open` makes a second
//! one an `ON CONFLICT ... DO UPDATE` of the open row's data (when its order is higher).
//! Claiming closes the row, so the next change opens a new one.

use super::SqlRow;
use crate::{StorageResult, Webhook, WebhookAttempt, WebhookDelivery};

/// The columns of a [`Webhook`].
macro_rules! webhook_columns {
    () => {
        "id, project_id, url, events, secret, secret_hint, created_by, is_active, created_at, \
         updated_at"
    };
}

/// The columns of a [`WebhookDelivery`].
macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, data, created_at, status, attempts, \
         next_attempt_at, expires_at, lease_until, last_status_code, last_error, delivered_at"
    };
}

/// Binds id, project, url, events, secret, hint, created_by, now.
pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (id, project_id, url, events, \
     secret, secret_hint, created_by, is_active, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8)";
/// Binds the id.
pub(crate) const WEBHOOK: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE id = $1"
);
/// Binds the project.
pub(crate) const WEBHOOKS_IN_PROJECT: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE project_id = $1 ORDER BY created_at, id"
);
/// Binds the webhook.
pub(crate) const DELETE_ATTEMPTS_OF_WEBHOOK: &str = "DELETE FROM webhook_attempts WHERE \
     delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)";
/// Binds the webhook.
pub(crate) const DELETE_DELIVERIES_OF_WEBHOOK: &str =
    "DELETE FROM webhook_deliveries WHERE webhook_id = $1";
/// Binds the id.
pub(crate) const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1";

/// Binds id, webhook, event id, type, data, created_at, next_attempt_at, expires_at,
/// coalesce_key, coalesce_seq, coalesce_open, now. An open delivery with the same key takes
/// the new data instead (when the new order is higher).
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, webhook_id, \
     event_id, event_type, data, created_at, status, attempts, next_attempt_at, expires_at, \
     lease_until, coalesce_key, coalesce_seq, coalesce_open, last_status_code, last_error, \
     delivered_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, NULL, $9, $10, $11, NULL, NULL, \
     NULL, $12) \
     ON CONFLICT (webhook_id, coalesce_key) WHERE coalesce_open DO UPDATE SET \
     data = excluded.data, created_at = excluded.created_at, \
     coalesce_seq = excluded.coalesce_seq, updated_at = excluded.updated_at \
     WHERE webhook_deliveries.coalesce_seq < excluded.coalesce_seq";
/// The earliest time a pending delivery may be tried.
pub(crate) const NEXT_DELIVERY_DUE: &str = "SELECT min(next_attempt_at) AS next_attempt_at \
     FROM webhook_deliveries WHERE status = 'pending'";
/// Binds now, the lease's end, the limit. PostgreSQL: concurrent claimers skip locked rows.
pub(crate) const CLAIM_PG: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = $2, \
     next_attempt_at = $2, coalesce_open = FALSE, updated_at = $1 \
     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
     AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     AND status = 'pending' AND next_attempt_at <= $1 RETURNING ",
    delivery_columns!()
);
/// Binds now, the lease's end, the limit. SQLite: one writer at a time.
pub(crate) const CLAIM_SQLITE: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = $2, \
     next_attempt_at = $2, coalesce_open = FALSE, updated_at = $1 \
     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
     AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3) \
     AND status = 'pending' AND next_attempt_at <= $1 RETURNING ",
    delivery_columns!()
);
/// Binds id, the lease, status, next_attempt_at (NULL keeps it), last_status_code,
/// last_error, delivered_at, now. Only by the lease's holder.
pub(crate) const FINISH_DELIVERY: &str = "UPDATE webhook_deliveries SET status = $3, \
     next_attempt_at = COALESCE($4, next_attempt_at), lease_until = NULL, \
     last_status_code = $5, last_error = $6, delivered_at = $7, updated_at = $8 \
     WHERE id = $1 AND lease_until = $2 AND status = 'pending'";
/// Binds delivery, attempt, attempted_at, status_code, error, duration_ms.
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts (delivery_id, attempt, \
     attempted_at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)";
/// Binds the webhook and the limit.
pub(crate) const DELIVERIES_OF_WEBHOOK: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
);
/// Binds the webhook and the limit (of deliveries).
pub(crate) const ATTEMPTS_OF_WEBHOOK: &str = "SELECT a.delivery_id, a.attempt, a.attempted_at, \
     a.status_code, a.error, a.duration_ms FROM webhook_attempts a \
     WHERE a.delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 \
     ORDER BY created_at DESC, id DESC LIMIT $2) \
     ORDER BY a.attempted_at DESC, a.attempt DESC";

/// The ended deliveries (delivered or failed) last changed before `$1`, oldest first, at
/// most `$2`: what [`PRUNE_ATTEMPTS`] and [`PRUNE_DELIVERIES`] remove. An ended delivery is
/// never changed again, so both statements of one prune pick the same rows (but for rows
/// another node's prune removed in between: see [`PRUNE_DELIVERIES`]).
macro_rules! ended_before {
    () => {
        "SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1 \
         ORDER BY updated_at, id LIMIT $2"
    };
}
/// Binds the cutoff and the limit: the attempts of the deliveries to prune.
pub(crate) const PRUNE_ATTEMPTS: &str = concat!(
    "DELETE FROM webhook_attempts WHERE delivery_id IN (",
    ended_before!(),
    ")"
);
/// Binds the cutoff and the limit: the deliveries whose attempts are gone (a row the
/// concurrent prune of another node brought into the window after [`PRUNE_ATTEMPTS`] still
/// has its attempts, and waits for the next prune).
pub(crate) const PRUNE_DELIVERIES: &str = concat!(
    "DELETE FROM webhook_deliveries WHERE id IN (",
    ended_before!(),
    ") AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = webhook_deliveries.id)"
);

/// A [`Webhook`] from `webhook_columns!`.
pub(crate) fn webhook_from_row(row: &impl SqlRow) -> StorageResult<Webhook> {
    let events = row
        .opt_json("events")?
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default();
    Ok(Webhook {
        id: row.uuid("id")?,
        project_id: row.uuid("project_id")?,
        url: row.text("url")?,
        events,
        secret_sealed: row.text("secret")?,
        secret_hint: row.text("secret_hint")?,
        created_by: row.opt_uuid("created_by")?,
        is_active: row.opt_bool("is_active")?.unwrap_or(false),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// A [`WebhookDelivery`] from `delivery_columns!`.
pub(crate) fn delivery_from_row(row: &impl SqlRow) -> StorageResult<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.uuid("id")?,
        webhook_id: row.uuid("webhook_id")?,
        event_id: row.uuid("event_id")?,
        event_type: row.text("event_type")?,
        data: row.opt_json("data")?.unwrap_or_default(),
        created_at: row.ts("created_at")?,
        status: row.text("status")?,
        attempts: row.opt_int("attempts")?.unwrap_or(0),
        next_attempt_at: row.ts("next_attempt_at")?,
        expires_at: row.ts("expires_at")?,
        lease_until: row.opt_ts("lease_until")?,
        last_status_code: row.opt_int("last_status_code")?,
        last_error: row.opt_text("last_error")?,
        delivered_at: row.opt_ts("delivered_at")?,
    })
}

/// A [`WebhookAttempt`] from the columns of [`ATTEMPTS_OF_WEBHOOK`].
pub(crate) fn attempt_from_row(row: &impl SqlRow) -> StorageResult<WebhookAttempt> {
    Ok(WebhookAttempt {
        delivery_id: row.uuid("delivery_id")?,
        attempt: row.opt_int("attempt")?.unwrap_or(0),
        attempted_at: row.ts("attempted_at")?,
        status_code: row.opt_int("status_code")?,
        error: row.opt_text("error")?,
        duration_ms: row.opt_int("duration_ms")?.unwrap_or(0),
    })
}

/// The [`WebhookStore`](crate::WebhookStore) implementation for one SQL backend, like
/// `impl_data_store!`; `claim` is the backend's claim statement.
macro_rules! impl_webhook_store {
    ($store:ty, sql: $sql:ident, claim: $claim:expr, uuid: $uuid:path, ts: $ts:path, json: $json:path, int: $int:path, now: $now:path) => {
        #[async_trait::async_trait]
        impl $crate::WebhookStore for $store {
            async fn create_webhook(
                &self,
                new: $crate::NewWebhook,
            ) -> $crate::StorageResult<$crate::Webhook> {
                use $crate::sql::webhooks as s;
                let now = $now();
                let hook = $crate::Webhook {
                    id: new.id,
                    project_id: new.project_id,
                    url: new.url,
                    events: new.events,
                    secret_sealed: new.secret_sealed,
                    secret_hint: new.secret_hint,
                    created_by: new.created_by,
                    is_active: true,
                    created_at: now,
                    updated_at: now,
                };
                let events = serde_json::json!(hook.events);
                sqlx::query($sql!(s::INSERT_WEBHOOK))
                    .bind($uuid(hook.id))
                    .bind($uuid(hook.project_id))
                    .bind(&hook.url)
                    .bind($json(&events))
                    .bind(&hook.secret_sealed)
                    .bind(&hook.secret_hint)
                    .bind(hook.created_by.map($uuid))
                    .bind($ts(now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::sql::missing_reference(e, "project"))?;
                Ok(hook)
            }

            async fn webhook(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StorageResult<Option<$crate::Webhook>> {
                use $crate::sql::webhooks as s;
                let row = sqlx::query($sql!(s::WEBHOOK))
                    .bind($uuid(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::webhook_from_row(&r)).transpose()
            }

            async fn webhooks_in_project(
                &self,
                project_id: uuid::Uuid,
            ) -> $crate::StorageResult<Vec<$crate::Webhook>> {
                use $crate::sql::webhooks as s;
                let rows = sqlx::query($sql!(s::WEBHOOKS_IN_PROJECT))
                    .bind($uuid(project_id))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::webhook_from_row).collect()
            }

            async fn delete_webhook(&self, id: uuid::Uuid) -> $crate::StorageResult<bool> {
                use $crate::sql::webhooks as s;
                let mut tx = self.begin_write().await?;
                for statement in [
                    $sql!(s::DELETE_ATTEMPTS_OF_WEBHOOK),
                    $sql!(s::DELETE_DELIVERIES_OF_WEBHOOK),
                ] {
                    sqlx::query(statement)
                        .bind($uuid(id))
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query($sql!(s::DELETE_WEBHOOK))
                    .bind($uuid(id))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn enqueue_deliveries(
                &self,
                deliveries: &[$crate::NewWebhookDelivery],
            ) -> $crate::StorageResult<()> {
                use $crate::sql::webhooks as s;
                if deliveries.is_empty() {
                    return Ok(());
                }
                let now = $now();
                let mut tx = self.begin_write().await?;
                for d in deliveries {
                    let (key, seq) = match &d.coalesce {
                        Some((key, seq)) => (Some(key.as_str()), *seq),
                        None => (None, 0),
                    };
                    sqlx::query($sql!(s::INSERT_DELIVERY))
                        .bind($uuid(d.id))
                        .bind($uuid(d.webhook_id))
                        .bind($uuid(d.event_id))
                        .bind(&d.event_type)
                        .bind($json(&d.data))
                        .bind($ts(d.created_at))
                        .bind($ts(d.next_attempt_at))
                        .bind($ts(d.expires_at))
                        .bind(key)
                        .bind(seq)
                        .bind(key.is_some())
                        .bind($ts(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| $crate::sql::missing_reference(e, "webhook"))?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn next_delivery_due(
                &self,
            ) -> $crate::StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
                use $crate::sql::SqlRow as _;
                use $crate::sql::webhooks as s;
                let row = sqlx::query($sql!(s::NEXT_DELIVERY_DUE))
                    .fetch_one(&self.pool)
                    .await?;
                row.opt_ts("next_attempt_at")
            }

            async fn claim_deliveries(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StorageResult<Vec<$crate::WebhookDelivery>> {
                use $crate::sql::webhooks as s;
                let rows = sqlx::query($sql!($claim))
                    .bind($ts(now))
                    .bind($ts(lease_until))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::delivery_from_row).collect()
            }

            async fn finish_attempt(
                &self,
                lease_until: chrono::DateTime<chrono::Utc>,
                attempt: &$crate::WebhookAttempt,
                outcome: $crate::DeliveryOutcome,
            ) -> $crate::StorageResult<bool> {
                use $crate::sql::webhooks as s;
                let now = $now();
                let (status, next, delivered_at) = match outcome {
                    $crate::DeliveryOutcome::Delivered => ("delivered", None, Some(now)),
                    $crate::DeliveryOutcome::Retry(at) => ("pending", Some(at), None),
                    $crate::DeliveryOutcome::Failed => ("failed", None, None),
                };
                let mut tx = self.begin_write().await?;
                let done = sqlx::query($sql!(s::FINISH_DELIVERY))
                    .bind($uuid(attempt.delivery_id))
                    .bind($ts(lease_until))
                    .bind(status)
                    .bind(next.map($ts))
                    .bind(attempt.status_code.map($int))
                    .bind(&attempt.error)
                    .bind(delivered_at.map($ts))
                    .bind($ts(now))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query($sql!(s::INSERT_ATTEMPT))
                    .bind($uuid(attempt.delivery_id))
                    .bind($int(attempt.attempt))
                    .bind($ts(attempt.attempted_at))
                    .bind(attempt.status_code.map($int))
                    .bind(&attempt.error)
                    .bind($int(attempt.duration_ms))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn prune_deliveries(
                &self,
                ended_before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StorageResult<u64> {
                use $crate::sql::webhooks as s;
                let mut tx = self.begin_write().await?;
                sqlx::query($sql!(s::PRUNE_ATTEMPTS))
                    .bind($ts(ended_before))
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query($sql!(s::PRUNE_DELIVERIES))
                    .bind($ts(ended_before))
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn deliveries_of_webhook(
                &self,
                webhook_id: uuid::Uuid,
                limit: u32,
            ) -> $crate::StorageResult<Vec<$crate::WebhookDelivery>> {
                use $crate::sql::webhooks as s;
                let rows = sqlx::query($sql!(s::DELIVERIES_OF_WEBHOOK))
                    .bind($uuid(webhook_id))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::delivery_from_row).collect()
            }

            async fn attempts_of_webhook(
                &self,
                webhook_id: uuid::Uuid,
                limit: u32,
            ) -> $crate::StorageResult<Vec<$crate::WebhookAttempt>> {
                use $crate::sql::webhooks as s;
                let rows = sqlx::query($sql!(s::ATTEMPTS_OF_WEBHOOK))
                    .bind($uuid(webhook_id))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::attempt_from_row).collect()
            }
        }
    };
}
pub(crate) use impl_webhook_store;
