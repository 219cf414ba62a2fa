//! # canvas-storage
//!
//! What the server keeps, behind one narrow trait per concern, so each can be backed by the
//! embedded default (one SQLite file) or by the services (PostgreSQL, MongoDB, Redis):
//!
//! | trait | holds | embedded | services |
//! |---|---|---|---|
//! | [`UserStore`] | users and their organizations (signup, login) | SQLite | PostgreSQL |
//! | [`SessionStore`] | bearer tokens | SQLite | Redis `session:{user_id}` |
//! | [`ProjectStore`] | projects and their members | SQLite | PostgreSQL |
//! | [`AuditStore`] | who did what (`audit_logs`) | SQLite | PostgreSQL |
//! | [`DataStore`] | data sources, saved queries, executions | SQLite | PostgreSQL |
//! | [`WebhookStore`] | webhook subscriptions, their outbox and delivery log | SQLite | PostgreSQL |
//! | [`CanvasStore`] | canvas records, snapshots and the durable update log | SQLite | MongoDB |
//! | [`InteractionStore`] | views and favorites (`interactions`) | SQLite | MongoDB |
//! | [`TemplateStore`] | canvas templates (`canvas_templates`) | SQLite | MongoDB |
//! | [`VersionStore`] | version history: numbered snapshots of a canvas | SQLite | MongoDB `canvas_versions` |
//! | [`PresenceStore`] | who is on a canvas now (`canvas:presence:{id}`, `canvas:state:{id}`) | in process | Redis |
//! | [`ResultCache`] | query results and execution progress (`query:result:{query_hash}`, `processing:{job_id}`) | in process | Redis |
//! | [`RateLimiter`] | per-minute call counts (`rate_limit:{user_id}:{endpoint}`, `rate_limit:ip:{ip}:{endpoint}`) | in process | Redis |
//!
//! [`Storage`] bundles one of each as cheap cloneable handles. Every trait has one generic
//! test suite (the `testing` module, behind the `testing` feature) that every backend passes.
//!
//! ## Durability contract of [`CanvasStore`]
//! An update is durable once [`CanvasStore::append_updates`] returns: the server acknowledges
//! it to its sender only then. A checkpoint ([`CanvasStore::checkpoint`]) writes a snapshot
//! covering the log up to a sequence number and drops those entries in one step; loading
//! ([`CanvasStore::load_document`]) returns the snapshot plus every later log entry, so a crash
//! at any point loses nothing that was acknowledged.

pub mod embedded;
pub mod error;
pub mod memory;
pub mod model;
pub mod mongo_store;
pub mod password;
pub mod postgres_store;
pub mod redis_store;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod token;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use error::{StorageError, StorageResult};
pub use model::*;
pub use token::random_secret;

/// Users and their organizations.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user and an organization of their own (named after the username, with a
    /// unique slug), in one transaction. `Conflict` if the email or username is taken.
    async fn create_user(&self, new: NewUser) -> StorageResult<User>;
    /// The user with this email (compared case-insensitively) and their password hash.
    async fn user_by_email(&self, email: &str) -> StorageResult<Option<(User, Option<String>)>>;
    /// The user with this id.
    async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<User>>;
    /// Sets `last_login_at` to now.
    async fn record_login(&self, id: Uuid) -> StorageResult<()>;
}

/// A live login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Whose session it is.
    pub user_id: Uuid,
    /// When it ends (open WebSockets of the session are closed then).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Bearer tokens. A token is `{user_id}.{secret}` so a backend can key it by user
/// (`session:{user_id}` in Redis); several concurrent sessions per user work.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Creates a session for the user that expires after `ttl`; returns its token.
    async fn create_session(&self, user_id: Uuid, ttl: Duration) -> StorageResult<String>;
    /// The live (unexpired) session of a token: its user and when it expires; `None` for
    /// unknown, malformed or expired tokens.
    async fn session(&self, token: &str) -> StorageResult<Option<Session>>;
    /// The user a live (unexpired) token belongs to; `None` for unknown, malformed or
    /// expired tokens.
    async fn session_user(&self, token: &str) -> StorageResult<Option<Uuid>> {
        Ok(self.session(token).await?.map(|s| s.user_id))
    }
    /// Ends one session; other sessions of the same user stay. Unknown tokens are a no-op.
    async fn delete_session(&self, token: &str) -> StorageResult<()>;
}

