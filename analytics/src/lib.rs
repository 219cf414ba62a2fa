//! # canvas-analytics
//!
//! The data layer of the canvas server: data sources, schema inference, read-only SQL
//! execution and result cache keys. It knows nothing of the server (no HTTP handlers, no
//! tables of its own, no Redis keys of the server's): the server stores what this crate
//! returns and hands it back.
//!
//! ## The parts
//!
//! - [`source`]: the four kinds of source and their `connection_config`
//!   ([`SourceConfig`]): `file` (CSV, Parquet, NDJSON in an object store), `database`
//!   (PostgreSQL, MySQL/MariaDB; queries pushed down), `api` (an HTTP JSON endpoint,
//!   snapshotted on sync), `streaming` (a Redis stream, read at query time). A sync returns
//!   a [`SyncReport`]: `active` or `error`, the [`SchemaInfo`] and a data version.
//! - [`secrets`]: the server key ([`SecretKey`]); [`SourceConfig::seal`] encrypts a
//!   config's secrets (AES-256-GCM) for storage, [`SourceConfig::redacted`] is what the API
//!   shows.
//! - [`query`]: a saved query ([`Query`]) with `{{name}}` parameters bound as placeholders
//!   ([`BoundQuery`]), run on a [`Target`] by [`Analytics::execute`] into a [`QueryResult`]
//!   (columns, JSON rows, caps, MessagePack), under a [`cache_key`].
//! - [`net`]: the outbound HTTP guard (no loopback/private targets unless allowed).
//! - [`Error`] with [`ErrorKind`]: what the server answers 400, 413, a failed execution or 500.
//!
//! One [`Analytics`] handle per node holds the object store, the DataFusion runtime (one
//! memory pool for every query), the HTTP client and the database pools. It is cheap to
//! clone.
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() -> canvas_analytics::Result<()> {
//! use canvas_analytics::*;
//! use serde_json::json;
//! use tokio_util::sync::CancellationToken;
//!
//! let analytics = Analytics::new(AnalyticsConfig::new("./data"))?;
//! let sales = DataSource {
//!     id: uuid::Uuid::new_v4(),
//!     name: "sales".into(),
//!     config: SourceConfig::parse(SourceKind::File, &json!({}))?,
//!     data_version: None,
//! };
//! // PUT /data-sources/{id}/file: the request body as a stream of Bytes
//! let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
//!     bytes::Bytes::from("region,amount\nnorth,10\nsouth,20\n"),
//! )]);
//! let report = analytics
//!     .upload_file(&sales, FileFormat::from_content_type("text/csv")?, body)
//!     .await?;
//! let sales = DataSource { data_version: report.data_version.clone(), ..sales };
//!
//! let query = Query::new(
//!     "sql",
//!     "SELECT region, sum(amount) AS total FROM sales WHERE amount > {{min}} GROUP BY region",
//!     &json!({"min": {"type": "number", "default": 0}}),
//! )?;
//! let bound = query.bind(&json!({"min": 5}))?;
//! let sources = [sales];
//! let target = Target::Tables(&sources);
//! let key = analytics.cache_key(&bound, target).await?; // query:result:{key}
//! let result = analytics.execute(&bound, target, &CancellationToken::new()).await?;
//! let stored: Vec<u8> = result.to_msgpack()?;
//! # let _ = (key, stored);
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod net;
pub mod query;
pub mod secrets;
pub mod source;
mod store;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::{AnalyticsConfig, Limits};
pub use error::{Error, ErrorKind, Result};
pub use query::cache::{SourceVersion, cache_key};
pub use query::params::{BoundQuery, ParamType, ParamValue, ParameterDecls, ParameterSpec};
pub use query::result::{Column, QueryResult, ResultPage, Truncation};
pub use query::{Query, QueryType, Target};
pub use secrets::SecretKey;
pub use source::{
    ColumnInfo, DataSource, FileFormat, REDACTED, SchemaInfo, SourceConfig, SourceKind,
    SourceStatus, SyncReport, TableInfo,
};

use query::engine::{Engine, TableData};
use source::database::Pools;
use store::Storage;

/// The node's analytics handle: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: AnalyticsConfig,
    storage: Storage,
    engine: Engine,
    /// For api sources; resolves through the SSRF guard unless private targets are allowed.
    http: reqwest::Client,
    /// One lazily connected pool per database source.
    pools: Pools,
}

