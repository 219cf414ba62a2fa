//! [`TemplateStore`] on MongoDB `canvas_templates`, in the seed's shape (`name`,
//! `description`, `category`, `thumbnail_url`, `is_public`, `usage_count`, `blocks`,
//! `required_fields`, `created_by`, `created_at`) plus `template_id` (our id, unique) and
//! `organization_id` (who may see a template that is not public).

use super::{MongoStore, bson_date, get_date, get_int, get_str, is_duplicate_key, json_to_bson};
use crate::{StorageError, StorageResult, Template, TemplateStore};
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use uuid::Uuid;

fn template_doc(t: &Template) -> Document {
    doc! {
        "template_id": &t.id,
        "name": &t.name,
        "description": t.description.clone(),
        "category": t.category.clone(),
        "thumbnail_url": t.thumbnail_url.clone(),
        "is_public": t.is_public,
        "usage_count": t.usage_count,
        "blocks": json_to_bson(&t.blocks),
        "required_fields": t.required_fields.clone(),
        "created_by": &t.created_by,
        "organization_id": t.organization_id.map(|id| id.to_string()),
        "created_at": bson_date(t.created_at),
    }
}

fn opt_str(d: &Document, field: &str) -> StorageResult<Option<String>> {
    match d.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(StorageError::Corrupt(format!(
            "template field {field}: unexpected {other:?}"
        ))),
    }
}

fn template_from_doc(d: Document) -> StorageResult<Template> {
    let required_fields = match d.get("required_fields") {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let blocks = d
        .get("blocks")
        .cloned()
        .unwrap_or(Bson::Array(Vec::new()))
        .into_relaxed_extjson();
    let organization_id = opt_str(&d, "organization_id")?
        .map(|s| Uuid::parse_str(&s))
        .transpose()
        .map_err(|e| StorageError::Corrupt(format!("template organization_id: {e}")))?;
    Ok(Template {
        id: get_str(&d, "template_id")?.to_owned(),
        name: get_str(&d, "name")?.to_owned(),
        description: opt_str(&d, "description")?,
        category: opt_str(&d, "category")?,
        thumbnail_url: opt_str(&d, "thumbnail_url")?,
        is_public: d.get_bool("is_public").unwrap_or(false),
        usage_count: get_int(&d, "usage_count").unwrap_or(0),
        blocks,
        required_fields,
        created_by: get_str(&d, "created_by")?.to_owned(),
        organization_id,
        created_at: get_date(&d, "created_at")?,
    })
}

#[async_trait]
impl TemplateStore for MongoStore {
    async fn create_template(&self, template: &Template) -> StorageResult<()> {
        match self.templates.insert_one(template_doc(template)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StorageError::Conflict("id".into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_template(&self, template: &Template) -> StorageResult<()> {
        self.templates
            .update_one(
                doc! { "template_id": &template.id },
                doc! { "$setOnInsert": template_doc(template) },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn template(&self, id: &str) -> StorageResult<Option<Template>> {
        let found = self.templates.find_one(doc! { "template_id": id }).await?;
        found.map(template_from_doc).transpose()
    }

    async fn templates(&self, organization_id: Option<Uuid>) -> StorageResult<Vec<Template>> {
        let mut filter = vec![Bson::Document(doc! { "is_public": true })];
        if let Some(org) = organization_id {
            filter.push(Bson::Document(doc! { "organization_id": org.to_string() }));
        }
        let mut cursor = self
            .templates
            .find(doc! { "$or": filter })
            .sort(doc! { "category": 1, "name": 1, "template_id": 1 })
            .await?;
        let mut found = Vec::new();
        while cursor.advance().await? {
            found.push(template_from_doc(cursor.deserialize_current()?)?);
        }
        Ok(found)
    }

    async fn count_use(&self, id: &str) -> StorageResult<()> {
        self.templates
            .update_one(
                doc! { "template_id": id },
                doc! { "$inc": { "usage_count": 1_i64 } },
            )
            .await?;
        Ok(())
    }
}