/// Projects and their members (`projects`, `project_members`).
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// Creates a project owned by `new.owner_id` in `new.organization_id`.
    async fn create_project(&self, new: NewProject) -> StorageResult<Project>;
    /// The project with this id (archived ones included).
    async fn project(&self, id: Uuid) -> StorageResult<Option<Project>>;
    /// The projects a user owns or is a member of, newest first: the active ones, or with
    /// `archived` the archived ones.
    async fn projects_for_user(&self, user_id: Uuid, archived: bool)
    -> StorageResult<Vec<Project>>;
    /// The user's role in the project: `Owner` for `projects.owner_id`, else the
    /// `project_members.role`, else `None`.
    async fn member_role(
        &self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StorageResult<Option<canvas_engine::Role>>;
    /// Adds a member or changes their role (upsert). `role` is viewer, editor or admin.
    async fn put_member(&self, member: NewMember) -> StorageResult<Member>;
    /// Removes a member; `false` if they were not one.
    async fn remove_member(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<bool>;
    /// The project's members (the owner is not listed unless also a member row).
    async fn members(&self, project_id: Uuid) -> StorageResult<Vec<Member>>;
    /// Renames, redescribes, archives or restores a project; bumps `updated_at`. `None` for
    /// an unknown project.
    async fn update_project(
        &self,
        id: Uuid,
        update: ProjectUpdate,
    ) -> StorageResult<Option<Project>>;
}

/// The audit trail (`audit_logs`).
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends one entry.
    async fn record(&self, entry: NewAuditEntry) -> StorageResult<()>;
    /// Entries matching the filter, newest first.
    async fn list(&self, filter: AuditFilter) -> StorageResult<Vec<AuditEntry>>;
}

/// Canvas records, their snapshots and the durable log of accepted updates.
#[async_trait]
pub trait CanvasStore: Send + Sync + 'static {
    /// Creates a canvas with its initial document state (a yrs v1 update) and JSON view, and
    /// records them as version 1 ("Initial creation", kind `initial`, by the owner; see
    /// [`VersionStore`]).
    async fn create_canvas(
        &self,
        new: NewCanvas,
        state: &[u8],
        view: &serde_json::Value,
    ) -> StorageResult<CanvasRecord>;
    /// The canvas record (not its document).
    async fn canvas(&self, id: Uuid) -> StorageResult<Option<CanvasRecord>>;
    /// The canvases of a project, newest first.
    async fn canvases_in_project(&self, project_id: Uuid) -> StorageResult<Vec<CanvasRecord>>;
    /// Deletes a canvas with its snapshot, log and versions; `false` if there was none.
    async fn delete_canvas(&self, id: Uuid) -> StorageResult<bool>;
    /// The last snapshot plus every log entry after it, in order; `None` for an unknown canvas.
    async fn load_document(&self, id: Uuid) -> StorageResult<Option<StoredDocument>>;
    /// Appends updates to the log in one durable write (group commit) and returns the
    /// sequence number of the last one. Sequence numbers increase strictly per canvas.
    async fn append_updates(&self, id: Uuid, updates: &[Vec<u8>]) -> StorageResult<i64>;
    /// Replaces the snapshot with `state` (which covers every log entry up to `upto_seq`),
    /// stores the JSON view, bumps `updated_at`, and drops the covered entries, atomically.
    async fn checkpoint(
        &self,
        id: Uuid,
        state: &[u8],
        upto_seq: i64,
        view: &serde_json::Value,
    ) -> StorageResult<()>;
    /// The canvas's public link (server-side only; see [`PublicLink`]), if it has one.
    async fn public_link(&self, id: Uuid) -> StorageResult<Option<PublicLink>>;
    /// Sets or clears the canvas's public link; `NotFound` for an unknown canvas. Deleting
    /// the canvas deletes its link.
    async fn set_public_link(&self, id: Uuid, link: Option<&PublicLink>) -> StorageResult<()>;
}

