//! The per-user WebSocket message limit (`--ws-rate-limit` per minute, over all of a user's
//! connections on every node).
//!
//! The shared counter (`rate_limit:{user_id}:ws` in Redis, or in process) is not hit on
//! every keystroke: each node adds up a user's messages over all their connections here and
//! reports them in batches. What a closing connection leaves unreported is reported when
//! it closes, and a connection is admitted only while its user is within the limit, so
//! opening many short connections gets around nothing: at most one batch per node goes
//! uncounted at any moment.

use canvas_storage::RateLimiter;
use dashmap::DashMap;
use std::sync::Arc;
use tokio::time::Instant;
use uuid::Uuid;

/// The endpoint name of WebSocket messages in the shared counter.
const ENDPOINT: &str = "ws";

/// Messages are reported in batches of at most this many.
const MAX_BATCH: u32 = 32;

/// Counts a node's WebSocket messages per user against the shared per-minute limit.
pub struct MessageMeter {
    limiter: Arc<dyn RateLimiter>,
    limit: u32,
    /// Messages counted here and not yet reported, per user.
    unreported: DashMap<Uuid, u32>,
    /// Users found over the limit, until when (their other connections close on their next
    /// message without asking the shared counter).
    limited: DashMap<Uuid, Instant>,
}

impl MessageMeter {
    /// A meter for `limit` messages per user per minute.
    pub fn new(limiter: Arc<dyn RateLimiter>, limit: u32) -> Self {
        MessageMeter {
            limiter,
            limit,
            unreported: DashMap::new(),
            limited: DashMap::new(),
        }
    }

    /// How many messages make a batch: small limits are checked often enough to hold.
    fn batch(&self) -> u32 {
        (self.limit / 8).clamp(1, MAX_BATCH)
    }

    /// Whether a user may open a connection now (they are within the limit).
    pub async fn admit(&self, user: Uuid) -> bool {
        if self.is_limited(user) {
            return false;
        }
        self.report(user, 0).await
    }

    /// Counts one message; `false` when the user is over the limit (close the connection).
    pub async fn count(&self, user: Uuid) -> bool {
        if self.is_limited(user) {
            return false;
        }
        let due = {
            let mut pending = self.unreported.entry(user).or_insert(0);
            *pending += 1;
            if *pending >= self.batch() {
                std::mem::take(&mut *pending)
            } else {
                0
            }
        };
        // boxed: a connection's task holds this future's room for as long as it lives,
        // and reporting (a shared counter on Redis) is the rare, large part
        due == 0 || Box::pin(self.report(user, due)).await
    }

    /// Reports what a user's closing connection left uncounted.
    pub async fn flush(&self, user: Uuid) {
        let left = self
            .unreported
            .remove(&user)
            .map_or(0, |(_, pending)| pending);
        if left > 0 {
            self.report(user, left).await;
        }
    }

    fn is_limited(&self, user: Uuid) -> bool {
        match self.limited.get(&user).map(|until| *until) {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                self.limited.remove(&user);
                false
            }
            None => false,
        }
    }

    /// Adds `n` to the shared counter; `false` when the user is over the limit.
    async fn report(&self, user: Uuid, n: u32) -> bool {
        match self.limiter.hit(user, ENDPOINT, n, self.limit).await {
            Ok(decision) if decision.allowed => true,
            Ok(decision) => {
                let wait = std::time::Duration::from_secs(decision.retry_after_secs.into());
                self.limited.insert(user, Instant::now() + wait);
                false
            }
            Err(cause) => {
                // A rate-limit store outage must not cut everyone off.
                tracing::warn!(%cause, "rate limit check failed; allowing");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(limit: u32) -> MessageMeter {
        MessageMeter::new(
            Arc::new(canvas_storage::memory::MemoryRateLimiter::default()),
            limit,
        )
    }

    #[tokio::test]
    async fn reconnecting_does_not_reset_the_count() {
        let meter = meter(100);
        let user = Uuid::new_v4();
        let mut sent = 0;
        // Twenty short connections of 31 messages each, the remainder flushed at close.
        'connections: for _ in 0..20 {
            if !meter.admit(user).await {
                break;
            }
            for _ in 0..31 {
                if !meter.count(user).await {
                    break 'connections;
                }
                sent += 1;
            }
            meter.flush(user).await;
        }
        // Counted in batches of 12 (a limit of 100 / 8): at most one batch over.
        assert!(sent < 100 + 12, "{sent} messages passed a limit of 100");
        assert!(
            !meter.admit(user).await,
            "over the limit: no new connection"
        );
        assert!(
            meter.admit(Uuid::new_v4()).await,
            "another user is not affected"
        );
    }

    #[tokio::test]
    async fn a_small_limit_is_checked_in_small_batches() {
        let meter = meter(8);
        let user = Uuid::new_v4();
        let passed = {
            let mut passed = 0;
            while passed < 100 && meter.count(user).await {
                passed += 1;
            }
            passed
        };
        assert_eq!(passed, 8);
    }
}
