//! Apache DataFusion: one session configuration and one runtime (memory pool, object store)
//! for the node; each query gets a fresh `SessionContext` with only the tables it names.
//!
//! A file table's provider (its schema, inferred from the file, and the statistics DataFusion
//! reads from it) is kept per object version, so queries after the first on the same data
//! skip the inference and the footer reads. A new upload is a new version (size, time,
//! e-tag); old entries leave when the cache is full. Its rows, decoded, are kept in memory
//! too once a query has read them (see [`super::tables`]), within a byte budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider,
};
use datafusion::common::{DataFusionError, ParamValues, ScalarValue, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::resolve::resolve_table_references;
use futures_util::StreamExt;
use object_store::path::Path;
use tokio_util::sync::CancellationToken;

use super::params::ParamValue;
use super::result::{Column, QueryResult, RowCollector, portable_type};
use super::tables::{TableCache, TableKey};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::source::{FileConfig, FileFormat};
use crate::store::{STORE_URL, Storage};

/// Rows read to infer a CSV or NDJSON file's column types.
const INFER_RECORDS: usize = 10_000;

/// File table providers kept at once (by object version).
const PROVIDERS_KEPT: usize = 256;

type Provider = Arc<dyn datafusion::datasource::TableProvider>;

/// The node's DataFusion setup, shared by every query.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    runtime: Arc<RuntimeEnv>,
    config: SessionConfig,
    /// What every query's context starts from: the functions, planners and optimizer rules,
    /// built once (building them is most of what a new context costs; two per execution).
    /// Each context gets a catalog of its own (see [`Engine::context`]).
    template: SessionState,
    providers: Arc<Mutex<HashMap<TableKey, Provider>>>,
    tables: TableCache,
}

/// A table to give a query: a file object, or rows already in memory.
pub(crate) enum TableData {
    File {
        key: Path,
        format: FileFormat,
        options: FileConfig,
    },
    Memory(SchemaRef, Vec<RecordBatch>),
}

/// What identifies one version of a stored object: its size, time and e-tag.
pub(crate) fn object_version(meta: &object_store::ObjectMeta) -> String {
    format!(
        "{}|{}|{}",
        meta.size,
        meta.last_modified.timestamp_nanos_opt().unwrap_or_default(),
        meta.e_tag.as_deref().unwrap_or("")
    )
}

impl Engine {
    pub fn new(storage: &Storage, limits: &Limits) -> Result<Engine> {
        let runtime = RuntimeEnvBuilder::new()
            // one pool for every query of the node: a query past it fails, others go on
            .with_memory_limit(limits.memory_pool_bytes, 1.0)
            // no spilling to disk: the pool is the whole bound, and an upload-sized temp
            // folder is not something a shared node should grow behind our back
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(df_internal)?;
        let url = Storage::datafusion_url();
        runtime.register_object_store(url.as_ref(), storage.store.clone());
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_create_default_catalog_and_schema(true);
        let template = SessionStateBuilder::new()
            .with_config(config.clone())
            .with_runtime_env(runtime.clone())
            .with_default_features()
            .build();
        Ok(Engine {
            runtime,
            config,
            template,
            providers: Arc::default(),
            tables: TableCache::new(limits.table_cache_bytes),
        })
    }

    /// A fresh context on the shared runtime: the template's functions and rules, and an
    /// empty catalog of its own, so the tables one query registers are never seen by another.
    pub fn context(&self) -> SessionContext {
        let options = self.config.options();
        let schema = MemoryCatalogProvider::new();
        // cannot fail on a new catalog (the name is not taken)
        let _ = schema.register_schema(
            &options.catalog.default_schema,
            Arc::new(MemorySchemaProvider::new()),
        );
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(options.catalog.default_catalog.clone(), Arc::new(schema));
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        SessionContext::new_with_state(state)
    }

    /// A context whose file scans are not split, so a reader's line numbers count from the
    /// start of the file (upload validation).
    pub fn single_scan_context(&self) -> SessionContext {
        let mut config = self.config.clone();
        config.options_mut().optimizer.repartition_file_scans = false;
        let state = SessionStateBuilder::new()
            .with_config(config.with_target_partitions(1))
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .build();
        SessionContext::new_with_state(state)
    }

