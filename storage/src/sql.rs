//! Helpers shared by the SQL backends (SQLite and PostgreSQL).

use crate::{AuditEntry, Member, Project, StorageError, StorageResult, User};
use canvas_engine::Role;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use uuid::Uuid;

/// `SELECT` of every column a [`Project`] needs (from `projects p`), with the rest of the
/// query: the same text for both dialects.
macro_rules! select_project {
    ($($rest:expr),*) => {
        concat!(
            "SELECT p.id, p.name, p.description, p.organization_id, p.owner_id, p.is_archived, ",
            "p.created_at, p.updated_at FROM projects p ",
            $($rest),*
        )
    };
}

/// How both backends order a user's projects: newest first, ties (same microsecond) by id,
/// so the order is total and the same in both.
macro_rules! projects_newest_first {
    () => {
        " ORDER BY p.created_at DESC, p.id DESC"
    };
}

/// The columns a [`Member`] needs.
macro_rules! member_columns {
    () => {
        "project_id, user_id, role, invited_by, joined_at"
    };
}

/// How both backends order a project's members: in order of joining, ties (same
/// microsecond) by user id.
macro_rules! members_in_order_of_joining {
    () => {
        " ORDER BY joined_at, user_id"
    };
}

/// `SELECT` of every column a [`User`] needs, plus `hashed_password`, with a condition.
macro_rules! select_user_where {
    ($condition:literal) => {
        concat!(
            "SELECT id, email, username, first_name, last_name, avatar_url, organization_id, ",
            "role, last_login_at, created_at, hashed_password FROM users WHERE ",
            $condition
        )
    };
}
pub(crate) use select_user_where;

pub(crate) mod data;
pub(crate) mod webhooks;

/// The statements both user stores share, with PostgreSQL's placeholders (see
/// [`projects`]). Email lookups differ: SQLite keeps an `email_lower` column, PostgreSQL an
/// index on `lower(email)`.
pub(crate) mod users {
    /// Binds the id.
    pub(crate) const BY_ID: &str = select_user_where!("id = $1");
    /// Binds the username; a row if it is taken in any case (usernames are ASCII, so
    /// `lower` folds them alike in SQLite and PostgreSQL; unique indexes on
    /// `lower(username)` back it).
    pub(crate) const USERNAME_TAKEN: &str = "SELECT 1 FROM users WHERE lower(username) = lower($1)";
    /// Binds now and the id.
    pub(crate) const RECORD_LOGIN: &str =
        "UPDATE users SET last_login_at = $1, updated_at = $1 WHERE id = $2";
}

