//! Looking up a caller's access to a canvas in storage: the canvas, its project and the
//! caller's project-level access ([`ProjectAccess`]). The rules that combine it with the
//! canvas's sharing settings are in [`crate::domain`]; the callers (`http/`, the WebSocket
//! entry) turn a [`LookupError`] into their own answer (a status, a close code).

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

/// Access of an anonymous caller who presents a public link token: nothing but what the
/// link gives (a random user id keeps their presence apart from others').
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
    Ok(CanvasAccess {
        canvas,
        project,
        access: ProjectAccess {
            user_id: Uuid::new_v4(),
            archived,
            link: Some(link.to_owned()),
            ..ProjectAccess::default()
        },
    })
}