impl Analytics {
    /// Opens the object store (creating the local folder, or configuring the S3 client:
    /// nothing is sent yet) and builds the DataFusion runtime.
    pub fn new(config: AnalyticsConfig) -> Result<Analytics> {
        let storage = Storage::open(&config)?;
        let engine = Engine::new(&storage, &config.limits)?;
        let http = net::http_client(config.allow_private_targets)?;
        Ok(Analytics {
            inner: Arc::new(Inner {
                config,
                storage,
                engine,
                http,
                pools: Pools::default(),
            }),
        })
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.inner.config
    }

    /// Where files are kept (`file:///...` or `s3://bucket/prefix`), for logs.
    pub fn storage_location(&self) -> &str {
        &self.inner.storage.location
    }

    /// Stores a file source's new file from a byte stream (a request body). Past
    /// [`Limits::max_upload_bytes`] it stops reading and answers [`Error::TooLarge`]; a body
    /// that does not parse as `format` answers [`Error::Malformed`] naming the line. Either
    /// way the previous file stays. On success the report has the schema, the row count and
    /// the new data version (a SHA-256 of the bytes).
    pub async fn upload_file<S, E>(
        &self,
        source: &DataSource,
        format: FileFormat,
        body: S,
    ) -> Result<SyncReport>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let SourceConfig::File(options) = &source.config else {
            return Err(Error::Config(format!(
                "'{}' is a {} source: only file sources take uploads",
                source.name,
                source.config.kind().as_str()
            )));
        };
        let inner = &self.inner;
        source::file::upload(
            &inner.storage,
            &inner.engine,
            source,
            options,
            format,
            body,
            inner.config.limits.max_upload_bytes,
        )
        .await
    }

    /// Syncs a source: reads its schema (file: the stored file; database: its tables;
    /// api: fetches the endpoint and stores a new snapshot; streaming: reads the stream).
    /// Never fails: a failure is a report with status `error` and the message. See
    /// [`Analytics::try_sync`] for the error itself.
    pub async fn sync(&self, source: &DataSource) -> SyncReport {
        match self.try_sync(source).await {
            Ok(report) => report,
            Err(e) => SyncReport::failed(&e),
        }
    }

    /// [`Analytics::sync`], with the failure as an [`Error`].
    pub async fn try_sync(&self, source: &DataSource) -> Result<SyncReport> {
        let inner = &self.inner;
        let limits = &inner.config.limits;
        match &source.config {
            SourceConfig::File(options) => {
                let (meta, format) = inner
                    .storage
                    .current(source.id)
                    .await?
                    .ok_or_else(|| Error::NoData(source.name.clone()))?;
                let table = source::file::inspect(
                    &inner.engine,
                    &source.name,
                    meta.location,
                    format,
                    options,
                )
                .await?;
                let mut metadata = std::collections::BTreeMap::new();
                metadata.insert("format".into(), serde_json::json!(format.extension()));
                metadata.insert("size_bytes".into(), serde_json::json!(meta.size));
                Ok(SyncReport::active(
                    SchemaInfo {
                        tables: vec![table],
                    },
                    source.data_version.clone(),
                    metadata,
                ))
            }
            SourceConfig::Database(config) => {
                let pool = inner.pools.get(source.id, config, limits)?;
                pool.schema().await
            }
            SourceConfig::Api(config) => {
                source::api::sync(
                    &inner.http,
                    inner.config.allow_private_targets,
                    &inner.storage,
                    source,
                    config,
                    limits,
                )
                .await
            }
            SourceConfig::Streaming(config) => {
                let entries = self.read_stream(config).await?;
                source::streaming::report(source, &entries)
            }
        }
    }

    async fn read_stream(
        &self,
        config: &source::StreamConfig,
    ) -> Result<Vec<(String, Vec<(String, String)>)>> {
        let limits = &self.inner.config.limits;
        let url = config
            .url
            .as_deref()
            .or(self.inner.config.default_redis_url.as_deref())
            .ok_or_else(|| {
                Error::Config("streaming source: no 'url' and no default Redis".into())
            })?;
        let mut conn = source::streaming::connect(url, limits.db_connect_timeout).await?;
        source::streaming::read(&mut conn, config, limits.max_stream_entries).await
    }

    /// Runs a bound query on its target under the limits (timeout, row and byte caps) until
    /// it finishes or `cancel` fires. For [`Target::Tables`] the tables the SQL names are
    /// opened (a name that is no source is left to the planner's "table not found").
    pub async fn execute(
        &self,
        query: &BoundQuery,
        target: Target<'_>,
        cancel: &CancellationToken,
    ) -> Result<QueryResult> {
        let limits = &self.inner.config.limits;
        match target {
            Target::Database(source) => {
                let SourceConfig::Database(config) = &source.config else {
                    return Err(Error::Config(format!(
                        "'{}' is not a database source",
                        source.name
                    )));
                };
                let pool = self.inner.pools.get(source.id, config, limits)?;
                pool.run(query, limits, cancel).await
            }
            Target::Tables(sources) => {
                // the timeout covers opening the tables too (listing, a stream read)
                match tokio::time::timeout(
                    limits.query_timeout,
                    self.execute_tables(query, sources, cancel),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(Error::Timeout(limits.query_timeout)),
                }
            }
        }
    }

    async fn execute_tables(
        &self,
        query: &BoundQuery,
        sources: &[DataSource],
        cancel: &CancellationToken,
    ) -> Result<QueryResult> {
        let engine = &self.inner.engine;
        let (sql, args) = query.render(query::params::Placeholders::Dollar)?;
        let ctx = engine.context();
        let (statement, names) = engine.parse(&ctx, &sql)?;
        for name in names {
            let Some(source) = sources.iter().find(|s| s.name == name) else {
                continue;
            };
            let (data, version) = tokio::select! {
                d = self.table_data(source) => d?,
                () = cancel.cancelled() => return Err(Error::Cancelled),
            };
            engine.register(&ctx, &source.name, data, version).await?;
        }
        engine
            .run(&ctx, statement, args, &self.inner.config.limits, cancel)
            .await
    }

    /// A source's table, with the version of its file (`None` for rows read now).
    async fn table_data(&self, source: &DataSource) -> Result<(TableData, Option<String>)> {
        match &source.config {
            SourceConfig::File(_) | SourceConfig::Api(_) => {
                let options = match &source.config {
                    SourceConfig::File(o) => o.clone(),
                    _ => source::FileConfig::default(),
                };
                let (meta, format) = self
                    .inner
                    .storage
                    .current(source.id)
                    .await?
                    .ok_or_else(|| Error::NoData(source.name.clone()))?;
                let version = query::engine::object_version(&meta);
                Ok((
                    TableData::File {
                        key: meta.location,
                        format,
                        options,
                    },
                    Some(version),
                ))
            }
            SourceConfig::Streaming(config) => {
                let entries = self.read_stream(config).await?;
                let (schema, batch) = source::streaming::to_batch(&entries)?;
                Ok((TableData::Memory(schema, vec![batch]), None))
            }
            SourceConfig::Database(_) => Err(Error::Invalid(format!(
                "'{}' is a database source: run the query on it (its data_source_id), \
                 not as a table",
                source.name
            ))),
        }
    }

    /// The sources `query` reads on `target`, each at its current version: the given
    /// [`DataSource::data_version`] for files, api snapshots and databases, the last entry
    /// id (read now) for streams.
    pub async fn source_versions(
        &self,
        query: &BoundQuery,
        target: Target<'_>,
    ) -> Result<Vec<SourceVersion>> {
        let sources: Vec<&DataSource> = match target {
            Target::Database(s) => vec![s],
            Target::Tables(all) => {
                let (sql, _) = query.render(query::params::Placeholders::Dollar)?;
                let ctx = self.inner.engine.context();
                let (_, names) = self.inner.engine.parse(&ctx, &sql)?;
                all.iter().filter(|s| names.contains(&s.name)).collect()
            }
        };
        let mut out = Vec::with_capacity(sources.len());
        for s in sources {
            let version = match &s.config {
                SourceConfig::Streaming(config) => {
                    let mut stream = config.clone();
                    stream.latest = Some(1);
                    stream.window_seconds = None;
                    self.read_stream(&stream)
                        .await?
                        .last()
                        .map(|(id, _)| id.clone())
                }
                _ => s.data_version.clone(),
            };
            out.push(SourceVersion { id: s.id, version });
        }
        Ok(out)
    }

    /// The result cache key of `query` on `target` ([`cache_key`] over
    /// [`Analytics::source_versions`]); the server keeps results at `query:result:{key}`.
    pub async fn cache_key(&self, query: &BoundQuery, target: Target<'_>) -> Result<String> {
        let versions = self.source_versions(query, target).await?;
        Ok(cache_key(&versions, query))
    }

    /// Forgets a deleted source: removes its stored file or snapshot and closes its pool.
    pub async fn remove_source(&self, id: Uuid) -> Result<()> {
        self.inner.pools.remove(id);
        self.inner.storage.delete_source(id).await
    }
}
