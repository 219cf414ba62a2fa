//! Server configuration: every setting is a flag with an environment variable.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the server is configured. `canvas-server --help` lists every flag; each also reads
/// the environment variable named beside it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "canvas-server",
    version,
    about = "Real-time collaborative canvas server"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CANVAS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory of the embedded store (one SQLite file).
    #[arg(long, env = "CANVAS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Largest WebSocket message accepted, in bytes; larger ones close the connection
    /// with 4413.
    #[arg(long, env = "CANVAS_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Connections whose first HTTP request has not arrived yet, at most; more are closed at
    /// once (a bound on what idle or slow sockets can hold before authentication).
    #[arg(long, env = "CANVAS_MAX_PENDING_HANDSHAKES", default_value_t = 1024)]
    pub max_pending_handshakes: usize,

    /// Seconds a connection may take to send a whole HTTP request (the WebSocket upgrade
    /// included); slower or silent ones are closed.
    #[arg(long, env = "CANVAS_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,

    /// Seconds a new WebSocket may stay silent before its first message (y-websocket clients
    /// send sync step 1 at once); then it is closed with 1008.
    #[arg(long, env = "CANVAS_WS_FIRST_MESSAGE_SECS", default_value_t = 10)]
    pub ws_first_message_secs: u64,

    /// Seconds between the server's WebSocket pings (0: none). A connection that sends
    /// nothing, pongs included, for two intervals is closed as dead.
    #[arg(long, env = "CANVAS_WS_PING_SECS", default_value_t = 20)]
    pub ws_ping_secs: u64,

    /// Longest awareness (presence) state accepted, in bytes of JSON; longer ones, and states
    /// that are not JSON, are dropped and never relayed.
    #[arg(long, env = "CANVAS_MAX_AWARENESS_BYTES", default_value_t = 8 * 1024)]
    pub max_awareness_bytes: usize,

    /// Awareness messages per second one connection may send (bursts of twice that pass);
    /// more are dropped.
    #[arg(long, env = "CANVAS_AWARENESS_PER_SECOND", default_value_t = 60)]
    pub awareness_per_second: u32,

    /// Largest JSON request body accepted by the REST API, in bytes.
    #[arg(long, env = "CANVAS_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a canvas room stays loaded after its last connection leaves.
    #[arg(long, env = "CANVAS_IDLE_UNLOAD_SECS", default_value_t = 30)]
    pub idle_unload_secs: u64,

    /// Accepted updates after which a room compacts its log into a snapshot.
    #[arg(long, env = "CANVAS_CHECKPOINT_UPDATES", default_value_t = 1000)]
    pub checkpoint_updates: u64,

    /// Seconds after which a room checkpoints what it logged since its last snapshot, however
    /// few updates that was (also how often it refreshes its active users in the shared store).
    #[arg(long, env = "CANVAS_CHECKPOINT_SECS", default_value_t = 60)]
    pub checkpoint_secs: u64,

    /// Seconds between automatic versions of a canvas being edited: a room records one when
    /// its document changed since the last version and at least this long has passed.
    #[arg(long, env = "CANVAS_VERSION_INTERVAL_SECS", default_value_t = 600)]
    pub version_interval_secs: u64,

    /// Hours a login session (bearer token) stays valid.
    #[arg(long, env = "CANVAS_SESSION_TTL_HOURS", default_value_t = 24)]
    pub session_ttl_hours: u64,

    /// PostgreSQL for users, organizations, projects, members and audit
    /// (`postgres://user:pass@host/db`); the embedded store when unset.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// MongoDB for canvases, their update log and versions (`mongodb://host/db`); the
    /// embedded store when unset.
    #[arg(long, env = "MONGODB_URI")]
    pub mongodb_uri: Option<String>,

    /// Redis for sessions, presence and rate limits (`redis://host:6379/0`); in process
    /// when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key (to share one Redis between deployments or tests).
    #[arg(long, env = "CANVAS_REDIS_KEY_PREFIX", default_value = "")]
    pub redis_key_prefix: String,

    /// This server's name among several sharing the services (presence bookkeeping);
    /// random when unset.
    #[arg(long, env = "CANVAS_NODE_ID")]
    pub node_id: Option<String>,

    /// REST calls a user may make per minute to one endpoint; more get 429.
    #[arg(long, env = "CANVAS_REST_RATE_LIMIT", default_value_t = 600)]
    pub rest_rate_limit: u32,

    /// Failed login attempts per minute for one account from one client address; past it
    /// that address gets 429 for that account (other addresses, the owner's among them, do
    /// not). Also the signups per minute for one email.
    #[arg(long, env = "CANVAS_LOGIN_RATE_LIMIT", default_value_t = 10)]
    pub login_rate_limit: u32,

    /// Failed login attempts per minute for one account from all addresses together; past
    /// it only addresses with no failure on that account this minute may still try.
    #[arg(long, env = "CANVAS_LOGIN_ACCOUNT_RATE_LIMIT", default_value_t = 100)]
    pub login_account_rate_limit: u32,

    /// Login attempts per minute from one client address (any account, known or not);
    /// more get 429.
    #[arg(long, env = "CANVAS_LOGIN_IP_RATE_LIMIT", default_value_t = 60)]
    pub login_ip_rate_limit: u32,

    /// Signups per minute from one client address; more get 429.
    #[arg(long, env = "CANVAS_SIGNUP_RATE_LIMIT", default_value_t = 20)]
    pub signup_rate_limit: u32,

    /// Password hashes and checks (Argon2id, about 19 MiB each) run at once at most; the
    /// number of CPUs when unset.
    #[arg(long, env = "CANVAS_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// Milliseconds a signup or login waits for a hashing slot before it gets 503 `busy`
    /// with `Retry-After`.
    #[arg(long, env = "CANVAS_HASH_WAIT_MS", default_value_t = 2000)]
    pub hash_wait_ms: u64,

    /// Reverse proxies in front of the server that append the client's address to
    /// `X-Forwarded-For`. 0 (the default): the header is ignored and the client is the TCP
    /// peer. N: the client is the N-th address from the right of the header (what the
    /// outermost trusted proxy saw), so addresses a client writes into it are never believed.
    #[arg(long, env = "CANVAS_TRUSTED_PROXIES", default_value_t = 0)]
    pub trusted_proxies: usize,

    /// WebSocket messages a user may send per minute (all their connections); more close
    /// the connection with 4429.
    #[arg(long, env = "CANVAS_WS_RATE_LIMIT", default_value_t = 30_000)]
    pub ws_rate_limit: u32,

    /// Origins of the operator's own web apps (comma-separated, e.g.
    /// `https://app.example.com`). A browser WebSocket whose `Origin` is neither the
    /// server's own host nor one of these counts as an embedding in a foreign page, allowed
    /// only by a canvas's `embed_settings`.
    #[arg(long, env = "CANVAS_APP_ORIGINS", value_delimiter = ',')]
    pub app_origins: Vec<String>,

    /// Organizations (comma-separated ids) whose admins may make public templates, which
    /// every organization on the server sees. Empty (the default): only the built-in
    /// templates are public.
    #[arg(long, env = "CANVAS_TEMPLATE_PUBLISHERS", value_delimiter = ',')]
    pub template_publishers: Vec<uuid::Uuid>,

    /// Where uploaded files and API snapshots of data sources are kept: `s3://bucket/prefix`
    /// for an S3-compatible bucket shared by several nodes (credentials, region and endpoint
    /// from the standard AWS environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for http). Unset: a folder
    /// under the data directory (one node).
    #[arg(long, env = "CANVAS_OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,

    /// The key that encrypts data sources' secrets at rest (32 bytes as base64 or hex, e.g.
    /// `openssl rand -base64 32`); every node sharing the services needs the same one.
    /// Unset: a key file created in the data directory (`analytics-secret.key`, mode 0600).
    #[arg(long, env = "CANVAS_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Let API data sources and webhooks reach loopback and private addresses (off: such
    /// targets are refused, so a project admin cannot make the server call its own network).
    /// A flag (`--allow-private-targets`); the variable takes 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        env = "CANVAS_ALLOW_PRIVATE_TARGETS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_targets: bool,

    /// Largest data file upload, in bytes; larger ones get 413.
    #[arg(long, env = "CANVAS_MAX_UPLOAD_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Memory for file sources' tables kept decoded between queries (per node, in bytes):
    /// a file's rows are decoded once per upload, by the first query that reads them, and
    /// later queries read memory; the least recently used leave first; a file whose rows do
    /// not fit is read from the file each time. 0 turns it off.
    #[arg(long, env = "CANVAS_TABLE_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub table_cache_bytes: usize,

    /// Seconds one query may run; then it fails with `timeout`.
    #[arg(long, env = "CANVAS_QUERY_TIMEOUT_SECS", default_value_t = 60)]
    pub query_timeout_secs: u64,

    /// Rows a query result keeps (the rest is cut and the result says so).
    #[arg(long, env = "CANVAS_MAX_RESULT_ROWS", default_value_t = 100_000)]
    pub max_result_rows: usize,

    /// Bytes of JSON a query result keeps, about (the rest is cut and the result says so).
    #[arg(long, env = "CANVAS_MAX_RESULT_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_result_bytes: usize,

    /// Queries running at once on this node; more wait in line (status `pending`).
    #[arg(long, env = "CANVAS_EXECUTIONS_PER_NODE", default_value_t = 8)]
    pub executions_per_node: usize,

    /// Queries of one project running at once on this node; more wait in line.
    #[arg(long, env = "CANVAS_EXECUTIONS_PER_PROJECT", default_value_t = 2)]
    pub executions_per_project: usize,

    /// Seconds a query result stays in the cache (`query:result:{hash}`).
    #[arg(long, env = "CANVAS_RESULT_TTL_SECS", default_value_t = 3600)]
    pub result_ttl_secs: u64,

    /// Milliseconds `POST /queries/{id}/execute` waits for a result before answering 202
    /// with the execution to poll.
    #[arg(long, env = "CANVAS_EXECUTE_WAIT_MS", default_value_t = 2000)]
    pub execute_wait_ms: u64,

    /// Longest wait, in milliseconds, between two looks of the pipeline scheduler at the
    /// due pipelines (it also wakes at the earliest due time, and when a pipeline changes
    /// on this node).
    #[arg(long, env = "CANVAS_PIPELINE_TICK_MS", default_value_t = 5000)]
    pub pipeline_tick_ms: u64,

    /// Shortest time between two runs of a pipeline's schedule, in seconds: a schedule that
    /// runs more often is refused with `invalid_schedule`. Tests lower it (cron schedules
    /// may have a seconds field: `*/2 * * * * *`).
    #[arg(long, env = "CANVAS_PIPELINE_MIN_INTERVAL_SECS", default_value_t = 60)]
    pub pipeline_min_interval_secs: u64,

    /// Longest wait, in milliseconds, between two looks of the webhook delivery worker at
    /// the outbox (it also wakes at the earliest due delivery, and when an event is queued on
    /// this node).
    #[arg(long, env = "CANVAS_WEBHOOK_TICK_MS", default_value_t = 1000)]
    pub webhook_tick_ms: u64,

    /// Wait before the second attempt at a webhook delivery, in milliseconds; each later
    /// attempt waits twice as long as the one before (at most an hour), for 24 hours.
    #[arg(long, env = "CANVAS_WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000)]
    pub webhook_retry_base_ms: u64,

    /// `canvas.updated` webhooks: at most one per canvas and subscription per this many
    /// milliseconds (the changes in between are one event carrying the latest).
    #[arg(long, env = "CANVAS_WEBHOOK_COALESCE_MS", default_value_t = 10_000)]
    pub webhook_coalesce_ms: u64,

    /// How long a receiver has to answer one webhook delivery, in milliseconds.
    #[arg(long, env = "CANVAS_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// How long an ended webhook delivery (delivered, or failed after its 24 hours of
    /// retries) stays in the delivery log, in seconds, before it is deleted with its
    /// attempts (7 days by default; 0 keeps them forever). Pending ones are never pruned.
    #[arg(long, env = "CANVAS_WEBHOOK_RETENTION_SECS", default_value_t = 7 * 24 * 60 * 60)]
    pub webhook_retention_secs: u64,

    /// Log filter in `tracing_subscriber::EnvFilter` syntax, e.g. `info,canvas_server=debug`.
    #[arg(long, env = "CANVAS_LOG", default_value = "info")]
    pub log: String,

    /// Log line format on stderr: `text` (for people; coloured only on a terminal) or `json`
    /// (one object per line, fields at the top level, for log shippers).
    #[arg(long, env = "CANVAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, with its spans.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields, `span` (the innermost) and `spans` (all, outermost first).
    Json,
}

