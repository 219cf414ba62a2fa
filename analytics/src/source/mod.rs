//! Data sources: what each kind's `connection_config` holds, how its secrets are sealed and
//! redacted, and what a sync reports.
//!
//! - [`file`]: CSV, Parquet and NDJSON files kept in the object store.
//! - [`database`]: PostgreSQL and MySQL/MariaDB; queries are pushed down to them.
//! - [`api`]: an HTTP JSON endpoint, fetched on sync into a Parquet snapshot.
//! - [`streaming`]: a Redis stream, read at query time.

pub mod api;
pub mod database;
pub mod file;
pub mod streaming;

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::secrets::SecretKey;

pub use api::ApiConfig;
pub use database::{DatabaseConfig, DbEngine};
pub use file::{FileConfig, FileFormat};
pub use streaming::StreamConfig;

/// What the API shows instead of a secret. Sent back unchanged in an update, it means "keep
/// the secret as it is" ([`SourceConfig::keep_redacted`]).
pub const REDACTED: &str = "********";

/// The four kinds of source (the seed's `data_sources.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An uploaded CSV, Parquet or NDJSON file.
    File,
    /// A PostgreSQL or MySQL/MariaDB database.
    Database,
    /// An HTTP JSON endpoint.
    Api,
    /// A Redis stream.
    Streaming,
}

impl SourceKind {
    /// The name used in the API and the database (`file`, `database`, `api`, `streaming`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Database => "database",
            SourceKind::Api => "api",
            SourceKind::Streaming => "streaming",
        }
    }
}

impl FromStr for SourceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "file" => Ok(SourceKind::File),
            "database" => Ok(SourceKind::Database),
            "api" => Ok(SourceKind::Api),
            "streaming" => Ok(SourceKind::Streaming),
            other => Err(Error::Config(format!(
                "unknown source type '{other}' (file, database, api, streaming)"
            ))),
        }
    }
}

/// A source's `connection_config`, parsed and checked, secrets in the clear (in memory only).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// See [`FileConfig`].
    File(FileConfig),
    /// See [`DatabaseConfig`].
    Database(DatabaseConfig),
    /// See [`ApiConfig`].
    Api(ApiConfig),
    /// See [`StreamConfig`].
    Streaming(StreamConfig),
}

/// Where the secrets of each kind sit in its JSON: a key, or a map whose every value is one.
enum SecretField {
    Key(&'static str),
    MapValues(&'static str),
}

impl SourceConfig {
    /// Parses and checks a plaintext `connection_config` as the API receives it (`null` or
    /// absent is `{}`). Unknown fields are refused, so a typo is not silently ignored.
    pub fn parse(kind: SourceKind, connection_config: &Value) -> Result<Self> {
        let value = match connection_config {
            Value::Null => Value::Object(Default::default()),
            v => v.clone(),
        };
        fn de<T: serde::de::DeserializeOwned>(kind: SourceKind, v: Value) -> Result<T> {
            serde_json::from_value(v).map_err(|e| {
                Error::Config(format!("{} source connection_config: {e}", kind.as_str()))
            })
        }
        let config = match kind {
            SourceKind::File => SourceConfig::File(de(kind, value)?),
            SourceKind::Database => SourceConfig::Database(de(kind, value)?),
            SourceKind::Api => SourceConfig::Api(de(kind, value)?),
            SourceKind::Streaming => SourceConfig::Streaming(de(kind, value)?),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        match self {
            SourceConfig::File(c) => c.validate(),
            SourceConfig::Database(c) => c.validate(),
            SourceConfig::Api(c) => c.validate(),
            SourceConfig::Streaming(c) => c.validate(),
        }
    }

    /// The kind of this configuration.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::File(_) => SourceKind::File,
            SourceConfig::Database(_) => SourceKind::Database,
            SourceConfig::Api(_) => SourceKind::Api,
            SourceConfig::Streaming(_) => SourceKind::Streaming,
        }
    }

    fn secret_fields(kind: SourceKind) -> &'static [SecretField] {
        match kind {
            SourceKind::File => &[],
            SourceKind::Database => &[SecretField::Key("url"), SecretField::Key("password")],
            SourceKind::Api => &[SecretField::MapValues("headers")],
            SourceKind::Streaming => &[SecretField::Key("url")],
        }
    }

    fn plain_json(&self) -> Value {
        let value = match self {
            SourceConfig::File(c) => serde_json::to_value(c),
            SourceConfig::Database(c) => serde_json::to_value(c),
            SourceConfig::Api(c) => serde_json::to_value(c),
            SourceConfig::Streaming(c) => serde_json::to_value(c),
        };
        // plain structs of strings, numbers and maps with string keys always serialise
        value.unwrap_or(Value::Null)
    }

