//! Records the stores read and write. Field names follow the seed schema.

use canvas_engine::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user (`users`), without the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// Primary key.
    pub id: Uuid,
    /// Unique email, as given at signup.
    pub email: String,
    /// Unique display handle.
    pub username: String,
    /// Optional given name.
    #[schema(required)]
    pub first_name: Option<String>,
    /// Optional family name.
    #[schema(required)]
    pub last_name: Option<String>,
    /// Optional avatar image address.
    #[schema(required)]
    pub avatar_url: Option<String>,
    /// The organization the user belongs to (their own, made at signup).
    #[schema(required)]
    pub organization_id: Option<Uuid>,
    /// Organization-level role (`member` by default; `admin` for the organization's creator).
    pub role: String,
    /// When the user last logged in.
    #[schema(required)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the user signed up.
    pub created_at: DateTime<Utc>,
}

/// What signup provides.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email (unique).
    pub email: String,
    /// Username (unique).
    pub username: String,
    /// Argon2 PHC string from [`crate::password::hash`].
    pub hashed_password: String,
}

/// A project (`projects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    /// Primary key.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Optional description.
    #[schema(required)]
    pub description: Option<String>,
    /// Organization the project belongs to.
    #[schema(required)]
    pub organization_id: Option<Uuid>,
    /// The user who created it.
    pub owner_id: Uuid,
    /// Archived projects are hidden from lists.
    pub is_archived: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change time.
    pub updated_at: DateTime<Utc>,
}

/// What project creation provides.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Organization of the creator.
    pub organization_id: Option<Uuid>,
    /// The creator, who owns it.
    pub owner_id: Uuid,
}

/// A membership (`project_members`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// The project.
    pub project_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// viewer, editor or admin.
    #[schema(value_type = String)]
    pub role: Role,
    /// Who added them.
    #[schema(required)]
    pub invited_by: Option<Uuid>,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// What adding a member provides.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// The project.
    pub project_id: Uuid,
    /// The user to add.
    pub user_id: Uuid,
    /// viewer, editor or admin (never owner).
    pub role: Role,
    /// The admin who added them.
    pub invited_by: Option<Uuid>,
}

/// An audit entry to record (`audit_logs`).
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    /// Who acted (`None` for the system).
    pub user_id: Option<Uuid>,
    /// Their organization.
    pub organization_id: Option<Uuid>,
    /// What happened, e.g. `user.signup`, `member.add`, `canvas.create`.
    pub action: String,
    /// Kind of resource: `user`, `project`, `canvas`, ...
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: Option<Uuid>,
    /// Details as JSON.
    pub changes: Option<serde_json::Value>,
    /// Client address, if known.
    pub ip_address: Option<std::net::IpAddr>,
    /// Client user agent, if known.
    pub user_agent: Option<String>,
}

/// A recorded audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Primary key.
    pub id: Uuid,
    /// Who acted.
    #[schema(required)]
    pub user_id: Option<Uuid>,
    /// Their organization.
    #[schema(required)]
    pub organization_id: Option<Uuid>,
    /// What happened.
    pub action: String,
    /// Kind of resource.
    pub resource_type: String,
    /// The resource's id.
    #[schema(required)]
    pub resource_id: Option<Uuid>,
    /// Details.
    #[schema(required)]
    pub changes: Option<serde_json::Value>,
    /// Client address.
    #[schema(required, value_type = Option<String>)]
    pub ip_address: Option<std::net::IpAddr>,
    /// Client user agent.
    #[schema(required)]
    pub user_agent: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this organization's entries.
    pub organization_id: Option<Uuid>,
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource.
    pub resource_id: Option<Uuid>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u32>,
}

/// A canvas record: what lists and permission checks need, without the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanvasRecord {
    /// Primary key (also the WebSocket room name).
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Its creator.
    pub owner_id: Uuid,
    /// Name at the last checkpoint.
    pub name: String,
    /// Description at the last checkpoint.
    #[schema(required)]
    pub description: Option<String>,
    /// Version number (seed `version`; bumped by named versions later).
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last checkpoint.
    pub updated_at: DateTime<Utc>,
}