impl Config {
    /// The configuration with every default, storing under `data_dir`; what tests start from.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["canvas-server"]);
        config.data_dir = data_dir.into();
        config
    }

    /// [`Config::idle_unload_secs`] as a duration.
    pub fn idle_unload(&self) -> Duration {
        Duration::from_secs(self.idle_unload_secs)
    }

    /// [`Config::version_interval_secs`] as a duration.
    pub fn version_interval(&self) -> Duration {
        Duration::from_secs(self.version_interval_secs)
    }

    /// The service URLs, as the storage layer takes them.
    pub fn services(&self) -> canvas_storage::ServiceUrls {
        canvas_storage::ServiceUrls {
            database_url: self.database_url.clone(),
            mongodb_uri: self.mongodb_uri.clone(),
            redis_url: self.redis_url.clone(),
            redis_key_prefix: self.redis_key_prefix.clone(),
        }
    }

    /// [`Config::hash_concurrency`], or the number of CPUs.
    pub fn hash_slots(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// [`Config::hash_wait_ms`] as a duration.
    pub fn hash_wait(&self) -> Duration {
        Duration::from_millis(self.hash_wait_ms)
    }

    /// [`Config::session_ttl_hours`] as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_hours * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_private_targets_is_a_flag() {
        assert!(!Config::parse_from(["canvas-server"]).allow_private_targets);
        let on = Config::parse_from(["canvas-server", "--allow-private-targets"]);
        assert!(on.allow_private_targets);
    }
}
