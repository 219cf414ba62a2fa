//! [`UserStore`] on `organizations` and `users`.

use super::{SqliteStore, now, ts};
use crate::sql::users as statements;
use crate::sql::{select_user_where, slugify, user_from_row};
use crate::{NewUser, StorageError, StorageResult, User, UserStore};
use async_trait::async_trait;
use rand::Rng;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

/// Org-level role of a user who signs up: admin of the organization made for them.
const SIGNUP_ROLE: &str = "admin";

/// How many random suffixes to try before giving up on a unique slug.
const SLUG_ATTEMPTS: usize = 16;

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: NewUser) -> StorageResult<User> {
        let email_lower = new.email.to_lowercase();
        let mut tx = self.begin_write().await?;
        // Under BEGIN IMMEDIATE no other writer runs between these checks and the inserts; the
        // unique indexes stay the last word (see `unique_conflict`).
        let email_taken = sqlx::query("SELECT 1 FROM users WHERE email_lower = ?")
            .bind(&email_lower)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if email_taken {
            return Err(StorageError::Conflict("email".into()));
        }
        let username_taken = sqlx::query(sqlite!(statements::USERNAME_TAKEN))
            .bind(&new.username)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if username_taken {
            return Err(StorageError::Conflict("username".into()));
        }

        let now = now();
        let org_id = Uuid::new_v4();
        let slug = unique_slug(&mut tx, &new.username).await?;
        sqlx::query(
            "INSERT INTO organizations (id, name, slug, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(org_id.to_string())
        .bind(&new.username)
        .bind(&slug)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(unique_conflict)?;

        let user = User {
            id: Uuid::new_v4(),
            email: new.email,
            username: new.username,
            first_name: None,
            last_name: None,
            avatar_url: None,
            organization_id: Some(org_id),
            role: SIGNUP_ROLE.to_owned(),
            last_login_at: None,
            created_at: now,
        };
        sqlx::query(
            "INSERT INTO users (id, email, email_lower, username, hashed_password, \
             organization_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(&email_lower)
        .bind(&user.username)
        .bind(&new.hashed_password)
        .bind(org_id.to_string())
        .bind(&user.role)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(unique_conflict)?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<(User, Option<String>)>> {
        let row = sqlx::query(select_user_where!("email_lower = ?"))
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let hash: Option<String> = row.try_get("hashed_password")?;
            Ok((user_from_row(&row)?, hash))
        })
        .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<User>> {
        let row = sqlx::query(sqlite!(statements::BY_ID))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    async fn record_login(&self, id: Uuid) -> StorageResult<()> {
        let done = sqlx::query(sqlite!(statements::RECORD_LOGIN))
            .bind(ts(now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("user {id}")));
        }
        Ok(())
    }
}

/// A slug for a new organization: the username lowercased, with runs of anything but ASCII
/// letters and digits turned into `-`; if that is taken, with `-` and six random hex digits.
async fn unique_slug(conn: &mut SqliteConnection, username: &str) -> StorageResult<String> {
    let base = slugify(username);
    let mut candidate = base.clone();
    for _ in 0..SLUG_ATTEMPTS {
        let taken = sqlx::query("SELECT 1 FROM organizations WHERE slug = ?")
            .bind(&candidate)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if !taken {
            return Ok(candidate);
        }
        let suffix: u32 = rand::rng().random_range(0..0x100_0000);
        candidate = format!("{base}-{suffix:06x}");
    }
    Err(StorageError::Conflict("slug".into()))
}

/// Maps a unique violation on users or organizations to `Conflict` naming the field.
fn unique_conflict(err: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let msg = db.message();
        let field = if msg.contains("email") {
            "email"
        } else if msg.contains("username") {
            "username"
        } else if msg.contains("slug") {
            "slug"
        } else {
            "id"
        };
        return StorageError::Conflict(field.into());
    }
    StorageError::Database(err)
}
