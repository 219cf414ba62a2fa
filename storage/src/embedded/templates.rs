//! [`TemplateStore`] on `canvas_templates`.

use super::{SqliteStore, get_opt_uuid, get_ts, ts};
use crate::{StorageError, StorageResult, Template, TemplateStore};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

/// A statement over every column of `canvas_templates`, in [`template_from_row`]'s order.
macro_rules! with_columns {
    ($before:literal, $after:literal) => {
        concat!(
            $before,
            "id, name, description, category, thumbnail_url, is_public, usage_count, ",
            "blocks, required_fields, created_by, organization_id, created_at",
            $after
        )
    };
}

impl SqliteStore {
    async fn insert_template(&self, t: &Template, or_ignore: bool) -> StorageResult<u64> {
        let sql = if or_ignore {
            with_columns!(
                "INSERT OR IGNORE INTO canvas_templates (",
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        } else {
            with_columns!(
                "INSERT INTO canvas_templates (",
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        };
        let done = sqlx::query(sql)
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.description)
            .bind(&t.category)
            .bind(&t.thumbnail_url)
            .bind(t.is_public)
            .bind(t.usage_count)
            .bind(t.blocks.to_string())
            .bind(serde_json::to_string(&t.required_fields)?)
            .bind(&t.created_by)
            .bind(t.organization_id.map(|id| id.to_string()))
            .bind(ts(t.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StorageError::Conflict("id".into())
                }
                other => other.into(),
            })?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn create_template(&self, template: &Template) -> StorageResult<()> {
        self.insert_template(template, false).await.map(|_| ())
    }

    async fn ensure_template(&self, template: &Template) -> StorageResult<()> {
        self.insert_template(template, true).await.map(|_| ())
    }

    async fn template(&self, id: &str) -> StorageResult<Option<Template>> {
        let row = sqlx::query(with_columns!(
            "SELECT ",
            " FROM canvas_templates WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| template_from_row(&r)).transpose()
    }

    async fn templates(&self, organization_id: Option<Uuid>) -> StorageResult<Vec<Template>> {
        let rows = sqlx::query(with_columns!(
            "SELECT ",
            " FROM canvas_templates WHERE is_public = 1 \
             OR (?1 IS NOT NULL AND organization_id = ?1) \
             ORDER BY COALESCE(category, ''), name, id"
        ))
        .bind(organization_id.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn count_use(&self, id: &str) -> StorageResult<()> {
        sqlx::query("UPDATE canvas_templates SET usage_count = usage_count + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn template_from_row(row: &SqliteRow) -> StorageResult<Template> {
    let blocks: String = row.try_get("blocks")?;
    let required: String = row.try_get("required_fields")?;
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        thumbnail_url: row.try_get("thumbnail_url")?,
        is_public: row.try_get("is_public")?,
        usage_count: row.try_get("usage_count")?,
        blocks: serde_json::from_str(&blocks)
            .map_err(|e| StorageError::Corrupt(format!("canvas_templates.blocks: {e}")))?,
        required_fields: serde_json::from_str(&required)
            .map_err(|e| StorageError::Corrupt(format!("canvas_templates.required_fields: {e}")))?,
        created_by: row.try_get("created_by")?,
        organization_id: get_opt_uuid(row, "organization_id")?,
        created_at: get_ts(row, "created_at")?,
    })
}
