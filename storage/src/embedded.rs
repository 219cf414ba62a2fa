//! The embedded backend: every store in one SQLite file, `{data_dir}/canvas.sqlite3`.
//!
//! [`SqliteStore`] implements all five traits over one connection pool. The schema lives in
//! `migrations/sqlite/` and mirrors the seed's PostgreSQL tables (organizations, users,
//! projects, project_members, audit_logs) plus `sessions`, `canvases` and `canvas_updates`.
//! Each concern has its own file:
//!
//! | file | implements | tables |
//! |---|---|---|
//! | `embedded/users.rs` | [`UserStore`](crate::UserStore) | organizations, users |
//! | `embedded/sessions.rs` | [`SessionStore`](crate::SessionStore) | sessions |
//! | `embedded/projects.rs` | [`ProjectStore`](crate::ProjectStore) | projects, project_members |
//! | `embedded/audit.rs` | [`AuditStore`](crate::AuditStore) | audit_logs |
//! | `embedded/canvas.rs` | [`CanvasStore`](crate::CanvasStore) | canvases, canvas_updates |
//! | `embedded/interactions.rs` | [`InteractionStore`](crate::InteractionStore) | canvas_interactions, canvas_favorites |
//! | `embedded/templates.rs` | [`TemplateStore`](crate::TemplateStore) | canvas_templates |
//! | `embedded/versions.rs` | [`VersionStore`](crate::VersionStore) | canvas_versions |
//!
//! ## Stored forms
//! UUIDs are TEXT (hyphenated); timestamps are TEXT in the fixed-width RFC 3339 UTC form
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, so they compare and sort as strings, and every
//! returned timestamp is truncated to microseconds like PostgreSQL's); JSON is TEXT.
//!
//! ## Durability
//! The database runs in WAL mode with `synchronous = FULL`: every commit fsyncs the WAL
//! before it returns, so an [`append_updates`](crate::CanvasStore::append_updates) that
//! returned `Ok` survives a kill -9 of the process *and* a power loss or OS crash. With
//! `synchronous = NORMAL` the WAL is only fsynced at checkpoints: a commit would still survive
//! a crash of the process (the bytes are in the OS page cache), but the last transactions
//! could be lost on power loss. The server acknowledges an update to its sender only after
//! the append returns, and groups updates into one append per batch, so the price is one
//! fsync per batch, not per update; that is the promise "durable" makes, so FULL it is.
//!
//! One kind of row is written without that fsync: query execution records
//! ([`create_execution`](crate::DataStore::create_execution),
//! [`update_execution`](crate::DataStore::update_execution)) go through a connection of their
//! own with `synchronous = NORMAL`. Such a commit is visible to every reader at once and
//! survives a crash of the process (it is in the WAL, in the OS page cache); only a power
//! loss or OS crash before the next fsync of the WAL (the next FULL commit of any other
//! write, or a checkpoint) can lose it, never corrupt the file (WAL mode). An execution
//! record is a run's history and a pointer to its result, and that result lives in the
//! result cache, which the embedded default keeps in the process's memory: whatever loses
//! the record has lost the result with it. (With Redis holding the results, a lost record
//! only makes its id answer 404; the result is still found by its cache key.) Its fsync was
//! most of an execution's overhead on a VM disk (about 3.6 ms of a ~5 ms round trip beyond
//! the engine; BENCHMARKS.md).
//!
//! ## Concurrency
//! Readers run in parallel (WAL). Every write transaction starts with `BEGIN IMMEDIATE`, so
//! it takes SQLite's single write lock before it reads what it bases its writes on (the last
//! sequence number, a taken slug): concurrent writers queue on the lock (`busy_timeout`)
//! instead of failing with `SQLITE_BUSY` when upgrading a read transaction.
//!
//! Those transactions all run on one dedicated connection (a pool of one, `writer`), so they
//! queue in the pool rather than on the lock, and that connection keeps its page cache: SQLite
//! drops a connection's whole cache when it starts a transaction after *another* connection
//! wrote, so with writes spread over the pool every group commit re-read the log's B-tree
//! pages from the file (about 70 `pread`s per commit under W2, most of the storage thread's
//! time; BENCHMARKS.md).

/// A shared statement of [`crate::sql`] (PostgreSQL placeholders) in SQLite's form,
/// converted once per call site.
macro_rules! sqlite {
    ($statement:expr) => {{
        static STATEMENT: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| crate::sql::sqlite_placeholders($statement));
        STATEMENT.as_str()
    }};
}

mod audit;
mod canvas;
mod interactions;
mod projects;
mod sessions;
mod templates;
mod users;
mod versions;

use crate::{StorageError, StorageResult};
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// Name of the database file inside the data directory.
pub const DB_FILE_NAME: &str = "canvas.sqlite3";

/// How long a connection waits for SQLite's write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of a file-backed store: several readers run in parallel under WAL; writers
/// take turns on SQLite's single write lock anyway.
const MAX_CONNECTIONS: u32 = 8;

