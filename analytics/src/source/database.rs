//! Database sources: PostgreSQL and MySQL/MariaDB through sqlx. A query runs on the
//! database itself (push-down):
//!
//! 1. the text must parse as one query (sqlparser, the database's dialect) when it parses at
//!    all; anything else (DDL, DML, SET, ...) is refused before it is sent;
//! 2. a READ ONLY transaction with a statement timeout (`SET LOCAL statement_timeout` on
//!    PostgreSQL, `max_statement_time` on MariaDB, `max_execution_time` on MySQL);
//! 3. the statement is prepared alone (its columns and types; syntax and unknown-name
//!    errors come from the database with its position), then run wrapped as
//!    `SELECT ... FROM (<query>) AS q LIMIT <cap + 1>` with the parameters bound;
//! 4. the transaction is rolled back.
//!
//! A cancelled execution (or one past the client-side backstop) also stops its statement on
//! the database: the session's id is read when the transaction starts, and another pooled
//! connection sends `pg_cancel_backend(pid)` (PostgreSQL) or `KILL QUERY id` (MySQL/MariaDB).
//! Dropping the future alone would leave the database working until its own timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPool, PgPoolOptions};
use sqlx::{
    AssertSqlSafe, Column as _, Connection, Executor, Row, SqlSafeStr, Statement as _, TypeInfo,
};
use tokio_util::sync::CancellationToken;

use super::{ColumnInfo, SchemaInfo, SyncReport, TableInfo};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::query::params::{BoundQuery, ParamValue, Placeholders};
use crate::query::result::{Column, QueryResult, RowCollector};

/// Which database a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbEngine {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    #[serde(alias = "postgresql")]
    Postgres,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    #[serde(alias = "mariadb")]
    Mysql,
}

