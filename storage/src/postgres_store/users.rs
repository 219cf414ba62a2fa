//! [`UserStore`] on `organizations` and `users`.

use super::{PgStore, now, ts};
use crate::sql::users as statements;
use crate::sql::{select_user_where, slugify, user_from_row};
use crate::{NewUser, StorageError, StorageResult, User, UserStore};
use async_trait::async_trait;
use rand::Rng;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// Org-level role of a user who signs up: admin of the organization made for them.
const SIGNUP_ROLE: &str = "admin";

/// How many random suffixes to try before giving up on a unique slug.
const SLUG_ATTEMPTS: usize = 16;

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, new: NewUser) -> StorageResult<User> {
        let mut tx = self.pool.begin().await?;
        // These checks name the taken field in a fixed order (email first) like the embedded
        // store; a concurrent signup can still take either after them, and then the unique
        // constraints decide (see `unique_conflict`).
        let email_taken = sqlx::query("SELECT 1 FROM users WHERE lower(email) = lower($1)")
            .bind(&new.email)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if email_taken {
            return Err(StorageError::Conflict("email".into()));
        }
        let username_taken = sqlx::query(statements::USERNAME_TAKEN)
            .bind(&new.username)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if username_taken {
            return Err(StorageError::Conflict("username".into()));
        }

        let now = now();
        let org_id = Uuid::new_v4();
        create_organization(&mut tx, org_id, &new.username, now).await?;

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
            "INSERT INTO users (id, email, username, hashed_password, organization_id, role, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.username)
        .bind(&new.hashed_password)
        .bind(org_id)
        .bind(&user.role)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(unique_conflict)?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<(User, Option<String>)>> {
        // Served by the unique index on lower(email).
        let row = sqlx::query(select_user_where!("lower(email) = lower($1)"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let hash: Option<String> = row.try_get("hashed_password")?;
            Ok((user_from_row(&row)?, hash))
        })
        .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<User>> {
        let row = sqlx::query(statements::BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    async fn record_login(&self, id: Uuid) -> StorageResult<()> {
        let done = sqlx::query(statements::RECORD_LOGIN)
            .bind(ts(now()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("user {id}")));
        }
        Ok(())
    }
}

/// Inserts the organization of a new user, named after them, with a unique slug: the
/// username lowercased, with runs of anything but ASCII letters and digits turned into `-`;
/// if that is taken, with `-` and six random hex digits. Each candidate is claimed with
/// `ON CONFLICT (slug) DO NOTHING`, so a concurrent signup taking the same slug makes this one
/// try the next candidate instead of failing.
async fn create_organization(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> StorageResult<()> {
    let base = slugify(name);
    let mut candidate = base.clone();
    for _ in 0..SLUG_ATTEMPTS {
        let inserted = sqlx::query(
            "INSERT INTO organizations (id, name, slug, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(&candidate)
        .bind(ts(now))
        .execute(&mut *conn)
        .await
        .map_err(unique_conflict)?;
        if inserted.rows_affected() == 1 {
            return Ok(());
        }
        let suffix: u32 = rand::rng().random_range(0..0x100_0000);
        candidate = format!("{base}-{suffix:06x}");
    }
    Err(StorageError::Conflict("slug".into()))
}

/// Maps a unique violation on users or organizations to `Conflict` naming the field, by the
/// violated constraint's name (PostgreSQL's defaults for the seed's `UNIQUE` columns, and the
/// `users_email_lower_key` and `users_username_lower_key` indexes of migrations 0002 and 0003).
fn unique_conflict(err: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let field = match db.constraint() {
            Some("users_email_key" | "users_email_lower_key") => "email",
            Some("users_username_key" | "users_username_lower_key") => "username",
            Some("organizations_slug_key") => "slug",
            _ => "id",
        };
        return StorageError::Conflict(field.into());
    }
    StorageError::Database(err)
}
