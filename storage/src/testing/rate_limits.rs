//! [`RateLimiter`]: counts up within the window, blocks past the limit (and keeps counting),
//! `n` calls at once, endpoints and subjects (users, client addresses, accounts) independent,
//! `n = 0` reads without counting, concurrent calls counted exactly.

use super::unique;
use crate::{RateDecision, RateLimiter, RateSubject};
use futures_util::future::join_all;
use std::net::IpAddr;
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
            subjects_are_independent,
            a_user_is_the_user_subject,
            ipv6_clients_count_by_their_64,
            zero_calls_read_without_counting,
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

/// One `hit_subject`, checked like [`hit`].
async fn hit_subject(
    limiter: &dyn RateLimiter,
    subject: &RateSubject,
    endpoint: &str,
    n: u32,
    limit: u32,
) -> RateDecision {
    let d = limiter
        .hit_subject(subject, endpoint, n, limit)
        .await
        .expect("hit_subject");
    assert!(
        (1..=60).contains(&d.retry_after_secs),
        "retry_after_secs within the one-minute window: {d:?}"
    );
    d
}

/// A random IPv4 address in the documentation range 198.18.0.0/15, so tests running in
/// parallel on a shared backend do not share windows.
fn random_ipv4() -> IpAddr {
    let bytes = Uuid::new_v4().into_bytes();
    IpAddr::from([198, 18 | (bytes[0] & 1), bytes[1], bytes[2]])
}

/// A user, a client address, an account and that account from that address count apart.
pub async fn subjects_are_independent(limiter: &dyn RateLimiter) {
    let endpoint = unique("subjects_");
    let ip = random_ipv4();
    let account = unique("acct");
    let subjects = [
        RateSubject::User(Uuid::new_v4()),
        RateSubject::ip(ip),
        RateSubject::Account(account.clone()),
        RateSubject::account_ip(account.clone(), ip),
    ];
    for (i, subject) in subjects.iter().enumerate() {
        let n = u32::try_from(i).expect("few subjects") + 1;
        let d = hit_subject(limiter, subject, &endpoint, n, 3).await;
        assert_eq!(d.count, n, "{subject} counts only its own calls");
    }
    let other_ip = RateSubject::account_ip(account, random_ipv4());
    let d = hit_subject(limiter, &other_ip, &endpoint, 1, 3).await;
    assert_eq!(d.count, 1, "the account from another address");
}

/// `hit` counts the same window as `hit_subject` with [`RateSubject::User`].
pub async fn a_user_is_the_user_subject(limiter: &dyn RateLimiter) {
    let (user, endpoint) = (Uuid::new_v4(), unique("user_"));
    hit(limiter, user, &endpoint, 2, 10).await;
    let d = hit_subject(limiter, &RateSubject::User(user), &endpoint, 1, 10).await;
    assert_eq!(d.count, 3);
}

/// Two IPv6 addresses of one /64 share a window (one host holds the whole prefix); another
/// /64 has its own; an IPv4-mapped address counts as its IPv4 address.
pub async fn ipv6_clients_count_by_their_64(limiter: &dyn RateLimiter) {
    let endpoint = unique("v6_");
    let net = Uuid::new_v4().as_u128() & 0x0000_ffff_ffff_ffff_0000_0000_0000_0000;
    let prefix = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | net;
    let a = IpAddr::from(std::net::Ipv6Addr::from(prefix | 1));
    let b = IpAddr::from(std::net::Ipv6Addr::from(prefix | 0xdead_beef));
    let elsewhere = IpAddr::from(std::net::Ipv6Addr::from(prefix + (1 << 64)));
    hit_subject(limiter, &RateSubject::ip(a), &endpoint, 1, 5).await;
    let d = hit_subject(limiter, &RateSubject::ip(b), &endpoint, 1, 5).await;
    assert_eq!(d.count, 2, "the same /64");
    let d = hit_subject(limiter, &RateSubject::ip(elsewhere), &endpoint, 1, 5).await;
    assert_eq!(d.count, 1, "another /64");

    let v4 = random_ipv4();
    let IpAddr::V4(v4_inner) = v4 else {
        unreachable!("random_ipv4 is IPv4")
    };
    let mapped = IpAddr::V6(v4_inner.to_ipv6_mapped());
    hit_subject(limiter, &RateSubject::ip(v4), &endpoint, 1, 5).await;
    let d = hit_subject(limiter, &RateSubject::ip(mapped), &endpoint, 1, 5).await;
    assert_eq!(d.count, 2, "an IPv4-mapped address is its IPv4 address");
}

/// `n = 0` reports the count so far without adding to it, on a fresh window too.
pub async fn zero_calls_read_without_counting(limiter: &dyn RateLimiter) {
    let subject = RateSubject::Account(unique("peek"));
    let endpoint = unique("peek_");
    let d = hit_subject(limiter, &subject, &endpoint, 0, 3).await;
    assert_eq!((d.allowed, d.count), (true, 0), "nothing counted yet");
    hit_subject(limiter, &subject, &endpoint, 4, 3).await;
    let d = hit_subject(limiter, &subject, &endpoint, 0, 3).await;
    assert_eq!((d.allowed, d.count), (false, 4), "a read sees the count");
    let d = hit_subject(limiter, &subject, &endpoint, 0, 3).await;
    assert_eq!(d.count, 4, "and does not add to it");
}
