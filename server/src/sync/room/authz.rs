//! Authorisation inside the room: REST edits checked against the caller's role, every
//! connection's role recomputed when sharing, membership or archiving changes (a connection
//! left without one is closed with 4403), and sharing changes audited.

use super::Room;
use super::commands::{ConnId, EditReply, EditRequest, RoomView, close};
use super::log::Accepted;
use crate::domain::{Actor, effective_role};
use crate::sync::shared::AccessChange;
use canvas_engine::sharing::Sharing;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info};

/// Where a change to the document came from, for the audit of sharing changes.
pub(super) enum ChangedBy<'a> {
    /// An update from this connection (an admin editing `sharing` in the document).
    Conn(ConnId),
    /// A REST call.
    Rest(&'a Actor),
    /// Another server node or the log (audited where it was made).
    OtherNode,
}

impl Room {
    /// A membership or an archiving of this canvas's project changed: the connections it
    /// concerns get their new role, or are closed.
    pub(super) fn access_changed(&mut self, change: AccessChange) {
        let project = match change {
            AccessChange::ProjectRole { project_id, .. }
            | AccessChange::ProjectArchived { project_id, .. } => project_id,
        };
        if project != self.record.project_id {
            return;
        }
        for conn in self.conns.values_mut() {
            match change {
                AccessChange::ProjectRole { user_id, role, .. } if conn.user_id == user_id => {
                    conn.access.project_role = role;
                }
                AccessChange::ProjectArchived { archived, .. } => conn.access.archived = archived,
                AccessChange::ProjectRole { .. } => {}
            }
        }
        self.reauthorize();
    }

    /// Makes a change for a REST call: checks the caller's role, applies the change as a
    /// server edit, relays it and queues it for the durable log (like any accepted update)
    /// and audits what it did to sharing.
    pub(super) fn server_edit(&mut self, request: EditRequest) -> EditReply {
        let role = effective_role(&request.access, &self.sharing());
        if role.is_none_or(|r| r < request.required) {
            return EditReply::Forbidden(role);
        }
        let (result, update) = self.canvas.edit(request.edit);
        let (done, durable) = oneshot::channel();
        let empty = update.is_none();
        if let Err(message) = result {
            // An edit that fails must not have written anything: `edit` functions check
            // before they write.
            if empty {
                return EditReply::Invalid(message);
            }
            error!(%message, "a failed server edit changed the document");
        }
        match update {
            None => {
                let _ = done.send(());
            }
            Some(update) => {
                if let Some(user) = request.actor.user_id {
                    self.dirty_by = Some(user);
                }
                self.accept(Accepted::server(update, Some(done)));
                // the edit lists no blocks: bound blocks and narratives are looked at anew
                self.all_blocks_changed(request.actor.user_id);
            }
        }
        let audited = self.sharing_changed(ChangedBy::Rest(&request.actor));
        EditReply::Applied {
            durable,
            audited,
            view: Box::new(RoomView {
                json: self.json(),
                sharing: self.sharing(),
            }),
        }
    }

    /// After a change: if it touched `sharing` (grants, visibility, link, embedding), audits
    /// it as the change of `by` and rechecks every connection's role. A change that did not
    /// touch sharing cannot change anyone's role. Returns the audit write it started, if any.
    pub(super) fn sharing_changed(&mut self, by: ChangedBy<'_>) -> Option<JoinHandle<()>> {
        if !self.canvas.take_sharing_changed() {
            return None;
        }
        let mut audited = None;
        let now = self.sharing();
        if now != self.last_sharing {
            let before = std::mem::replace(&mut self.last_sharing, now);
            let by = match by {
                ChangedBy::Conn(conn_id) => self
                    .conns
                    .get(&conn_id)
                    .map(|c| (c.actor.clone(), "document")),
                ChangedBy::Rest(actor) => Some((actor.clone(), "rest")),
                // Audited by the node where it was made.
                ChangedBy::OtherNode => None,
            };
            if let Some((actor, source)) = by {
                self.announce(super::RoomEvent::SharingChanged {
                    by: actor.user_id,
                    source,
                    before: audit_sharing(&before),
                    after: audit_sharing(&self.last_sharing),
                });
                let changes = serde_json::json!({
                    "source": source,
                    "before": audit_sharing(&before),
                    "after": audit_sharing(&self.last_sharing),
                });
                audited = Some(self.deps.auditor.in_background(
                    actor,
                    "canvas.sharing.update",
                    ("canvas", Some(self.id)),
                    changes,
                ));
            }
        }
        self.reauthorize();
        audited
    }

    /// Recomputes every connection's role from its project access and the current sharing
    /// settings: a connection left with no role is closed with 4403, the others get their
    /// new role for their next update.
    pub(super) fn reauthorize(&mut self) {
        let sharing = self.sharing();
        let mut revoked = Vec::new();
        for (id, conn) in &mut self.conns {
            match effective_role(&conn.access, &sharing) {
                Some(role) => {
                    if role != conn.role {
                        info!(conn = id, user = %conn.user_id, from = %conn.role, to = %role, "role changed");
                        conn.role = role;
                    }
                }
                None => revoked.push(*id),
            }
        }
        for id in revoked {
            info!(conn = id, "access revoked; closing");
            self.close_conn(
                id,
                close::FORBIDDEN,
                "your access to this canvas was revoked".to_owned(),
            );
        }
    }
}

/// Sharing settings as the audit log records them: the public link token itself is a
/// secret, so only whether there is one.
fn audit_sharing(sharing: &Sharing) -> serde_json::Value {
    let mut value = serde_json::json!(sharing);
    if let Some(link) = value.get_mut("public_link") {
        *link = serde_json::json!(!link.is_null());
    }
    value
}
