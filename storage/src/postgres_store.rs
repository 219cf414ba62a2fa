//! The PostgreSQL backend of the relational stores: [`UserStore`](crate::UserStore),
//! [`ProjectStore`](crate::ProjectStore) and [`AuditStore`](crate::AuditStore).
//!
//! [`PgStore`] connects with [`PgStore::connect`], which checks the connection and brings the
//! schema up to date (`migrations/postgres/`: the seed's ten tables exactly, then the indexes
//! the product needs). Sessions, canvases, presence and rate limits are not kept here.
//!
//! | file | implements | tables |
//! |---|---|---|
//! | `postgres_store/users.rs` | [`UserStore`](crate::UserStore) | organizations, users |
//! | `postgres_store/projects.rs` | [`ProjectStore`](crate::ProjectStore) | projects, project_members |
//! | `postgres_store/audit.rs` | [`AuditStore`](crate::AuditStore) | audit_logs |
//!
//! The behaviour is that of the embedded [`SqliteStore`](crate::embedded::SqliteStore); the
//! shared suites in [`testing`](crate::testing) check both.
//!
//! ## Stored forms
//! UUIDs are `UUID`, JSON is `JSONB`, client addresses are `INET`. Timestamps are the seed's
//! `TIMESTAMP` (without time zone) holding UTC: they are written from Rust as UTC (never from
//! the session time zone), truncated to the microseconds PostgreSQL keeps, so a record
//! returned from a write equals the same record read back; and sqlx starts every session with
//! `TimeZone = UTC`, so the schema's `CURRENT_TIMESTAMP` defaults are UTC as well.
//!
//! ## Errors
//! A unique violation becomes `Conflict(field)`, chosen by the violated constraint's name
//! (`users_email_key` and `users_email_lower_key`: `email`; `users_username_key` and
//! `users_username_lower_key`: `username`; `organizations_slug_key`: `slug`); a foreign-key
//! violation becomes `NotFound`. Connecting fails with [`StorageError::Unreachable`] naming `PostgreSQL`.
//!
//! ## Concurrency
//! Statements run under PostgreSQL's default READ COMMITTED isolation; the unique constraints
//! are the last word on races (two signups with one email: one gets `Conflict("email")`), and
//! a new organization's slug is claimed with `INSERT ... ON CONFLICT (slug) DO NOTHING`, so
//! concurrent signups whose usernames make the same slug both succeed.

mod audit;
mod projects;
mod users;

use crate::{StorageError, StorageResult};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Row};
use std::str::FromStr;
use std::time::Duration;

/// The service name in [`StorageError::Unreachable`].
pub const SERVICE: &str = "PostgreSQL";

/// Connections in the pool. The stores' statements are short; PostgreSQL's default limit is
/// 100 connections, shared by every server node.
pub const MAX_CONNECTIONS: u32 = 10;

/// How long connecting, and later taking a connection from the pool, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Oldest server version (`server_version_num`) the schema works on: `gen_random_uuid()` is
/// built in from PostgreSQL 13.
const MIN_SERVER_VERSION: i32 = 130_000;

/// The schema migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The relational stores on one PostgreSQL connection pool. Cheap to clone (the pool is
/// reference-counted).
#[derive(Clone, Debug)]
pub struct PgStore {
    /// The connection pool; every query of every store goes through it.
    pool: PgPool,
}

impl PgStore {
    /// Where execution records are written: the pool, like everything else.
    fn records(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction for several statements that must happen together.
    async fn begin_write(&self) -> StorageResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with any of sqlx's URL parameters), checks the connection, runs the migrations and
    /// returns a store over a pool of at most [`MAX_CONNECTIONS`] connections.
    ///
    /// Fails with [`StorageError::Unreachable`] (`service` = `"PostgreSQL"`) if the URL does
    /// not parse, the server cannot be reached within [`CONNECT_TIMEOUT`], refuses the login,
    /// has no such database, or is older than PostgreSQL 13; the cause names the server as
    /// `postgres://user@host:port/database`, never with the password. A failing migration is
    /// [`StorageError::Migrate`].
    pub async fn connect(url: &str) -> StorageResult<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| unreachable(url, "invalid PostgreSQL URL: ", e.to_string()))?;
        let context = format!("{}: ", display_target(&options));
        let fail = |cause: String| unreachable(url, &context, cause);

