//! The events a project's webhooks can receive, and [`Webhooks::emit`]: an event is written
//! to the durable outbox (one delivery per subscription that wants it) before `emit` returns;
//! the delivery worker ([`super::deliver`]) posts it.
//!
//! `canvas.updated` is coalesced per canvas and subscription: the first change after a quiet
//! spell opens a delivery due `--webhook-coalesce-ms` later, and every change until that
//! delivery's first attempt starts replaces its data (the latest `version` and `updated_by`)
//! instead of adding one. The outbox does this with one upsert on a unique index, so it holds
//! for every node writing to the same database.

use super::Webhooks;
use crate::sync::room::{RoomEvent, RoomEvents};
use canvas_engine::Role;
use canvas_storage::{CanvasRecord, QueryExecution};
use serde_json::{Value, json};
use uuid::Uuid;

/// An event type a subscription may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A canvas was created.
    CanvasCreated,
    /// A canvas was deleted.
    CanvasDeleted,
    /// A canvas's document changed (coalesced).
    CanvasUpdated,
    /// A version was recorded (named, automatic or a restore).
    VersionCreated,
    /// A member joined the project.
    MemberAdded,
    /// A member's role changed.
    MemberChanged,
    /// A member left the project.
    MemberRemoved,
    /// A canvas's sharing settings or public link changed.
    SharingChanged,
    /// A user opened a canvas (their first connection on a node).
    PresenceJoined,
    /// A user left a canvas (their last connection on a node).
    PresenceLeft,
    /// A query execution completed.
    QueryExecutionCompleted,
    /// A query execution failed.
    QueryExecutionFailed,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 12] = [
        EventType::CanvasCreated,
        EventType::CanvasDeleted,
        EventType::CanvasUpdated,
        EventType::VersionCreated,
        EventType::MemberAdded,
        EventType::MemberChanged,
        EventType::MemberRemoved,
        EventType::SharingChanged,
        EventType::PresenceJoined,
        EventType::PresenceLeft,
        EventType::QueryExecutionCompleted,
        EventType::QueryExecutionFailed,
    ];

    /// The name subscriptions and payloads use.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CanvasCreated => "canvas.created",
            EventType::CanvasDeleted => "canvas.deleted",
            EventType::CanvasUpdated => "canvas.updated",
            EventType::VersionCreated => "version.created",
            EventType::MemberAdded => "member.added",
            EventType::MemberChanged => "member.changed",
            EventType::MemberRemoved => "member.removed",
            EventType::SharingChanged => "sharing.changed",
            EventType::PresenceJoined => "presence.joined",
            EventType::PresenceLeft => "presence.left",
            EventType::QueryExecutionCompleted => "query.execution.completed",
            EventType::QueryExecutionFailed => "query.execution.failed",
        }
    }

    /// The type with this name.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl Webhooks {
    /// Queues `event` with `data` for every active subscription of `project` that asked for
    /// it, in the outbox, before it returns. A storage failure is logged: the action the
    /// event tells of has happened and stands.
    pub async fn emit(&self, project: Uuid, event: EventType, data: Value) {
        self.enqueue(project, event, data, None).await;
    }

    /// `canvas.updated`: coalesced per canvas (see the module's documentation).
    pub async fn canvas_updated(
        &self,
        project: Uuid,
        canvas: Uuid,
        version: i64,
        by: Option<Uuid>,
    ) {
        let data = json!({
            "canvas_id": canvas,
            "project_id": project,
            "version": version,
            "updated_by": by,
            "updated_at": chrono::Utc::now(),
        });
        self.enqueue(
            project,
            EventType::CanvasUpdated,
            data,
            Some((canvas.to_string(), version)),
        )
        .await;
    }
}

/// The canvas as events show it.
fn canvas_json(canvas: &CanvasRecord) -> Value {
    json!({
        "id": canvas.id,
        "project_id": canvas.project_id,
        "name": canvas.name,
        "description": canvas.description,
        "owner_id": canvas.owner_id,
        "created_at": canvas.created_at,
    })
}

