//! In-process presence and rate limits: the embedded counterparts of the Redis keys, for a
//! server running alone. Same behaviour, kept in memory (presence is live state: nothing to
//! keep across restarts).

use crate::{
    Fanout, PresenceEntry, PresenceStore, RateDecision, RateLimiter, RateSubject, StorageResult,
};
use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Presence of every canvas, in process.
#[derive(Default)]
pub struct MemoryPresence {
    /// canvas id -> (user id -> entry).
    entries: DashMap<Uuid, HashMap<Uuid, PresenceEntry>>,
    /// canvas id -> (node id -> active users).
    active: DashMap<Uuid, HashMap<String, Vec<Uuid>>>,
}

#[async_trait]
impl PresenceStore for MemoryPresence {
    async fn put_presence(
        &self,
        canvas_id: Uuid,
        entry: &PresenceEntry,
        ttl: Duration,
    ) -> StorageResult<()> {
        let mut canvas = self.entries.entry(canvas_id).or_default();
        canvas.retain(|_, e| e.is_fresh(ttl));
        canvas.insert(entry.user_id, entry.clone());
        Ok(())
    }

    async fn remove_presence(&self, canvas_id: Uuid, user_id: Uuid) -> StorageResult<()> {
        if let Some(mut canvas) = self.entries.get_mut(&canvas_id) {
            canvas.remove(&user_id);
        }
        self.entries.remove_if(&canvas_id, |_, c| c.is_empty());
        Ok(())
    }

    async fn presence(&self, canvas_id: Uuid, ttl: Duration) -> StorageResult<Vec<PresenceEntry>> {
        let mut list: Vec<PresenceEntry> = self
            .entries
            .get(&canvas_id)
            .map(|c| c.values().filter(|e| e.is_fresh(ttl)).cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|e| e.user_id);
        Ok(list)
    }

    async fn set_active_users(
        &self,
        canvas_id: Uuid,
        node_id: &str,
        users: &[Uuid],
    ) -> StorageResult<()> {
        let mut canvas = self.active.entry(canvas_id).or_default();
        if users.is_empty() {
            canvas.remove(node_id);
        } else {
            canvas.insert(node_id.to_owned(), users.to_vec());
        }
        drop(canvas);
        self.active.remove_if(&canvas_id, |_, c| c.is_empty());
        Ok(())
    }

    async fn active_users(&self, canvas_id: Uuid) -> StorageResult<Vec<Uuid>> {
        let users: HashSet<Uuid> = self
            .active
            .get(&canvas_id)
            .map(|c| c.values().flatten().copied().collect())
            .unwrap_or_default();
        let mut users: Vec<Uuid> = users.into_iter().collect();
        users.sort();
        Ok(users)
    }
}

/// Fixed one-minute windows per `(subject, endpoint)`, in process.
#[derive(Default)]
pub struct MemoryRateLimiter {
    windows: DashMap<(RateSubject, String), (Instant, u32)>,
}

/// Length of a rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit_subject(
        &self,
        subject: &RateSubject,
        endpoint: &str,
        n: u32,
        limit: u32,
    ) -> StorageResult<RateDecision> {
        let now = Instant::now();
        // Drop expired windows now and then so the map does not grow without bound.
        if self.windows.len() > 10_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut window = self
            .windows
            .entry((subject.clone(), endpoint.to_owned()))
            .or_insert((now, 0));
        if now.duration_since(window.0) >= WINDOW {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(n);
        let left = WINDOW.saturating_sub(now.duration_since(window.0));
        Ok(RateDecision {
            allowed: window.1 <= limit,
            count: window.1,
            retry_after_secs: left.as_secs().max(1) as u32,
        })
    }
}

/// Fan-out for a server running alone: there is no other node to tell.
#[derive(Debug, Default)]
pub struct SingleNode;

#[async_trait]
impl Fanout for SingleNode {
    fn is_shared(&self) -> bool {
        false
    }

    async fn publish(&self, _canvas_id: Uuid, _message: Vec<u8>) -> StorageResult<()> {
        Ok(())
    }

    async fn subscribe(
        &self,
        _canvas_id: Uuid,
    ) -> StorageResult<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        // Nothing will ever arrive: the channel is closed from the start.
        let (_, rx) = tokio::sync::mpsc::channel(1);
        Ok(rx)
    }
}

/// Most bytes of results the in-process cache holds; past it, the least used go first.
pub const MEMORY_RESULT_BYTES: u64 = 256 * 1024 * 1024;

/// A cached value with its own time to live.
#[derive(Clone)]
struct Expiring<T> {
    value: T,
    ttl: Duration,
}

/// Expiry of an [`Expiring`] value: its TTL from when it was written.
struct PerEntry;

impl<K, T> moka::Expiry<K, Expiring<T>> for PerEntry {
    fn expire_after_create(&self, _: &K, value: &Expiring<T>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &K,
        value: &Expiring<T>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Query results and execution progress, in process (the embedded counterpart of
/// `query:result:{query_hash}` and `processing:{job_id}`), bounded by
/// [`MEMORY_RESULT_BYTES`].
pub struct MemoryResults {
    results: moka::sync::Cache<String, Expiring<std::sync::Arc<[u8]>>>,
    progress: moka::sync::Cache<Uuid, Expiring<serde_json::Value>>,
}

impl Default for MemoryResults {
    fn default() -> Self {
        Self::with_capacity(MEMORY_RESULT_BYTES)
    }
}

impl MemoryResults {
    /// A cache holding at most `bytes` of results.
    pub fn with_capacity(bytes: u64) -> Self {
        MemoryResults {
            results: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|key: &String, v: &Expiring<std::sync::Arc<[u8]>>| {
                    u32::try_from(key.len() + v.value.len()).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
            progress: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .expire_after(PerEntry)
                .build(),
        }
    }
}

#[async_trait]
impl crate::ResultCache for MemoryResults {
    async fn put_result(
        &self,
        query_hash: &str,
        result: &[u8],
        ttl: Duration,
    ) -> StorageResult<()> {
        self.results.insert(
            query_hash.to_owned(),
            Expiring {
                value: result.into(),
                ttl,
            },
        );
        Ok(())
    }

    async fn result(&self, query_hash: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.results.get(query_hash).map(|e| e.value.to_vec()))
    }

    async fn remove_result(&self, query_hash: &str) -> StorageResult<()> {
        self.results.invalidate(query_hash);
        Ok(())
    }

    async fn put_progress(
        &self,
        job_id: Uuid,
        progress: &serde_json::Value,
        ttl: Duration,
    ) -> StorageResult<()> {
        self.progress.insert(
            job_id,
            Expiring {
                value: progress.clone(),
                ttl,
            },
        );
        Ok(())
    }

    async fn progress(&self, job_id: Uuid) -> StorageResult<Option<serde_json::Value>> {
        Ok(self.progress.get(&job_id).map(|e| e.value))
    }
}
