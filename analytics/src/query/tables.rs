//! Decoded tables kept in memory: a file source's rows, decoded once per object version, so
//! the queries after the first skip reading, decompressing and decoding the file.
//!
//! - **When**: the first query of a file version runs on the file as usual and starts a
//!   background load of the whole table (the same scan, collected per partition); queries
//!   that come after the load use the rows in memory (a `MemTable`), queries meanwhile still
//!   read the file. One load per version at a time.
//! - **Bound**: `Limits::table_cache_bytes` for all tables of the node (Arrow's own count of
//!   the batches' buffers). A load that passes it stops and the version is remembered as too
//!   large (it is read from the file each time); to make room for a new table the least
//!   recently used ones leave. 0 turns the cache off.
//! - **Versions**: a new upload is a new object version (size, time, e-tag), so it is a new
//!   entry; the entries of older versions of the same object are dropped when it comes in.
//!   Every node keeps its own, keyed the same way, so nodes never serve another's stale rows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;

/// Versions remembered as too large before that memory is cleared.
const TOO_LARGE_KEPT: usize = 1024;

/// What identifies a decoded table: the object and one version of it (with the format and
/// options it is read with).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TableKey {
    /// The object's path in the store.
    pub object: String,
    /// Its version and how it is read.
    pub version: String,
}

struct Entry {
    table: Arc<MemTable>,
    bytes: usize,
    used: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<TableKey, Entry>,
    bytes: usize,
    loading: HashSet<TableKey>,
    too_large: HashSet<TableKey>,
}

/// The node's decoded tables. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TableCache {
    budget: usize,
    state: Arc<Mutex<State>>,
}

/// How a load ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// The table is in memory.
    Kept,
    /// Its rows are more than the budget: not kept, not tried again.
    TooLarge,
    /// Another load of it ran, the cache is off, or the scan failed.
    Skipped,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("TableCache")
            .field("budget", &self.budget)
            .field("bytes", &state.bytes)
            .field("tables", &state.entries.len())
            .finish()
    }
}

