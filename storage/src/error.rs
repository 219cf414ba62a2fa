//! The storage layer's error type.

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique value (email, username, slug, id) is already taken.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value read back from the database does not have the expected form.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The SQL database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Running the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be prepared.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A configured service cannot be reached or refused the connection.
    #[error("cannot reach {service}: {cause}")]
    Unreachable {
        /// Which service: PostgreSQL, MongoDB or Redis.
        service: &'static str,
        /// What went wrong (without credentials).
        cause: String,
    },
    /// MongoDB failed.
    #[error("MongoDB error: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// Redis failed.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A JSON value could not be encoded or decoded.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
}

/// Result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;

impl StorageError {
    /// The backend the failure came from, for counting failures by backend: `postgresql`,
    /// `sqlite`, `mysql`, `mongodb`, `redis`, `filesystem`; `sql` for a SQL driver error that
    /// names no server (a dropped connection, a pool timeout: the caller knows which SQL
    /// service it uses); `unknown` for what no backend produced (a corrupt value, JSON).
    pub fn backend(&self) -> &'static str {
        match self {
            StorageError::Unreachable { service, .. } => service,
            StorageError::Mongo(_) => "mongodb",
            StorageError::Redis(_) => "redis",
            StorageError::Io(_) => "filesystem",
            StorageError::Database(sqlx::Error::Database(e)) => {
                if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    "postgresql"
                } else if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    "sqlite"
                } else if e
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some()
                {
                    "mysql"
                } else {
                    "sql"
                }
            }
            StorageError::Database(_) | StorageError::Migrate(_) => "sql",
            StorageError::Conflict(_)
            | StorageError::NotFound(_)
            | StorageError::Corrupt(_)
            | StorageError::Json(_)
            | StorageError::Password(_) => "unknown",
        }
    }

    /// Whether a backing service could not be reached or answered in time (a connection
    /// refused, reset or timed out, a pool with no live connection): the request may
    /// succeed once the service is back, so callers answer "try again" (REST 503, WebSocket
    /// 1011) rather than "internal error".
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Unreachable { .. } => true,
            StorageError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            StorageError::Mongo(e) => {
                use mongodb::error::ErrorKind;
                matches!(
                    *e.kind,
                    ErrorKind::Io(_)
                        | ErrorKind::ServerSelection { .. }
                        | ErrorKind::ConnectionPoolCleared { .. }
                ) || e.contains_label("RetryableWriteError")
            }
            StorageError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout()
            }
            _ => false,
        }
    }
}