    /// Registers `data` as table `name` (exactly that name, unquoted rules aside); a file
    /// with a `version` is read from memory when its rows are kept there, else through the
    /// provider made for that version (and its rows start loading into memory).
    pub async fn register(
        &self,
        ctx: &SessionContext,
        name: &str,
        data: TableData,
        version: Option<String>,
    ) -> Result<()> {
        let table_key = match (&data, version) {
            (
                TableData::File {
                    key,
                    format,
                    options,
                },
                Some(version),
            ) => Some(TableKey {
                object: key.to_string(),
                version: format!("{version}|{format:?}|{options:?}"),
            }),
            _ => None,
        };
        let name = TableReference::bare(name);
        if let Some(decoded) = table_key.as_ref().and_then(|k| self.tables.get(k)) {
            ctx.register_table(name, decoded).map_err(df_internal)?;
            return Ok(());
        }
        let kept = table_key.as_ref().and_then(|k| {
            self.providers
                .lock()
                .ok()
                .and_then(|providers| providers.get(k).cloned())
        });
        let table = match kept {
            Some(table) => table,
            None => {
                let table = self.provider(ctx, data).await?;
                if let (Some(k), Ok(mut providers)) = (&table_key, self.providers.lock()) {
                    if providers.len() >= PROVIDERS_KEPT {
                        providers.clear();
                    }
                    providers.insert(k.clone(), table.clone());
                }
                table
            }
        };
        if let Some(k) = table_key {
            self.tables
                .load_in_background(k, table.clone(), || self.context());
        }
        ctx.register_table(name, table).map_err(df_internal)?;
        Ok(())
    }

    async fn provider(&self, ctx: &SessionContext, data: TableData) -> Result<Provider> {
        let table: Provider = match data {
            TableData::Memory(schema, batches) => {
                Arc::new(MemTable::try_new(schema, vec![batches]).map_err(df_internal)?)
            }
            TableData::File {
                key,
                format,
                options,
            } => {
                let url =
                    ListingTableUrl::parse(format!("{STORE_URL}{key}")).map_err(df_internal)?;
                let file_format: Arc<dyn datafusion::datasource::file_format::FileFormat> =
                    match format {
                        FileFormat::Csv => Arc::new(
                            CsvFormat::default()
                                .with_has_header(options.has_header.unwrap_or(true))
                                .with_delimiter(options.delimiter_byte())
                                .with_schema_infer_max_rec(INFER_RECORDS),
                        ),
                        FileFormat::Ndjson => {
                            Arc::new(JsonFormat::default().with_schema_infer_max_rec(INFER_RECORDS))
                        }
                        FileFormat::Parquet => Arc::new(ParquetFormat::default()),
                    };
                let listing = ListingOptions::new(file_format)
                    .with_file_extension(format!(".{}", format.extension()));
                let schema = listing
                    .infer_schema(&ctx.state(), &url)
                    .await
                    .map_err(data_error)?;
                let config = ListingTableConfig::new(url)
                    .with_listing_options(listing)
                    .with_schema(schema);
                Arc::new(ListingTable::try_new(config).map_err(df_internal)?)
            }
        };
        Ok(table)
    }

