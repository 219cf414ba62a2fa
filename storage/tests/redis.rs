//! The Redis backend against the generic suites, plus what only it has: the seed's key
//! layout with its TTLs, and failing fast when Redis is down.
//!
//! Needs `REDIS_URL_TEST` (e.g. `redis://127.0.0.1:6379/0`); `./scripts/test.sh` provides
//! one. Without it every test here fails: a missing service must not pass for green. Each
//! test works under its own key prefix and deletes its keys at the end, so tests run in
//! parallel on one server, next to other users of it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use canvas_storage::redis_store::{RedisStore, STATE_TTL};
use canvas_storage::testing::{self, Service};
use canvas_storage::{
    PresenceEntry, PresenceStore, RateLimiter, RateSubject, SessionStore, StorageError,
};
use chrono::{TimeDelta, Utc};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn redis_url() -> String {
    testing::service_url(Service::Redis)
}

/// A raw connection to look at the keys behind the store's back.
async fn raw() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("REDIS_URL_TEST parses")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to REDIS_URL_TEST")
}

/// The keys under `prefix`.
async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut iter = conn
        .scan_match::<_, String>(format!("{prefix}*"))
        .await
        .expect("SCAN");
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key.expect("SCAN item"));
    }
    keys
}

/// Runs `body` with a store under a fresh key prefix, then deletes every key under that
/// prefix, whether the body passed or panicked (then the panic goes on).
async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(RedisStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let prefix = testing::unique("canvas-test:") + ":";
    let store = RedisStore::connect(&redis_url(), &prefix)
        .await
        .expect("connect to REDIS_URL_TEST");
    assert_eq!(store.key_prefix(), prefix);
    let outcome = tokio::spawn(body(store)).await;
    let keys = keys_under(&prefix).await;
    if !keys.is_empty() {
        let _: usize = raw().await.del(&keys).await.expect("DEL");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// How long a test waits for Redis to expire a key.
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// `(TYPE, PTTL)` of a key.
async fn type_and_pttl(key: &str) -> (String, i64) {
    let mut conn = raw().await;
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("TYPE");
    let pttl: i64 = conn.pttl(key).await.expect("PTTL");
    (kind, pttl)
}

canvas_storage::contract_tests!(sessions, with_store, |store| (&store));
canvas_storage::contract_tests!(presence, with_store, |store| (&store));
canvas_storage::contract_tests!(rate_limits, with_store, |store| (&store));
canvas_storage::contract_tests!(results, with_store, |store| (&store));

/// Every suite at once on one store, twice over: they must not see each other's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suites_share_one_store() {
    with_store(|store| async move {
        tokio::join!(
            testing::sessions::all(&store),
            testing::sessions::all(&store),
            testing::presence::all(&store),
            testing::presence::all(&store),
            testing::rate_limits::all(&store),
            testing::rate_limits::all(&store),
        );
    })
    .await;
}

#[tokio::test]
async fn unreachable_redis_fails_fast_without_the_password() {
    // Port 1 on loopback: nothing listens there, the connection is refused.
    let started = Instant::now();
    let result = RedisStore::connect("redis://:hunter2-secret@127.0.0.1:1/0", "").await;
    let elapsed = started.elapsed();
    match &result {
        Err(StorageError::Unreachable { service, cause }) => {
            assert_eq!(*service, "Redis");
            assert!(!cause.contains("hunter2"), "the password leaked: {cause}");
            assert!(
                cause.contains("127.0.0.1:1"),
                "the cause says where: {cause}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let message = result.expect_err("unreachable").to_string();
    assert!(message.contains("Redis"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "took {elapsed:?} to give up"
    );

    // A URL that does not parse is reported the same way.
    assert!(matches!(
        RedisStore::connect("http://nope", "").await,
        Err(StorageError::Unreachable {
            service: "Redis",
            ..
        })
    ));
}

/// A server that accepts the connection but never answers: the PING times out.
#[tokio::test]
async fn silent_server_fails_within_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accept and hold connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let result = RedisStore::connect(&format!("redis://127.0.0.1:{port}/0"), "").await;
    assert!(
        matches!(
            result,
            Err(StorageError::Unreachable {
                service: "Redis",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    holder.abort();
}

#[tokio::test]
async fn session_keys_follow_the_seed() {
    with_store(|store| async move {
        let prefix = store.key_prefix().to_owned();
        let user = Uuid::new_v4();
        let key = format!("{prefix}session:{user}");
        let hour = Duration::from_secs(3600);

        let t1 = store.create_session(user, hour).await.expect("create");
        let (kind, pttl) = type_and_pttl(&key).await;
        assert_eq!(kind, "hash");
        assert!(pttl > 3_500_000 && pttl <= 3_600_000, "TTL of 1 h: {pttl}");

        // The field is the token's SHA-256 in hex; the value holds no part of the token.
        let fields: HashMap<String, String> = raw().await.hgetall(&key).await.expect("HGETALL");
        assert_eq!(fields.len(), 1);
        let (field, value) = fields.iter().next().expect("one field");
        assert_eq!(field.len(), 64);
        assert!(
            field
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let (_, secret) = t1.split_once('.').expect("token");
        assert!(!field.contains(secret) && !value.contains(secret));
        let record: serde_json::Value = serde_json::from_str(value).expect("JSON value");
        assert!(record["created_at"].is_string() && record["expires_at"].is_string());

        // A longer session extends the key; a shorter one never shortens it.
        let t2 = store.create_session(user, 2 * hour).await.expect("create");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(
            pttl > 7_100_000 && pttl <= 7_200_000,
            "extended to 2 h: {pttl}"
        );
        store
            .create_session(user, Duration::from_secs(10))
            .await
            .expect("create");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(pttl > 7_100_000, "not shortened: {pttl}");

        // The seed's 24 h: the key's TTL is at most that.
        let day = store
            .create_session(user, Duration::from_secs(24 * 3600))
            .await
            .expect("create");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(pttl > 0 && pttl <= 24 * 3_600_000, "TTL <= 24 h: {pttl}");
        let hlen: usize = raw().await.hlen(&key).await.expect("HLEN");
        assert_eq!(hlen, 4, "one field per session");

        // Logout removes one field; an expired session's field is removed when looked up,
        // and expired fields are swept at the next login.
        store.delete_session(&t2).await.expect("delete");
        let hlen: usize = raw().await.hlen(&key).await.expect("HLEN");
        assert_eq!(hlen, 3);
        // short2 is made first, so once short has expired, short2 has too.
        let short2 = store
            .create_session(user, Duration::from_millis(100))
            .await
            .expect("create");
        let short = store
            .create_session(user, Duration::from_millis(100))
            .await
            .expect("create");
        testing::wait_until("the short session expires", TEN_SECONDS, || async {
            store.session_user(&short).await.expect("lookup").is_none()
        })
        .await;
        assert_eq!(store.session_user(&short).await.expect("lookup"), None);
        let hlen: usize = raw().await.hlen(&key).await.expect("HLEN");
        assert_eq!(
            hlen, 4,
            "the looked-up expired field is gone, the other not yet"
        );
        store.create_session(user, hour).await.expect("create");
        let hlen: usize = raw().await.hlen(&key).await.expect("HLEN");
        assert_eq!(hlen, 4, "the next login swept the other expired field");
        assert_eq!(store.session_user(&short2).await.expect("lookup"), None);
        for t in [&t1, &day] {
            assert_eq!(store.session_user(t).await.expect("lookup"), Some(user));
        }
    })
    .await;
}

#[tokio::test]
async fn corrupt_session_value_is_reported() {
    with_store(|store| async move {
        let user = Uuid::new_v4();
        let token = store
            .create_session(user, Duration::from_secs(60))
            .await
            .expect("create");
        let key = format!("{}session:{user}", store.key_prefix());
        let fields: HashMap<String, String> = raw().await.hgetall(&key).await.expect("HGETALL");
        let field = fields.keys().next().expect("one field").clone();
        let _: () = raw()
            .await
            .hset(&key, &field, "garbage")
            .await
            .expect("HSET");
        assert!(matches!(
            store.session_user(&token).await,
            Err(StorageError::Corrupt(_))
        ));
        // A login sweeps the unreadable field.
        store
            .create_session(user, Duration::from_secs(60))
            .await
            .expect("create");
        let present: bool = raw().await.hexists(&key, &field).await.expect("HEXISTS");
        assert!(!present, "swept");
    })
    .await;
}

#[tokio::test]
async fn presence_keys_follow_the_seed() {
    with_store(|store| async move {
        let prefix = store.key_prefix().to_owned();
        let canvas = Uuid::new_v4();
        let key = format!("{prefix}canvas:presence:{canvas}");
        let five_minutes = Duration::from_secs(300);
        let entry = |user: Uuid, age: TimeDelta| PresenceEntry {
            user_id: user,
            username: "u".into(),
            cursor: json!({"x": 1}),
            selection: json!(null),
            last_seen: Utc::now() - age,
        };
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        store
            .put_presence(canvas, &entry(a, TimeDelta::zero()), five_minutes)
            .await
            .expect("put");
        let (kind, pttl) = type_and_pttl(&key).await;
        assert_eq!(kind, "hash");
        assert!(pttl > 290_000 && pttl <= 300_000, "5 minute TTL: {pttl}");

        // Fields are user ids; values carry the seed's {cursor, selection, last_seen}.
        let fields: HashMap<String, String> = raw().await.hgetall(&key).await.expect("HGETALL");
        let value: serde_json::Value =
            serde_json::from_str(&fields[&a.to_string()]).expect("JSON entry");
        for name in ["user_id", "username", "cursor", "selection", "last_seen"] {
            assert!(value.get(name).is_some(), "{name} in {value}");
        }

        // Rolling: every write sets the TTL again.
        let _: bool = raw().await.pexpire(&key, 10_000).await.expect("PEXPIRE");
        store
            .put_presence(canvas, &entry(b, TimeDelta::zero()), five_minutes)
            .await
            .expect("put");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(pttl > 290_000, "refreshed by the write: {pttl}");

        // A reader drops stale entries from the hash, not only from its answer.
        let old = Uuid::new_v4();
        store
            .put_presence(canvas, &entry(old, TimeDelta::minutes(6)), five_minutes)
            .await
            .expect("put");
        let listed = store
            .presence(canvas, five_minutes)
            .await
            .expect("presence");
        assert_eq!(listed.len(), 2);
        let present: bool = raw()
            .await
            .hexists(&key, old.to_string())
            .await
            .expect("HEXISTS");
        assert!(!present, "the stale entry was deleted");

        // An unreadable entry is skipped and deleted; the rest still comes back.
        let _: () = raw().await.hset(&key, "junk", "{").await.expect("HSET");
        let listed = store
            .presence(canvas, five_minutes)
            .await
            .expect("presence");
        assert_eq!(listed.len(), 2);
        let present: bool = raw().await.hexists(&key, "junk").await.expect("HEXISTS");
        assert!(!present, "the unreadable entry was deleted");

        // The last one out leaves no key behind.
        store.remove_presence(canvas, a).await.expect("remove");
        store.remove_presence(canvas, b).await.expect("remove");
        let exists: bool = raw().await.exists(&key).await.expect("EXISTS");
        assert!(!exists, "an empty hash is no key");
        // With no writes, the key expires by itself (rolling TTL).
        store
            .put_presence(
                canvas,
                &entry(a, TimeDelta::zero()),
                Duration::from_millis(200),
            )
            .await
            .expect("put");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(
            pttl > 0 && pttl <= 200,
            "the key has the writer's TTL: {pttl}"
        );
        testing::wait_until(
            "the presence key expires with its TTL",
            TEN_SECONDS,
            || async { !raw().await.exists::<_, bool>(&key).await.expect("EXISTS") },
        )
        .await;

        // canvas:state:{id}: field active_users:{node} = JSON array; a generous TTL.
        let state = format!("{prefix}canvas:state:{canvas}");
        store
            .set_active_users(canvas, "node-1", &[a, b])
            .await
            .expect("set");
        let (kind, pttl) = type_and_pttl(&state).await;
        assert_eq!(kind, "hash");
        let state_ms = STATE_TTL.as_millis() as i64;
        assert!(pttl > state_ms - 10_000 && pttl <= state_ms, "{pttl}");
        let raw_list: Option<String> = raw()
            .await
            .hget(&state, "active_users:node-1")
            .await
            .expect("HGET");
        let list: Vec<Uuid> = serde_json::from_str(&raw_list.expect("field")).expect("JSON");
        assert_eq!(list, vec![a, b]);
        // Other fields of canvas state (the seed's current_state, locks) are not users.
        let _: () = raw().await.hset(&state, "locks", "{}").await.expect("HSET");
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(store.active_users(canvas).await.expect("active"), both);
        store
            .set_active_users(canvas, "node-1", &[])
            .await
            .expect("clear");
        let present: bool = raw()
            .await
            .hexists(&state, "active_users:node-1")
            .await
            .expect("HEXISTS");
        assert!(!present, "an empty list deletes the node's field");
        assert!(store.active_users(canvas).await.expect("active").is_empty());
    })
    .await;
}

#[tokio::test]
async fn rate_limit_keys_follow_the_seed() {
    with_store(|store| async move {
        let prefix = store.key_prefix().to_owned();
        let user = Uuid::new_v4();
        let key = format!("{prefix}rate_limit:{user}:canvas.create");

        let d = store.hit(user, "canvas.create", 2, 5).await.expect("hit");
        assert_eq!((d.allowed, d.count, d.retry_after_secs), (true, 2, 60));
        let (kind, pttl) = type_and_pttl(&key).await;
        assert_eq!(kind, "string");
        assert!(pttl > 55_000 && pttl <= 60_000, "one minute TTL: {pttl}");
        let count: String = raw().await.get(&key).await.expect("GET");
        assert_eq!(count, "2", "the value is the request count");

        // Later calls do not move the window's end.
        let _: bool = raw().await.pexpire(&key, 30_000).await.expect("PEXPIRE");
        let d = store.hit(user, "canvas.create", 1, 5).await.expect("hit");
        assert_eq!(d.count, 3);
        assert_eq!(d.retry_after_secs, 30, "the window ends where it did");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(pttl <= 30_000, "TTL not reset: {pttl}");

        // When the window ends (the key expires), counting starts again.
        let _: bool = raw().await.pexpire(&key, 50).await.expect("PEXPIRE");
        testing::wait_until("the counter expires", TEN_SECONDS, || async {
            !raw().await.exists::<_, bool>(&key).await.expect("EXISTS")
        })
        .await;
        let d = store.hit(user, "canvas.create", 1, 5).await.expect("hit");
        assert_eq!((d.allowed, d.count, d.retry_after_secs), (true, 1, 60));

        // A counter somehow left without a TTL gets one instead of blocking forever.
        let _: bool = raw().await.persist(&key).await.expect("PERSIST");
        store.hit(user, "canvas.create", 1, 5).await.expect("hit");
        let (_, pttl) = type_and_pttl(&key).await;
        assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    })
    .await;
}

#[tokio::test]
async fn rate_limit_keys_of_addresses_and_accounts() {
    with_store(|store| async move {
        let prefix = store.key_prefix().to_owned();
        let ip: std::net::IpAddr = "203.0.113.9".parse().expect("address");
        store
            .hit_subject(&RateSubject::ip(ip), "signup", 1, 5)
            .await
            .expect("hit");
        let key = format!("{prefix}rate_limit:ip:203.0.113.9:signup");
        let (kind, pttl) = type_and_pttl(&key).await;
        assert_eq!(kind, "string", "{key}");
        assert!(pttl > 0 && pttl <= 60_000, "{pttl}");

        let v6: std::net::IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("address");
        store
            .hit_subject(&RateSubject::account_ip("k1", v6), "login", 1, 5)
            .await
            .expect("hit");
        let key = format!("{prefix}rate_limit:account:k1:ip:2001:db8:1:2:::login");
        let count: String = raw().await.get(&key).await.expect("GET");
        assert_eq!(count, "1", "an IPv6 client by its /64: {key}");
    })
    .await;
}
