//! Who may do what with a canvas: the effective role of a user, from every source.
//!
//! A user's role on a canvas is the highest of
//! - their project role (`projects.owner_id` => owner, else `project_members.role`),
//! - their grant in the canvas's `sharing.permissions`,
//! - viewer, when `sharing.visibility` is "team" and they belong to the project's organization.
//!
//! The project part comes from storage ([`ProjectAccess`]); the sharing part lives in the
//! canvas document, so rooms combine the two with [`effective_role`].

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use canvas_engine::Role;
use canvas_engine::edits::{Sharing, Visibility};
use canvas_storage::{CanvasRecord, Project, User};
use uuid::Uuid;

/// What storage says about one user and one canvas's project.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// The user.
    pub user_id: Uuid,
    /// Their role in the canvas's project, if any.
    pub project_role: Option<Role>,
    /// Whether they belong to the project's organization (for "team" visibility).
    pub same_organization: bool,
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
    state: &AppState,
    user: &User,
    canvas_id: Uuid,
) -> ApiResult<CanvasAccess> {
    let canvas = state
        .storage
        .canvases
        .canvas(canvas_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("canvas {canvas_id} not found")))?;
    let project = state
        .storage
        .projects
        .project(canvas.project_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("canvas {canvas_id} not found")))?;
    let project_role = state
        .storage
        .projects
        .member_role(project.id, user.id)
        .await?;
    let same_organization =
        user.organization_id.is_some() && user.organization_id == project.organization_id;
    Ok(CanvasAccess {
        canvas,
        project,
        access: ProjectAccess {
            user_id: user.id,
            project_role,
            same_organization,
        },
    })
}

/// The effective role: the highest of project role, canvas grant and team visibility.
pub fn effective_role(access: &ProjectAccess, sharing: &Sharing) -> Option<Role> {
    let user = access.user_id.to_string();
    let grant = sharing
        .grants
        .iter()
        .filter(|g| g.user_id == user)
        .map(|g| g.role)
        .max();
    let team = (sharing.visibility == Visibility::Team && access.same_organization)
        .then_some(Role::Viewer);
    [access.project_role, grant, team]
        .into_iter()
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use canvas_engine::edits::Grant;

    fn sharing(visibility: Visibility, grants: Vec<Grant>) -> Sharing {
        Sharing {
            visibility,
            grants,
            public_link: None,
            embed_enabled: false,
            allowed_domains: vec![],
        }
    }

    #[test]
    fn highest_source_wins() {
        let id = Uuid::new_v4();
        let stranger = ProjectAccess {
            user_id: id,
            project_role: None,
            same_organization: true,
        };
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Private, vec![])),
            None
        );
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Team, vec![])),
            Some(Role::Viewer)
        );
        let grant = Grant {
            user_id: id.to_string(),
            role: Role::Editor,
            granted_at: None,
            granted_by: None,
        };
        assert_eq!(
            effective_role(&stranger, &sharing(Visibility::Team, vec![grant])),
            Some(Role::Editor)
        );
        let member = ProjectAccess {
            user_id: id,
            project_role: Some(Role::Admin),
            same_organization: false,
        };
        assert_eq!(
            effective_role(&member, &sharing(Visibility::Team, vec![])),
            Some(Role::Admin)
        );
    }
}