/// A canvas's public link, kept by the server only: the shared document holds its `id` (a
/// non-secret handle that changes whenever the link is replaced), never its `token`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicLink {
    /// The handle written into the document's `sharing.public_link`.
    pub id: String,
    /// The secret a guest presents (`?link=`).
    pub token: String,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for PublicLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicLink")
            .field("id", &self.id)
            .field("token", &"(secret)")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What canvas creation provides.
#[derive(Debug, Clone)]
pub struct NewCanvas {
    /// Chosen by the caller so the document can carry it.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// The creator.
    pub owner_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
}

/// A canvas document as stored: snapshot plus the log after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// The snapshot: a yrs v1 update holding the whole state at `snapshot_seq`.
    pub snapshot: Vec<u8>,
    /// The last log sequence number the snapshot covers (0 before any update).
    pub snapshot_seq: i64,
    /// Log entries after the snapshot, `(seq, yrs v1 update)`, in order.
    pub updates: Vec<(i64, Vec<u8>)>,
}

/// One user's presence on a canvas (seed: `canvas:presence:{canvas_id}` -> user id ->
/// `{cursor, selection, last_seen}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceEntry {
    /// The user.
    pub user_id: Uuid,
    /// Their display name.
    pub username: String,
    /// Their cursor as their client announced it (any JSON), or null.
    pub cursor: serde_json::Value,
    /// Their selection as their client announced it (any JSON), or null.
    pub selection: serde_json::Value,
    /// When the server last heard from them.
    pub last_seen: DateTime<Utc>,
}

impl PresenceEntry {
    /// Whether the entry was seen within `ttl` of now (one from the future counts as fresh):
    /// older entries are not returned by any presence store.
    pub fn is_fresh(&self, ttl: std::time::Duration) -> bool {
        let age = Utc::now().signed_duration_since(self.last_seen);
        age.to_std().map_or(true, |age| age <= ttl)
    }
}

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the calls are within the limit.
    pub allowed: bool,
    /// Calls counted in the current window, these included.
    pub count: u32,
    /// Seconds until the current window ends.
    pub retry_after_secs: u32,
}

/// Who a rate limit counts: the part of the key between `rate_limit:` and the endpoint
/// (its [`Display`](std::fmt::Display) form), so each subject has windows of its own.
///
/// | subject | key |
/// |---|---|
/// | [`User`](Self::User) | `rate_limit:{user_id}:{endpoint}` |
/// | [`Ip`](Self::Ip) | `rate_limit:ip:{ip}:{endpoint}` |
/// | [`Account`](Self::Account) | `rate_limit:account:{key}:{endpoint}` |
/// | [`AccountIp`](Self::AccountIp) | `rate_limit:account:{key}:ip:{ip}:{endpoint}` |
///
/// Build IP subjects with [`RateSubject::ip`], which counts an IPv6 client by its /64.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateSubject {
    /// A signed-in user.
    User(Uuid),
    /// A client address (see [`RateSubject::ip`]).
    Ip(std::net::IpAddr),
    /// An account named by an opaque key of the caller's (the server uses a digest of the
    /// normalised email, so an account that does not exist is counted like one that does).
    Account(String),
    /// One account as tried from one client address.
    AccountIp(String, std::net::IpAddr),
}

impl RateSubject {
    /// The subject for a client address: an IPv4 address (or an IPv4-mapped IPv6 one) as
    /// itself, any other IPv6 address by its /64 prefix, since one host usually holds a
    /// whole /64 and could otherwise take a fresh address for every call.
    pub fn ip(addr: std::net::IpAddr) -> Self {
        RateSubject::Ip(rate_ip(addr))
    }

    /// [`RateSubject::AccountIp`] with the address normalised as [`RateSubject::ip`] does.
    pub fn account_ip(account: impl Into<String>, addr: std::net::IpAddr) -> Self {
        RateSubject::AccountIp(account.into(), rate_ip(addr))
    }
}

/// An address as rate limits count it: IPv4 as is, IPv6 by its /64 prefix.
fn rate_ip(addr: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl std::fmt::Display for RateSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateSubject::User(id) => write!(f, "{id}"),
            RateSubject::Ip(ip) => write!(f, "ip:{ip}"),
            RateSubject::Account(key) => write!(f, "account:{key}"),
            RateSubject::AccountIp(key, ip) => write!(f, "account:{key}:ip:{ip}"),
        }
    }
}

