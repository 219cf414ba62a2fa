//! The contract of every storage trait, as small named cases that every backend runs.
//!
//! Behind the `testing` feature: nothing here is compiled into the server. One module per
//! trait holds one `async fn` per contract (each takes the store(s) it exercises as trait
//! objects and panics with a message saying which expectation failed) and an `all` that runs
//! every case at once. [`contract_tests!`](crate::contract_tests) turns a module's cases into
//! one `#[tokio::test]` each for one backend, so a failure names the broken contract and the
//! backend (the test binary). Cases only create records with fresh random names and ids and
//! only look at what they created, so they can share one database and run concurrently (also
//! with each other: see [`run_all`]).
//!
//! ```no_run
//! # async fn example() -> canvas_storage::StorageResult<()> {
//! let dir = std::path::Path::new("/tmp/canvas-test");
//! let storage = canvas_storage::Storage::embedded(dir).await?;
//! canvas_storage::testing::run_all(&storage).await;
//! # Ok(())
//! # }
//! ```
//!
//! Cases that need users (projects, audit) take a [`UserStore`] as well, since those records
//! refer to real users and organizations in the relational backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a broken expectation panics with its message"
)]

pub mod audit;
pub mod canvases;
pub mod data;
pub mod interactions;
pub mod presence;
pub mod projects;
pub mod rate_limits;
pub mod results;
pub mod sessions;
pub mod templates;
pub mod users;
pub mod versions;
pub mod webhooks;

use crate::{NewUser, Storage, StorageError, StorageResult, User, UserStore};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Pause between writes whose order a check depends on ("newest first", "later versions are
/// later"): the stores stamp records with their own clock, so the only way to make two
/// records' timestamps differ is to let that clock move. Longer than the coarsest timestamp
/// resolution of any backend (milliseconds in MongoDB).
const TICK: Duration = Duration::from_millis(15);

/// Runs every case of every suite against one [`Storage`], concurrently.
pub async fn run_all(storage: &Storage) {
    tokio::join!(
        users::all(&*storage.users),
        sessions::all(&*storage.sessions),
        projects::all(&*storage.users, &*storage.projects),
        audit::all(&*storage.users, &*storage.audit),
        data::all(&*storage.users, &*storage.projects, &*storage.data),
        canvases::all(&*storage.canvases),
        interactions::all(&*storage.canvases, &*storage.interactions),
        templates::all(&*storage.templates),
        versions::all(&*storage.canvases, &*storage.versions),
        presence::all(&*storage.presence),
        rate_limits::all(&*storage.rate_limits),
        results::all(&*storage.results),
        webhooks::all(&*storage.users, &*storage.projects, &*storage.webhooks),
    );
}

/// One `#[tokio::test]` per case of a suite, for one backend.
///
/// `contract_tests!(MODULE, FIXTURE, |STORE| (ARGS))`: for each case of
/// `testing::MODULE`, a test (in a module named after the trait, e.g. `user_store`) that
/// calls `FIXTURE(|STORE| async move { case ARGS.await })`. The fixture makes a store, hands
/// it to the closure, awaits what it returns and cleans up; the arguments are what the case
/// takes (`(&store)`, or `(&store, &store)` for the suites that take two stores). The tests
/// are `#[tokio::test]`s, so the calling crate needs `tokio` with its `macros` feature.
///
/// ```no_run
/// use canvas_storage::embedded::SqliteStore;
///
/// async fn with_store<F, Fut>(test: F)
/// where
///     F: FnOnce(SqliteStore) -> Fut,
///     Fut: std::future::Future<Output = ()>,
/// {
///     let store = SqliteStore::open_in_memory().await.expect("open_in_memory");
///     test(store).await;
/// }
///
/// canvas_storage::contract_tests!(users, with_store, |store| (&store));
/// canvas_storage::contract_tests!(projects, with_store, |store| (&store, &store));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! contract_tests {
    (audit, $($rest:tt)*) => { $crate::__audit_cases!(__contract_tests! ($($rest)*)); };
    (canvases, $($rest:tt)*) => { $crate::__canvas_cases!(__contract_tests! ($($rest)*)); };
    (data, $($rest:tt)*) => { $crate::__data_cases!(__contract_tests! ($($rest)*)); };
    (interactions, $($rest:tt)*) => {
        $crate::__interaction_cases!(__contract_tests! ($($rest)*));
    };
    (presence, $($rest:tt)*) => { $crate::__presence_cases!(__contract_tests! ($($rest)*)); };
    (projects, $($rest:tt)*) => { $crate::__project_cases!(__contract_tests! ($($rest)*)); };
    (rate_limits, $($rest:tt)*) => {
        $crate::__rate_limit_cases!(__contract_tests! ($($rest)*));
    };
    (results, $($rest:tt)*) => { $crate::__result_cases!(__contract_tests! ($($rest)*)); };
    (sessions, $($rest:tt)*) => { $crate::__session_cases!(__contract_tests! ($($rest)*)); };
    (templates, $($rest:tt)*) => { $crate::__template_cases!(__contract_tests! ($($rest)*)); };
    (users, $($rest:tt)*) => { $crate::__user_cases!(__contract_tests! ($($rest)*)); };
    (versions, $($rest:tt)*) => { $crate::__version_cases!(__contract_tests! ($($rest)*)); };
    (webhooks, $($rest:tt)*) => { $crate::__webhook_cases!(__contract_tests! ($($rest)*)); };
}

