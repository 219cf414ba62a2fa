//! A stored data source (`canvas_storage::DataSource`: its `connection_config` sealed) as the
//! engine opens it, and as the API shows it (secrets redacted).

use super::DataLayer;
use crate::error::{ApiError, ApiResult};
use canvas_analytics::{SourceConfig, SourceKind, SyncReport};
use canvas_storage::{DataSource, DataSourceUpdate};
use serde_json::{Value, json};

/// The key of `metadata` that holds the source's data version (the engine's: a hash of the
/// uploaded file, the last stream entry, ...); results are cached per version.
pub const DATA_VERSION: &str = "data_version";

/// The stored type of a database source.
const DATABASE: &str = "database";

/// The key of `metadata` that holds the last sync's error message, while `status` is `error`.
pub const LAST_ERROR: &str = "error";

/// A source type as stored.
pub fn kind(row: &DataSource) -> ApiResult<SourceKind> {
    row.kind.parse::<SourceKind>().map_err(ApiError::from)
}

/// The stored source as the engine takes it: its secrets opened, its data version.
pub fn open(layer: &DataLayer, row: &DataSource) -> ApiResult<canvas_analytics::DataSource> {
    let config = SourceConfig::open(kind(row)?, row.id, &row.connection_config, &layer.key)?;
    Ok(canvas_analytics::DataSource {
        id: row.id,
        name: row.name.clone(),
        config,
        data_version: row
            .metadata
            .get(DATA_VERSION)
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The source as the API shows it: the seed's fields, `connection_config` redacted.
pub fn json(layer: &DataLayer, row: &DataSource) -> DataSourceView {
    let config = match kind(row).and_then(|kind| {
        Ok(SourceConfig::open(
            kind,
            row.id,
            &row.connection_config,
            &layer.key,
        )?)
    }) {
        Ok(config) => config.redacted(),
        // A key that no longer opens the secrets (it was replaced): show nothing of them.
        Err(_) => json!({}),
    };
    DataSourceView {
        id: row.id,
        project_id: row.project_id,
        name: row.name.clone(),
        kind: row.kind.clone(),
        connection_config: config,
        schema_info: row.schema_info.clone(),
        metadata: row.metadata.clone(),
        status: row.status.clone(),
        last_sync_at: row.last_sync_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A data source as the API shows it (secrets redacted).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DataSourceView {
    /// The source.
    pub id: uuid::Uuid,
    /// Its project.
    pub project_id: uuid::Uuid,
    /// Its name (the SQL table its queries use).
    pub name: String,
    /// `file`, `database`, `api` or `streaming`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The connection settings, secrets redacted.
    #[schema(value_type = Object)]
    pub connection_config: Value,
    /// The tables and columns found by the last sync or upload (`{tables: [...]}`).
    #[schema(required, value_type = Option<Object>)]
    pub schema_info: Option<Value>,
    /// Free-form metadata (data version, last error, ...).
    pub metadata: Value,
    /// `pending`, `active` or `error`.
    pub status: String,
    /// When it was last synced.
    #[schema(required)]
    pub last_sync_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change time.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What a sync or upload changes in the stored row: status, schema, sync time, and the
/// metadata merged with the report's (data version included, the last error set or cleared).
pub fn synced(row: &DataSource, report: &SyncReport) -> DataSourceUpdate {
    let mut metadata = row.metadata.as_object().cloned().unwrap_or_default();
    for (key, value) in &report.metadata {
        metadata.insert(key.clone(), value.clone());
    }
    match &report.data_version {
        Some(version) => {
            metadata.insert(DATA_VERSION.into(), json!(version));
        }
        // A database has no version of its own: each successful sync is one, so results
        // cached before it are not read again (their key has the old version).
        None if row.kind == DATABASE && report.status == canvas_analytics::SourceStatus::Active => {
            metadata.insert(
                DATA_VERSION.into(),
                json!(format!(
                    "synced:{}",
                    report
                        .synced_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                )),
            );
        }
        None => {}
    }
    match &report.status {
        canvas_analytics::SourceStatus::Active => {
            metadata.remove(LAST_ERROR);
        }
        canvas_analytics::SourceStatus::Error { message } => {
            metadata.insert(LAST_ERROR.into(), json!(message));
        }
    }
    DataSourceUpdate {
        metadata: Some(Value::Object(metadata)),
        schema_info: report
            .schema_info
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok()),
        status: Some(report.status.as_str().to_owned()),
        last_sync_at: Some(report.synced_at),
        ..DataSourceUpdate::default()
    }
}

/// What marks a source unreachable after an execution could not reach it.
pub fn unreachable(row: &DataSource, message: &str) -> DataSourceUpdate {
    let mut metadata = row.metadata.as_object().cloned().unwrap_or_default();
    metadata.insert(LAST_ERROR.into(), json!(message));
    DataSourceUpdate {
        metadata: Some(Value::Object(metadata)),
        status: Some("error".into()),
        ..DataSourceUpdate::default()
    }
}
