//! Api sources: an HTTP JSON endpoint fetched on sync. The array of objects it answers (or
//! the one a JSON pointer names) becomes a Parquet snapshot in the object store, queried as
//! the source's table until the next sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DataSource, FileFormat, SchemaInfo, SyncReport, TableInfo};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::net;
use crate::store::Storage;

/// An api source's `connection_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The endpoint (http or https); fetched with GET.
    pub url: String,
    /// Request headers (`Authorization`, API keys): every value is a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON pointer (RFC 6901, e.g. `/data/items`) to the array of objects in the answer;
    /// the answer itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
}

impl ApiConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("api source url '{}': {e}", self.url)))?;
        net::check_url(&url, true)?;
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Config(format!("'{name}' is not a header name")))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("header '{name}' has an invalid value")))?;
        }
        if let Some(p) = &self.json_pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(Error::Config(format!(
                "json_pointer '{p}' must be empty or start with '/'"
            )));
        }
        Ok(())
    }
}

/// Fetches, converts and stores the snapshot; the report carries its schema.
pub(crate) async fn sync(
    client: &reqwest::Client,
    allow_private: bool,
    storage: &Storage,
    source: &DataSource,
    config: &ApiConfig,
    limits: &Limits,
) -> Result<SyncReport> {
    let body = fetch(client, allow_private, config, limits).await?;
    let digest: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let batch = to_batch(&body, config.json_pointer.as_deref())?;
    let parquet = to_parquet(&batch)?;
    let tmp = storage.tmp_key(source.id, FileFormat::Parquet);
    storage.store.put(&tmp, PutPayload::from(parquet)).await?;
    if let Err(e) = storage.publish(source.id, &tmp, FileFormat::Parquet).await {
        storage.discard(&tmp).await;
        return Err(e);
    }
    let schema = batch.schema();
    let table = TableInfo::from_arrow(source.name.clone(), &schema, batch.num_rows() as u64);
    let mut metadata = BTreeMap::new();
    metadata.insert("row_count".into(), json!(batch.num_rows()));
    metadata.insert("response_bytes".into(), json!(body.len()));
    Ok(SyncReport::active(
        SchemaInfo {
            tables: vec![table],
        },
        Some(digest),
        metadata,
    ))
}

async fn fetch(
    client: &reqwest::Client,
    allow_private: bool,
    config: &ApiConfig,
    limits: &Limits,
) -> Result<Vec<u8>> {
    let url = url::Url::parse(&config.url)
        .map_err(|e| Error::Config(format!("api source url '{}': {e}", config.url)))?;
    net::check_url(&url, allow_private)?;
    let mut request = client.get(url.clone()).timeout(limits.api_timeout);
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    let mut response = request.send().await.map_err(|e| request_error(&url, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::SourceUnavailable(format!(
            "{} answered HTTP {status}",
            redact(&url)
        )));
    }
    let limit = limits.max_api_response_bytes;
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(Error::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| request_error(&url, e))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Error::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    u.to_string()
}

fn request_error(url: &url::Url, e: reqwest::Error) -> Error {
    // our resolver's refusal comes back as the request's source
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(Error::ForbiddenTarget(m)) = c.downcast_ref::<Error>() {
            return Error::ForbiddenTarget(m.clone());
        }
        cause = c.source();
    }
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not be reached".to_string()
    } else {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    };
    Error::SourceUnavailable(format!("{} {what}", redact(url)))
}

/// The JSON rows as one Arrow batch (column types inferred over every row).
pub(crate) fn to_batch(body: &[u8], pointer: Option<&str>) -> Result<RecordBatch> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("the answer is not JSON: {e}")))?;
    let target = match pointer.filter(|p| !p.is_empty()) {
        Some(p) => json
            .pointer(p)
            .ok_or_else(|| Error::Malformed(format!("the answer has nothing at '{p}'")))?,
        None => &json,
    };
    let Value::Array(items) = target else {
        return Err(Error::Malformed(format!(
            "expected an array of objects{}, found {}",
            pointer.map(|p| format!(" at '{p}'")).unwrap_or_default(),
            kind_of(target)
        )));
    };
    if let Some((i, v)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
        return Err(Error::Malformed(format!(
            "element {i} of the array is {}, not an object",
            kind_of(v)
        )));
    }
    if items.is_empty() {
        return Err(Error::Malformed(
            "the array is empty: no columns to infer".into(),
        ));
    }
    let schema = infer_json_schema_from_iterator(items.iter().map(|v| Ok(v.clone())))
        .map_err(|e| Error::Malformed(format!("column types: {e}")))?;
    let mut decoder = ReaderBuilder::new(Arc::new(schema))
        .with_coerce_primitive(true)
        .with_batch_size(items.len().max(1))
        .build_decoder()
        .map_err(|e| Error::Malformed(e.to_string()))?;
    decoder
        .serialize(items)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    decoder
        .flush()
        .map_err(|e| Error::Malformed(e.to_string()))?
        .ok_or_else(|| Error::Malformed("no rows".into()))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn to_parquet(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None)
        .map_err(|e| Error::Execution(format!("snapshot: {e}")))?;
    writer
        .write(batch)
        .map_err(|e| Error::Execution(format!("snapshot: {e}")))?;
    writer
        .close()
        .map_err(|e| Error::Execution(format!("snapshot: {e}")))?;
    Ok(out)
}