/// A database source's `connection_config`: a `url`, or `host`/`port`/`database`/`user`/
/// `password`. `url` and `password` are secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres` or `mysql` (`mariadb` is an alias); taken from the url's scheme when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<DbEngine>,
    /// A connection URL (`postgres://user:pw@host:5432/db`, `mysql://user:pw@host/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The host name or address (without `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port (5432 or 3306 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl DatabaseConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        match (&self.url, &self.host) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "database source: give 'url' or 'host', not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::Config(
                    "database source: 'url' or 'host' is required".into(),
                ));
            }
            _ => {}
        }
        let engine = self.engine()?;
        if let Some(url) = &self.url {
            match engine {
                DbEngine::Postgres => {
                    url.parse::<PgConnectOptions>()
                        .map_err(|e| Error::Config(format!("database url: {e}")))?;
                }
                DbEngine::Mysql => {
                    url.parse::<MySqlConnectOptions>()
                        .map_err(|e| Error::Config(format!("database url: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// The engine, given or taken from the url's scheme.
    pub fn engine(&self) -> Result<DbEngine> {
        if let Some(e) = self.engine {
            return Ok(e);
        }
        let scheme = self
            .url
            .as_deref()
            .and_then(|u| u.split_once("://"))
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(DbEngine::Postgres),
            Some("mysql" | "mariadb") => Ok(DbEngine::Mysql),
            _ => Err(Error::Config(
                "database source: 'engine' (postgres or mysql) is required".into(),
            )),
        }
    }

    fn pg_options(&self) -> Result<PgConnectOptions> {
        if let Some(url) = &self.url {
            return url
                .parse()
                .map_err(|e| Error::Config(format!("database url: {e}")));
        }
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(self.host.as_deref().unwrap_or("localhost"))
            .port(self.port.unwrap_or(5432));
        if let Some(d) = &self.database {
            o = o.database(d);
        }
        if let Some(u) = &self.user {
            o = o.username(u);
        }
        if let Some(p) = &self.password {
            o = o.password(p);
        }
        Ok(o.application_name("canvas-analytics"))
    }

    fn mysql_options(&self) -> Result<MySqlConnectOptions> {
        if let Some(url) = &self.url {
            let url = url.replacen("mariadb://", "mysql://", 1);
            return url
                .parse()
                .map_err(|e| Error::Config(format!("database url: {e}")));
        }
        let mut o = MySqlConnectOptions::new()
            .host(self.host.as_deref().unwrap_or("localhost"))
            .port(self.port.unwrap_or(3306));
        if let Some(d) = &self.database {
            o = o.database(d);
        }
        if let Some(u) = &self.user {
            o = o.username(u);
        }
        if let Some(p) = &self.password {
            o = o.password(p);
        }
        Ok(o)
    }
}

/// A pool of connections to one source database (created lazily: nothing connects until
/// the first query).
#[derive(Debug, Clone)]
pub(crate) enum DbPool {
    Postgres(PgPool),
    Mysql(MySqlPool),
}

impl DbPool {
    pub fn new(config: &DatabaseConfig, limits: &Limits) -> Result<DbPool> {
        Ok(match config.engine()? {
            DbEngine::Postgres => DbPool::Postgres(
                PgPoolOptions::new()
                    .max_connections(limits.max_db_connections)
                    .acquire_timeout(limits.db_connect_timeout)
                    .idle_timeout(Duration::from_secs(120))
                    .connect_lazy_with(config.pg_options()?),
            ),
            DbEngine::Mysql => DbPool::Mysql(
                MySqlPoolOptions::new()
                    .max_connections(limits.max_db_connections)
                    .acquire_timeout(limits.db_connect_timeout)
                    .idle_timeout(Duration::from_secs(120))
                    .connect_lazy_with(config.mysql_options()?),
            ),
        })
    }

    /// Runs `query` on the database under the limits and `cancel`.
    pub async fn run(
        &self,
        query: &BoundQuery,
        limits: &Limits,
        cancel: &CancellationToken,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let session = AtomicI64::new(NO_SESSION);
        let work = async {
            match self {
                DbPool::Postgres(pool) => pg_run(pool, query, limits, &session).await,
                DbPool::Mysql(pool) => mysql_run(pool, query, limits, &session).await,
            }
        };
        let work = async {
            match work.await {
                // the pool only says it timed out: one direct attempt tells why
                Err(Error::SourceUnavailable(m)) if m == POOL_TIMED_OUT => {
                    Err(self.connect_error(limits.db_connect_timeout).await)
                }
                other => other,
            }
        };
        // past the connection wait and the database's own timeout, in case the server never
        // answers
        let backstop = limits.db_connect_timeout + limits.query_timeout + Duration::from_secs(2);
        let (columns, rows) = tokio::select! {
            r = work => r?,
            () = tokio::time::sleep(backstop) => {
                self.stop_statement(&session, limits.db_connect_timeout).await;
                return Err(Error::Timeout(limits.query_timeout));
            }
            () = cancel.cancelled() => {
                self.stop_statement(&session, limits.db_connect_timeout).await;
                return Err(Error::Cancelled);
            }
        };
        Ok(QueryResult {
            columns,
            rows: rows.rows,
            truncated: rows.truncated,
            computed_at: Utc::now(),
            execution_time_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Stops the statement of the database session `session` names (if the run got that
    /// far) from another connection, waiting at most `wait`. Best effort: a failure is
    /// logged, and the database's own statement timeout ends the statement anyway.
    async fn stop_statement(&self, session: &AtomicI64, wait: Duration) {
        let id = session.load(Ordering::Acquire);
        if id == NO_SESSION {
            return;
        }
        let stop = async {
            match self {
                DbPool::Postgres(pool) => sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(i32::try_from(id).unwrap_or_default())
                    .execute(pool)
                    .await
                    .map(drop),
                // KILL takes no placeholder; the id is a number the server gave us
                DbPool::Mysql(pool) => pool
                    .execute(AssertSqlSafe(format!("KILL QUERY {id}")))
                    .await
                    .map(drop),
            }
        };
        match tokio::time::timeout(wait, stop).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, session = id, "cannot stop a cancelled statement")
            }
            Err(_) => tracing::warn!(session = id, "stopping a cancelled statement timed out"),
        }
    }

    async fn connect_error(&self, timeout: Duration) -> Error {
        let attempt = async {
            match self {
                DbPool::Postgres(p) => sqlx::PgConnection::connect_with(&p.connect_options())
                    .await
                    .map(|_| ()),
                DbPool::Mysql(p) => sqlx::MySqlConnection::connect_with(&p.connect_options())
                    .await
                    .map(|_| ()),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Err(e)) => match db_error(e) {
                Error::Execution(m) => Error::SourceUnavailable(m),
                other => other,
            },
            Ok(Ok(())) => {
                Error::SourceUnavailable("the database is busy: no free connection".into())
            }
            Err(_) => {
                Error::SourceUnavailable(format!("the database did not answer within {timeout:?}"))
            }
        }
    }

    /// Every table and view of the database's current schema (PostgreSQL: every schema
    /// but the system ones; names outside `public` are `schema.table`).
    pub async fn schema(&self) -> Result<SyncReport> {
        let rows: Vec<(String, String, String, String, String)> = match self {
            DbPool::Postgres(pool) => sqlx::query_as(
                "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, \
                        c.data_type::text, c.is_nullable::text \
                 FROM information_schema.columns c \
                 WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') \
                   AND c.table_schema NOT LIKE 'pg_toast%' \
                 ORDER BY c.table_schema, c.table_name, c.ordinal_position LIMIT 50000",
            )
            .fetch_all(pool)
            .await
            .map_err(db_error)?,
            DbPool::Mysql(pool) => sqlx::query_as(
                "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
                        CAST(column_name AS CHAR), CAST(data_type AS CHAR), \
                        CAST(is_nullable AS CHAR) \
                 FROM information_schema.columns WHERE table_schema = DATABASE() \
                 ORDER BY table_name, ordinal_position LIMIT 50000",
            )
            .fetch_all(pool)
            .await
            .map_err(db_error)?,
        };
        let mut tables: Vec<TableInfo> = Vec::new();
        for (schema, table, column, data_type, nullable) in rows {
            let name = match self {
                DbPool::Postgres(_) if schema != "public" => format!("{schema}.{table}"),
                _ => table,
            };
            if tables.last().is_none_or(|t| t.name != name) {
                tables.push(TableInfo {
                    name: name.clone(),
                    columns: Vec::new(),
                    row_count: None,
                });
            }
            if let Some(t) = tables.last_mut() {
                t.columns.push(ColumnInfo {
                    name: column,
                    data_type: portable_db_type(&data_type).to_string(),
                    native_type: data_type,
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                });
            }
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("table_count".into(), json!(tables.len()));
        Ok(SyncReport::active(SchemaInfo { tables }, None, metadata))
    }
}

/// Refuses anything but one query, when sqlparser can read the text; when it cannot, the
/// database's own parser has the last word (and READ ONLY still holds).
fn check_read_only(sql: &str, postgres: bool) -> Result<()> {
    let parsed = if postgres {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
    } else {
        Parser::parse_sql(&MySqlDialect {}, sql)
    };
    let Ok(statements) = parsed else {
        return Ok(());
    };
    match statements.as_slice() {
        [SqlStatement::Query(_)] => Ok(()),
        [] => Err(Error::Syntax {
            message: "the query is empty".into(),
            line: None,
            column: None,
        }),
        [_] => Err(Error::NotAllowed(
            "only a SELECT query runs on a database source".into(),
        )),
        _ => Err(Error::NotAllowed(
            "only one statement runs at a time".into(),
        )),
    }
}

/// No database session yet (the run has not got a connection).
const NO_SESSION: i64 = -1;

fn strip_semicolon(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}

async fn pg_run(
    pool: &PgPool,
    query: &BoundQuery,
    limits: &Limits,
    session: &AtomicI64,
) -> Result<(Vec<Column>, RowCollector)> {
    let (sql, args) = query.render(Placeholders::Dollar)?;
    let sql = strip_semicolon(&sql).to_string();
    check_read_only(&sql, true)?;
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let mut tx = conn.begin_with("BEGIN READ ONLY").await.map_err(db_error)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    session.store(i64::from(pid), Ordering::Release);
    let ms = limits.query_timeout.as_millis().max(1);
    tx.execute(AssertSqlSafe(format!("SET LOCAL statement_timeout = {ms}")))
        .await
        .map_err(db_error)?;
    let statement = (&mut *tx)
        .prepare(AssertSqlSafe(sql.clone()).into_sql_str())
        .await
        .map_err(|e| pg_error(e, &sql, limits.query_timeout))?;
    let columns: Vec<Column> = statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: portable_db_type(c.type_info().name()).to_string(),
        })
        .collect();
    check_unique(&columns)?;
    let wrapped = format!(
        "SELECT row_to_json(q)::text FROM ({sql}\n) AS q LIMIT {}",
        limits.max_result_rows.saturating_add(1)
    );
    let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(wrapped));
    for arg in args {
        q = match arg {
            ParamValue::String(s) => q.bind(s),
            ParamValue::Integer(i) => q.bind(i),
            ParamValue::Float(f) => q.bind(f),
            ParamValue::Boolean(b) => q.bind(b),
            ParamValue::Date(d) => q.bind(d),
        };
    }
    let texts = q
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| pg_error(e, &sql, limits.query_timeout))?;
    tx.rollback().await.map_err(db_error)?;
    let mut rows = RowCollector::new(limits.max_result_rows, limits.max_result_bytes);
    for text in texts {
        let object: serde_json::Map<String, Value> = serde_json::from_str(&text)
            .map_err(|e| Error::Execution(format!("row_to_json answered: {e}")))?;
        rows.push(
            columns
                .iter()
                .map(|c| object.get(&c.name).cloned().unwrap_or(Value::Null))
                .collect(),
        );
        if rows.full() {
            break;
        }
    }
    Ok((columns, rows))
}

fn check_unique(columns: &[Column]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for c in columns {
        if !seen.insert(c.name.as_str()) {
            return Err(Error::Invalid(format!(
                "the column name '{}' appears twice: give each column its own alias",
                c.name
            )));
        }
    }
    Ok(())
}

async fn mysql_run(
    pool: &MySqlPool,
    query: &BoundQuery,
    limits: &Limits,
    session: &AtomicI64,
) -> Result<(Vec<Column>, RowCollector)> {
    let (sql, args) = query.render(Placeholders::Question)?;
    let sql = strip_semicolon(&sql).to_string();
    check_read_only(&sql, false)?;
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let (version, id): (String, u64) = sqlx::query_as("SELECT VERSION(), CONNECTION_ID()")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    session.store(i64::try_from(id).unwrap_or(NO_SESSION), Ordering::Release);
    let timeout = if version.to_ascii_lowercase().contains("mariadb") {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            limits.query_timeout.as_secs_f64()
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            limits.query_timeout.as_millis().max(1)
        )
    };
    conn.execute(AssertSqlSafe(timeout))
        .await
        .map_err(db_error)?;
    let mut tx = conn
        .begin_with("START TRANSACTION READ ONLY")
        .await
        .map_err(db_error)?;
    let statement = (&mut *tx)
        .prepare(AssertSqlSafe(sql.clone()).into_sql_str())
        .await
        .map_err(|e| mysql_error(e, limits.query_timeout))?;
    let columns: Vec<Column> = statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: portable_db_type(c.type_info().name()).to_string(),
        })
        .collect();
    check_unique(&columns)?;
    let wrapped = format!(
        "SELECT * FROM ({sql}\n) AS q LIMIT {}",
        limits.max_result_rows.saturating_add(1)
    );
    let mut q = sqlx::query(AssertSqlSafe(wrapped));
    for arg in args {
        q = match arg {
            ParamValue::String(s) => q.bind(s),
            ParamValue::Integer(i) => q.bind(i),
            ParamValue::Float(f) => q.bind(f),
            ParamValue::Boolean(b) => q.bind(b),
            ParamValue::Date(d) => q.bind(d),
        };
    }
    let fetched = q
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| mysql_error(e, limits.query_timeout))?;
    tx.rollback().await.map_err(db_error)?;
    let mut rows = RowCollector::new(limits.max_result_rows, limits.max_result_bytes);
    for row in &fetched {
        rows.push((0..row.len()).map(|i| mysql_value(row, i)).collect());
        if rows.full() {
            break;
        }
    }
    Ok((columns, rows))
}

