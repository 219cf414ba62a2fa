//! What admitting a caller looks up, kept in memory: the session and user of a token, and
//! a user's project-level access to a canvas. A WebSocket connect otherwise costs five
//! storage reads (session, user, canvas, project, member role) before it joins its room.
//!
//! Only on the embedded single-node default (one process owns the SQLite file and every
//! write goes through it); with the services (PostgreSQL, Redis, MongoDB: several nodes
//! writing the same stores) nothing is cached, because another node's logout or member
//! change reaches this one only as a best-effort control message.
//!
//! Invalidation is immediate: the stores whose writes can end a session or change an
//! access (`SessionStore`, `ProjectStore`, `CanvasStore`) are wrapped here, and a write that
//! can (logout, a member added, changed or removed, a project archived or restored, a
//! canvas deleted) empties both caches once it is done, before it returns to its caller.
//! A lookup that was running during such a write does not keep its (possibly stale)
//! result: entries carry the invalidation generation they were read in. A cached session
//! past its expiry is never used. Per-canvas sharing is not cached here: it lives in the
//! document and the room applies it at every join.

use crate::domain::ProjectAccess;
use async_trait::async_trait;
use canvas_storage::{
    CanvasRecord, CanvasStore, Member, NewCanvas, NewMember, NewProject, Project, ProjectStore,
    ProjectUpdate, PublicLink, Session, SessionStore, Storage, StorageResult, StoredDocument, User,
};
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The longest an entry is used (a backstop; invalidation does not depend on it).
const MAX_AGE: Duration = Duration::from_secs(60);

/// Past this many entries a cache starts over (bounds memory under many tokens).
const MAX_ENTRIES: usize = 50_000;

/// Entries read from storage, each with when it was read; at most [`MAX_ENTRIES`].
struct Entries<K, V>(DashMap<K, (V, Instant)>);

impl<K: Eq + std::hash::Hash + Copy, V: Clone> Entries<K, V> {
    /// The entry of `key` if it is younger than [`MAX_AGE`] and `valid`; any other is dropped.
    fn get(&self, key: K, valid: impl Fn(&V) -> bool) -> Option<V> {
        let hit = self
            .0
            .get(&key)
            .and_then(|e| (e.1.elapsed() < MAX_AGE && valid(&e.0)).then(|| e.0.clone()));
        if hit.is_none() {
            self.0.remove(&key);
        }
        hit
    }

    /// Keeps `value`, read in generation `read_in`, unless the cache was invalidated since
    /// (`now` is the current generation, read after inserting: an invalidation after that
    /// read clears the entry itself).
    fn keep(&self, key: K, value: V, read_in: u64, now: impl Fn() -> u64) {
        if self.0.len() >= MAX_ENTRIES {
            self.0.clear();
        }
        self.0.insert(key, (value, Instant::now()));
        if now() != read_in {
            self.0.remove(&key);
        }
    }
}

/// Cached sessions (by token digest) and accesses (by user and canvas).
pub struct AdmissionCache {
    enabled: bool,
    generation: AtomicU64,
    sessions: Entries<[u8; 32], (User, Session)>,
    access: Entries<(Uuid, Uuid), ProjectAccess>,
}

impl AdmissionCache {
    /// A cache that keeps nothing unless `enabled`.
    pub fn new(enabled: bool) -> Self {
        AdmissionCache {
            enabled,
            generation: AtomicU64::new(0),
            sessions: Entries(DashMap::new()),
            access: Entries(DashMap::new()),
        }
    }

