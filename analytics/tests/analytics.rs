//! Integration tests of canvas-analytics against real engines: files on a local disk and in
//! an S3 API server (moto), PostgreSQL and MariaDB databases created for the run, an HTTP
//! server on 127.0.0.1 for api sources, and Redis streams. One test binary (DataFusion makes
//! every link expensive); one module per source kind.
//!
//! Services come from the environment scripts/test.sh exports: DATABASE_URL_TEST,
//! MYSQL_URL_TEST, REDIS_URL_TEST, CANVAS_TEST_S3_ENDPOINT. A missing one fails the tests
//! that need it, loudly.

#[path = "analytics/api.rs"]
mod api;
#[path = "analytics/database.rs"]
mod database;
#[path = "analytics/files.rs"]
mod files;
#[path = "analytics/queries.rs"]
mod queries;
#[path = "analytics/streaming.rs"]
mod streaming;
#[path = "analytics/support.rs"]
mod support;