fn mysql_value(row: &MySqlRow, i: usize) -> Value {
    let ty = row.column(i).type_info().name().to_string();
    fn get<'r, T: sqlx::Decode<'r, sqlx::MySql>>(row: &'r MySqlRow, i: usize) -> Option<T> {
        row.try_get_unchecked::<Option<T>, _>(i).ok().flatten()
    }
    let num = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    let v: Option<Value> = match ty.as_str() {
        "BOOLEAN" => get::<bool>(row, i).map(Value::Bool),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
            get::<i64>(row, i).map(Value::from)
        }
        t if t.ends_with("UNSIGNED") => get::<u64>(row, i).map(Value::from),
        "FLOAT" => get::<f32>(row, i).map(|f| num(f64::from(f))),
        "DOUBLE" => get::<f64>(row, i).map(num),
        "DECIMAL" => get::<String>(row, i).map(|s| s.parse::<f64>().map_or(Value::String(s), num)),
        "DATE" => get::<NaiveDate>(row, i).map(|d| Value::String(d.to_string())),
        "DATETIME" => get::<NaiveDateTime>(row, i)
            .map(|d| Value::String(d.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        "TIMESTAMP" => get::<DateTime<Utc>>(row, i).map(|d| Value::String(d.to_rfc3339())),
        "TIME" => get::<NaiveTime>(row, i).map(|t| Value::String(t.to_string())),
        "JSON" => {
            get::<String>(row, i).map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
        }
        "NULL" => None,
        _ => {
            get::<Vec<u8>>(row, i).map(|b| Value::String(String::from_utf8_lossy(&b).into_owned()))
        }
    };
    v.unwrap_or(Value::Null)
}

/// The portable type of a PostgreSQL or MySQL type name (sqlx's or information_schema's).
pub(crate) fn portable_db_type(native: &str) -> &'static str {
    let t = native.to_ascii_uppercase();
    let t = t.trim_end_matches(" UNSIGNED");
    match t {
        "INT2" | "INT4" | "INT8" | "SMALLINT" | "INTEGER" | "INT" | "BIGINT" | "TINYINT"
        | "MEDIUMINT" | "YEAR" | "OID" | "SMALLSERIAL" | "SERIAL" | "BIGSERIAL" => "integer",
        "FLOAT4" | "FLOAT8" | "REAL" | "DOUBLE PRECISION" | "NUMERIC" | "DECIMAL" | "FLOAT"
        | "DOUBLE" | "MONEY" => "number",
        "BOOL" | "BOOLEAN" => "boolean",
        "DATE" => "date",
        "TIMESTAMP"
        | "TIMESTAMPTZ"
        | "DATETIME"
        | "TIMESTAMP WITHOUT TIME ZONE"
        | "TIMESTAMP WITH TIME ZONE" => "timestamp",
        "TIME" | "TIMETZ" | "TIME WITHOUT TIME ZONE" | "TIME WITH TIME ZONE" => "time",
        "JSON" | "JSONB" => "json",
        "BYTEA" | "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            "binary"
        }
        "TEXT" | "VARCHAR" | "CHAR" | "BPCHAR" | "NAME" | "CHARACTER VARYING" | "CHARACTER"
        | "UUID" | "CITEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => "string",
        _ => "other",
    }
}

