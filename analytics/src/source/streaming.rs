//! Streaming sources: a Redis stream read at query time. Each entry (`XADD`) is a row:
//! `_id` (the entry id), `_timestamp` (its millisecond part, UTC), then one column per field
//! in the order fields first appear. Field values are typed by what all of them parse as
//! (integer, number, boolean, else string). A query reads the latest N entries, or the
//! entries of the last S seconds (newest first up to the cap), in id order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use redis::Value as RedisValue;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DataSource, SchemaInfo, SyncReport, TableInfo};
use crate::error::{Error, Result};

/// Entries read when a config names neither `latest` nor `window_seconds`.
pub const DEFAULT_LATEST: usize = 1000;

/// A streaming source's `connection_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The Redis (`redis://[user:password@]host:port/db`); a secret. The crate's
    /// `default_redis_url` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stream's key.
    pub stream: String,
    /// Read the latest N entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<usize>,
    /// Read the entries of the last S seconds instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
}

impl StreamConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.stream.is_empty() {
            return Err(Error::Config("streaming source: 'stream' is empty".into()));
        }
        if self.latest.is_some() && self.window_seconds.is_some() {
            return Err(Error::Config(
                "streaming source: give 'latest' or 'window_seconds', not both".into(),
            ));
        }
        if self.latest == Some(0) || self.window_seconds == Some(0) {
            return Err(Error::Config(
                "streaming source: 'latest' and 'window_seconds' must be positive".into(),
            ));
        }
        if let Some(u) = &self.url {
            redis::Client::open(u.as_str())
                .map_err(|e| Error::Config(format!("streaming source url: {e}")))?;
        }
        Ok(())
    }
}

/// One multiplexed connection to the stream's Redis, within `timeout`.
pub(crate) async fn connect(
    url: &str,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)
        .map_err(|e| Error::Config(format!("streaming source url: {e}")))?;
    match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(Error::SourceUnavailable(format!("redis: {e}"))),
        Err(_) => Err(Error::SourceUnavailable(format!(
            "redis did not answer within {timeout:?}"
        ))),
    }
}

/// One entry: its id and its fields in order.
type Entry = (String, Vec<(String, String)>);

/// Reads the entries the config selects, oldest first.
pub(crate) async fn read(
    conn: &mut redis::aio::MultiplexedConnection,
    config: &StreamConfig,
    cap: usize,
) -> Result<Vec<Entry>> {
    let kind: String = redis::cmd("TYPE")
        .arg(&config.stream)
        .query_async(conn)
        .await
        .map_err(|e| Error::SourceUnavailable(format!("redis: {e}")))?;
    match kind.as_str() {
        "stream" => {}
        "none" => {
            return Err(Error::SourceUnavailable(format!(
                "no Redis stream named '{}'",
                config.stream
            )));
        }
        other => {
            return Err(Error::SourceUnavailable(format!(
                "'{}' is a Redis {other}, not a stream",
                config.stream
            )));
        }
    }
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(&config.stream).arg("+");
    let count = match config.window_seconds {
        Some(seconds) => {
            let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
            cmd.arg(now_ms.saturating_sub(seconds.saturating_mul(1000)));
            cap
        }
        None => {
            cmd.arg("-");
            config.latest.unwrap_or(DEFAULT_LATEST).min(cap)
        }
    };
    cmd.arg("COUNT").arg(count);
    let reply: RedisValue = cmd
        .query_async(conn)
        .await
        .map_err(|e| Error::SourceUnavailable(format!("redis: {e}")))?;
    let mut entries = parse_entries(reply)?;
    entries.reverse();
    Ok(entries)
}

fn text(v: &RedisValue) -> Option<String> {
    match v {
        RedisValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisValue::SimpleString(s) => Some(s.clone()),
        RedisValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn parse_entries(reply: RedisValue) -> Result<Vec<Entry>> {
    let bad = || Error::SourceUnavailable("redis answered XREVRANGE in an unknown shape".into());
    let RedisValue::Array(items) = reply else {
        return Err(bad());
    };
    items
        .into_iter()
        .map(|item| {
            let RedisValue::Array(parts) = item else {
                return Err(bad());
            };
            let [id, fields] = <[RedisValue; 2]>::try_from(parts).map_err(|_| bad())?;
            let id = text(&id).ok_or_else(bad)?;
            let fields = match fields {
                RedisValue::Array(f) => f,
                RedisValue::Nil => Vec::new(),
                _ => return Err(bad()),
            };
            let pairs = fields
                .chunks(2)
                .map(|p| match p {
                    [k, v] => Some((text(k)?, text(v)?)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            Ok((id, pairs))
        })
        .collect()
}

/// The entries as one Arrow batch.
pub(crate) fn to_batch(entries: &[Entry]) -> Result<(SchemaRef, RecordBatch)> {
    let mut names: Vec<String> = Vec::new();
    let mut columns: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (row, (_, fields)) in entries.iter().enumerate() {
        for (k, v) in fields {
            if k == "_id" || k == "_timestamp" {
                continue;
            }
            let col = columns.entry(k.clone()).or_insert_with(|| {
                names.push(k.clone());
                Vec::new()
            });
            col.resize(row, None);
            col.push(Some(v.clone()));
        }
    }
    let mut fields = vec![
        Field::new("_id", DataType::Utf8, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ];
    let ids = StringArray::from_iter_values(entries.iter().map(|(id, _)| id.as_str()));
    let stamps = TimestampMillisecondArray::from_iter_values(entries.iter().map(|(id, _)| {
        id.split('-')
            .next()
            .and_then(|ms| ms.parse::<i64>().ok())
            .unwrap_or(0)
    }))
    .with_timezone("UTC");
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(stamps)];
    for name in &names {
        let mut values = columns.remove(name).unwrap_or_default();
        values.resize(entries.len(), None);
        let present = || values.iter().flatten();
        let array: ArrayRef = if present().all(|v| v.parse::<i64>().is_ok()) {
            fields.push(Field::new(name, DataType::Int64, true));
            Arc::new(Int64Array::from_iter(
                values
                    .iter()
                    .map(|v| v.as_ref().and_then(|s| s.parse().ok())),
            ))
        } else if present().all(|v| v.parse::<f64>().is_ok()) {
            fields.push(Field::new(name, DataType::Float64, true));
            Arc::new(Float64Array::from_iter(
                values
                    .iter()
                    .map(|v| v.as_ref().and_then(|s| s.parse().ok())),
            ))
        } else if present().all(|v| v == "true" || v == "false") {
            fields.push(Field::new(name, DataType::Boolean, true));
            Arc::new(BooleanArray::from_iter(
                values.iter().map(|v| v.as_ref().map(|s| s == "true")),
            ))
        } else {
            fields.push(Field::new(name, DataType::Utf8, true));
            Arc::new(StringArray::from_iter(values.iter().map(|v| v.as_deref())))
        };
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| Error::Execution(format!("stream rows: {e}")))?;
    Ok((schema, batch))
}

/// Reads the stream and describes it.
pub(crate) fn report(source: &DataSource, entries: &[Entry]) -> Result<SyncReport> {
    let (schema, batch) = to_batch(entries)?;
    let table = TableInfo::from_arrow(source.name.clone(), &schema, batch.num_rows() as u64);
    let mut metadata = BTreeMap::new();
    metadata.insert("entries_read".into(), json!(entries.len()));
    Ok(SyncReport::active(
        SchemaInfo {
            tables: vec![table],
        },
        entries.last().map(|(id, _)| id.clone()),
        metadata,
    ))
}
