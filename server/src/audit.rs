//! Writing the audit trail: a small handle (the audit store and the task tracker) that REST
//! handlers await and rooms use in the background, so neither needs the whole server state.

use crate::domain::Actor;
use canvas_storage::{AuditStore, NewAuditEntry};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

/// Records audit entries; cloning copies two handles.
#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn AuditStore>,
    tasks: TaskTracker,
}

impl Auditor {
    /// An auditor writing to `store`, tracking its background writes in `tasks` (so shutdown
    /// waits for them).
    pub fn new(store: Arc<dyn AuditStore>, tasks: TaskTracker) -> Self {
        Auditor { store, tasks }
    }

    /// Records an entry; a failure is logged, never shown to the caller (the action itself
    /// succeeded).
    pub async fn record(
        &self,
        actor: Actor,
        action: &str,
        resource: (&str, Option<Uuid>),
        changes: serde_json::Value,
    ) {
        let entry = NewAuditEntry {
            user_id: actor.user_id,
            organization_id: actor.organization_id,
            action: action.to_owned(),
            resource_type: resource.0.to_owned(),
            resource_id: resource.1,
            changes: Some(changes),
            ip_address: actor.ip,
            user_agent: actor.user_agent,
        };
        if let Err(cause) = self.store.record(entry).await {
            tracing::error!(%cause, action, "cannot write audit entry");
        }
    }

    /// Records an entry from a task that must not wait for it (a room); the write runs in
    /// the caller's span. The handle completes once the entry is written (or its failure
    /// logged), for a caller further away that must not answer before that (a REST call).
    pub fn in_background(
        &self,
        actor: Actor,
        action: &'static str,
        resource: (&'static str, Option<Uuid>),
        changes: serde_json::Value,
    ) -> JoinHandle<()> {
        let auditor = self.clone();
        self.tasks.spawn(
            async move { auditor.record(actor, action, resource, changes).await }.in_current_span(),
        )
    }
}
