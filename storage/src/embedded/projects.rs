//! [`ProjectStore`] on `projects` and `project_members`.

use super::{SqliteStore, get_role, now, ts};
use crate::sql::projects as statements;
use crate::sql::{member_from_row, missing_reference, project_from_row};
use crate::{
    Member, NewMember, NewProject, Project, ProjectStore, ProjectUpdate, StorageError,
    StorageResult,
};
use async_trait::async_trait;
use canvas_engine::Role;
use sqlx::Row;
use uuid::Uuid;

#[async_trait]
impl ProjectStore for SqliteStore {
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
        sqlx::query(sqlite!(statements::INSERT))
            .bind(project.id.to_string())
            .bind(&project.name)
            .bind(&project.description)
            .bind(project.organization_id.map(|id| id.to_string()))
            .bind(project.owner_id.to_string())
            .bind(ts(now))
            .execute(&self.pool)
            .await
            .map_err(|e| missing_reference(e, "owner or organization"))?;
        Ok(project)
    }

    async fn project(&self, id: Uuid) -> StorageResult<Option<Project>> {
        let row = sqlx::query(sqlite!(statements::BY_ID))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| project_from_row(&row)).transpose()
    }

    async fn projects_for_user(
        &self,
        user_id: Uuid,
        archived: bool,
    ) -> StorageResult<Vec<Project>> {
        let rows = sqlx::query(sqlite!(statements::FOR_USER))
            .bind(user_id.to_string())
            .bind(archived)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(project_from_row).collect()
    }

    async fn member_role(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<Option<Role>> {
        let row = sqlx::query(sqlite!(statements::MEMBER_ROLE))
            .bind(project_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.try_get::<bool, _>("is_owner")? {
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
        let row = sqlx::query(sqlite!(statements::PUT_MEMBER))
            .bind(member.project_id.to_string())
            .bind(member.user_id.to_string())
            .bind(member.role.as_str())
            .bind(member.invited_by.map(|id| id.to_string()))
            .bind(ts(now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| missing_reference(e, "project or user"))?;
        member_from_row(&row)
    }

    async fn remove_member(&self, project_id: Uuid, user_id: Uuid) -> StorageResult<bool> {
        let done = sqlx::query(sqlite!(statements::REMOVE_MEMBER))
            .bind(project_id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members(&self, project_id: Uuid) -> StorageResult<Vec<Member>> {
        let rows = sqlx::query(sqlite!(statements::MEMBERS))
            .bind(project_id.to_string())
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
        let row = sqlx::query(sqlite!(statements::UPDATE))
            .bind(id.to_string())
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
