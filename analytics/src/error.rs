//! The crate's one error type, and the kind the server maps to an HTTP status.

use std::time::Duration;

/// What went wrong, in a form a caller can branch on. [`Error::kind`] groups the variants the
/// way a server answers them (400, 413, failed execution, 503, 500).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL text does not parse: the parser's own message, with the line and column it
    /// named when it named one (both 1-based).
    #[error("syntax error: {message}")]
    Syntax {
        /// The parser's message (DataFusion's sqlparser, or the source database's).
        message: String,
        /// 1-based line of the error, when the parser gave one.
        line: Option<u64>,
        /// 1-based column of the error, when the parser gave one.
        column: Option<u64>,
    },
    /// The SQL parses but cannot be planned: an unknown table, column or function, or
    /// mismatched types.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The statement is not a read: DDL, DML and other statements (SET, COPY, ...) are
    /// refused before anything runs.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// A query type other than `sql` (`python`, `natural_language`, or an unknown one).
    #[error("unsupported query type '{0}': only sql queries run")]
    UnsupportedQueryType(String),
    /// A parameter is undeclared, missing with no default, or of the wrong type; or a
    /// declaration is malformed.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// A source's `connection_config` (or the crate's configuration) is malformed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An upload or a fetched API body is larger than its limit (the server's 413).
    #[error("the data is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was passed, in bytes.
        limit: u64,
    },
    /// Uploaded or fetched data does not parse as its format (the message names the line
    /// for CSV and NDJSON rows).
    #[error("malformed data: {0}")]
    Malformed(String),
    /// An outbound HTTP target resolves to a loopback, private or otherwise internal
    /// address and private targets are not allowed.
    #[error("target refused: {0}")]
    ForbiddenTarget(String),
    /// The source could not be reached or answered with an error (database down, HTTP
    /// status, Redis refused). The source's status should become `error`.
    #[error("source unavailable: {0}")]
    SourceUnavailable(String),
    /// A file source has no uploaded file yet, or an api source was never synced.
    #[error("source '{0}' has no data yet: upload a file or sync it first")]
    NoData(String),
    /// The query ran longer than its timeout and was stopped.
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// The query was cancelled by its caller.
    #[error("the query was cancelled")]
    Cancelled,
    /// The query was valid but failed while running (a cast that failed on a row, a
    /// division by zero, the memory pool exhausted, a runtime error of the database).
    #[error("execution failed: {0}")]
    Execution(String),
    /// Encrypting or decrypting a secret failed (wrong key, tampered data), or a key is
    /// malformed.
    #[error("secret error: {0}")]
    Secret(String),
    /// The object store failed (disk, bucket, network to the bucket).
    #[error("object store: {0}")]
    Storage(#[from] object_store::Error),
    /// A local I/O error (key file, data directory).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How a server answers an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong (HTTP 400): syntax, unknown names, refused statements,
    /// parameters, configuration, malformed uploads, refused targets, a source with no data.
    InvalidInput,
    /// The body is over its limit (HTTP 413).
    TooLarge,
    /// The query was accepted but its execution failed (an execution with status `failed`):
    /// the source is unavailable, a runtime error, a timeout or a cancellation.
    ExecutionFailed,
    /// Our own storage or keys failed (HTTP 500/503): not the caller's fault.
    Internal,
}

impl Error {
    /// The kind of answer this error calls for.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Syntax { .. }
            | Error::Invalid(_)
            | Error::NotAllowed(_)
            | Error::UnsupportedQueryType(_)
            | Error::Parameter(_)
            | Error::Config(_)
            | Error::Malformed(_)
            | Error::ForbiddenTarget(_)
            | Error::NoData(_) => ErrorKind::InvalidInput,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::SourceUnavailable(_)
            | Error::Timeout(_)
            | Error::Cancelled
            | Error::Execution(_) => ErrorKind::ExecutionFailed,
            Error::Secret(_) | Error::Storage(_) | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// A stable snake_case code for API bodies (`{"error": {"code": ...}}`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Syntax { .. } => "syntax_error",
            Error::Invalid(_) => "invalid_query",
            Error::NotAllowed(_) => "statement_not_allowed",
            Error::UnsupportedQueryType(_) => "unsupported_query_type",
            Error::Parameter(_) => "invalid_parameter",
            Error::Config(_) => "invalid_config",
            Error::TooLarge { .. } => "payload_too_large",
            Error::Malformed(_) => "malformed_data",
            Error::ForbiddenTarget(_) => "forbidden_target",
            Error::SourceUnavailable(_) => "source_unavailable",
            Error::NoData(_) => "no_data",
            Error::Timeout(_) => "timeout",
            Error::Cancelled => "cancelled",
            Error::Execution(_) => "execution_failed",
            Error::Secret(_) => "secret_error",
            Error::Storage(_) => "storage_error",
            Error::Io(_) => "io_error",
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