/// The events the REST layer and the data side tell, one call each.
impl Webhooks {
    /// `canvas.created`.
    pub async fn canvas_created(&self, canvas: &CanvasRecord, by: Uuid) {
        let data = json!({"canvas": canvas_json(canvas), "created_by": by});
        self.emit(canvas.project_id, EventType::CanvasCreated, data)
            .await;
    }

    /// `canvas.deleted`.
    pub async fn canvas_deleted(&self, canvas: &CanvasRecord, by: Uuid) {
        let data = json!({"canvas": canvas_json(canvas), "deleted_by": by});
        self.emit(canvas.project_id, EventType::CanvasDeleted, data)
            .await;
    }

    /// `member.added`, `member.changed` or `member.removed`, from the role before and after
    /// (nothing when both are the same).
    pub async fn member(
        &self,
        project: Uuid,
        user: Uuid,
        roles: (Option<Role>, Option<Role>),
        by: Uuid,
    ) {
        let (before, after) = roles;
        let kind = match (before, after) {
            (None, Some(_)) => EventType::MemberAdded,
            (Some(b), Some(a)) if a != b => EventType::MemberChanged,
            (Some(_), None) => EventType::MemberRemoved,
            _ => return,
        };
        let data = json!({
            "project_id": project,
            "user_id": user,
            "role": after.map(|r| r.as_str()),
            "previous_role": before.map(|r| r.as_str()),
            "changed_by": by,
        });
        self.emit(project, kind, data).await;
    }

    /// `query.execution.completed`, or `query.execution.failed` (failed or cancelled).
    pub async fn execution_ended(&self, project: Uuid, execution: &QueryExecution) {
        let kind = if execution.status == "completed" {
            EventType::QueryExecutionCompleted
        } else {
            EventType::QueryExecutionFailed
        };
        let data = json!({
            "project_id": project,
            "execution_id": execution.id,
            "query_id": execution.query_id,
            "status": execution.status,
            "executed_by": execution.executed_by,
            "rows_returned": execution.rows_returned,
            "execution_time_ms": execution.execution_time_ms,
            "from_cache": execution.from_cache,
            "error": execution.error_message,
            "completed_at": execution.completed_at,
        });
        self.emit(project, kind, data).await;
    }
}

impl RoomEvents for Webhooks {
    fn room_event(&self, canvas: Uuid, project: Uuid, event: RoomEvent) {
        let kind = match &event {
            RoomEvent::Updated { .. } => EventType::CanvasUpdated,
            RoomEvent::VersionCreated(_) => EventType::VersionCreated,
            RoomEvent::SharingChanged { .. } => EventType::SharingChanged,
            RoomEvent::PresenceJoined(_) => EventType::PresenceJoined,
            RoomEvent::PresenceLeft(_) => EventType::PresenceLeft,
        };
        // The room's hot path: nothing is spawned for a project known to want none of it.
        if !self.may_want(project, kind) {
            return;
        }
        let hooks = self.clone();
        self.inner.tasks.spawn(async move {
            match event {
                RoomEvent::Updated { version, by } => {
                    hooks.canvas_updated(project, canvas, version, by).await;
                }
                RoomEvent::VersionCreated(v) => {
                    let data = json!({
                        "canvas_id": canvas,
                        "project_id": project,
                        "version": v.version,
                        "kind": v.kind,
                        "changes": v.changes,
                        "created_by": v.changed_by,
                        "created_at": v.changed_at,
                    });
                    hooks.emit(project, kind, data).await;
                }
                RoomEvent::SharingChanged {
                    by,
                    source,
                    before,
                    after,
                } => {
                    let data = json!({
                        "canvas_id": canvas,
                        "project_id": project,
                        "changed_by": by,
                        "source": source,
                        "before": before,
                        "after": after,
                    });
                    hooks.emit(project, kind, data).await;
                }
                RoomEvent::PresenceJoined(user) | RoomEvent::PresenceLeft(user) => {
                    let data = json!({"canvas_id": canvas, "project_id": project, "user_id": user});
                    hooks.emit(project, kind, data).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(EventType::parse("canvas.exploded"), None);
        assert_eq!(EventType::parse("Canvas.Created"), None);
        assert_eq!(EventType::parse(""), None);
    }
}