const POOL_TIMED_OUT: &str = "the database did not accept a connection in time";

/// A connection-level failure: the source is unavailable.
fn db_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(d) => Error::Execution(d.message().to_string()),
        sqlx::Error::PoolTimedOut => Error::SourceUnavailable(POOL_TIMED_OUT.into()),
        sqlx::Error::Io(io) => {
            Error::SourceUnavailable(format!("the database could not be reached: {io}"))
        }
        sqlx::Error::Tls(t) => Error::SourceUnavailable(format!("TLS to the database: {t}")),
        other => Error::SourceUnavailable(other.to_string()),
    }
}

/// A PostgreSQL error by SQLSTATE: syntax (with line and column in `sql`), unknown names,
/// refused writes, the statement timeout.
fn pg_error(e: sqlx::Error, sql: &str, timeout: Duration) -> Error {
    let sqlx::Error::Database(d) = &e else {
        return db_error(e);
    };
    let code = d.code().map(|c| c.to_string()).unwrap_or_default();
    let message = d.message().to_string();
    let position = d
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(|p| match p.position() {
            Some(sqlx::postgres::PgErrorPosition::Original(n)) => Some(n),
            _ => None,
        });
    match code.as_str() {
        "42601" => {
            let (line, column) = position.map_or((None, None), |n| {
                let (l, c) = line_col_of_char(sql, n);
                (Some(l), Some(c))
            });
            Error::Syntax {
                message,
                line,
                column,
            }
        }
        "25006" => Error::NotAllowed(message),
        "57014" => Error::Timeout(timeout),
        c if c.starts_with("42") || c == "0A000" => Error::Invalid(message),
        c if c.starts_with("08") || c.starts_with("28") || c.starts_with("3D") => {
            Error::SourceUnavailable(message)
        }
        _ => Error::Execution(message),
    }
}