/// Every store of the embedded default in one SQLite database. Cheap to clone (the pool is
/// reference-counted).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The connection pool for reads and single-statement writes.
    pool: SqlitePool,
    /// The one connection that runs write transactions ([`SqliteStore::begin_write`]).
    writer: SqlitePool,
    /// The one connection that writes execution records, with `synchronous = NORMAL` (see
    /// "Durability" above).
    records: SqlitePool,
}

/// A pool of one connection kept open for the store's life (the writer, the records).
async fn one_connection(options: SqliteConnectOptions) -> StorageResult<SqlitePool> {
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?)
}

impl SqliteStore {
    /// Opens (creating it and `data_dir` if needed) `{data_dir}/canvas.sqlite3` in WAL mode
    /// with `synchronous = FULL` and foreign keys on, and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> StorageResult<Self> {
        tokio::fs::create_dir_all(data_dir).await?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE_NAME))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = one_connection(options.clone()).await?;
        let records = one_connection(options.synchronous(SqliteSynchronous::Normal)).await?;
        Ok(SqliteStore {
            pool,
            writer,
            records,
        })
    }

    /// A throwaway store in memory, for tests. It uses a single connection (each connection
    /// to `:memory:` would otherwise see its own empty database), so queries run one at a
    /// time; the data lives as long as that connection.
    pub async fn open_in_memory() -> StorageResult<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            writer: pool.clone(),
            records: pool.clone(),
            pool,
        })
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.records.close().await;
        self.pool.close().await;
    }

    /// Where execution records are written (see "Durability" above).
    fn records(&self) -> &SqlitePool {
        &self.records
    }

    /// Starts a write transaction holding SQLite's write lock from its first statement.
    async fn begin_write(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The stored form of a JSON value, for a TEXT column.
fn json(v: &serde_json::Value) -> String {
    v.to_string()
}

/// The stored form of a count, for an INTEGER column.
fn int(v: i64) -> i64 {
    v
}

/// The stored form of an id, for a TEXT column.
fn id(v: Uuid) -> String {
    v.to_string()
}

crate::sql::data::impl_data_store!(
    SqliteStore, sql: sqlite, uuid: id, ts: ts, json: json, int: int, now: now
);

crate::sql::webhooks::impl_webhook_store!(
    SqliteStore, sql: sqlite, claim: crate::sql::webhooks::CLAIM_SQLITE, uuid: id, ts: ts,
    json: json, int: int, now: now
);

/// Now, truncated to the microseconds the stored form keeps, so a record returned from a
/// write equals the same record read back.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The stored form of a timestamp: fixed-width RFC 3339 UTC with microseconds.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Reads a TEXT timestamp column.
fn get_ts(row: &SqliteRow, col: &str) -> StorageResult<DateTime<Utc>> {
    let s: String = row.try_get(col)?;
    parse_ts(&s, col)
}

/// Reads a nullable TEXT timestamp column.
fn get_opt_ts(row: &SqliteRow, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| parse_ts(&s, col)).transpose()
}

fn parse_ts(s: &str, col: &str) -> StorageResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StorageError::Corrupt(format!("{col} = {s:?}: {e}")))
}

/// Reads a TEXT UUID column.
fn get_uuid(row: &SqliteRow, col: &str) -> StorageResult<Uuid> {
    let s: String = row.try_get(col)?;
    parse_uuid(&s, col)
}

/// Reads a nullable TEXT UUID column.
fn get_opt_uuid(row: &SqliteRow, col: &str) -> StorageResult<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| parse_uuid(&s, col)).transpose()
}

fn parse_uuid(s: &str, col: &str) -> StorageResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StorageError::Corrupt(format!("{col} = {s:?}: {e}")))
}

/// Reads a role column (`Role::as_str` form).
fn get_role(row: &SqliteRow, col: &str) -> StorageResult<canvas_engine::Role> {
    let s: String = row.try_get(col)?;
    crate::sql::parse_role(col, &s)
}

impl crate::sql::SqlRow for SqliteRow {
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>> {
        get_opt_uuid(self, col)
    }
    fn opt_ts(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
        get_opt_ts(self, col)
    }
    fn opt_bool(&self, col: &str) -> StorageResult<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    /// JSON is TEXT.
    fn opt_json(&self, col: &str) -> StorageResult<Option<serde_json::Value>> {
        let s: Option<String> = self.try_get(col)?;
        s.map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("{col}: {e}")))
    }
    /// Addresses are TEXT.
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn opt_ip(&self, col: &str) -> StorageResult<Option<std::net::IpAddr>> {
        let s: Option<String> = self.try_get(col)?;
        s.map(|s| s.parse())
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("{col}: {e}")))
    }
}

#[async_trait::async_trait]
impl crate::Probe for SqliteStore {
    fn service(&self) -> &'static str {
        "sqlite"
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
    fn timestamps_are_fixed_width_and_round_trip() {
        let t = now();
        let s = ts(t);
        assert_eq!(s.len(), "2024-01-15T10:30:00.000000Z".len(), "{s}");
        assert_eq!(parse_ts(&s, "t").expect("parses"), t);
        let whole = DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(ts(whole), "2024-01-15T10:30:00.000000Z");
    }
}