    /// The form to store (`data_sources.connection_config`): every secret replaced by
    /// `{"$sealed": "v1:..."}`, bound to `source_id` and its field.
    pub fn seal(&self, source_id: Uuid, key: &SecretKey) -> Result<Value> {
        let mut json = self.plain_json();
        map_secrets(self.kind(), &mut json, |field, value| {
            let Value::String(plain) = value else {
                return Ok(());
            };
            let sealed = key.seal(plain, &context(source_id, field))?;
            *value = serde_json::json!({ "$sealed": sealed });
            Ok(())
        })?;
        Ok(json)
    }

    /// Reads back what [`SourceConfig::seal`] stored for `source_id`.
    pub fn open(
        kind: SourceKind,
        source_id: Uuid,
        stored: &Value,
        key: &SecretKey,
    ) -> Result<Self> {
        let mut json = stored.clone();
        map_secrets(kind, &mut json, |field, value| {
            if let Some(sealed) = value.get("$sealed").and_then(Value::as_str) {
                *value = Value::String(key.open(sealed, &context(source_id, field))?);
            }
            Ok(())
        })?;
        Self::parse(kind, &json)
    }

    /// The form the API shows: every secret is [`REDACTED`], and a URL keeps everything but
    /// its password.
    pub fn redacted(&self) -> Value {
        let mut json = self.plain_json();
        let _ = map_secrets(self.kind(), &mut json, |field, value| {
            if let Value::String(s) = value {
                *value = Value::String(if field == "url" {
                    redact_url(s)
                } else {
                    REDACTED.to_string()
                });
            }
            Ok(())
        });
        json
    }

    /// For an update: every secret that came back as [`REDACTED`] (or as the redacted URL
    /// the API showed) takes its value from `previous`, so a client can send back what it
    /// read and change only the fields it means to.
    pub fn keep_redacted(mut self, previous: &SourceConfig) -> Self {
        match (&mut self, previous) {
            (SourceConfig::Database(new), SourceConfig::Database(old)) => {
                if new.password.as_deref() == Some(REDACTED) {
                    new.password.clone_from(&old.password);
                }
                if let (Some(u), Some(o)) = (&new.url, &old.url)
                    && *u == redact_url(o)
                {
                    new.url = Some(o.clone());
                }
            }
            (SourceConfig::Api(new), SourceConfig::Api(old)) => {
                for (name, value) in new.headers.iter_mut() {
                    if value == REDACTED
                        && let Some(o) = old.headers.get(name)
                    {
                        value.clone_from(o);
                    }
                }
            }
            (SourceConfig::Streaming(new), SourceConfig::Streaming(old)) => {
                if let (Some(u), Some(o)) = (&new.url, &old.url)
                    && *u == redact_url(o)
                {
                    new.url = Some(o.clone());
                }
            }
            _ => {}
        }
        self
    }
}

fn context(source_id: Uuid, field: &str) -> Vec<u8> {
    format!("canvas-analytics/{source_id}/{field}").into_bytes()
}

fn map_secrets(
    kind: SourceKind,
    json: &mut Value,
    mut f: impl FnMut(&str, &mut Value) -> Result<()>,
) -> Result<()> {
    let Value::Object(map) = json else {
        return Ok(());
    };
    for field in SourceConfig::secret_fields(kind) {
        match field {
            SecretField::Key(k) => {
                if let Some(v) = map.get_mut(*k) {
                    f(k, v)?;
                }
            }
            SecretField::MapValues(k) => {
                if let Some(Value::Object(inner)) = map.get_mut(*k) {
                    for (name, v) in inner.iter_mut() {
                        f(&format!("{k}.{name}"), v)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A URL with its password replaced by [`REDACTED`]; a string that is not a URL is
/// redacted whole.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some(REDACTED));
            }
            u.to_string()
        }
        Err(_) => REDACTED.to_string(),
    }
}

/// One source as the crate needs it to sync or query.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// The source's id (object keys and sealed secrets are bound to it).
    pub id: Uuid,
    /// Its name: the table name in SQL for file, api and streaming sources. SQL identifier
    /// rules apply: an unquoted name folds to lower case, so quote names with capitals,
    /// spaces or punctuation (`SELECT * FROM "Sales 2024"`).
    pub name: String,
    /// Its parsed `connection_config` (secrets opened).
    pub config: SourceConfig,
    /// The data version the last upload or sync reported ([`SyncReport::data_version`]);
    /// part of the result cache key.
    pub data_version: Option<String>,
}

/// `active` or `error` (the seed's `data_sources.status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SourceStatus {
    /// The last sync reached the source and read its schema.
    Active,
    /// The last sync failed; `message` says why.
    Error {
        /// What failed, for people.
        message: String,
    },
}

impl SourceStatus {
    /// `active` or `error`, for the status column.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceStatus::Active => "active",
            SourceStatus::Error { .. } => "error",
        }
    }
}

/// Columns and types of a source (the seed's `data_sources.schema_info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SchemaInfo {
    /// One table for file, api and streaming sources (named after the source); every table
    /// and view of the current schema for a database source.
    pub tables: Vec<TableInfo>,
}