/// The statement both audit stores record with, with PostgreSQL's placeholders (see
/// [`projects`]). Binds id, user, organization, action, resource type and id, changes,
/// address, user agent, now.
pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_logs (id, user_id, organization_id, \
     action, resource_type, resource_id, changes, ip_address, user_agent, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The statements of the project stores, the same for both dialects. They are written with
/// PostgreSQL's placeholders (`$1`); the embedded store runs them through
/// [`sqlite_placeholders`].
pub(crate) mod projects {
    /// Binds id, name, description, organization_id, owner_id, now.
    pub(crate) const INSERT: &str = "INSERT INTO projects (id, name, description, \
         organization_id, owner_id, is_archived, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)";
    /// Binds the id.
    pub(crate) const BY_ID: &str = select_project!("WHERE p.id = $1");
    /// Binds the user and whether to list archived ones. `is_archived` may be NULL in the
    /// seed's schema: NULL counts as not archived.
    pub(crate) const FOR_USER: &str = select_project!(
        "WHERE (p.is_archived IS TRUE) = $2 AND (p.owner_id = $1 OR EXISTS (SELECT 1 FROM \
         project_members m WHERE m.project_id = p.id AND m.user_id = $1))",
        projects_newest_first!()
    );
    /// Binds project and user: `is_owner` and the member row's `role` (NULL for none); no
    /// row for an unknown project.
    pub(crate) const MEMBER_ROLE: &str = "SELECT p.owner_id = $2 AS is_owner, m.role \
         FROM projects p LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2 \
         WHERE p.id = $1";
    /// Binds project, user, role, invited_by, now. On a role change the original
    /// `joined_at` and `invited_by` stay.
    pub(crate) const PUT_MEMBER: &str = concat!(
        "INSERT INTO project_members (project_id, user_id, role, invited_by, joined_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role RETURNING ",
        member_columns!()
    );
    /// Binds project and user.
    pub(crate) const REMOVE_MEMBER: &str =
        "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2";
    /// Binds the project.
    pub(crate) const MEMBERS: &str = concat!(
        "SELECT ",
        member_columns!(),
        " FROM project_members WHERE project_id = $1",
        members_in_order_of_joining!()
    );
    /// Binds id, name (NULL keeps it), whether to set the description, the description,
    /// is_archived (NULL keeps it), now.
    pub(crate) const UPDATE: &str = "UPDATE projects SET name = COALESCE($2, name), \
         description = CASE WHEN $3 THEN $4 ELSE description END, \
         is_archived = COALESCE($5, is_archived), updated_at = $6 WHERE id = $1 \
         RETURNING id, name, description, organization_id, owner_id, is_archived, \
         created_at, updated_at";
}

/// A statement with PostgreSQL's placeholders (`$1`) in SQLite's form (`?1`, the same
/// numbering). SQLite would read `$1` as a named parameter, numbered by first appearance,
/// so `... $2 ... $1` would bind the wrong values.
pub(crate) fn sqlite_placeholders(statement: &str) -> String {
    let mut out = String::with_capacity(statement.len());
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns an [`AuditEntry`] needs.
pub(crate) const AUDIT_COLUMNS: &str = "id, user_id, organization_id, action, resource_type, \
     resource_id, changes, ip_address, user_agent, created_at";

/// How both backends order audit entries: newest first, ties by id, so the order is total
/// and pages neither overlap nor skip.
pub(crate) const AUDIT_NEWEST_FIRST: &str = " ORDER BY created_at DESC, id DESC";

/// A row of either SQL backend, read into the crate's types: each backend stores UUIDs,
/// timestamps, JSON and addresses in column types of its own, so the record mappings below
/// are shared and only these reads differ.
pub(crate) trait SqlRow {
    /// A text column that may be NULL.
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>>;
    /// A UUID column that may be NULL.
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>>;
    /// A timestamp column that may be NULL.
    fn opt_ts(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>>;
    /// A boolean column that may be NULL.
    fn opt_bool(&self, col: &str) -> StorageResult<Option<bool>>;
    /// A JSON column that may be NULL.
    fn opt_json(&self, col: &str) -> StorageResult<Option<serde_json::Value>>;
    /// An IP address column that may be NULL.
    fn opt_ip(&self, col: &str) -> StorageResult<Option<IpAddr>>;
    /// An `INTEGER` column that may be NULL (32 bits in PostgreSQL, 64 in SQLite).
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>>;

    /// A text column the stores always set.
    fn text(&self, col: &str) -> StorageResult<String> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }
    /// A UUID column the stores always set.
    fn uuid(&self, col: &str) -> StorageResult<Uuid> {
        self.opt_uuid(col)?.ok_or_else(|| null(col))
    }
    /// A timestamp column the stores always set.
    fn ts(&self, col: &str) -> StorageResult<DateTime<Utc>> {
        self.opt_ts(col)?.ok_or_else(|| null(col))
    }
    /// A role column (`Role::as_str` form).
    fn role(&self, col: &str) -> StorageResult<Role> {
        parse_role(col, &self.text(col)?)
    }
}

fn null(col: &str) -> StorageError {
    StorageError::Corrupt(format!("{col} is NULL"))
}

/// A [`User`] from the columns of `users`.
pub(crate) fn user_from_row(row: &impl SqlRow) -> StorageResult<User> {
    Ok(User {
        id: row.uuid("id")?,
        email: row.text("email")?,
        username: row.text("username")?,
        first_name: row.opt_text("first_name")?,
        last_name: row.opt_text("last_name")?,
        avatar_url: row.opt_text("avatar_url")?,
        organization_id: row.opt_uuid("organization_id")?,
        role: row.text("role")?,
        last_login_at: row.opt_ts("last_login_at")?,
        created_at: row.ts("created_at")?,
    })
}

/// A [`Project`] from the columns of `select_project!`. `is_archived` may be NULL in the
/// seed's schema: NULL counts as not archived.
pub(crate) fn project_from_row(row: &impl SqlRow) -> StorageResult<Project> {
    Ok(Project {
        id: row.uuid("id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        organization_id: row.opt_uuid("organization_id")?,
        owner_id: row.uuid("owner_id")?,
        is_archived: row.opt_bool("is_archived")?.unwrap_or(false),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// A [`Member`] from the columns of `member_columns!`.
pub(crate) fn member_from_row(row: &impl SqlRow) -> StorageResult<Member> {
    Ok(Member {
        project_id: row.uuid("project_id")?,
        user_id: row.uuid("user_id")?,
        role: row.role("role")?,
        invited_by: row.opt_uuid("invited_by")?,
        joined_at: row.ts("joined_at")?,
    })
}

/// An [`AuditEntry`] from [`AUDIT_COLUMNS`].
pub(crate) fn audit_entry_from_row(row: &impl SqlRow) -> StorageResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.uuid("id")?,
        user_id: row.opt_uuid("user_id")?,
        organization_id: row.opt_uuid("organization_id")?,
        action: row.text("action")?,
        resource_type: row.text("resource_type")?,
        resource_id: row.opt_uuid("resource_id")?,
        changes: row.opt_json("changes")?,
        ip_address: row.opt_ip("ip_address")?,
        user_agent: row.opt_text("user_agent")?,
        created_at: row.ts("created_at")?,
    })
}

/// An organization slug from a name: lowercase ASCII letters and digits, runs of anything
/// else as one `-`, never empty.
pub(crate) fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        slug.push_str("org");
    }
    slug
}

/// Maps a foreign-key violation to `NotFound(what)`; any other error stays a database error.
pub(crate) fn missing_reference(err: sqlx::Error, what: &str) -> StorageError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::NotFound(what.to_owned())
        }
        _ => StorageError::Database(err),
    }
}

/// A stored role (`Role::as_str` form); anything else is corrupt data.
pub(crate) fn parse_role(col: &str, value: &str) -> StorageResult<Role> {
    value
        .parse()
        .map_err(|e| StorageError::Corrupt(format!("{col}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Alice"), "alice");
        assert_eq!(slugify("  Bob  the Builder!! "), "bob-the-builder");
        assert_eq!(slugify("émile_zola"), "mile-zola");
        assert_eq!(slugify("日本"), "org");
    }

    #[test]
    fn placeholders_keep_their_numbers_for_sqlite() {
        assert_eq!(
            sqlite_placeholders("SELECT $2, $10 WHERE a = $1 AND b = '$x'"),
            "SELECT ?2, ?10 WHERE a = ?1 AND b = '$x'"
        );
        for statement in [projects::INSERT, projects::FOR_USER, projects::UPDATE] {
            assert!(!sqlite_placeholders(statement).contains('$'), "{statement}");
        }
    }

    #[test]
    fn roles_parse_or_are_corrupt() {
        assert_eq!(parse_role("role", "editor").ok(), Some(Role::Editor));
        assert!(matches!(
            parse_role("role", "root"),
            Err(StorageError::Corrupt(_))
        ));
    }
}