        // One direct connection first: the pool retries a refused connection until its
        // timeout and then reports only "timed out", while this reports the cause at once.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| fail(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| fail(e.to_string()))?;
        match version.trim().parse::<i32>() {
            Ok(v) if v >= MIN_SERVER_VERSION => {}
            _ => {
                return Err(fail(format!(
                    "server version {version} is too old: PostgreSQL 13 or later is needed"
                )));
            }
        }
        // Best effort: the check is done either way.
        let _ = conn.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| fail(e.to_string()))?;
        // Concurrent starts of several nodes are safe: sqlx holds an advisory lock while it
        // migrates. (Through the pool: migrating on `&mut PgConnection` would make this
        // future not `Send`.)
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The connection pool (for tests and maintenance queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `postgres://user@host:port/database` for messages: what the options connect to, without
/// the password.
fn display_target(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

/// The `Unreachable` error for a connection to `url`: `context` (which the caller builds
/// without the password) and `cause`, with anything in `cause` that could be the URL's
/// password replaced by `***`.
fn unreachable(url: &str, context: &str, cause: String) -> StorageError {
    StorageError::Unreachable {
        service: SERVICE,
        cause: format!("{context}{}", scrub(url, cause)),
    }
}

/// `text` with the password of `url` (as written and percent-decoded) replaced by `***`.
/// sqlx's errors do not quote the URL; this is a second line of defence.
fn scrub(url: &str, mut text: String) -> String {
    for secret in url_passwords(url) {
        if !secret.is_empty() {
            text = text.replace(&secret, "***");
        }
    }
    text
}

/// What could be the password of `url`: the user info after its first `:` and the value of
/// a `password=` query parameter; each as written and percent-decoded.
fn url_passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((userinfo, _host)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        found.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=')
                && key.eq_ignore_ascii_case("password")
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found
}

/// `%XX` escapes decoded (invalid ones kept as written); not UTF-8 is replaced lossily.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Now, truncated to the microseconds a `TIMESTAMP` keeps, so a record returned from a write
/// equals the same record read back.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The stored form of a timestamp: UTC wall time for a `TIMESTAMP` column, microseconds.
/// (Binding a `DateTime<Utc>` would send a `TIMESTAMPTZ`, which PostgreSQL converts to the
/// column's `TIMESTAMP` through the session's time zone.)
fn ts(t: DateTime<Utc>) -> NaiveDateTime {
    t.trunc_subsecs(6).naive_utc()
}

/// The stored form of a JSON value, for a `JSONB` column.
fn json(v: &serde_json::Value) -> sqlx::types::Json<&serde_json::Value> {
    sqlx::types::Json(v)
}

/// The stored form of a count, for an `INTEGER` column (saturating at its bounds).
fn int(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// An id as PostgreSQL's `UUID` column takes it.
fn id(v: uuid::Uuid) -> uuid::Uuid {
    v
}

/// The statement as written: PostgreSQL's placeholders are the shared statements' own.
macro_rules! postgres {
    ($statement:expr) => {
        $statement
    };
}

crate::sql::data::impl_data_store!(
    PgStore, sql: postgres, uuid: id, ts: ts, json: json, int: int, now: now
);

crate::sql::webhooks::impl_webhook_store!(
    PgStore, sql: postgres, claim: crate::sql::webhooks::CLAIM_PG, uuid: id, ts: ts,
    json: json, int: int, now: now
);

/// Reads a nullable `TIMESTAMP` column as UTC.
fn get_opt_ts(row: &PgRow, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
    let t: Option<NaiveDateTime> = row.try_get(col)?;
    Ok(t.map(|t| t.and_utc()))
}

/// Reads a role column (`Role::as_str` form).
fn get_role(row: &PgRow, col: &str) -> StorageResult<canvas_engine::Role> {
    let s: String = row.try_get(col)?;
    crate::sql::parse_role(col, &s)
}

impl crate::sql::SqlRow for PgRow {
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<uuid::Uuid>> {
        Ok(self.try_get(col)?)
    }
    fn opt_ts(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
        get_opt_ts(self, col)
    }
    fn opt_bool(&self, col: &str) -> StorageResult<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    fn opt_json(&self, col: &str) -> StorageResult<Option<serde_json::Value>> {
        let json: Option<sqlx::types::Json<serde_json::Value>> = self.try_get(col)?;
        Ok(json.map(|sqlx::types::Json(v)| v))
    }
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>> {
        Ok(self.try_get::<Option<i32>, _>(col)?.map(i64::from))
    }
    fn opt_ip(&self, col: &str) -> StorageResult<Option<std::net::IpAddr>> {
        Ok(self.try_get(col)?)
    }
}

#[async_trait::async_trait]
impl crate::Probe for PgStore {
    fn service(&self) -> &'static str {
        "postgresql"
    }

    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let url = "postgres://ann:s3cr%21t@db.example:6543/canvas?sslmode=disable";
        let options = PgConnectOptions::from_str(url).expect("valid URL");
        let shown = display_target(&options);
        assert_eq!(shown, "postgres://ann@db.example:6543/canvas");
        let cause = scrub(url, format!("{url} failed; s3cr!t; s3cr%21t"));
        assert!(!cause.contains("s3cr"), "{cause}");
        let err = unreachable(url, &format!("{shown}: "), "refused".into()).to_string();
        assert_eq!(
            err,
            "cannot reach PostgreSQL: postgres://ann@db.example:6543/canvas: refused"
        );

        let url = "postgres://ann@db.example/canvas?password=hunter2&application_name=x";
        let cause = scrub(url, "hunter2 and postgres://x".to_owned());
        assert!(!cause.contains("hunter2"), "{cause}");
        assert!(cause.contains("postgres://x"), "the rest stays: {cause}");
    }

    /// The server spawns `connect` on a multi-threaded runtime.
    #[test]
    fn connect_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let future = PgStore::connect("postgres://localhost/x");
        assert_send(&future);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%2"), "a@b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn timestamps_round_trip_as_utc_microseconds() {
        let t = now();
        assert_eq!(ts(t).and_utc(), t);
        let precise = DateTime::parse_from_rfc3339("2024-01-15T10:30:00.123456789Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(
            ts(precise).to_string(),
            "2024-01-15 10:30:00.123456",
            "truncated, not rounded"
        );
    }
}