/// What changes a project (`PATCH /projects/{id}`); `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Archive (`true`) or restore (`false`).
    pub is_archived: Option<bool>,
}

/// How a canvas is used (seed: the canvas document's `interactions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Interactions {
    /// How many times it was opened (one per WebSocket join).
    pub views: i64,
    /// When it was last opened.
    #[schema(required)]
    pub last_viewed_at: Option<DateTime<Utc>>,
    /// Comments (kept for the seed's shape; there are no comments yet).
    pub comments_count: i64,
    /// How many users marked it as a favorite.
    pub favorites_count: i64,
}

/// A canvas template (seed: MongoDB `canvas_templates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    /// Its id: a UUID for user-made templates, a readable name for built-in ones.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    #[schema(required)]
    pub description: Option<String>,
    /// Category, e.g. "sales".
    #[schema(required)]
    pub category: Option<String>,
    /// A preview image address.
    #[schema(required)]
    pub thumbnail_url: Option<String>,
    /// Visible to every user (`true`) or only to the creator's organization.
    pub is_public: bool,
    /// How many canvases were created from it.
    pub usage_count: i64,
    /// The blocks a new canvas starts with, in the canvas JSON shape (without metadata).
    pub blocks: serde_json::Value,
    /// Data fields the template's blocks expect.
    pub required_fields: Vec<String>,
    /// The creator's user id, or "system" for built-in templates.
    pub created_by: String,
    /// The creator's organization (none for built-in templates).
    #[schema(required)]
    pub organization_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The `changes` of version 1, as in the seed.
pub const INITIAL_CHANGES: &str = "Initial creation";

/// How a version came to be (`kind` of a version record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionKind {
    /// Version 1: the canvas as created.
    Initial,
    /// Recorded by the server while the canvas was edited (at most once per interval).
    Auto,
    /// Named by a user (`POST /canvases/{id}/versions`).
    Named,
    /// The result of restoring an earlier version or one of its blocks.
    Restore,
}

impl VersionKind {
    /// The stored name: `initial`, `auto`, `named` or `restore`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Initial => "initial",
            VersionKind::Auto => "auto",
            VersionKind::Named => "named",
            VersionKind::Restore => "restore",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<VersionKind> {
        Some(match s {
            "initial" => VersionKind::Initial,
            "auto" => VersionKind::Auto,
            "named" => VersionKind::Named,
            "restore" => VersionKind::Restore,
            _ => return None,
        })
    }
}

/// One entry of a canvas's version history (seed: `metadata.version_history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionRecord {
    /// The version number: 1 for the canvas as created, then 2, 3, ... per canvas.
    pub version: i64,
    /// What changed, in words ("Initial creation", a user's name for the version, ...).
    pub changes: String,
    /// The user the version is attributed to.
    pub changed_by: Uuid,
    /// When it was recorded.
    pub changed_at: DateTime<Utc>,
    /// How it came to be.
    pub kind: VersionKind,
}

/// What recording a version provides (the store picks the number and the time).
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// How it came to be.
    pub kind: VersionKind,
    /// What changed, in words.
    pub changes: String,
    /// Who it is attributed to.
    pub changed_by: Uuid,
}

/// A version with its snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    /// The history entry.
    pub record: VersionRecord,
    /// The whole document at that version, as a yrs v1 update.
    pub state: Vec<u8>,
    /// The canvas JSON view at that version.
    pub view: serde_json::Value,
}

/// A project's data source (seed `data_sources`): an uploaded file, a database, an HTTP API
/// or a Redis stream. Its `name` is the table its queries use, unique per project in any case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// Primary key.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Its name (and SQL table name).
    pub name: String,
    /// `file`, `database`, `api` or `streaming`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How to reach it, as stored: the server seals secrets before they get here.
    pub connection_config: serde_json::Value,
    /// Columns and types found by the last sync.
    pub schema_info: Option<serde_json::Value>,
    /// Anything else about it (file size and format, row counts, ...).
    pub metadata: serde_json::Value,
    /// `active`, or `error` (the message is in `metadata`).
    pub status: String,
    /// When it was last synced.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What creating a data source provides.
