//! Where file sources and api snapshots are kept: an `object_store` (a local folder, or an
//! S3-compatible bucket) and the key layout inside it.
//!
//! ```text
//! [prefix/]sources/{source_id}/data.{csv|parquet|ndjson}   the current file (api: data.parquet)
//! [prefix/]sources/{source_id}/tmp/{uuid}.{ext}            an upload being written and checked
//! ```

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use uuid::Uuid;

use crate::config::AnalyticsConfig;
use crate::error::{Error, Result};
use crate::source::FileFormat;

/// The URL DataFusion knows our store under (its own scheme: no other store shares it).
pub(crate) const STORE_URL: &str = "canvas-objects://store/";

/// The object store and how DataFusion reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    pub store: Arc<dyn ObjectStore>,
    /// A description for logs and docs (`file:///...` or `s3://bucket/prefix`).
    pub location: String,
    /// The key prefix of everything we keep (`prefix/` of `s3://bucket/prefix`, or empty).
    /// Kept in our keys rather than in a `PrefixStore`: object_store 0.13's `PrefixStore`
    /// answers `head` with the unstripped key, which DataFusion's listing then drops.
    root: String,
}

impl Storage {
    pub fn open(config: &AnalyticsConfig) -> Result<Storage> {
        match config.object_store_url.as_deref() {
            None => {
                let dir = config.data_dir.join("analytics");
                std::fs::create_dir_all(&dir)?;
                let store = LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Storage {
                    store: Arc::new(store),
                    location: format!("file://{}", dir.display()),
                    root: String::new(),
                })
            }
            Some(url) => Self::open_s3(url, &config.object_store_options),
        }
    }

    fn open_s3(text: &str, options: &[(String, String)]) -> Result<Storage> {
        let url = url::Url::parse(text)
            .map_err(|e| Error::Config(format!("object store url '{text}': {e}")))?;
        if url.scheme() != "s3" {
            return Err(Error::Config(format!(
                "object store url '{text}': only s3://bucket/prefix is supported"
            )));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Config(format!("object store url '{text}' names no bucket")))?;
        // the standard AWS environment: keys, region, session token, endpoint
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL_S3"))
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
            // an endpoint of ours (MinIO, moto, Ceph) is often plain http
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
        }
        let has = |k: &str| options.iter().any(|(key, _)| key.eq_ignore_ascii_case(k));
        if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
            && !has("aws_region")
        {
            builder = builder.with_region("us-east-1");
        }
        for (key, value) in options {
            let parsed = key
                .to_ascii_lowercase()
                .parse::<AmazonS3ConfigKey>()
                .map_err(|e| Error::Config(format!("object store option '{key}': {e}")))?;
            if matches!(parsed, AmazonS3ConfigKey::Endpoint) && value.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_config(parsed, value);
        }
        let s3 = builder
            .build()
            .map_err(|e| Error::Config(format!("object store url '{text}': {e}")))?;
        let prefix = url.path().trim_matches('/');
        Ok(Storage {
            store: Arc::new(s3),
            location: text.to_string(),
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    pub fn datafusion_url() -> ObjectStoreUrl {
        // a constant that parses
        ObjectStoreUrl::parse(STORE_URL).unwrap_or_else(|_| ObjectStoreUrl::local_filesystem())
    }

    fn source_dir(&self, id: Uuid) -> Path {
        Path::from(format!("{}sources/{id}", self.root))
    }

    pub fn data_key(&self, id: Uuid, format: FileFormat) -> Path {
        Path::from(format!(
            "{}sources/{id}/data.{}",
            self.root,
            format.extension()
        ))
    }

    pub fn tmp_key(&self, id: Uuid, format: FileFormat) -> Path {
        Path::from(format!(
            "{}sources/{id}/tmp/{}.{}",
            self.root,
            Uuid::new_v4(),
            format.extension()
        ))
    }

    /// The source's current data object and its format (the newest `data.*`).
    pub async fn current(&self, id: Uuid) -> Result<Option<(ObjectMeta, FileFormat)>> {
        let prefix = self.source_dir(id);
        let listed = self.store.list_with_delimiter(Some(&prefix)).await?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                let format = FileFormat::from_extension(name.strip_prefix("data.")?)?;
                Some((m, format))
            })
            .max_by_key(|(m, _)| m.last_modified))
    }

    /// Makes `tmp` the source's data, replacing what was there, then removes the data
    /// objects of other formats. A rename on a local disk; a copy and delete on S3 (readers
    /// see the old object or the new one, never a part).
    pub async fn publish(&self, id: Uuid, tmp: &Path, format: FileFormat) -> Result<Path> {
        let key = self.data_key(id, format);
        self.store.rename(tmp, &key).await?;
        for other in FileFormat::ALL {
            if other != format {
                match self.store.delete(&self.data_key(id, other)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(key)
    }

    /// Removes everything kept for a source (its data and any upload left behind).
    pub async fn delete_source(&self, id: Uuid) -> Result<()> {
        let prefix = self.source_dir(id);
        let keys: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes an object, ignoring one already gone (cleanup after a failed upload).
    pub async fn discard(&self, key: &Path) {
        if let Err(e) = self.store.delete(key).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(key = %key, cause = %e, "could not remove a temporary upload");
        }
    }
}
