//! The analytics side of the server: data sources, saved queries and their executions,
//! over [`canvas_analytics`] (the engine: files, databases, APIs, streams, DataFusion) and
//! the stores (`DataStore` for records, `ResultCache` for results and progress).
//!
//! - [`sources`]: a stored source row as the engine opens it, and as the API shows it.
//! - [`bound`]: blocks bound to queries: a binding resolved to a result, for the rooms and
//!   the block data endpoint; [`shape`]: a result shaped for a block (pure).
//! - [`executions`]: running a saved query: the result cache, the execution record, the
//!   background job under the node's and the project's limits, cancellation.
//! - [`pipelines`]: cron schedules, the scheduler (each due run once across nodes), a run.
//! - [`refresh`]: "this source has new data", to this node's subscribers and the others.
//! - [`templates`]: templates meet data: `required_fields` against a chosen source, and
//!   template blocks bound to new saved queries.
//!
//! The REST handlers are in `http/data_sources.rs`, `http/queries.rs`,
//! `http/executions.rs` and `http/pipelines.rs`.

pub mod bound;
pub mod executions;
pub mod pipelines;
pub mod refresh;
pub mod shape;
pub mod sources;
pub mod templates;

use crate::config::Config;
use canvas_analytics::{Analytics, AnalyticsConfig, Limits, SecretKey};
use std::sync::Arc;
use std::time::Duration;

/// What the analytics side of a node holds; one per server, in the state.
pub struct DataLayer {
    /// The engine (object store, DataFusion runtime, database pools, HTTP client).
    pub analytics: Analytics,
    /// Seals and opens data sources' secrets.
    pub key: SecretKey,
    /// Executions running on this node and the limits on them.
    pub jobs: executions::Jobs,
    /// How long results stay cached.
    pub result_ttl: Duration,
    /// How long `execute` waits before answering 202.
    pub execute_wait: Duration,
    /// Refreshed sources: subscribe here to hear of new data (on any node).
    pub refreshes: Arc<refresh::Refreshes>,
    /// The pipeline scheduler's settings and wake-up call.
    pub pipelines: pipelines::PipelineSettings,
}

impl DataLayer {
    /// Builds it from the server's flags: the object store (a folder under the data
    /// directory, or `--object-store-url`), the secret key (`--secret-key`, or a key file
    /// made in the data directory), the SSRF guard and the limits.
    pub fn new(config: &Config) -> canvas_analytics::Result<DataLayer> {
        let mut engine = AnalyticsConfig::new(&config.data_dir);
        engine.object_store_url = config.object_store_url.clone();
        engine.allow_private_targets = config.allow_private_targets;
        engine.default_redis_url = config.redis_url.clone();
        engine.limits = Limits {
            max_upload_bytes: config.max_upload_bytes,
            query_timeout: Duration::from_secs(config.query_timeout_secs),
            max_result_rows: config.max_result_rows,
            max_result_bytes: config.max_result_bytes,
            table_cache_bytes: config.table_cache_bytes,
            ..Limits::default()
        };
        let key = match &config.secret_key {
            Some(text) => SecretKey::from_string(text)?,
            None => {
                std::fs::create_dir_all(&config.data_dir)?;
                SecretKey::load_or_create(&config.data_dir)?
            }
        };
        Ok(DataLayer {
            analytics: Analytics::new(engine)?,
            key,
            jobs: executions::Jobs::new(config.executions_per_node, config.executions_per_project),
            result_ttl: Duration::from_secs(config.result_ttl_secs.max(1)),
            execute_wait: Duration::from_millis(config.execute_wait_ms),
            refreshes: Arc::new(refresh::Refreshes::default()),
            pipelines: pipelines::PipelineSettings::new(
                Duration::from_millis(config.pipeline_tick_ms),
                Duration::from_secs(config.pipeline_min_interval_secs),
            ),
        })
    }
}
