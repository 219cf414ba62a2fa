//! [`InteractionStore`] on MongoDB: the counters live in the canvas document's
//! `interactions` (the seed's shape, so a `find` shows them), favorites in
//! `canvas_favorites` (`{user_id, canvas_id, created_at}`, unique on the pair).

use super::{MongoStore, bson_date, get_int, is_duplicate_key, now};
use crate::{InteractionStore, Interactions, StorageResult};
use async_trait::async_trait;
use chrono::DateTime;
use mongodb::bson::{Bson, doc};
use uuid::Uuid;

#[async_trait]
impl InteractionStore for MongoStore {
    async fn record_views(&self, views: &[(Uuid, u64)]) -> StorageResult<()> {
        let at = bson_date(now());
        for (canvas_id, n) in views {
            self.canvases
                .update_one(
                    doc! { "canvas_id": canvas_id.to_string() },
                    doc! {
                        "$inc": { "interactions.views": i64::try_from(*n).unwrap_or(i64::MAX) },
                        "$set": { "interactions.last_viewed_at": at },
                    },
                )
                .await?;
        }
        Ok(())
    }

    async fn interactions(&self, canvas_id: Uuid) -> StorageResult<Interactions> {
        let found = self
            .canvases
            .find_one(doc! { "canvas_id": canvas_id.to_string() })
            .projection(doc! { "_id": 0, "interactions": 1 })
            .await?;
        let Some(Ok(counters)) = found.as_ref().map(|d| d.get_document("interactions")) else {
            return Ok(Interactions::default());
        };
        let count = |field: &str| {
            if counters.contains_key(field) {
                get_int(counters, field)
            } else {
                Ok(0)
            }
        };
        let last_viewed_at = match counters.get("last_viewed_at") {
            Some(Bson::DateTime(t)) => DateTime::from_timestamp_millis(t.timestamp_millis()),
            _ => None,
        };
        Ok(Interactions {
            views: count("views")?,
            last_viewed_at,
            comments_count: count("comments_count")?,
            favorites_count: count("favorites_count")?,
        })
    }

    async fn set_favorite(&self, user_id: Uuid, canvas_id: Uuid, on: bool) -> StorageResult<bool> {
        let canvas = canvas_id.to_string();
        let user = user_id.to_string();
        let changed = if on {
            if self.seqs(&canvas).await?.is_none() {
                return Ok(false);
            }
            match self
                .favorites
                .insert_one(
                    doc! { "user_id": &user, "canvas_id": &canvas, "created_at": bson_date(now()) },
                )
                .await
            {
                Ok(_) => true,
                Err(e) if is_duplicate_key(&e) => false,
                Err(e) => return Err(e.into()),
            }
        } else {
            self.favorites
                .delete_one(doc! { "user_id": &user, "canvas_id": &canvas })
                .await?
                .deleted_count
                > 0
        };
        if changed {
            let delta: i64 = if on { 1 } else { -1 };
            self.canvases
                .update_one(
                    doc! { "canvas_id": &canvas },
                    doc! { "$inc": { "interactions.favorites_count": delta } },
                )
                .await?;
        }
        Ok(changed)
    }

    async fn is_favorite(&self, user_id: Uuid, canvas_id: Uuid) -> StorageResult<bool> {
        let found = self
            .favorites
            .find_one(doc! { "user_id": user_id.to_string(), "canvas_id": canvas_id.to_string() })
            .await?;
        Ok(found.is_some())
    }

    async fn favorites(&self, user_id: Uuid) -> StorageResult<Vec<Uuid>> {
        let mut cursor = self
            .favorites
            .find(doc! { "user_id": user_id.to_string() })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .await?;
        let mut ids = Vec::new();
        while cursor.advance().await? {
            let entry = cursor.deserialize_current()?;
            ids.push(super::get_uuid(&entry, "canvas_id")?);
        }
        Ok(ids)
    }

    async fn forget_canvas(&self, canvas_id: Uuid) -> StorageResult<()> {
        self.favorites
            .delete_many(doc! { "canvas_id": canvas_id.to_string() })
            .await?;
        Ok(())
    }
}
