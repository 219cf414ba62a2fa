//! [`ResultCache`] on `query:result:{query_hash}` (the result's bytes) and
//! `processing:{job_id}` (the progress as JSON), plain strings with the TTL the caller gives
//! (one hour in the server, as the seed has it).

use super::{RedisStore, millis};
use crate::{ResultCache, StorageError, StorageResult};
use async_trait::async_trait;
use redis::AsyncCommands;
use std::time::Duration;
use uuid::Uuid;

impl RedisStore {
    fn result_key(&self, query_hash: &str) -> String {
        self.key(format_args!("query:result:{query_hash}"))
    }

    fn progress_key(&self, job_id: Uuid) -> String {
        self.key(format_args!("processing:{job_id}"))
    }
}

#[async_trait]
impl ResultCache for RedisStore {
    async fn put_result(
        &self,
        query_hash: &str,
        result: &[u8],
        ttl: Duration,
    ) -> StorageResult<()> {
        let _: () = redis::cmd("SET")
            .arg(self.result_key(query_hash))
            .arg(result)
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn result(&self, query_hash: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.conn().get(self.result_key(query_hash)).await?)
    }

    async fn remove_result(&self, query_hash: &str) -> StorageResult<()> {
        let _: usize = self.conn().del(self.result_key(query_hash)).await?;
        Ok(())
    }

    async fn put_progress(
        &self,
        job_id: Uuid,
        progress: &serde_json::Value,
        ttl: Duration,
    ) -> StorageResult<()> {
        let _: () = redis::cmd("SET")
            .arg(self.progress_key(job_id))
            .arg(progress.to_string())
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn progress(&self, job_id: Uuid) -> StorageResult<Option<serde_json::Value>> {
        let value: Option<String> = self.conn().get(self.progress_key(job_id)).await?;
        value
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| StorageError::Corrupt(format!("processing:{job_id}: {e}")))
            })
            .transpose()
    }
}
