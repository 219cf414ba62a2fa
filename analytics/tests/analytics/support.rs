//! Helpers shared by the modules: an `Analytics` on a temporary folder, sources, bodies,
//! service URLs, a deadline for every test.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use canvas_analytics::{
    Analytics, AnalyticsConfig, DataSource, Limits, Query, QueryResult, SourceConfig, SourceKind,
    Target,
};
use futures_util::Stream;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Every test body runs under this bound.
pub const TEST_DEADLINE: Duration = Duration::from_secs(120);

pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, f)
        .await
        .expect("the test ran past its deadline")
}

/// A service URL from the environment, or a loud failure.
pub fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run ./scripts/test.sh, or export it (see scripts/lib/services.sh)"
        )
    })
}

pub struct Fixture {
    pub analytics: Analytics,
    _dir: tempfile::TempDir,
}

pub fn fixture(change: impl FnOnce(&mut AnalyticsConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = AnalyticsConfig::new(dir.path());
    config.allow_private_targets = true;
    config.default_redis_url = std::env::var("REDIS_URL_TEST").ok();
    change(&mut config);
    Fixture {
        analytics: Analytics::new(config).expect("analytics"),
        _dir: dir,
    }
}

pub fn local() -> Fixture {
    fixture(|_| {})
}

pub fn limits(change: impl FnOnce(&mut Limits)) -> impl FnOnce(&mut AnalyticsConfig) {
    move |c| change(&mut c.limits)
}

pub fn source(name: &str, kind: SourceKind, config: Value) -> DataSource {
    DataSource {
        id: Uuid::new_v4(),
        name: name.to_string(),
        config: SourceConfig::parse(kind, &config).expect("config"),
        data_version: None,
    }
}

/// A request body in chunks of `chunk` bytes.
pub fn body(
    bytes: impl Into<Vec<u8>>,
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let bytes: Vec<u8> = bytes.into();
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks)
}

/// Runs `sql` with `parameters` declared as `decls` on `target`.
pub async fn run(
    analytics: &Analytics,
    target: Target<'_>,
    sql: &str,
    decls: Value,
    values: Value,
) -> canvas_analytics::Result<QueryResult> {
    let query = Query::new("sql", sql, &decls)?;
    let bound = query.bind(&values)?;
    analytics
        .execute(&bound, target, &CancellationToken::new())
        .await
}

/// Runs `text` with no parameters.
pub async fn sql(
    analytics: &Analytics,
    target: Target<'_>,
    text: &str,
) -> canvas_analytics::Result<QueryResult> {
    run(analytics, target, text, Value::Null, Value::Null).await
}

/// The local folder of a source's objects.
pub fn source_dir(f: &Fixture, id: Uuid) -> std::path::PathBuf {
    f.analytics
        .config()
        .data_dir
        .join("analytics/sources")
        .join(id.to_string())
}

pub fn col_names(r: &QueryResult) -> Vec<&str> {
    r.columns.iter().map(|c| c.name.as_str()).collect()
}

pub fn short_id() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_string()
}