/// The analytics layer's records: data sources, saved queries and their executions (seed
/// `data_sources`, `saved_queries`, `query_executions`). Files, results and secrets are not
/// here: the server keeps files in object storage, results in the result cache, and seals
/// secrets before they reach a [`DataSource`].
#[async_trait]
pub trait DataStore: Send + Sync + 'static {
    /// Creates a source under the id it names; `Conflict("name")` when its project has one
    /// of that name in any case, `NotFound("project")` for an unknown project.
    async fn create_source(&self, new: NewDataSource) -> StorageResult<DataSource>;
    /// A source.
    async fn source(&self, id: Uuid) -> StorageResult<Option<DataSource>>;
    /// A project's sources, by name.
    async fn sources_in_project(&self, project_id: Uuid) -> StorageResult<Vec<DataSource>>;
    /// Changes a source (bumps `updated_at`); `None` for an unknown one, `Conflict("name")`
    /// for a taken name.
    async fn update_source(
        &self,
        id: Uuid,
        update: DataSourceUpdate,
    ) -> StorageResult<Option<DataSource>>;
    /// Deletes a source; `false` if there was none, `Conflict` while a query runs on it.
    async fn delete_source(&self, id: Uuid) -> StorageResult<bool>;
    /// Creates a saved query; `NotFound` for an unknown project, user or source.
    async fn create_query(&self, new: NewSavedQuery) -> StorageResult<SavedQuery>;
    /// A saved query.
    async fn query(&self, id: Uuid) -> StorageResult<Option<SavedQuery>>;
    /// A project's saved queries, newest first.
    async fn queries_in_project(&self, project_id: Uuid) -> StorageResult<Vec<SavedQuery>>;
    /// Changes a saved query (bumps `updated_at`); `None` for an unknown one.
    async fn update_query(
        &self,
        id: Uuid,
        update: SavedQueryUpdate,
    ) -> StorageResult<Option<SavedQuery>>;
    /// Deletes a saved query with its executions; `false` if there was none.
    async fn delete_query(&self, id: Uuid) -> StorageResult<bool>;
    /// Records an execution as given; `NotFound` for an unknown query.
    async fn create_execution(&self, execution: &QueryExecution) -> StorageResult<()>;
    /// An execution.
    async fn execution(&self, id: Uuid) -> StorageResult<Option<QueryExecution>>;
    /// Changes an execution that has not ended; `None` when it is unknown or has ended (a
    /// cancelled run that completes later stays cancelled).
    async fn update_execution(
        &self,
        id: Uuid,
        update: ExecutionUpdate,
    ) -> StorageResult<Option<QueryExecution>>;
    /// A query's latest executions, newest first.
    async fn executions_of_query(
        &self,
        query_id: Uuid,
        limit: u32,
    ) -> StorageResult<Vec<QueryExecution>>;
    /// Creates a pipeline (never run); `NotFound` for an unknown project or source.
    async fn create_pipeline(&self, new: NewDataPipeline) -> StorageResult<DataPipeline>;
    /// A pipeline.
    async fn pipeline(&self, id: Uuid) -> StorageResult<Option<DataPipeline>>;
    /// A project's pipelines, by name.
    async fn pipelines_in_project(&self, project_id: Uuid) -> StorageResult<Vec<DataPipeline>>;
    /// Changes a pipeline (bumps `updated_at`); `None` for an unknown one.
    async fn update_pipeline(
        &self,
        id: Uuid,
        update: DataPipelineUpdate,
    ) -> StorageResult<Option<DataPipeline>>;
    /// Deletes a pipeline; `false` if there was none.
    async fn delete_pipeline(&self, id: Uuid) -> StorageResult<bool>;
    /// The earliest `next_run_at` of an active pipeline, if any.
    async fn next_pipeline_due(&self) -> StorageResult<Option<DateTime<Utc>>>;
    /// Active pipelines due at `now` (`next_run_at <= now`), earliest first, at most `limit`.
    async fn due_pipelines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<DataPipeline>>;
    /// Claims the run of an active pipeline due at `due` (its `next_run_at` as read): sets
    /// `last_run_at = now`, `next_run_at = next` and counts the run, only if `next_run_at`
    /// is still `due`. Of any number of concurrent claims of one due run (on any node), one
    /// gets the pipeline back and the others `None`.
    async fn claim_pipeline_run(
        &self,
        id: Uuid,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> StorageResult<Option<DataPipeline>>;
    /// Starts a run outside the schedule (`last_run_at = now`, counted; `next_run_at` stays);
    /// `None` for an unknown pipeline.
    async fn start_pipeline_run(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<DataPipeline>>;
    /// Records how the run that started at `started` ended; `false` (nothing written) when
    /// a later run has started since, or the pipeline is gone.
    async fn finish_pipeline_run(
        &self,
        id: Uuid,
        started: DateTime<Utc>,
        outcome: PipelineOutcome,
    ) -> StorageResult<bool>;
}

/// Webhook subscriptions, the durable outbox of their deliveries and the log of attempts
/// (kept with the relational data: PostgreSQL, or the embedded SQLite file).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Creates a subscription under the id it names; `NotFound("project")` for an unknown
    /// project.
    async fn create_webhook(&self, new: NewWebhook) -> StorageResult<Webhook>;
    /// A subscription.
    async fn webhook(&self, id: Uuid) -> StorageResult<Option<Webhook>>;
    /// A project's subscriptions, oldest first.
    async fn webhooks_in_project(&self, project_id: Uuid) -> StorageResult<Vec<Webhook>>;
    /// Deletes a subscription with its deliveries and their attempts; `false` if there was
    /// none.
    async fn delete_webhook(&self, id: Uuid) -> StorageResult<bool>;
    /// Queues deliveries (one event for several subscriptions) in one transaction. A
    /// coalesced delivery whose subscription already has an open one (not yet attempted)
    /// with the same key replaces that one's data and time when its order is higher, and
    /// adds no row: of any number of concurrent writers (on any node), one row results.
    async fn enqueue_deliveries(&self, deliveries: &[NewWebhookDelivery]) -> StorageResult<()>;
    /// The earliest time a pending delivery may be tried, if any.
    async fn next_delivery_due(&self) -> StorageResult<Option<DateTime<Utc>>>;
    /// Claims up to `limit` pending deliveries due at `now` for an attempt: counts the
    /// attempt, closes them to coalescing and leases them until `lease_until` (they are due
    /// again then, should the attempt never be recorded). A delivery is claimed by one
    /// caller only, across nodes.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<WebhookDelivery>>;
    /// Records an attempt and what becomes of the delivery, only while the caller still
    /// holds the lease it was given (`lease_until` as claimed); `false` (nothing written)
    /// when it does not.
    async fn finish_attempt(
        &self,
        lease_until: DateTime<Utc>,
        attempt: &WebhookAttempt,
        outcome: DeliveryOutcome,
    ) -> StorageResult<bool>;
    /// Deletes up to `limit` deliveries that ended (delivered, or failed for good) before
    /// `ended_before`, with their attempts; how many deliveries went. Pending ones, however
    /// old, stay.
    async fn prune_deliveries(&self, ended_before: DateTime<Utc>, limit: u32)
    -> StorageResult<u64>;
    /// A subscription's latest deliveries, newest first.
    async fn deliveries_of_webhook(
        &self,
        webhook_id: Uuid,
        limit: u32,
    ) -> StorageResult<Vec<WebhookDelivery>>;
    /// The attempts at a subscription's latest deliveries, newest first.
    async fn attempts_of_webhook(
        &self,
        webhook_id: Uuid,
        limit: u32,
    ) -> StorageResult<Vec<WebhookAttempt>>;
}