/// MySQL/MariaDB errors by number.
fn mysql_error(e: sqlx::Error, timeout: Duration) -> Error {
    let sqlx::Error::Database(d) = &e else {
        return db_error(e);
    };
    let code = d.code().map(|c| c.to_string()).unwrap_or_default();
    let message = d.message().to_string();
    match code.as_str() {
        // ER_PARSE_ERROR: "... near '...' at line N"
        "1064" | "42000" if message.contains("syntax") => {
            let line = message
                .rsplit_once("at line ")
                .and_then(|(_, n)| n.trim().parse().ok());
            Error::Syntax {
                message,
                line,
                column: None,
            }
        }
        // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        "1792" | "25006" => Error::NotAllowed(message),
        // MySQL max_execution_time, MariaDB max_statement_time
        "3024" | "1969" | "70100" => Error::Timeout(timeout),
        // no such table, column, function; ambiguous
        "1146" | "1054" | "1305" | "1052" | "1060" | "42S02" | "42S22" | "42S21" => {
            Error::Invalid(message)
        }
        _ => Error::Execution(message),
    }
}

/// 1-based line and column of the 1-based character position `n` in `text`.
fn line_col_of_char(text: &str, n: usize) -> (u64, u64) {
    let mut line = 1;
    let mut col = 1;
    for ch in text.chars().take(n.saturating_sub(1)) {
        if ch == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Pools by source, rebuilt when a source's configuration changes.
#[derive(Debug, Default)]
pub(crate) struct Pools {
    // std Mutex: held only to look up or insert, never across an await
    inner: std::sync::Mutex<BTreeMap<uuid::Uuid, (DatabaseConfig, DbPool)>>,
}

impl Pools {
    pub fn get(&self, id: uuid::Uuid, config: &DatabaseConfig, limits: &Limits) -> Result<DbPool> {
        let mut map = self
            .inner
            .lock()
            .map_err(|_| Error::Execution("database pool registry poisoned".into()))?;
        if let Some((c, pool)) = map.get(&id)
            && c == config
        {
            return Ok(pool.clone());
        }
        let pool = DbPool::new(config, limits)?;
        if let Some((_, old)) = map.insert(id, (config.clone(), pool.clone())) {
            old.close_in_background();
        }
        Ok(pool)
    }

    pub fn remove(&self, id: uuid::Uuid) {
        if let Ok(mut map) = self.inner.lock()
            && let Some((_, pool)) = map.remove(&id)
        {
            pool.close_in_background();
        }
    }
}

impl DbPool {
    fn close_in_background(self) {
        tokio::spawn(async move {
            match self {
                DbPool::Postgres(p) => p.close().await,
                DbPool::Mysql(p) => p.close().await,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_check() {
        assert!(check_read_only("SELECT 1", true).is_ok());
        assert!(check_read_only("WITH a AS (SELECT 1) SELECT * FROM a", false).is_ok());
        assert!(matches!(
            check_read_only("DELETE FROM t", true),
            Err(Error::NotAllowed(_))
        ));
        assert!(matches!(
            check_read_only("DROP TABLE t", false),
            Err(Error::NotAllowed(_))
        ));
        assert!(matches!(
            check_read_only("SELECT 1; DELETE FROM t", true),
            Err(Error::NotAllowed(_))
        ));
        assert!(matches!(
            check_read_only("SET x = 1", true),
            Err(Error::NotAllowed(_))
        ));
    }

    #[test]
    fn positions() {
        assert_eq!(line_col_of_char("SELECT\nFROM x", 8), (2, 1));
        assert_eq!(line_col_of_char("SELEC 1", 1), (1, 1));
    }
}
