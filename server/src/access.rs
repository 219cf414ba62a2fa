//! Looking up a caller's access to a canvas in storage: the canvas, its project and the
//! caller's project-level access ([`ProjectAccess`]). The rules that combine it with the
//! canvas's sharing settings are in [`crate::domain`]; the callers (`http/`, the WebSocket
//! entry) turn a [`LookupError`] into their own answer (a status, a close code).

use crate::admission::AdmissionCache;
use crate::domain::ProjectAccess;
use canvas_storage::{CanvasRecord, Project, Storage, StorageError, User};
use uuid::Uuid;

/// Why a lookup found no access.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No such canvas (or its project is gone).
    #[error("canvas {0} not found")]
    NotFound(Uuid),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The canvas record, its project and what the user may do by project membership.
pub struct CanvasAccess {
    /// The canvas.
    pub canvas: CanvasRecord,
    /// Its project.
    pub project: Project,
    /// The user's project-level access.
    pub access: ProjectAccess,
}

/// Looks up a canvas and the caller's project access; `NotFound` for an unknown canvas.
pub async fn canvas_access(
    storage: &Storage,
    user: &User,
    canvas_id: Uuid,
) -> Result<CanvasAccess, LookupError> {
    let not_found = || LookupError::NotFound(canvas_id);
    let canvas = storage
        .canvases
        .canvas(canvas_id)
        .await?
        .ok_or_else(not_found)?;
    let project = storage
        .projects
        .project(canvas.project_id)
        .await?
        .ok_or_else(not_found)?;
    let project_role = storage.projects.member_role(project.id, user.id).await?;
    let same_organization =
        user.organization_id.is_some() && user.organization_id == project.organization_id;
    let archived = project.is_archived;
    Ok(CanvasAccess {
        canvas,
        project,
        access: ProjectAccess {
            user_id: user.id,
            project_role,
            same_organization,
            archived,
            ..ProjectAccess::default()
        },
    })
}

/// The user's project-level access to a canvas (what [`canvas_access`] finds), through the
/// admission cache ([`crate::admission`]): a hit costs no storage read.
pub async fn project_access_cached(
    storage: &Storage,
    cache: &AdmissionCache,
    user: &User,
    canvas_id: Uuid,
) -> Result<ProjectAccess, LookupError> {
    if let Some(hit) = cache.access(user.id, canvas_id) {
        return Ok(hit);
    }
    let generation = cache.generation();
    let found = canvas_access(storage, user, canvas_id).await?.access;
    cache.keep_access(generation, user.id, canvas_id, &found);
    Ok(found)
}

/// Access of an anonymous caller who presents a public link token: nothing but what the
/// link gives (a random user id keeps their presence apart from others'). The token is
/// compared with the one the server keeps ([`canvas_storage::PublicLink`]); when it matches,
/// the access carries the link's id, which [`crate::domain::effective_role`] compares with the
/// document's `sharing.public_link`, so replacing or revoking the link ends it everywhere.
pub async fn link_access(
    storage: &Storage,
    canvas_id: Uuid,
    link: &str,
) -> Result<CanvasAccess, LookupError> {
    let not_found = || LookupError::NotFound(canvas_id);
    let canvas = storage
        .canvases
        .canvas(canvas_id)
        .await?
        .ok_or_else(not_found)?;
    let project = storage
        .projects
        .project(canvas.project_id)
        .await?
        .ok_or_else(not_found)?;
    let archived = project.is_archived;
    let matched = matched_link(storage, canvas_id, link).await?;
    Ok(CanvasAccess {
        canvas,
        project,
        access: ProjectAccess {
            user_id: Uuid::new_v4(),
            archived,
            link: matched,
            ..ProjectAccess::default()
        },
    })
}

/// The id of the canvas's public link when `token` is its token, else `None`: what a
/// [`ProjectAccess::link`] holds, for a guest and for a signed-in caller presenting a link.
pub async fn matched_link(
    storage: &Storage,
    canvas_id: Uuid,
    token: &str,
) -> Result<Option<String>, StorageError> {
    Ok(storage
        .canvases
        .public_link(canvas_id)
        .await?
        .filter(|kept| same_secret(&kept.token, token))
        .map(|kept| kept.id))
}

/// Whether a presented secret is the kept one, compared as SHA-256 digests so that the
/// comparison's timing says nothing about the secret.
fn same_secret(kept: &str, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    !kept.is_empty() && Sha256::digest(kept.as_bytes()) == Sha256::digest(presented.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_kept_secret_matches() {
        assert!(same_secret("tok-1", "tok-1"));
        assert!(!same_secret("tok-1", "tok-2"));
        assert!(!same_secret("tok-1", ""));
        assert!(!same_secret("", ""), "an empty kept secret matches nothing");
    }
}