/// Query results every node can read, and the progress of running executions: Redis
/// `query:result:{query_hash}` and `processing:{job_id}` with the services, in process for a
/// server running alone. Values are opaque to the store (the server writes MessagePack
/// results and JSON progress); both expire.
#[async_trait]
pub trait ResultCache: Send + Sync + 'static {
    /// Stores a result under its key for `ttl` (replacing one stored before).
    async fn put_result(&self, query_hash: &str, result: &[u8], ttl: Duration)
    -> StorageResult<()>;
    /// A result stored under the key, if it has not expired.
    async fn result(&self, query_hash: &str) -> StorageResult<Option<Vec<u8>>>;
    /// Drops the result stored under the key, if any.
    async fn remove_result(&self, query_hash: &str) -> StorageResult<()>;
    /// Writes an execution's progress (`{status, progress, partial_results}`) for `ttl`.
    async fn put_progress(
        &self,
        job_id: Uuid,
        progress: &serde_json::Value,
        ttl: Duration,
    ) -> StorageResult<()>;
    /// An execution's progress, if written and not expired.
    async fn progress(&self, job_id: Uuid) -> StorageResult<Option<serde_json::Value>>;
}

/// How canvases are used: views (one per opening) and favorites (seed `interactions`).
#[async_trait]
pub trait InteractionStore: Send + Sync + 'static {
    /// Counts one view of the canvas now (`views + 1`, `last_viewed_at = now`).
    async fn record_view(&self, canvas_id: Uuid) -> StorageResult<()> {
        self.record_views(&[(canvas_id, 1)]).await
    }
    /// Counts `n` views of each canvas now (`views + n`, `last_viewed_at = now`), in one
    /// write where the store can (the server adds up a storm of openings and writes them
    /// together). Unknown canvases are skipped.
    async fn record_views(&self, views: &[(Uuid, u64)]) -> StorageResult<()>;
    /// The canvas's counters (all zero for a canvas never viewed nor favored).
    async fn interactions(&self, canvas_id: Uuid) -> StorageResult<Interactions>;
    /// Marks (`true`) or unmarks the canvas as one of the user's favorites, keeping
    /// `favorites_count` in step; returns whether anything changed.
    async fn set_favorite(&self, user_id: Uuid, canvas_id: Uuid, on: bool) -> StorageResult<bool>;
    /// Whether the canvas is one of the user's favorites.
    async fn is_favorite(&self, user_id: Uuid, canvas_id: Uuid) -> StorageResult<bool>;
    /// The user's favorite canvases, most recently marked first.
    async fn favorites(&self, user_id: Uuid) -> StorageResult<Vec<Uuid>>;
    /// Forgets a deleted canvas's counters and favorites.
    async fn forget_canvas(&self, canvas_id: Uuid) -> StorageResult<()>;
}

