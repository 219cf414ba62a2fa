//! The crate's configuration: where files live, what outbound targets are allowed, limits.

use std::path::PathBuf;

use std::time::Duration;

/// Everything [`crate::Analytics::new`] needs. Build it with [`AnalyticsConfig::new`] and
/// change the fields you care about.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// Where file sources (and api snapshots) are kept. `None` keeps them in
    /// `data_dir/analytics` on the local disk (one node); `Some("s3://bucket/prefix")` keeps
    /// them in an S3-compatible bucket shared by several nodes. Credentials, region and
    /// endpoint come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`; `AWS_ALLOW_HTTP=true` for
    /// an `http://` endpoint).
    pub object_store_url: Option<String>,
    /// Options for the S3 client that override the environment, by `object_store`'s
    /// config key (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`, `aws_allow_http`, ...): for flags, and for tests that must not change
    /// the process environment.
    pub object_store_options: Vec<(String, String)>,
    /// The server's data directory: the local object store lives under it.
    pub data_dir: PathBuf,
    /// Allow api sources to reach loopback, private, link-local and other internal
    /// addresses (SSRF guard off). Off by default; tests and single-machine setups turn it on.
    pub allow_private_targets: bool,
    /// The Redis a streaming source reads when its `connection_config` names no `url`
    /// (usually the server's own Redis).
    pub default_redis_url: Option<String>,
    /// Caps on uploads, fetches and queries.
    pub limits: Limits,
}

impl AnalyticsConfig {
    /// A local-disk configuration under `data_dir`, private targets refused, default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        AnalyticsConfig {
            object_store_url: None,
            object_store_options: Vec::new(),
            data_dir: data_dir.into(),
            allow_private_targets: false,
            default_redis_url: None,
            limits: Limits::default(),
        }
    }
}

/// Caps that keep one upload or query from taking the node down.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file upload, in bytes (past it: [`crate::Error::TooLarge`], the server's 413).
    pub max_upload_bytes: u64,
    /// Largest api response body, in bytes.
    pub max_api_response_bytes: u64,
    /// How long an api fetch may take, connection included.
    pub api_timeout: Duration,
    /// Rows a result keeps; the rest is cut and the result says so.
    pub max_result_rows: usize,
    /// Approximate JSON size a result keeps, in bytes; the rest is cut and the result says so.
    pub max_result_bytes: usize,
    /// How long one query may run (DataFusion, or the database's statement timeout).
    pub query_timeout: Duration,
    /// Memory DataFusion may use across all queries of this node at once (one pool).
    pub memory_pool_bytes: usize,
    /// Memory for file tables kept decoded (Arrow batches) between queries, across the
    /// node; 0 reads every query from the file.
    pub table_cache_bytes: usize,
    /// Most entries a streaming source reads from Redis per query.
    pub max_stream_entries: usize,
    /// Connections kept per database source.
    pub max_db_connections: u32,
    /// How long connecting to a source database may take.
    pub db_connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 256 * 1024 * 1024,
            max_api_response_bytes: 32 * 1024 * 1024,
            api_timeout: Duration::from_secs(30),
            max_result_rows: 100_000,
            max_result_bytes: 32 * 1024 * 1024,
            query_timeout: Duration::from_secs(60),
            memory_pool_bytes: 1024 * 1024 * 1024,
            table_cache_bytes: 256 * 1024 * 1024,
            max_stream_entries: 100_000,
            max_db_connections: 4,
            db_connect_timeout: Duration::from_secs(10),
        }
    }
}