#[derive(Debug, Clone)]
pub struct NewDataSource {
    /// Chosen by the caller (its secrets are sealed for this id before it is stored).
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: String,
    /// Its connection settings (secrets sealed).
    pub connection_config: serde_json::Value,
    /// Its metadata.
    pub metadata: serde_json::Value,
}

/// What changes a data source; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct DataSourceUpdate {
    /// New name.
    pub name: Option<String>,
    /// New connection settings.
    pub connection_config: Option<serde_json::Value>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
    /// New schema (a sync).
    pub schema_info: Option<serde_json::Value>,
    /// New status (a sync).
    pub status: Option<String>,
    /// Time of a sync.
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// A saved query (seed `saved_queries`, plus `data_source_id` for a query that runs on a
/// `database` source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedQuery {
    /// Primary key.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// The query, with `{{name}}` where parameters go.
    pub query_text: String,
    /// `sql`, `python` or `natural_language`.
    pub query_type: String,
    /// Declared parameters: `{"name": {"type": ..., "default": ...}}`.
    pub parameters: serde_json::Value,
    /// Who made it.
    #[schema(required)]
    pub created_by: Option<Uuid>,
    /// Whether it is shared beyond its project.
    pub is_public: bool,
    /// The `database` source it runs on; `None` for queries over the project's tables.
    #[schema(required)]
    pub data_source_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What creating a saved query provides.
#[derive(Debug, Clone)]
pub struct NewSavedQuery {
    /// The project.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its text.
    pub query_text: String,
    /// Its type.
    pub query_type: String,
    /// Its declared parameters.
    pub parameters: serde_json::Value,
    /// Who makes it.
    pub created_by: Option<Uuid>,
    /// Whether it is public.
    pub is_public: bool,
    /// The database source it runs on.
    pub data_source_id: Option<Uuid>,
}

/// What changes a saved query; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct SavedQueryUpdate {
    /// New name.
    pub name: Option<String>,
    /// New text.
    pub query_text: Option<String>,
    /// New type.
    pub query_type: Option<String>,
    /// New parameters.
    pub parameters: Option<serde_json::Value>,
    /// Public or not.
    pub is_public: Option<bool>,
    /// New source (`Some(None)`: none).
    pub data_source_id: Option<Option<Uuid>>,
}

/// One run of a saved query (seed `query_executions`, plus `query_hash`, `from_cache` and
/// `computed_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueryExecution {
    /// Primary key (the job id).
    pub id: Uuid,
    /// The query.
    pub query_id: Uuid,
    /// Who ran it.
    #[schema(required)]
    pub executed_by: Option<Uuid>,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The bound parameters.
    pub parameters: serde_json::Value,
    /// Where the result is kept.
    #[schema(required)]
    pub result_location: Option<String>,
    /// Why it failed.
    #[schema(required)]
    pub error_message: Option<String>,
    /// How long it ran.
    #[schema(required)]
    pub execution_time_ms: Option<i64>,
    /// Rows in its result.
    #[schema(required)]
    pub rows_returned: Option<i64>,
    /// When it was asked for.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[schema(required)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The cache key of its result.
    #[schema(required)]
    pub query_hash: Option<String>,
    /// Whether the result came from the cache.
    pub from_cache: bool,
    /// When its result was computed.
    #[schema(required)]
    pub computed_at: Option<DateTime<Utc>>,
}

impl QueryExecution {
    /// Whether it has ended (`completed`, `failed` or `cancelled`): nothing changes it then.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }
}

/// What changes a running execution; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ExecutionUpdate {
    /// New status.
    pub status: Option<String>,
    /// Where the result is.
    pub result_location: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// How long it ran.
    pub execution_time_ms: Option<i64>,
    /// Rows returned.
    pub rows_returned: Option<i64>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// When its result was computed.
    pub computed_at: Option<DateTime<Utc>>,
}

/// A data pipeline (seed `data_pipelines`, plus what migration 0005 adds: the last run's
/// outcome and a run counter): re-syncs its source on a cron schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataPipeline {
    /// Primary key.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// The source it re-syncs.
    pub source_id: Uuid,
    /// Settings kept for the pipeline's owners (a JSON object; the server does not read it).
    pub pipeline_config: serde_json::Value,
    /// The cron schedule; `None` runs only when asked.
    pub schedule_cron: Option<String>,
    /// Whether the schedule runs it.
    pub is_active: bool,
    /// When the latest run started.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it is due next; `None` when it has no schedule.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The latest finished run's outcome: `ok` or `error`; `None` before the first.
    pub last_status: Option<String>,
    /// The latest finished run's error message, when it failed.
    pub last_error: Option<String>,
    /// How many runs have started.
    pub run_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What creating a data pipeline provides.