/// Canvas templates (`canvas_templates`).
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Stores a new template; `Conflict` if its id is taken.
    async fn create_template(&self, template: &Template) -> StorageResult<()>;
    /// Stores a built-in template unless one with its id exists (its `usage_count` is kept).
    async fn ensure_template(&self, template: &Template) -> StorageResult<()>;
    /// The template with this id.
    async fn template(&self, id: &str) -> StorageResult<Option<Template>>;
    /// The templates a member of `organization_id` may use: every public one and those of
    /// the organization, by category then name.
    async fn templates(&self, organization_id: Option<Uuid>) -> StorageResult<Vec<Template>>;
    /// Counts one more canvas made from the template.
    async fn count_use(&self, id: &str) -> StorageResult<()>;
}

/// The version history of canvases: numbered snapshots (state and JSON view) with who made
/// them, when and why. [`CanvasStore::create_canvas`] records version 1 ("Initial creation",
/// kind `initial`) itself, so every canvas has a history from its start.
#[async_trait]
pub trait VersionStore: Send + Sync + 'static {
    /// Records a version with the next number (the last one + 1, atomically: concurrent calls
    /// get distinct numbers) and makes it the canvas record's `version`. `NotFound` for an
    /// unknown canvas.
    async fn add_version(
        &self,
        canvas_id: Uuid,
        new: NewVersion,
        state: &[u8],
        view: &serde_json::Value,
    ) -> StorageResult<VersionRecord>;
    /// Every version record of a canvas, oldest first (empty for an unknown canvas).
    async fn versions(&self, canvas_id: Uuid) -> StorageResult<Vec<VersionRecord>>;
    /// One version with its snapshot; `None` if the canvas has no such version.
    async fn version(&self, canvas_id: Uuid, version: i64) -> StorageResult<Option<StoredVersion>>;
}

/// Live presence: who is on a canvas now, shared by every server node
/// (`canvas:presence:{canvas_id}`: a hash of user id -> entry with a rolling TTL, and
/// `canvas:state:{canvas_id}`: the active users).
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// Sets or refreshes a user's entry on a canvas; the canvas's presence expires `ttl`
    /// after its last write (rolling), and readers ignore entries older than `ttl`.
    async fn put_presence(
        &self,
        canvas_id: Uuid,
        entry: &PresenceEntry,
        ttl: Duration,
    ) -> StorageResult<()>;
    /// Removes a user's entry (their last connection to the canvas closed).
    async fn remove_presence(&self, canvas_id: Uuid, user_id: Uuid) -> StorageResult<()>;
    /// The entries of a canvas whose `last_seen` is within `ttl` of now, by user id.
    async fn presence(&self, canvas_id: Uuid, ttl: Duration) -> StorageResult<Vec<PresenceEntry>>;
    /// Records the users with an open connection to the canvas on this node
    /// (`canvas:state:{canvas_id}`); an empty list clears this node's contribution.
    async fn set_active_users(
        &self,
        canvas_id: Uuid,
        node_id: &str,
        users: &[Uuid],
    ) -> StorageResult<()>;
    /// Every user with an open connection to the canvas on any node.
    async fn active_users(&self, canvas_id: Uuid) -> StorageResult<Vec<Uuid>>;
}