    /// Parses `sql` (syntax errors carry the parser's line and column) and lists the tables
    /// it reads (CTE names aside), normalised as the planner will look them up.
    pub fn parse(&self, ctx: &SessionContext, sql: &str) -> Result<(Statement, Vec<String>)> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| at_end_if_eof(syntax_error(e), sql))?;
        let (tables, _ctes) = resolve_table_references(&statement, true).map_err(syntax_error)?;
        let names = tables
            .into_iter()
            .map(|t| match t {
                TableReference::Bare { table } => table.to_string(),
                // a schema-qualified name names no source of ours
                other => other.to_string(),
            })
            .collect();
        Ok((statement, names))
    }

    /// Plans and runs a parsed read-only statement with its bound values, under the caps,
    /// the timeout and `cancel`.
    pub async fn run(
        &self,
        ctx: &SessionContext,
        statement: Statement,
        args: Vec<ParamValue>,
        limits: &Limits,
        cancel: &CancellationToken,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let state = ctx.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(plan_error)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| Error::NotAllowed(strip_df(&e)))?;
        let values: Vec<ScalarValue> = args.into_iter().map(scalar).collect();
        let df = DataFrame::new(state, plan)
            .with_param_values(ParamValues::List(
                values.into_iter().map(Into::into).collect(),
            ))
            .map_err(|e| Error::Parameter(strip_df(&e)))?;
        let columns: Vec<Column> = df
            .schema()
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                data_type: portable_type(f.data_type()).to_string(),
            })
            .collect();
        let work = async {
            let mut stream = df.execute_stream().await.map_err(exec_error)?;
            let mut rows = RowCollector::new(limits.max_result_rows, limits.max_result_bytes);
            while let Some(batch) = stream.next().await {
                rows.push_batch(&batch.map_err(exec_error)?)?;
                if rows.full() {
                    // dropping the stream stops the scan
                    break;
                }
            }
            Ok::<_, Error>(rows)
        };
        let rows = tokio::select! {
            r = work => r?,
            () = tokio::time::sleep(limits.query_timeout) => return Err(Error::Timeout(limits.query_timeout)),
            () = cancel.cancelled() => return Err(Error::Cancelled),
        };
        Ok(QueryResult {
            columns,
            rows: rows.rows,
            truncated: rows.truncated,
            computed_at: chrono::Utc::now(),
            execution_time_ms: started.elapsed().as_millis() as u64,
        })
    }
}

fn scalar(v: ParamValue) -> ScalarValue {
    match v {
        ParamValue::String(s) => ScalarValue::Utf8(Some(s)),
        ParamValue::Integer(i) => ScalarValue::Int64(Some(i)),
        ParamValue::Float(f) => ScalarValue::Float64(Some(f)),
        ParamValue::Boolean(b) => ScalarValue::Boolean(Some(b)),
        ParamValue::Date(d) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            ScalarValue::Date32(Some((d - epoch).num_days() as i32))
        }
    }
}

/// DataFusion's message without its "Error during planning: " style prefixes and backtrace.
pub(crate) fn strip_df(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::SQL(p, _) => p.to_string(),
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Internal(m)
        | DataFusionError::Configuration(m) => m.clone(),
        DataFusionError::SchemaError(s, _) => s.to_string(),
        DataFusionError::ArrowError(a, _) => a.to_string(),
        DataFusionError::ParquetError(p) => p.to_string(),
        DataFusionError::ResourcesExhausted(m) => format!("out of query memory: {m}"),
        other => other.to_string(),
    };
    text.trim().to_string()
}

fn syntax_error(e: DataFusionError) -> Error {
    let message = strip_df(&e);
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(&message)
        .to_string();
    let (line, column) = line_column(&message);
    if matches!(
        e.find_root(),
        DataFusionError::SQL(..) | DataFusionError::NotImplemented(_)
    ) {
        Error::Syntax {
            message,
            line,
            column,
        }
    } else {
        Error::Invalid(message)
    }
}

/// sqlparser gives no position for an unexpected end of the text: point at its end.
fn at_end_if_eof(e: Error, sql: &str) -> Error {
    match e {
        Error::Syntax {
            message,
            line: None,
            column: None,
        } if message.contains("found: EOF") => {
            let text = sql.trim_end();
            let line = text.matches('\n').count() as u64 + 1;
            let last = text.rsplit('\n').next().unwrap_or("");
            Error::Syntax {
                message,
                line: Some(line),
                column: Some(last.chars().count() as u64 + 1),
            }
        }
        other => other,
    }
}

/// "... at Line: 3, Column: 14" -> (3, 14).
pub(crate) fn line_column(message: &str) -> (Option<u64>, Option<u64>) {
    let grab = |key: &str| {
        let at = message.rfind(key)? + key.len();
        let digits: String = message[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    (grab("Line:"), grab("Column:"))
}

fn plan_error(e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::SQL(..) => syntax_error(e),
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => Error::Invalid(strip_df(&e)),
        _ => exec_error(e),
    }
}

fn exec_error(e: DataFusionError) -> Error {
    Error::Execution(strip_df(&e))
}

/// A failure reading a source's data (a file that does not parse).
pub(crate) fn data_error(e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::ObjectStore(o) => Error::Execution(format!("reading the file: {o}")),
        _ => Error::Malformed(strip_df(&e)),
    }
}