impl TableCache {
    /// A cache of at most `budget` bytes (0: nothing is kept).
    pub fn new(budget: usize) -> TableCache {
        TableCache {
            budget,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // a panic while holding it cannot leave the maps inconsistent in a way that matters:
        // at worst a table is counted that is gone, and it leaves with the next eviction
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The decoded table of `key`, if it is in memory (and marks it used).
    pub fn get(&self, key: &TableKey) -> Option<Arc<MemTable>> {
        let mut state = self.state();
        let entry = state.entries.get_mut(key)?;
        entry.used = Instant::now();
        Some(entry.table.clone())
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Whether `key` should be loaded now: not kept, not loading, not known to be too
    /// large. Marks it loading when so.
    fn claim(&self, key: &TableKey) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mut state = self.state();
        if state.entries.contains_key(key)
            || state.loading.contains(key)
            || state.too_large.contains(key)
        {
            return false;
        }
        state.loading.insert(key.clone());
        true
    }

    /// Loads the table `provider` gives for `key` in a task of its own, on a context from
    /// `context` (made only when a load starts: most calls find the table kept, loading or
    /// too large), unless it is kept, loading or too large already.
    pub fn load_in_background(
        &self,
        key: TableKey,
        provider: Arc<dyn TableProvider>,
        context: impl FnOnce() -> SessionContext,
    ) {
        if !self.claim(&key) {
            return;
        }
        let ctx = context();
        let cache = self.clone();
        tokio::spawn(async move {
            let outcome = cache.load_claimed(&key, provider, &ctx).await;
            tracing::debug!(object = %key.object, ?outcome, "decoded table load");
        });
    }

    /// Loads the table now (tests, and the background task).
    #[cfg(test)]
    pub async fn load(
        &self,
        key: &TableKey,
        provider: Arc<dyn TableProvider>,
        ctx: &SessionContext,
    ) -> Loaded {
        if !self.claim(key) {
            return Loaded::Skipped;
        }
        self.load_claimed(key, provider, ctx).await
    }

    async fn load_claimed(
        &self,
        key: &TableKey,
        provider: Arc<dyn TableProvider>,
        ctx: &SessionContext,
    ) -> Loaded {
        let outcome = self.decode(key, provider, ctx).await;
        let mut state = self.state();
        state.loading.remove(key);
        match outcome {
            Ok(Some((table, bytes))) => {
                // older versions of the same object are stale now
                let stale: Vec<TableKey> = state
                    .entries
                    .keys()
                    .filter(|k| k.object == key.object && k.version != key.version)
                    .cloned()
                    .collect();
                for k in stale {
                    if let Some(old) = state.entries.remove(&k) {
                        state.bytes -= old.bytes;
                    }
                }
                while state.bytes + bytes > self.budget {
                    let Some(oldest) = state
                        .entries
                        .iter()
                        .min_by_key(|(_, e)| e.used)
                        .map(|(k, _)| k.clone())
                    else {
                        break;
                    };
                    if let Some(old) = state.entries.remove(&oldest) {
                        state.bytes -= old.bytes;
                    }
                }
                state.bytes += bytes;
                state.entries.insert(
                    key.clone(),
                    Entry {
                        table,
                        bytes,
                        used: Instant::now(),
                    },
                );
                Loaded::Kept
            }
            Ok(None) => {
                if state.too_large.len() >= TOO_LARGE_KEPT {
                    state.too_large.clear();
                }
                state.too_large.insert(key.clone());
                Loaded::TooLarge
            }
            Err(e) => {
                tracing::debug!(object = %key.object, error = %e, "decoded table not kept");
                Loaded::Skipped
            }
        }
    }

    /// Every row of the table, per partition, with their size; `None` once past the budget.
    async fn decode(
        &self,
        key: &TableKey,
        provider: Arc<dyn TableProvider>,
        ctx: &SessionContext,
    ) -> datafusion::error::Result<Option<(Arc<MemTable>, usize)>> {
        let schema = provider.schema();
        let df = ctx.read_table(provider)?;
        let streams = df.execute_stream_partitioned().await?;
        let mut partitions: Vec<Vec<RecordBatch>> = Vec::with_capacity(streams.len());
        let mut bytes = 0usize;
        for mut stream in streams {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                bytes += batch.get_array_memory_size();
                if bytes > self.budget {
                    tracing::debug!(object = %key.object, budget = self.budget, "table larger than the cache");
                    return Ok(None);
                }
                batches.push(batch);
            }
            partitions.push(batches);
        }
        let table = MemTable::try_new(schema, partitions)?;
        Ok(Some((Arc::new(table), bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn table(rows: i64) -> Arc<dyn TableProvider> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let ids: Vec<i64> = (0..rows).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("name {i}")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("batch");
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table"))
    }

    fn key(object: &str, version: &str) -> TableKey {
        TableKey {
            object: object.into(),
            version: version.into(),
        }
    }

    async fn count(table: Arc<MemTable>) -> i64 {
        let ctx = SessionContext::new();
        ctx.register_table("t", table).expect("register");
        let batches = ctx
            .sql("SELECT count(*) AS n FROM t")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("count")
            .value(0)
    }

    #[tokio::test]
    async fn a_table_is_kept_once_and_its_older_versions_leave() {
        let cache = TableCache::new(64 * 1024 * 1024);
        let ctx = SessionContext::new();
        let v1 = key("files/a", "1");
        assert!(cache.get(&v1).is_none());
        assert_eq!(cache.load(&v1, table(1000), &ctx).await, Loaded::Kept);
        assert_eq!(count(cache.get(&v1).expect("kept")).await, 1000);
        assert_eq!(
            cache.load(&v1, table(1000), &ctx).await,
            Loaded::Skipped,
            "kept already"
        );
        let held = cache.bytes();
        assert!(held > 0);

        let v2 = key("files/a", "2");
        assert_eq!(cache.load(&v2, table(10), &ctx).await, Loaded::Kept);
        assert!(cache.get(&v1).is_none(), "the older version left");
        assert_eq!(count(cache.get(&v2).expect("kept")).await, 10);
        assert!(cache.bytes() < held);
    }

    #[tokio::test]
    async fn a_table_past_the_budget_is_not_kept_nor_tried_again() {
        let small = table(10);
        let ctx = SessionContext::new();
        let one = TableCache::new(usize::MAX);
        assert_eq!(
            one.load(&key("x", "1"), small.clone(), &ctx).await,
            Loaded::Kept
        );
        let size = one.bytes();

        let cache = TableCache::new(size * 3 / 2);
        let big = key("files/big", "1");
        assert_eq!(
            cache.load(&big, table(100_000), &ctx).await,
            Loaded::TooLarge
        );
        assert!(cache.get(&big).is_none());
        assert_eq!(cache.bytes(), 0);
        assert_eq!(
            cache.load(&big, table(100_000), &ctx).await,
            Loaded::Skipped,
            "not tried again"
        );

        // room for one small table: the least recently used leaves for the next
        let (a, b) = (key("files/a", "1"), key("files/b", "1"));
        assert_eq!(cache.load(&a, small.clone(), &ctx).await, Loaded::Kept);
        assert_eq!(cache.load(&b, small.clone(), &ctx).await, Loaded::Kept);
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());
        assert_eq!(cache.bytes(), size);

        let off = TableCache::new(0);
        assert_eq!(off.load(&a, small, &ctx).await, Loaded::Skipped);
    }
}