/// Per-minute rate limits (`rate_limit:{subject}:{endpoint}`, fixed one-minute windows):
/// `rate_limit:{user_id}:{endpoint}` for users, `rate_limit:ip:{ip}:{endpoint}` for client
/// addresses, and the account keys of [`RateSubject`].
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts `n` calls by the subject to the endpoint in the current minute and says whether
    /// the count is still within `limit`. `n = 0` counts nothing: it reads the current count
    /// (and the time left in its window).
    async fn hit_subject(
        &self,
        subject: &RateSubject,
        endpoint: &str,
        n: u32,
        limit: u32,
    ) -> StorageResult<RateDecision>;

    /// [`RateLimiter::hit_subject`] for a user ([`RateSubject::User`]).
    async fn hit(
        &self,
        user_id: Uuid,
        endpoint: &str,
        n: u32,
        limit: u32,
    ) -> StorageResult<RateDecision> {
        self.hit_subject(&RateSubject::User(user_id), endpoint, n, limit)
            .await
    }
}

/// Fan-out of live messages (document updates, awareness) between the server nodes that
/// share the services (Redis pub/sub channel `canvas:live:{canvas_id}`). In process there is
/// only one node, so nothing is sent anywhere.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// Whether other nodes may exist (and so whether publishing matters).
    fn is_shared(&self) -> bool;
    /// Sends a message about a canvas to every node subscribed to it (this one included).
    async fn publish(&self, canvas_id: Uuid, message: Vec<u8>) -> StorageResult<()>;
    /// Receives the messages published about a canvas from now on, until the receiver is
    /// dropped. The channel closes if the subscription breaks.
    async fn subscribe(
        &self,
        canvas_id: Uuid,
    ) -> StorageResult<tokio::sync::mpsc::Receiver<Vec<u8>>>;
    /// Sends a server-wide control message (not about one canvas: e.g. a session ended) to
    /// every node (Redis channel `canvas:control`). Alone, there is nobody to tell.
    async fn publish_control(&self, message: Vec<u8>) -> StorageResult<()> {
        drop(message);
        Ok(())
    }
    /// Receives the server-wide control messages published from now on, until the receiver
    /// is dropped; the channel closes if the subscription breaks. Alone, nothing arrives.
    async fn subscribe_control(&self) -> StorageResult<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        let (_, rx) = tokio::sync::mpsc::channel(1);
        Ok(rx)
    }
}

/// A backing service that can say whether it answers (the server's readiness check).
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// The service's name: `sqlite`, `postgresql`, `mongodb` or `redis`.
    fn service(&self) -> &'static str;
    /// One cheap round trip (`SELECT 1`, `ping`, `PING`).
    async fn ping(&self) -> StorageResult<()>;
}

/// One handle to every store. Cheap to clone: each field is an `Arc`.
#[derive(Clone)]
pub struct Storage {
    /// Users and organizations.
    pub users: Arc<dyn UserStore>,
    /// Bearer-token sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Projects and members.
    pub projects: Arc<dyn ProjectStore>,
    /// Audit trail.
    pub audit: Arc<dyn AuditStore>,
    /// Canvas documents and their update log.
    pub canvases: Arc<dyn CanvasStore>,
    /// Version history (the same backend as `canvases`).
    pub versions: Arc<dyn VersionStore>,
    /// Live presence.
    pub presence: Arc<dyn PresenceStore>,
    /// Rate limits.
    pub rate_limits: Arc<dyn RateLimiter>,
    /// Live messages between server nodes.
    pub fanout: Arc<dyn Fanout>,
    /// Every backing service in use, once each, for readiness checks.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Views and favorites.
    pub interactions: Arc<dyn InteractionStore>,
    /// Canvas templates.
    pub templates: Arc<dyn TemplateStore>,
    /// Data sources, saved queries and executions.
    pub data: Arc<dyn DataStore>,
    /// Webhook subscriptions, their outbox and delivery log.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Query results and execution progress.
    pub results: Arc<dyn ResultCache>,
}

