//! [`RateLimiter`] on `rate_limit:{subject}:{endpoint}` (`rate_limit:{user_id}:{endpoint}`,
//! `rate_limit:ip:{ip}:{endpoint}`, see [`RateSubject`]): fixed one-minute windows.
//!
//! The key is a counter. The first call of a window creates it and gives it a 60 s TTL; later
//! calls only add to it, so the window ends 60 s after its first call, when the key expires.
//! Counting and setting the TTL are one Lua script, so no key is ever left without a TTL
//! (which would block the user for good) and concurrent calls from any node count exactly.

use super::RedisStore;
use crate::memory::WINDOW;
use crate::{RateDecision, RateLimiter, RateSubject, StorageResult};
use async_trait::async_trait;
use redis::Script;
use std::sync::LazyLock;

/// `KEYS[1]` the counter; `ARGV[1]` calls to add; `ARGV[2]` the window in ms.
/// Returns the count and the window's remaining ms. A key without a TTL (`PTTL` -1) gets
/// one, whatever made it so.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  left = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], left)
end
return {count, left}
",
    )
});

#[async_trait]
impl RateLimiter for RedisStore {
    async fn hit_subject(
        &self,
        subject: &RateSubject,
        endpoint: &str,
        n: u32,
        limit: u32,
    ) -> StorageResult<RateDecision> {
        let key = self.key(format_args!("rate_limit:{subject}:{endpoint}"));
        let window_ms = WINDOW.as_millis() as i64;
        let (count, left_ms): (i64, i64) = HIT
            .key(&key)
            .arg(n)
            .arg(window_ms)
            .invoke_async(&mut self.conn())
            .await?;
        let count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        // Round up: waiting that long always reaches the next window.
        let left_secs = (left_ms.clamp(1, window_ms) + 999) / 1000;
        Ok(RateDecision {
            allowed: count <= limit,
            count,
            retry_after_secs: left_secs as u32,
        })
    }
}