/// What [`contract_tests!`](crate::contract_tests) makes of one suite's list of cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    (($with:path, |$store:ident| $args:tt) $module:ident $tests:ident [$($case:ident),* $(,)?]) => {
        mod $tests {
            #[allow(unused_imports, reason = "the fixture may be any item of the parent")]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    $with(|$store| async move {
                        $crate::testing::$module::$case $args.await;
                    })
                    .await;
                }
            )*
        }
    };
}

/// The body of a suite's `all`: every case at once, on the same arguments.
#[doc(hidden)]
#[macro_export]
macro_rules! __join_cases {
    ($args:tt $module:ident $tests:ident [$($case:ident),* $(,)?]) => {
        tokio::join!($($crate::testing::$module::$case $args),*)
    };
}

/// A test service the integration tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL, by an admin URL (one allowed to create and drop databases).
    Postgres,
    /// A MongoDB-compatible server.
    Mongo,
    /// Redis.
    Redis,
}

impl Service {
    /// The environment variable with its URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Postgres => "DATABASE_URL_TEST",
            Service::Mongo => "MONGODB_URI_TEST",
            Service::Redis => "REDIS_URL_TEST",
        }
    }

    /// What it is and an example URL, for the message when it is missing.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Service::Postgres => (
                "a PostgreSQL admin URL (one allowed to create databases)",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            Service::Mongo => (
                "a MongoDB-compatible server",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            ),
            Service::Redis => ("a Redis server", "redis://127.0.0.1:6379/0"),
        }
    }
}

/// The URL of a test service from its environment variable. Panics, saying how to provide
/// it, when the variable is unset or blank: a missing service must fail its tests, never
/// let them pass for green.
pub fn service_url(service: Service) -> String {
    let var = service.env_var();
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let (what, example) = service.describe();
            panic!(
                "{var} is not set, and these tests need {what}. Run ./scripts/test.sh (it \
                 provides one and sets {var}), or set it yourself, e.g. {var}={example}"
            )
        }
    }
}

/// A string unique to this call: `{prefix}{32 hex digits}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

/// Signs up a fresh user (unique email and username, a dummy password hash).
pub async fn new_user(users: &dyn UserStore) -> User {
    let name = unique("user_");
    users
        .create_user(NewUser {
            email: format!("{name}@example.com"),
            username: name,
            hashed_password: "$argon2id$dummy".into(),
        })
        .await
        .expect("create_user of a fresh user must succeed")
}

/// Polls `check` until it holds; panics naming `what` if it still does not after
/// `within`. For what the store does by itself over time (expiry), so a test waits exactly
/// as long as the store takes instead of a fixed guess.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: StorageResult<T>, field: &str, what: &str) {
    match result {
        Err(StorageError::Conflict(f)) => {
            assert_eq!(f, field, "{what}: Conflict must name the field {field:?}")
        }
        other => panic!("{what}: expected Conflict({field:?}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: StorageResult<T>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::NotFound(_))),
        "{what}: expected NotFound, got {result:?}"
    );
}
