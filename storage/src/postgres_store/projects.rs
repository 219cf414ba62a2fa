//! [`ProjectStore`] on `projects` and `project_members`.

use super::{PgStore, get_role, now, ts};
use crate::sql::{
    member_columns, member_from_row, members_in_order_of_joining, missing_reference,
    project_from_row, projects_newest_first, select_project,
};
use crate::{
    Member, NewMember, NewProject, Project, ProjectStore, ProjectUpdate, StorageError,
    StorageResult,
};
use async_trait::async_trait;
use canvas_engine::Role;
use sqlx::Row;
use uuid::Uuid;

#[async_trait]
impl ProjectStore for PgStore {
    async fn create_project(&self, new: NewProject) -> StorageResult<Project> {
        let now = now();
        let project = Project {
            id: Uuid::new_v4(),
            name: new.name,
            description: new.description,
            organization_id: new.organization_id,
            owner_id: new.owner_id,
            is_archived: false,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO projects (id, name, description, organization_id, owner_id, \
             is_archived, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)",
        )
        .bind(project.id)
        .bind(&project.name)
        .bind(&project.description)
        .bind(project.organization_id)
        .bind(project.owner_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| missing_reference(e, "owner or organization"))?;
        Ok(project)
    }

    async fn project(&self, id: Uuid) -> StorageResult<Option<Project>> {
        let row = sqlx::query(select_project!("WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| project_from_row(&row)).transpose()
    }

    async fn projects_for_user(
        &self,
        user_id: Uuid,
        archived: bool,
    ) -> StorageResult<Vec<Project>> {
        // `is_archived` may be NULL in the seed's schema: NULL counts as not archived.
        let rows = sqlx::query(select_project!(
            "WHERE (p.is_archived IS TRUE) = $2 AND (p.owner_id = $1 OR EXISTS (SELECT 1 FROM \
             project_members m WHERE m.project_id = p.id AND m.user_id = $1))",
            projects_newest_first!()
        ))
        .bind(user_id)
        .bind(archived)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    async fn member_role(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<Option<Role>> {
        let row = sqlx::query(
            "SELECT p.owner_id = $2 AS is_owner, m.role FROM projects p \
             LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2 \
             WHERE p.id = $1",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // NULL when the project has no owner (the seed allows it): not the owner.
        if row.try_get::<Option<bool>, _>("is_owner")? == Some(true) {
            return Ok(Some(Role::Owner));
        }
        let role: Option<String> = row.try_get("role")?;
        role.map(|_| get_role(&row, "role")).transpose()
    }

    async fn put_member(&self, member: NewMember) -> StorageResult<Member> {
        if member.role == Role::Owner {
            // Ownership is `projects.owner_id`, never a member row.
            return Err(StorageError::Conflict("role owner".into()));
        }
        // On a role change the original `joined_at` and `invited_by` stay.
        let row = sqlx::query(concat!(
            "INSERT INTO project_members (project_id, user_id, role, invited_by, joined_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role \
             RETURNING ",
            member_columns!()
        ))
        .bind(member.project_id)
        .bind(member.user_id)
        .bind(member.role.as_str())
        .bind(member.invited_by)
        .bind(ts(now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| missing_reference(e, "project or user"))?;
        member_from_row(&row)
    }

    async fn remove_member(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<bool> {
        let done =
            sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members(&self, project_id: Uuid) -> StorageResult<Vec<Member>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            member_columns!(),
            " FROM project_members WHERE project_id = $1",
            members_in_order_of_joining!()
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn update_project(
        &self,
        id: Uuid,
        update: ProjectUpdate,
    ) -> StorageResult<Option<Project>> {
        let (set_description, description) = match update.description {
            Some(d) => (true, d),
            None => (false, None),
        };
        let row = sqlx::query(
            "UPDATE projects p SET name = COALESCE($2, p.name), \
             description = CASE WHEN $3 THEN $4 ELSE p.description END, \
             is_archived = COALESCE($5, p.is_archived), updated_at = $6 WHERE p.id = $1 \
             RETURNING p.id, p.name, p.description, p.organization_id, p.owner_id, \
             p.is_archived, p.created_at, p.updated_at",
        )
        .bind(id)
        .bind(update.name)
        .bind(set_description)
        .bind(description)
        .bind(update.is_archived)
        .bind(ts(now()))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| project_from_row(&row)).transpose()
    }
}