/// The embedded SQLite store, opened on first need (only for what no service provides).
struct LazySqlite<'a> {
    dir: &'a std::path::Path,
    store: Option<Arc<embedded::SqliteStore>>,
}

impl LazySqlite<'_> {
    async fn get(&mut self) -> StorageResult<Arc<embedded::SqliteStore>> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let store = Arc::new(embedded::SqliteStore::open(self.dir).await?);
        self.store = Some(store.clone());
        Ok(store)
    }
}

/// Which services back the stores. What is not configured uses its embedded counterpart.
#[derive(Debug, Clone, Default)]
pub struct ServiceUrls {
    /// `postgres://...`: users, organizations, projects, members, audit.
    pub database_url: Option<String>,
    /// `mongodb://...`: canvases, their update log and versions.
    pub mongodb_uri: Option<String>,
    /// `redis://...`: sessions, presence, rate limits.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key ("" in production).
    pub redis_key_prefix: String,
}

impl Storage {
    /// The stores the URLs select; what is not configured uses its embedded counterpart
    /// (the SQLite file under `data_dir`, opened only if something needs it, and in-process
    /// presence and rate limits). A configured service that cannot be reached is an
    /// `Unreachable` error naming it: never a silent fallback.
    pub async fn connect(data_dir: &std::path::Path, urls: &ServiceUrls) -> StorageResult<Self> {
        let mut sqlite = LazySqlite {
            dir: data_dir,
            store: None,
        };
        type Relational = (
            Arc<dyn UserStore>,
            Arc<dyn ProjectStore>,
            Arc<dyn AuditStore>,
            Arc<dyn DataStore>,
            Arc<dyn WebhookStore>,
        );
        let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
        let (users, projects, audit, data, webhooks): Relational = match &urls.database_url {
            Some(url) => {
                let pg = Arc::new(postgres_store::PgStore::connect(url).await?);
                probes.push(pg.clone());
                (pg.clone(), pg.clone(), pg.clone(), pg.clone(), pg)
            }
            None => {
                let db = sqlite.get().await?;
                (db.clone(), db.clone(), db.clone(), db.clone(), db)
            }
        };
        type Documents = (
            Arc<dyn CanvasStore>,
            Arc<dyn VersionStore>,
            Arc<dyn InteractionStore>,
            Arc<dyn TemplateStore>,
        );
        let (canvases, versions, interactions, templates): Documents = match &urls.mongodb_uri {
            Some(uri) => {
                let mongo = Arc::new(mongo_store::MongoStore::connect(uri).await?);
                probes.push(mongo.clone());
                (mongo.clone(), mongo.clone(), mongo.clone(), mongo)
            }
            None => {
                let db = sqlite.get().await?;
                (db.clone(), db.clone(), db.clone(), db)
            }
        };
        type Live = (
            Arc<dyn SessionStore>,
            Arc<dyn PresenceStore>,
            Arc<dyn RateLimiter>,
            Arc<dyn Fanout>,
            Arc<dyn ResultCache>,
        );
        let (sessions, presence, rate_limits, fanout, results): Live = match &urls.redis_url {
            Some(url) => {
                let redis =
                    Arc::new(redis_store::RedisStore::connect(url, &urls.redis_key_prefix).await?);
                probes.push(redis.clone());
                (
                    redis.clone(),
                    redis.clone(),
                    redis.clone(),
                    redis.clone(),
                    redis,
                )
            }
            None => (
                sqlite.get().await?,
                Arc::new(memory::MemoryPresence::default()),
                Arc::new(memory::MemoryRateLimiter::default()),
                Arc::new(memory::SingleNode),
                Arc::new(memory::MemoryResults::default()),
            ),
        };
        if let Some(sqlite) = sqlite.store.clone() {
            probes.insert(0, sqlite);
        }
        Ok(Storage {
            probes,
            users,
            sessions,
            projects,
            audit,
            canvases,
            versions,
            presence,
            rate_limits,
            fanout,
            interactions,
            templates,
            data,
            webhooks,
            results,
        })
    }

    /// The embedded default: everything in `{data_dir}/canvas.sqlite3` (WAL mode), created
    /// with its schema on first use.
    pub async fn embedded(data_dir: &std::path::Path) -> StorageResult<Self> {
        Self::connect(data_dir, &ServiceUrls::default()).await
    }
}
