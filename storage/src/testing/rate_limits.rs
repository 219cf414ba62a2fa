//! [`RateLimiter`]: counts up within the window, blocks past the limit (and keeps counting),
//! `n` calls at once, endpoints and users independent, concurrent calls counted exactly.

use super::unique;
use crate::{RateDecision, RateLimiter};
use futures_util::future::join_all;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limit_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx rate_limits rate_limiter [
            calls_within_the_limit_are_allowed_and_counted,
            calls_past_the_limit_are_refused_and_still_counted,
            endpoints_and_users_are_independent,
            n_calls_at_once_count_n,
            limit_zero_allows_nothing,
            concurrent_calls_are_each_counted_once,
        ] }
    };
}

/// Every case at once.
pub async fn all(limiter: &dyn RateLimiter) {
    crate::__rate_limit_cases!(__join_cases!(limiter));
}

/// One `hit`, whose `retry_after_secs` must be within the one-minute window.
async fn hit(
    limiter: &dyn RateLimiter,
    user: Uuid,
    endpoint: &str,
    n: u32,
    limit: u32,
) -> RateDecision {
    let d = limiter.hit(user, endpoint, n, limit).await.expect("hit");
    assert!(
        (1..=60).contains(&d.retry_after_secs),
        "retry_after_secs within the one-minute window: {d:?}"
    );
    d
}

/// Calls up to the limit are allowed, each with its count.
pub async fn calls_within_the_limit_are_allowed_and_counted(limiter: &dyn RateLimiter) {
    let (user, endpoint) = (Uuid::new_v4(), unique("endpoint_"));
    for i in 1..=3 {
        let d = hit(limiter, user, &endpoint, 1, 3).await;
        assert_eq!((d.allowed, d.count), (true, i), "call {i} of 3 is allowed");
    }
}

/// Calls past the limit are refused and still counted; the limit is the caller's.
pub async fn calls_past_the_limit_are_refused_and_still_counted(limiter: &dyn RateLimiter) {
    let (user, endpoint) = (Uuid::new_v4(), unique("endpoint_"));
    for _ in 1..=3 {
        hit(limiter, user, &endpoint, 1, 3).await;
    }
    let d = hit(limiter, user, &endpoint, 1, 3).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 4),
        "the 4th call of 3 is refused"
    );
    let d = hit(limiter, user, &endpoint, 1, 3).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 5),
        "refused calls still count"
    );
    let d = hit(limiter, user, &endpoint, 1, 10).await;
    assert_eq!(
        (d.allowed, d.count),
        (true, 6),
        "the limit is the caller's: the same count is within a larger one"
    );
}

/// Another endpoint (also one the blocked endpoint is a prefix of) or another user counts
/// from one.
pub async fn endpoints_and_users_are_independent(limiter: &dyn RateLimiter) {
    let (user, endpoint) = (Uuid::new_v4(), unique("endpoint_"));
    for _ in 1..=4 {
        hit(limiter, user, &endpoint, 1, 3).await;
    }
    let d = hit(limiter, user, &unique("endpoint_"), 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "another endpoint");
    let d = hit(limiter, Uuid::new_v4(), &endpoint, 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "another user");
    let d = hit(limiter, user, &format!("{endpoint}:x"), 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "an endpoint with a suffix");
}

/// `n` calls at once count `n`: exactly at the limit is allowed, a first batch larger than
/// the limit is not.
pub async fn n_calls_at_once_count_n(limiter: &dyn RateLimiter) {
    let user = Uuid::new_v4();
    let bulk = unique("bulk_");
    let d = hit(limiter, user, &bulk, 5, 10).await;
    assert_eq!((d.allowed, d.count), (true, 5));
    let d = hit(limiter, user, &bulk, 5, 10).await;
    assert_eq!((d.allowed, d.count), (true, 10), "exactly at the limit");
    let d = hit(limiter, user, &bulk, 1, 10).await;
    assert_eq!((d.allowed, d.count), (false, 11));
    let d = hit(limiter, user, &unique("bulk_"), 11, 10).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 11),
        "a first batch larger than the limit"
    );
}

/// A limit of 0 allows nothing.
pub async fn limit_zero_allows_nothing(limiter: &dyn RateLimiter) {
    let d = hit(limiter, Uuid::new_v4(), &unique("zero_"), 1, 0).await;
    assert_eq!((d.allowed, d.count), (false, 1), "limit 0 allows nothing");
}

/// Concurrent calls are each counted once: exactly `limit` of them are allowed.
pub async fn concurrent_calls_are_each_counted_once(limiter: &dyn RateLimiter) {
    let user = Uuid::new_v4();
    let busy = unique("busy_");
    let calls = (0..20).map(|_| limiter.hit(user, &busy, 1, 10));
    let decisions: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|d| d.expect("concurrent hit"))
        .collect();
    let mut counts: Vec<u32> = decisions.iter().map(|d| d.count).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<_>>(),
        "each concurrent call has its own count"
    );
    assert_eq!(
        decisions.iter().filter(|d| d.allowed).count(),
        10,
        "exactly the limit is allowed"
    );
    assert!(
        decisions.iter().all(|d| d.allowed == (d.count <= 10)),
        "allowed means count <= limit"
    );
}
