//! File sources: CSV, Parquet and NDJSON uploads kept in the object store.
//!
//! An upload streams into a temporary object (counting bytes against the limit and hashing
//! them), is read whole by DataFusion to prove it parses, and only then replaces the
//! source's file. Any failure removes the temporary object and leaves the old file.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{DataSource, SchemaInfo, SyncReport, TableInfo};
use crate::error::{Error, Result};
use crate::query::engine::{Engine, TableData, data_error};
use crate::store::Storage;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values (`text/csv`), a header row by default.
    Csv,
    /// Apache Parquet (`application/vnd.apache.parquet`).
    Parquet,
    /// Newline-delimited JSON objects (`application/x-ndjson`).
    Ndjson,
}

impl FileFormat {
    /// Every format.
    pub const ALL: [FileFormat; 3] = [FileFormat::Csv, FileFormat::Parquet, FileFormat::Ndjson];

    /// The format of an upload's `Content-Type` (parameters such as `; charset=utf-8` are
    /// ignored). `text/csv`, `application/vnd.apache.parquet` (also
    /// `application/x-parquet`), `application/x-ndjson` (also `application/jsonl`,
    /// `application/jsonlines`).
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Ok(FileFormat::Csv),
            "application/vnd.apache.parquet" | "application/x-parquet" => Ok(FileFormat::Parquet),
            "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => {
                Ok(FileFormat::Ndjson)
            }
            _ => Err(Error::Malformed(format!(
                "unsupported content type '{content_type}' (text/csv, \
                 application/vnd.apache.parquet, application/x-ndjson)"
            ))),
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Ndjson => "ndjson",
        }
    }

    pub(crate) fn from_extension(ext: &str) -> Option<Self> {
        FileFormat::ALL.into_iter().find(|f| f.extension() == ext)
    }
}

/// A file source's `connection_config`: how to read CSV (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The CSV field delimiter, one ASCII character (`,` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Whether the CSV's first row names the columns (true by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_header: Option<bool>,
}

impl FileConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(d) = &self.delimiter
            && (d.len() != 1 || !d.is_ascii())
        {
            return Err(Error::Config(format!(
                "file source delimiter '{d}' must be one ASCII character"
            )));
        }
        Ok(())
    }

    pub(crate) fn delimiter_byte(&self) -> u8 {
        self.delimiter
            .as_deref()
            .and_then(|d| d.bytes().next())
            .unwrap_or(b',')
    }
}

/// Streams `body` into a temporary object, checks it, then makes it the source's file.
pub(crate) async fn upload<S, E>(
    storage: &Storage,
    engine: &Engine,
    source: &DataSource,
    options: &FileConfig,
    format: FileFormat,
    body: S,
    limit: u64,
) -> Result<SyncReport>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let tmp = storage.tmp_key(source.id, format);
    let written = write_limited(storage, &tmp, body, limit).await;
    let (size, digest) = match written {
        Ok(v) => v,
        Err(e) => {
            storage.discard(&tmp).await;
            return Err(e);
        }
    };
    if size == 0 {
        storage.discard(&tmp).await;
        return Err(Error::Malformed("the file is empty".into()));
    }
    let checked = inspect(engine, &source.name, tmp.clone(), format, options).await;
    let table = match checked {
        Ok(t) => t,
        Err(e) => {
            storage.discard(&tmp).await;
            return Err(e);
        }
    };
    if let Err(e) = storage.publish(source.id, &tmp, format).await {
        storage.discard(&tmp).await;
        return Err(e);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("format".into(), json!(format.extension()));
    metadata.insert("size_bytes".into(), json!(size));
    metadata.insert("row_count".into(), json!(table.row_count));
    Ok(SyncReport::active(
        SchemaInfo {
            tables: vec![table],
        },
        Some(digest),
        metadata,
    ))
}

async fn write_limited<S, E>(
    storage: &Storage,
    key: &object_store::path::Path,
    body: S,
    limit: u64,
) -> Result<(u64, String)>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut writer = object_store::buffered::BufWriter::new(storage.store.clone(), key.clone());
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(Error::Malformed(format!("the upload was interrupted: {e}")));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            let _ = writer.abort().await;
            return Err(Error::TooLarge { limit });
        }
        hasher.update(&chunk);
        if let Err(e) = writer.put(chunk).await {
            let _ = writer.abort().await;
            return Err(e.into());
        }
    }
    writer.shutdown().await?;
    let digest = hasher.finalize();
    Ok((size, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Reads the whole object as `format`: its columns, and its rows counted.
pub(crate) async fn inspect(
    engine: &Engine,
    name: &str,
    key: object_store::path::Path,
    format: FileFormat,
    options: &FileConfig,
) -> Result<TableInfo> {
    let ctx = engine.single_scan_context();
    engine
        .register(
            &ctx,
            "upload",
            TableData::File {
                key,
                format,
                options: options.clone(),
            },
            None,
        )
        .await?;
    let df = ctx.table("upload").await.map_err(data_error)?;
    let schema = df.schema().as_arrow().clone();
    let mut stream = df.execute_stream().await.map_err(data_error)?;
    let mut rows: u64 = 0;
    let header = format == FileFormat::Csv && options.has_header.unwrap_or(true);
    while let Some(batch) = stream.next().await {
        rows += batch
            .map_err(|e| match data_error(e) {
                Error::Malformed(m) if header => Error::Malformed(count_header_line(&m)),
                other => other,
            })?
            .num_rows() as u64;
    }
    if schema.fields().is_empty() {
        return Err(Error::Malformed("the file has no columns".into()));
    }
    Ok(TableInfo::from_arrow(name.to_string(), &schema, rows))
}

/// Arrow's CSV reader numbers a value it cannot parse by data row, not counting the header
/// (its field-count errors count the header): give the file's line either way.
fn count_header_line(message: &str) -> String {
    const KEY: &str = " at line ";
    if !message.contains("Error while parsing value") {
        return message.to_string();
    }
    let Some(at) = message.find(KEY).map(|i| i + KEY.len()) else {
        return message.to_string();
    };
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse::<u64>() {
        Ok(n) => format!(
            "{}{}{}",
            &message[..at],
            n + 1,
            &message[at + digits.len()..]
        ),
        Err(_) => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_errors_count_the_header_line() {
        assert_eq!(
            count_header_line(
                "Error while parsing value 'x' as type 'Int64' for column 1 at line 7. Row data: '[a]'"
            ),
            "Error while parsing value 'x' as type 'Int64' for column 1 at line 8. Row data: '[a]'"
        );
        assert_eq!(
            count_header_line("incorrect number of fields for line 42, expected 3 got 4"),
            "incorrect number of fields for line 42, expected 3 got 4"
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            FileFormat::from_content_type("text/csv; charset=utf-8").ok(),
            Some(FileFormat::Csv)
        );
        assert_eq!(
            FileFormat::from_content_type("application/vnd.apache.parquet").ok(),
            Some(FileFormat::Parquet)
        );
        assert_eq!(
            FileFormat::from_content_type("application/x-ndjson").ok(),
            Some(FileFormat::Ndjson)
        );
        assert!(FileFormat::from_content_type("application/json").is_err());
    }
}