    /// Whether entries are kept.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The generation to pass to `keep_*` for a lookup starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Forgets everything (after a write that may end a session or change an access).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.sessions.0.clear();
        self.access.0.clear();
    }

    /// The cached live session of a token, with its user.
    pub fn session(&self, token: &str) -> Option<(User, Session)> {
        let live = |(_, session): &(User, Session)| session.expires_at > chrono::Utc::now();
        self.enabled
            .then(|| self.sessions.get(digest(token), live))
            .flatten()
    }

    /// Keeps a session read from storage in generation `generation`.
    pub fn keep_session(&self, generation: u64, token: &str, user: &User, session: &Session) {
        if self.enabled {
            let value = (user.clone(), *session);
            self.sessions
                .keep(digest(token), value, generation, || self.generation());
        }
    }

    /// The cached project-level access of a user to a canvas.
    pub fn access(&self, user: Uuid, canvas: Uuid) -> Option<ProjectAccess> {
        self.enabled
            .then(|| self.access.get((user, canvas), |_| true))
            .flatten()
    }

    /// Keeps an access read from storage in generation `generation`.
    pub fn keep_access(&self, generation: u64, user: Uuid, canvas: Uuid, access: &ProjectAccess) {
        if self.enabled {
            self.access
                .keep((user, canvas), access.clone(), generation, || {
                    self.generation()
                });
        }
    }

    /// On a single-node embedded store: an enabled cache, and the stores whose writes
    /// invalidate it wrapped. Otherwise a cache that keeps nothing, and the stores as they
    /// are (nothing to invalidate).
    pub fn wrap(storage: &mut Storage) -> Arc<AdmissionCache> {
        let single_node = !storage.fanout.is_shared()
            && !storage.probes.is_empty()
            && storage.probes.iter().all(|p| p.service() == "sqlite");
        let cache = Arc::new(AdmissionCache::new(single_node));
        if !single_node {
            return cache;
        }
        storage.sessions = Arc::new(Invalidating {
            inner: storage.sessions.clone(),
            cache: cache.clone(),
        });
        storage.projects = Arc::new(Invalidating {
            inner: storage.projects.clone(),
            cache: cache.clone(),
        });
        storage.canvases = Arc::new(Invalidating {
            inner: storage.canvases.clone(),
            cache: cache.clone(),
        });
        cache
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A store whose invalidating writes empty the cache once done.
struct Invalidating<S: ?Sized> {
    inner: Arc<S>,
    cache: Arc<AdmissionCache>,
}

impl<S: ?Sized> Invalidating<S> {
    /// Empties the cache after a write (whether it succeeded or not: a failed write may
    /// still have changed something).
    fn after<T>(&self, result: StorageResult<T>) -> StorageResult<T> {
        self.cache.invalidate();
        result
    }
}

#[async_trait]
impl SessionStore for Invalidating<dyn SessionStore> {
    async fn create_session(&self, user_id: Uuid, ttl: Duration) -> StorageResult<String> {
        self.inner.create_session(user_id, ttl).await
    }
    async fn session(&self, token: &str) -> StorageResult<Option<Session>> {
        self.inner.session(token).await
    }
    async fn session_user(&self, token: &str) -> StorageResult<Option<Uuid>> {
        self.inner.session_user(token).await
    }
    async fn delete_session(&self, token: &str) -> StorageResult<()> {
        let result = self.inner.delete_session(token).await;
        self.after(result)
    }
}

#[async_trait]
impl ProjectStore for Invalidating<dyn ProjectStore> {
    async fn create_project(&self, new: NewProject) -> StorageResult<Project> {
        self.inner.create_project(new).await
    }
    async fn project(&self, id: Uuid) -> StorageResult<Option<Project>> {
        self.inner.project(id).await
    }
    async fn projects_for_user(
        &self,
        user_id: Uuid,
        archived: bool,
    ) -> StorageResult<Vec<Project>> {
        self.inner.projects_for_user(user_id, archived).await
    }
    async fn member_role(
        &self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StorageResult<Option<canvas_engine::Role>> {
        self.inner.member_role(project_id, user_id).await
    }
    async fn put_member(&self, member: NewMember) -> StorageResult<Member> {
        let result = self.inner.put_member(member).await;
        self.after(result)
    }
    async fn remove_member(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<bool> {
        let result = self.inner.remove_member(project_id, user_id).await;
        self.after(result)
    }
    async fn members(&self, project_id: Uuid) -> StorageResult<Vec<Member>> {
        self.inner.members(project_id).await
    }
    async fn update_project(
        &self,
        id: Uuid,
        update: ProjectUpdate,
    ) -> StorageResult<Option<Project>> {
        let result = self.inner.update_project(id, update).await;
        self.after(result)
    }
}

#[async_trait]
impl CanvasStore for Invalidating<dyn CanvasStore> {
    async fn create_canvas(
        &self,
        new: NewCanvas,
        state: &[u8],
        view: &serde_json::Value,
    ) -> StorageResult<CanvasRecord> {
        self.inner.create_canvas(new, state, view).await
    }
    async fn canvas(&self, id: Uuid) -> StorageResult<Option<CanvasRecord>> {
        self.inner.canvas(id).await
    }
    async fn canvases_in_project(&self, project_id: Uuid) -> StorageResult<Vec<CanvasRecord>> {
        self.inner.canvases_in_project(project_id).await
    }
    async fn delete_canvas(&self, id: Uuid) -> StorageResult<bool> {
        let result = self.inner.delete_canvas(id).await;
        self.after(result)
    }
    async fn load_document(&self, id: Uuid) -> StorageResult<Option<StoredDocument>> {
        self.inner.load_document(id).await
    }
    async fn append_updates(&self, id: Uuid, updates: &[Vec<u8>]) -> StorageResult<i64> {
        self.inner.append_updates(id, updates).await
    }
    async fn checkpoint(
        &self,
        id: Uuid,
        state: &[u8],
        upto_seq: i64,
        view: &serde_json::Value,
    ) -> StorageResult<()> {
        self.inner.checkpoint(id, state, upto_seq, view).await
    }
    async fn public_link(&self, id: Uuid) -> StorageResult<Option<PublicLink>> {
        self.inner.public_link(id).await
    }
    async fn set_public_link(&self, id: Uuid, link: Option<&PublicLink>) -> StorageResult<()> {
        self.inner.set_public_link(id, link).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        serde_json::from_value(serde_json::json!({
            "id": Uuid::new_v4(), "email": "a@example.com", "username": "a",
            "first_name": null, "last_name": null, "avatar_url": null,
            "organization_id": null, "role": "member", "last_login_at": null,
            "created_at": chrono::Utc::now(),
        }))
        .expect("a user")
    }

    #[test]
    fn a_lookup_overtaken_by_an_invalidation_is_not_kept() {
        let cache = AdmissionCache::new(true);
        let (u, s) = (
            user(),
            Session {
                user_id: Uuid::nil(),
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            },
        );
        let before = cache.generation();
        cache.invalidate();
        cache.keep_session(before, "tok", &u, &s);
        assert!(cache.session("tok").is_none(), "stale read dropped");
        cache.keep_session(cache.generation(), "tok", &u, &s);
        assert!(cache.session("tok").is_some());
        cache.invalidate();
        assert!(cache.session("tok").is_none(), "invalidated");
    }

    #[test]
    fn an_expired_session_is_never_served_and_a_disabled_cache_keeps_nothing() {
        let cache = AdmissionCache::new(true);
        let expired = Session {
            user_id: Uuid::nil(),
            expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
        };
        cache.keep_session(cache.generation(), "tok", &user(), &expired);
        assert!(cache.session("tok").is_none());
        let off = AdmissionCache::new(false);
        let live = Session {
            user_id: Uuid::nil(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        };
        off.keep_session(off.generation(), "tok", &user(), &live);
        assert!(off.session("tok").is_none());
        let (u, c) = (Uuid::new_v4(), Uuid::new_v4());
        off.keep_access(off.generation(), u, c, &ProjectAccess::default());
        assert!(off.access(u, c).is_none());
    }
}