/// One table's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The table's name as SQL names it.
    pub name: String,
    /// Its columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Rows, when known cheaply (files and snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<u64>,
}

impl TableInfo {
    /// A table's columns from its Arrow schema, with its row count.
    pub(crate) fn from_arrow(
        name: impl Into<String>,
        schema: &datafusion::arrow::datatypes::Schema,
        rows: u64,
    ) -> TableInfo {
        TableInfo {
            name: name.into(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: crate::query::result::portable_type(f.data_type()).to_string(),
                    native_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            row_count: Some(rows),
        }
    }
}

/// One column: its name, a portable type and the engine's own type name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// The column's name.
    pub name: String,
    /// A portable type: `integer`, `number`, `string`, `boolean`, `date`, `timestamp`,
    /// `time`, `json`, `binary` or `other`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The engine's own type name (Arrow's, PostgreSQL's or MySQL's).
    pub native_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// What an upload or a sync found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// `active`, or `error` with the message.
    #[serde(flatten)]
    pub status: SourceStatus,
    /// The schema read, when the sync reached the source.
    pub schema_info: Option<SchemaInfo>,
    /// A version of the data (a SHA-256 of a file or snapshot, the last entry id of a
    /// stream): store it and pass it back in [`DataSource::data_version`].
    pub data_version: Option<String>,
    /// When the sync ran (`last_sync_at`).
    pub synced_at: DateTime<Utc>,
    /// Facts worth keeping in the source's `metadata` (file format and size, rows fetched).
    pub metadata: BTreeMap<String, Value>,
}

impl SyncReport {
    pub(crate) fn active(
        schema: SchemaInfo,
        data_version: Option<String>,
        metadata: BTreeMap<String, Value>,
    ) -> Self {
        SyncReport {
            status: SourceStatus::Active,
            schema_info: Some(schema),
            data_version,
            synced_at: Utc::now(),
            metadata,
        }
    }

    pub(crate) fn failed(error: &Error) -> Self {
        SyncReport {
            status: SourceStatus::Error {
                message: error.to_string(),
            },
            schema_info: None,
            data_version: None,
            synced_at: Utc::now(),
            metadata: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SecretKey {
        SecretKey::from_string(&SecretKey::generate_string()).expect("key")
    }

    #[test]
    fn database_secrets_are_sealed_opened_and_redacted() {
        let id = Uuid::new_v4();
        let plain = json!({"engine": "postgres", "host": "db", "user": "ann",
                           "password": "s3cret", "database": "sales"});
        let config = SourceConfig::parse(SourceKind::Database, &plain).expect("parse");
        let key = key();
        let sealed = config.seal(id, &key).expect("seal");
        let text = sealed.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(sealed["host"], "db");
        let opened = SourceConfig::open(SourceKind::Database, id, &sealed, &key).expect("open");
        assert_eq!(opened, config);
        // bound to the source id
        assert!(SourceConfig::open(SourceKind::Database, Uuid::new_v4(), &sealed, &key).is_err());
        let shown = config.redacted();
        assert_eq!(shown["password"], REDACTED);
        assert!(!shown.to_string().contains("s3cret"));
    }

    #[test]
    fn url_passwords_and_headers_are_redacted_and_kept_on_update() {
        let db = SourceConfig::parse(
            SourceKind::Database,
            &json!({"url": "postgres://ann:pw@db:5432/sales"}),
        )
        .expect("parse");
        let shown = db.redacted();
        assert_eq!(shown["url"], "postgres://ann:********@db:5432/sales");
        let back = SourceConfig::parse(SourceKind::Database, &shown)
            .expect("parse")
            .keep_redacted(&db);
        assert_eq!(back, db);

        let api = SourceConfig::parse(
            SourceKind::Api,
            &json!({"url": "https://example.com/x", "headers": {"Authorization": "Bearer t0k"}}),
        )
        .expect("parse");
        let shown = api.redacted();
        assert_eq!(shown["headers"]["Authorization"], REDACTED);
        let back = SourceConfig::parse(SourceKind::Api, &shown)
            .expect("parse")
            .keep_redacted(&api);
        assert_eq!(back, api);
    }

    #[test]
    fn malformed_configs_are_refused_with_a_message() {
        let e = SourceConfig::parse(SourceKind::Database, &json!({"host": "db", "pasword": "x"}))
            .expect_err("typo");
        assert!(e.to_string().contains("pasword"), "{e}");
        let e = SourceConfig::parse(SourceKind::Api, &json!({})).expect_err("no url");
        assert!(e.to_string().contains("url"), "{e}");
        let e = SourceConfig::parse(SourceKind::Streaming, &json!({"stream": "s", "latest": 0}))
            .expect_err("zero");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!("nope".parse::<SourceKind>().is_err());
    }
}
