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