fn df_internal(e: DataFusionError) -> Error {
    Error::Execution(strip_df(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalyticsConfig;
    use datafusion::arrow::array::Int64Array;
    use object_store::ObjectStoreExt as _;
    use std::time::Duration;

    async fn count(engine: &Engine, key: &Path, version: &str) -> (i64, bool) {
        let ctx = engine.context();
        let data = TableData::File {
            key: key.clone(),
            format: FileFormat::Csv,
            options: FileConfig::default(),
        };
        engine
            .register(&ctx, "sales", data, Some(version.to_owned()))
            .await
            .expect("register");
        let provider = ctx.table_provider("sales").await.expect("provider");
        let any: &dyn std::any::Any = provider.as_ref();
        let in_memory = any.downcast_ref::<MemTable>().is_some();
        (total_amount(&ctx).await, in_memory)
    }

    /// `sum(amount)` of the context's table `sales`.
    async fn total_amount(ctx: &SessionContext) -> i64 {
        let batches = ctx
            .sql("SELECT sum(amount) AS total FROM sales")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("an integer sum")
            .value(0)
    }

    async fn put(storage: &Storage, key: &Path, rows: i64) {
        let mut csv = String::from("region,amount\n");
        for i in 1..=rows {
            csv.push_str(&format!("r{},{i}\n", i % 3));
        }
        storage
            .store
            .put(key, csv.into_bytes().into())
            .await
            .expect("put");
    }

    async fn wait_decoded(engine: &Engine, key: &Path, version: &str) {
        let table_key = TableKey {
            object: key.to_string(),
            version: format!(
                "{version}|{:?}|{:?}",
                FileFormat::Csv,
                FileConfig::default()
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.tables.get(&table_key).is_none() {
            assert!(Instant::now() < deadline, "the table was not decoded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_file_is_read_from_memory_after_its_first_query_and_a_new_version_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AnalyticsConfig::new(dir.path());
        let storage = Storage::open(&config).expect("storage");
        let engine = Engine::new(&storage, &config.limits).expect("engine");
        let key = Path::from("files/sales.csv");

        put(&storage, &key, 100).await;
        assert_eq!(count(&engine, &key, "v1").await, (5050, false));
        wait_decoded(&engine, &key, "v1").await;
        assert_eq!(count(&engine, &key, "v1").await, (5050, true));

        // a new upload is a new version: read from its file, never from the old rows
        put(&storage, &key, 10).await;
        assert_eq!(count(&engine, &key, "v2").await, (55, false));
        wait_decoded(&engine, &key, "v2").await;
        assert_eq!(count(&engine, &key, "v2").await, (55, true));
    }

    #[tokio::test]
    async fn contexts_do_not_share_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AnalyticsConfig::new(dir.path());
        let storage = Storage::open(&config).expect("storage");
        let engine = Engine::new(&storage, &config.limits).expect("engine");
        let (a, b) = (Path::from("files/a.csv"), Path::from("files/b.csv"));
        put(&storage, &a, 100).await;
        put(&storage, &b, 10).await;
        let first = engine.context();
        let data = |key: &Path| TableData::File {
            key: key.clone(),
            format: FileFormat::Csv,
            options: FileConfig::default(),
        };
        engine
            .register(&first, "sales", data(&a), None)
            .await
            .expect("register");
        let second = engine.context();
        assert!(
            second.table_provider("sales").await.is_err(),
            "a new context has no tables"
        );
        engine
            .register(&second, "sales", data(&b), None)
            .await
            .expect("register");
        assert_eq!(total_amount(&first).await, 5050);
        assert_eq!(total_amount(&second).await, 55);
    }

    #[tokio::test]
    async fn with_no_budget_every_query_reads_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = AnalyticsConfig::new(dir.path());
        config.limits.table_cache_bytes = 0;
        let storage = Storage::open(&config).expect("storage");
        let engine = Engine::new(&storage, &config.limits).expect("engine");
        let key = Path::from("files/sales.csv");
        put(&storage, &key, 100).await;
        for _ in 0..3 {
            assert_eq!(count(&engine, &key, "v1").await, (5050, false));
            tokio::task::yield_now().await;
        }
    }
}