#[derive(Debug, Clone)]
pub struct NewDataPipeline {
    /// The project.
    pub project_id: Uuid,
    /// Its name.
    pub name: String,
    /// The source it re-syncs (of the same project: the caller checks).
    pub source_id: Uuid,
    /// Its settings (a JSON object).
    pub pipeline_config: serde_json::Value,
    /// Its schedule.
    pub schedule_cron: Option<String>,
    /// Whether the schedule runs it.
    pub is_active: bool,
    /// Its first due time.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// What changes a data pipeline; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct DataPipelineUpdate {
    /// New name.
    pub name: Option<String>,
    /// New settings.
    pub pipeline_config: Option<serde_json::Value>,
    /// New schedule (`Some(None)` removes it).
    pub schedule_cron: Option<Option<String>>,
    /// Whether the schedule runs it.
    pub is_active: Option<bool>,
    /// New due time (`Some(None)`: never).
    pub next_run_at: Option<Option<DateTime<Utc>>>,
}

/// How a pipeline run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineOutcome {
    /// The source synced.
    Ok,
    /// It did not; the message says why.
    Error(String),
}

/// A webhook subscription of a project: where its events are posted and which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Primary key.
    pub id: Uuid,
    /// The project whose events it receives.
    pub project_id: Uuid,
    /// Where deliveries are posted (http or https).
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The signing secret, sealed with the server key (never the plain secret).
    pub secret_sealed: String,
    /// The secret's last characters, to tell secrets apart.
    pub secret_hint: String,
    /// Who made it.
    pub created_by: Option<Uuid>,
    /// Whether events are queued for it.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What creating a webhook provides (the caller picks the id: the sealed secret is bound to it).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Its id.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The sealed secret.
    pub secret_sealed: String,
    /// The secret's last characters.
    pub secret_hint: String,
    /// Who made it.
    pub created_by: Option<Uuid>,
}

/// One event for one subscription, as queued in the outbox.
#[derive(Debug, Clone)]
pub struct NewWebhookDelivery {
    /// The delivery's id.
    pub id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event's id (the payload's `id`; the same for every subscription).
    pub event_id: Uuid,
    /// The event type (`canvas.created`, ...).
    pub event_type: String,
    /// The payload's `data`.
    pub data: serde_json::Value,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// Its first attempt's time.
    pub next_attempt_at: DateTime<Utc>,
    /// No attempt starts after this.
    pub expires_at: DateTime<Utc>,
    /// For a coalesced event: its key (a canvas id) and order (a later event replaces the
    /// data of an open delivery with the same key only when its order is higher).
    pub coalesce: Option<(String, i64)>,
}

/// A delivery in the outbox, with where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// Its id.
    pub id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The payload's `data`.
    pub data: serde_json::Value,
    /// When the event happened (the latest coalesced change).
    pub created_at: DateTime<Utc>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts started.
    pub attempts: i64,
    /// When it is tried next (while an attempt runs: when its lease ends).
    pub next_attempt_at: DateTime<Utc>,
    /// No attempt starts after this.
    pub expires_at: DateTime<Utc>,
    /// The lease of the attempt in flight.
    #[schema(required)]
    pub lease_until: Option<DateTime<Utc>>,
    /// The last answer's HTTP status.
    #[schema(required)]
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed.
    #[schema(required)]
    pub last_error: Option<String>,
    /// When it was delivered.
    #[schema(required)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAttempt {
    /// The delivery.
    pub delivery_id: Uuid,
    /// 1 for the first attempt, then 2, 3, ...
    pub attempt: i64,
    /// When it started.
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    #[schema(required)]
    pub status_code: Option<i64>,
    /// Why it failed (a non-2xx status, a timeout, a refused connection, ...).
    #[schema(required)]
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Tried again at that time.
    Retry(DateTime<Utc>),
    /// Given up (out of time, or the subscription cannot be delivered to).
    Failed,
}
