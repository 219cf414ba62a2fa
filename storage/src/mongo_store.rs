//! [`CanvasStore`] on MongoDB.
//!
//! Five collections:
//!
//! - `canvases`: one document per canvas in the seed's shape (`name`, `description`,
//!   `project_id`, `owner_id`, `version`, `layout`, `blocks` as an array, `sharing`,
//!   `interactions`, `metadata { tags, created_at, updated_at, version_history }`), kept
//!   current by checkpoints, plus what the store needs beside it: `canvas_id` (the canvas's
//!   UUID as a string, unique), `state` (the encoded yrs state, binary), `snapshot_seq` (the
//!   last log entry the state covers), `last_seq` (the sequence counter, see below) and
//!   `created_at` / `updated_at` as BSON dates. `_id` is an `ObjectId`, as in the seed;
//!   every query goes through `canvas_id`.
//! - `canvas_updates`: the append log, `{canvas_id, seq, data, created_at}`, unique on
//!   `(canvas_id, seq)`. A checkpoint drops the entries its snapshot covers.
//! - `canvas_favorites` and `canvas_templates`: see `mongo_store/interactions.rs` and
//!   `mongo_store/templates.rs`; a canvas's view and favorite counters live in its document's
//!   `interactions`.
//! - `canvas_versions`: version snapshots, `{canvas_id, version, kind, changes, changed_by,
//!   changed_at, state, view}` (indexed on `(canvas_id, version)`). The canvas document's
//!   `version` is the latest number and its `metadata.version_history` lists the records
//!   (without state and view), oldest first, as in the seed.
//!
//! ## Correctness without multi-document transactions
//! Nothing here needs a transaction, so a standalone `mongod` works as well as a replica set.
//! Every write is acknowledged with write concern `{w: "majority", j: true}`: on return it is
//! in the journal.
//!
//! - **Append** reserves its sequence numbers first, with one atomic `$inc` of the canvas
//!   document's `last_seq` by the batch size (`find_one_and_update`, returning the new value),
//!   then writes the batch with one ordered `insert_many`. Concurrent appenders therefore get
//!   disjoint, consecutive ranges and never collide. A crash between the two steps leaves a
//!   gap in the numbering (sequence numbers still increase strictly; nothing acknowledged is
//!   lost, since the append never returned).
//! - **Checkpoint** first updates the canvas document (state, `snapshot_seq`, view, times)
//!   with the filter `snapshot_seq <= upto_seq`, so it never goes backwards, and only then
//!   deletes the log entries with `seq <= upto_seq`. A crash in between leaves entries that
//!   the snapshot already covers; loads skip them and the next checkpoint deletes them.
//! - **Load** reads the canvas, then the log after its `snapshot_seq`, then the canvas's
//!   `snapshot_seq` again: if a checkpoint moved it in between (and may have deleted entries
//!   the first snapshot lacks), it starts over. Two appends in flight at once may become
//!   visible out of order; a load that sees a hole in the numbering waits briefly for it to
//!   fill before accepting it as a crash gap.
//!
//! - **Add version** reserves its number with one atomic `$inc` of the canvas document's
//!   `version` (concurrent adds get distinct numbers), inserts the snapshot into
//!   `canvas_versions`, then pushes the record into `metadata.version_history` (kept sorted by
//!   number with `$sort`). A crash between the steps leaves a number unused, or a snapshot
//!   the history list lacks; `canvas_versions` is what listing reads, so nothing is lost.
//!
//! ## Timestamps
//! BSON dates hold milliseconds, so this store truncates its timestamps to the millisecond
//! (UTC): what it returns is exactly what it reads back later.

mod interactions;
mod templates;

use crate::{
    CanvasRecord, CanvasStore, INITIAL_CHANGES, NewCanvas, NewVersion, PublicLink, StorageError,
    StorageResult, StoredDocument, StoredVersion, VersionKind, VersionRecord, VersionStore,
};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use mongodb::bson::{self, Bson, Document, doc, spec::BinarySubtype};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{
    Acknowledgment, ClientOptions, DatabaseOptions, IndexOptions, ReturnDocument, WriteConcern,
};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "canvas";

/// How long connecting may take before the server counts as unreachable (unless the URI
/// sets its own timeouts).
const SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a load starts over because a checkpoint or an in-flight append got in its way.
const LOAD_ATTEMPTS: u32 = 8;

/// Pause between such attempts.
const LOAD_RETRY_PAUSE: Duration = Duration::from_millis(15);

/// The canvas document's field holding its public link (`{id, token, created_at}` or null):
/// the server's only; the JSON view's `sharing.public_link` holds the id alone.
const LINK_FIELD: &str = "public_link_secret";

/// Fields of a canvas document that the store owns: a checkpoint's view never sets them.
const RESERVED: &[&str] = &[
    LINK_FIELD,
    "_id",
    "id",
    "canvas_id",
    "state",
    "snapshot_seq",
    "last_seq",
    "created_at",
    "updated_at",
    "project_id",
    "owner_id",
    "version",
    "name",
    "description",
    "metadata",
    // Counted by the interaction store, not by checkpoints.
    "interactions",
];

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Canvas documents, their update log and versions in one MongoDB database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MongoStore {
    db: Database,
    canvases: Collection<Document>,
    updates: Collection<Document>,
    versions: Collection<Document>,
    favorites: Collection<Document>,
    templates: Collection<Document>,
}

impl MongoStore {
    /// Connects to the server at `uri` and uses the URI's default database (the path of
    /// `mongodb://host/DATABASE`), else [`DEFAULT_DATABASE`].
    ///
    /// Fails with [`StorageError::Unreachable`] within about five seconds if the server cannot
    /// be reached; creates the indexes the store needs.
    pub async fn connect(uri: &str) -> StorageResult<MongoStore> {
        let options = parse_options(uri).await?;
        let db = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Self::open(uri, options, &db).await
    }

    /// Like [`MongoStore::connect`], with the database named explicitly.
    pub async fn connect_db(uri: &str, db: &str) -> StorageResult<MongoStore> {
        let options = parse_options(uri).await?;
        Self::open(uri, options, db).await
    }

    async fn open(uri: &str, mut options: ClientOptions, db: &str) -> StorageResult<MongoStore> {
        // Short unless the URI says otherwise (`serverSelectionTimeoutMS`, `connectTimeoutMS`).
        options
            .server_selection_timeout
            .get_or_insert(SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(SELECTION_TIMEOUT);
        options
            .app_name
            .get_or_insert_with(|| "canvas-server".to_owned());
        let unreachable = |e: MongoError| StorageError::Unreachable {
            service: "MongoDB",
            cause: redact(&e.to_string(), uri),
        };
        let client = Client::with_options(options).map_err(unreachable)?;
        let durable = WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .build();
        let db = client.database_with_options(
            db,
            DatabaseOptions::builder().write_concern(durable).build(),
        );
        db.run_command(doc! { "ping": 1 })
            .await
            .map_err(unreachable)?;
        let store = MongoStore {
            canvases: db.collection("canvases"),
            updates: db.collection("canvas_updates"),
            versions: db.collection("canvas_versions"),
            favorites: db.collection("canvas_favorites"),
            templates: db.collection("canvas_templates"),
            db,
        };
        store.create_indexes().await?;
        Ok(store)
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn create_indexes(&self) -> StorageResult<()> {
        let unique = || IndexOptions::builder().unique(true).build();
        self.canvases
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "canvas_id": 1 })
                    .options(unique())
                    .build(),
                // Serves `canvases_in_project` (newest first) as well as lookups by project.
                IndexModel::builder()
                    .keys(doc! { "project_id": 1, "created_at": -1 })
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "metadata.tags": 1 })
                    .build(),
            ])
            .await?;
        self.updates
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "canvas_id": 1, "seq": 1 })
                    .options(unique())
                    .build(),
            )
            .await?;
        self.versions
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "canvas_id": 1, "version": 1 })
                    .build(),
            )
            .await?;
        self.favorites
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "user_id": 1, "canvas_id": 1 })
                    .options(unique())
                    .build(),
                IndexModel::builder().keys(doc! { "canvas_id": 1 }).build(),
            ])
            .await?;
        self.templates
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "template_id": 1 })
                    .options(unique())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "is_public": 1, "organization_id": 1 })
                    .build(),
            ])
            .await?;
        Ok(())
    }

    /// The canvas's `(snapshot_seq, last_seq)`, or `None` if there is no such canvas.
    async fn seqs(&self, canvas_id: &str) -> StorageResult<Option<(i64, i64)>> {
        let found = self
            .canvases
            .find_one(doc! { "canvas_id": canvas_id })
            .projection(doc! { "_id": 0, "snapshot_seq": 1, "last_seq": 1 })
            .await?;
        found
            .map(|d| Ok((get_int(&d, "snapshot_seq")?, get_int(&d, "last_seq")?)))
            .transpose()
    }
}

#[async_trait]
impl CanvasStore for MongoStore {
    async fn create_canvas(
        &self,
        new: NewCanvas,
        state: &[u8],
        view: &Value,
    ) -> StorageResult<CanvasRecord> {
        let canvas_id = new.id.to_string();
        let started = now();
        if self.seqs(&canvas_id).await?.is_some() {
            return Err(StorageError::Conflict(format!("canvas {}", new.id)));
        }
        // Entries left behind by an earlier canvas with this id (a delete interrupted between
        // its steps) would collide with the new log. Only entries older than this call: the
        // log of a canvas created concurrently with the same id is not touched.
        let stale = doc! { "canvas_id": &canvas_id, "created_at": { "$lt": bson_date(started) } };
        self.updates.delete_many(stale).await?;

        let now = now();
        let record = CanvasRecord {
            id: new.id,
            project_id: new.project_id,
            owner_id: new.owner_id,
            name: new.name,
            description: new.description,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        // In the seed's order: the record's fields, the view's, then what the store keeps.
        let mut document = doc! {
            "_id": bson::oid::ObjectId::new(),
            "canvas_id": &canvas_id,
            "project_id": record.project_id.to_string(),
            "name": &record.name,
            "description": record.description.as_deref(),
            "owner_id": record.owner_id.to_string(),
            "version": int(record.version),
        };
        let empty = serde_json::Map::new();
        let view = view.as_object().unwrap_or(&empty);
        for (key, value) in view {
            if settable(key) {
                document.insert(key.as_str(), json_to_bson(value));
            }
        }
        let mut metadata = Document::new();
        if let Some(Value::Object(fields)) = view.get("metadata") {
            for (key, value) in fields {
                if settable_metadata(key) {
                    metadata.insert(key.as_str(), json_to_bson(value));
                }
            }
        }
        metadata.insert("created_at", bson_date(now));
        metadata.insert("updated_at", bson_date(now));
        let initial = VersionRecord {
            version: 1,
            changes: INITIAL_CHANGES.into(),
            changed_by: record.owner_id,
            changed_at: now,
            kind: VersionKind::Initial,
        };
        metadata.insert("version_history", vec![history_entry(&initial)]);
        document.insert("metadata", metadata);
        document.insert(
            "interactions",
            doc! { "views": 0_i64, "last_viewed_at": Bson::Null, "comments_count": 0_i64, "favorites_count": 0_i64 },
        );
        document.insert("state", binary(state));
        document.insert("snapshot_seq", 0_i64);
        document.insert("last_seq", 0_i64);
        document.insert("created_at", bson_date(now));
        document.insert("updated_at", bson_date(now));
        self.canvases.insert_one(document).await.map_err(|e| {
            if is_duplicate_key(&e) {
                StorageError::Conflict(format!("canvas {}", record.id))
            } else {
                e.into()
            }
        })?;
        // Snapshots left behind by an earlier canvas with this id, as for the log above.
        let stale = doc! { "canvas_id": &canvas_id, "changed_at": { "$lt": bson_date(started) } };
        self.versions.delete_many(stale).await?;
        self.versions
            .insert_one(version_document(
                &canvas_id,
                &initial,
                state,
                &Value::Object(view.clone()),
            ))
            .await?;
        Ok(record)
    }

    async fn canvas(&self, id: Uuid) -> StorageResult<Option<CanvasRecord>> {
        let found = self
            .canvases
            .find_one(doc! { "canvas_id": id.to_string() })
            .projection(record_projection())
            .await?;
        found.as_ref().map(record_from_doc).transpose()
    }

    async fn canvases_in_project(&self, project_id: Uuid) -> StorageResult<Vec<CanvasRecord>> {
        let mut cursor = self
            .canvases
            .find(doc! { "project_id": project_id.to_string() })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .projection(record_projection())
            .await?;
        let mut records = Vec::new();
        while cursor.advance().await? {
            records.push(record_from_doc(&cursor.deserialize_current()?)?);
        }
        Ok(records)
    }

    async fn delete_canvas(&self, id: Uuid) -> StorageResult<bool> {
        let canvas_id = id.to_string();
        // The canvas first: from then on appends and checkpoints find nothing, and a crash
        // before the log is gone leaves only unreachable entries (`create_canvas` clears them
        // if the id is ever used again).
        let deleted = self
            .canvases
            .delete_one(doc! { "canvas_id": &canvas_id })
            .await?;
        self.updates
            .delete_many(doc! { "canvas_id": &canvas_id })
            .await?;
        self.versions
            .delete_many(doc! { "canvas_id": &canvas_id })
            .await?;
        Ok(deleted.deleted_count > 0)
    }

    async fn load_document(&self, id: Uuid) -> StorageResult<Option<StoredDocument>> {
        let canvas_id = id.to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(canvas) = self
                .canvases
                .find_one(doc! { "canvas_id": &canvas_id })
                .projection(doc! { "_id": 0, "state": 1, "snapshot_seq": 1 })
                .await?
            else {
                return Ok(None);
            };
            let snapshot = get_binary(&canvas, "state")?;
            let snapshot_seq = get_int(&canvas, "snapshot_seq")?;
            let mut cursor = self
                .updates
                .find(doc! { "canvas_id": &canvas_id, "seq": { "$gt": snapshot_seq } })
                .sort(doc! { "seq": 1 })
                .projection(doc! { "_id": 0, "seq": 1, "data": 1 })
                .await?;
            let mut updates = Vec::new();
            while cursor.advance().await? {
                let entry = cursor.deserialize_current()?;
                updates.push((get_int(&entry, "seq")?, get_binary(&entry, "data")?));
            }
            // A checkpoint that landed since the first read may have deleted entries this
            // snapshot lacks; its new `snapshot_seq` is visible before it deletes anything.
            match self.seqs(&canvas_id).await? {
                None => return Ok(None),
                Some((now_seq, _)) if now_seq != snapshot_seq => {
                    if attempt < LOAD_ATTEMPTS {
                        continue;
                    }
                    return Err(StorageError::Corrupt(format!(
                        "canvas {id}: snapshot kept moving while loading"
                    )));
                }
                Some(_) => {}
            }
            let contiguous = updates
                .iter()
                .zip(snapshot_seq + 1..)
                .all(|((seq, _), expected)| *seq == expected);
            if !contiguous && attempt < LOAD_ATTEMPTS {
                // Probably an earlier append still in flight: give it a moment. A hole that
                // stays is a crash gap (a reserved range never written), which is harmless.
                tokio::time::sleep(LOAD_RETRY_PAUSE).await;
                continue;
            }
            return Ok(Some(StoredDocument {
                snapshot,
                snapshot_seq,
                updates,
            }));
        }
    }

    async fn append_updates(&self, id: Uuid, updates: &[Vec<u8>]) -> StorageResult<i64> {
        let canvas_id = id.to_string();
        let not_found = || StorageError::NotFound(format!("canvas {id}"));
        if updates.is_empty() {
            let (snapshot_seq, last_seq) = self.seqs(&canvas_id).await?.ok_or_else(not_found)?;
            return Ok(snapshot_seq.max(last_seq));
        }
        let n = i64::try_from(updates.len())
            .map_err(|_| StorageError::Corrupt("too many updates in one batch".into()))?;
        // Reserve `n` consecutive sequence numbers, atomically per canvas.
        let reserved = self
            .canvases
            .find_one_and_update(
                doc! { "canvas_id": &canvas_id },
                doc! { "$inc": { "last_seq": n } },
            )
            .projection(doc! { "_id": 0, "last_seq": 1 })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(not_found)?;
        let last = get_int(&reserved, "last_seq")?;
        let created_at = bson_date(now());
        let entries = updates.iter().zip(last - n + 1..).map(|(data, seq)| {
            doc! {
                "canvas_id": &canvas_id,
                "seq": seq,
                "data": binary(data),
                "created_at": created_at,
            }
        });
        // Ordered, journaled: durable once it returns.
        self.updates.insert_many(entries).ordered(true).await?;
        Ok(last)
    }

    async fn checkpoint(
        &self,
        id: Uuid,
        state: &[u8],
        upto_seq: i64,
        view: &Value,
    ) -> StorageResult<()> {
        let canvas_id = id.to_string();
        let now = now();
        let mut set = Document::new();
        let empty = serde_json::Map::new();
        let view = view.as_object().unwrap_or(&empty);
        for (key, value) in view {
            if settable(key) {
                set.insert(key.as_str(), json_to_bson(value));
            }
        }
        if let Some(Value::Object(fields)) = view.get("metadata") {
            for (key, value) in fields {
                if settable_metadata(key) {
                    set.insert(format!("metadata.{key}"), json_to_bson(value));
                }
            }
        }
        // Same rules as the other backends: a string name renames; a string description
        // replaces it, null clears it, a missing key keeps it.
        if let Some(Value::String(name)) = view.get("name") {
            set.insert("name", name.as_str());
        }
        match view.get("description") {
            Some(Value::String(text)) => {
                set.insert("description", text.as_str());
            }
            Some(Value::Null) => {
                set.insert("description", Bson::Null);
            }
            _ => {}
        }
        set.insert("state", binary(state));
        set.insert("snapshot_seq", upto_seq);
        set.insert("updated_at", bson_date(now));
        set.insert("metadata.updated_at", bson_date(now));

        // Step 1: the snapshot, never backwards. `last_seq` stays >= `snapshot_seq`.
        let updated = self
            .canvases
            .update_one(
                doc! { "canvas_id": &canvas_id, "snapshot_seq": { "$lte": upto_seq } },
                doc! { "$set": set, "$max": { "last_seq": upto_seq } },
            )
            .await?;
        if updated.matched_count == 0 {
            return match self.seqs(&canvas_id).await? {
                None => Err(StorageError::NotFound(format!("canvas {id}"))),
                Some((current, _)) => {
                    // A newer snapshot is already stored (checkpoints raced): keep it.
                    tracing::debug!(%id, upto_seq, current, "ignoring stale checkpoint");
                    Ok(())
                }
            };
        }
        // Step 2: drop what the stored snapshot covers. A crash before this loses nothing.
        self.updates
            .delete_many(doc! { "canvas_id": &canvas_id, "seq": { "$lte": upto_seq } })
            .await?;
        Ok(())
    }

    async fn public_link(&self, id: Uuid) -> StorageResult<Option<PublicLink>> {
        let found = self
            .canvases
            .find_one(doc! { "canvas_id": id.to_string() })
            .projection(doc! { "_id": 0, LINK_FIELD: 1 })
            .await?;
        let Some(link) = found.as_ref().and_then(|d| d.get(LINK_FIELD)) else {
            return Ok(None);
        };
        match link {
            Bson::Null => Ok(None),
            Bson::Document(d) => Ok(Some(PublicLink {
                id: get_str(d, "id")?.to_owned(),
                token: get_str(d, "token")?.to_owned(),
                created_at: get_date(d, "created_at")?,
            })),
            other => Err(corrupt(LINK_FIELD, other)),
        }
    }

    async fn set_public_link(&self, id: Uuid, link: Option<&PublicLink>) -> StorageResult<()> {
        let value = match link {
            Some(l) => Bson::Document(doc! {
                "id": &l.id, "token": &l.token, "created_at": bson_date(l.created_at),
            }),
            None => Bson::Null,
        };
        let updated = self
            .canvases
            .update_one(
                doc! { "canvas_id": id.to_string() },
                doc! { "$set": { LINK_FIELD: value } },
            )
            .await?;
        if updated.matched_count == 0 {
            return Err(StorageError::NotFound(format!("canvas {id}")));
        }
        Ok(())
    }
}

#[async_trait]
impl VersionStore for MongoStore {
    async fn add_version(
        &self,
        canvas_id: Uuid,
        new: NewVersion,
        state: &[u8],
        view: &Value,
    ) -> StorageResult<VersionRecord> {
        let id = canvas_id.to_string();
        let reserved = self
            .canvases
            .find_one_and_update(doc! { "canvas_id": &id }, doc! { "$inc": { "version": 1 } })
            .projection(doc! { "_id": 0, "version": 1 })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("canvas {canvas_id}")))?;
        let record = VersionRecord {
            version: get_int(&reserved, "version")?,
            changes: new.changes,
            changed_by: new.changed_by,
            changed_at: now(),
            kind: new.kind,
        };
        self.versions
            .insert_one(version_document(&id, &record, state, view))
            .await?;
        self.canvases
            .update_one(
                doc! { "canvas_id": &id },
                doc! { "$push": { "metadata.version_history": {
                    "$each": [history_entry(&record)],
                    "$sort": { "version": 1 },
                } } },
            )
            .await?;
        Ok(record)
    }

    async fn versions(&self, canvas_id: Uuid) -> StorageResult<Vec<VersionRecord>> {
        let mut cursor = self
            .versions
            .find(doc! { "canvas_id": canvas_id.to_string() })
            .sort(doc! { "version": 1 })
            .projection(doc! { "_id": 0, "state": 0, "view": 0 })
            .await?;
        let mut records = Vec::new();
        while cursor.advance().await? {
            records.push(version_record(&cursor.deserialize_current()?)?);
        }
        Ok(records)
    }

    async fn version(&self, canvas_id: Uuid, version: i64) -> StorageResult<Option<StoredVersion>> {
        let found = self
            .versions
            .find_one(doc! { "canvas_id": canvas_id.to_string(), "version": version })
            .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let view = match found.get("view") {
            Some(view) => view.clone().into_relaxed_extjson(),
            None => Value::Null,
        };
        Ok(Some(StoredVersion {
            record: version_record(&found)?,
            state: get_binary(&found, "state")?,
            view,
        }))
    }
}

/// A version record as an entry of `metadata.version_history` (the seed's fields plus `kind`).
fn history_entry(record: &VersionRecord) -> Document {
    doc! {
        "version": int(record.version),
        "changes": &record.changes,
        "changed_by": record.changed_by.to_string(),
        "changed_at": bson_date(record.changed_at),
        "kind": record.kind.as_str(),
    }
}

/// A `canvas_versions` document.
fn version_document(
    canvas_id: &str,
    record: &VersionRecord,
    state: &[u8],
    view: &Value,
) -> Document {
    let mut document = doc! { "canvas_id": canvas_id };
    document.extend(history_entry(record));
    document.insert("state", binary(state));
    document.insert("view", json_to_bson(view));
    document
}

fn version_record(d: &Document) -> StorageResult<VersionRecord> {
    let kind = get_str(d, "kind")?;
    Ok(VersionRecord {
        version: get_int(d, "version")?,
        changes: get_str(d, "changes")?.to_owned(),
        changed_by: get_uuid(d, "changed_by")?,
        changed_at: get_date(d, "changed_at")?,
        kind: VersionKind::parse(kind)
            .ok_or_else(|| corrupt("kind", &Bson::String(kind.to_owned())))?,
    })
}

/// Parses a connection string; a malformed one counts as unreachable (it names no server
/// that could be reached), reported without the URI's credentials.
async fn parse_options(uri: &str) -> StorageResult<ClientOptions> {
    ClientOptions::parse(uri)
        .await
        .map_err(|e| StorageError::Unreachable {
            service: "MongoDB",
            cause: redact(&e.to_string(), uri),
        })
}

/// `message` without the password (or whole user info) of `uri`, should it appear.
fn redact(message: &str, uri: &str) -> String {
    let Some((_, rest)) = uri.split_once("://") else {
        return message.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message.to_owned();
    };
    let mut out = message.replace(userinfo, "***");
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
        // The driver may show the percent-decoded form too.
        if let Ok(decoded) = percent_decode(password)
            && !decoded.is_empty()
        {
            out = out.replace(&decoded, "***");
        }
    }
    out
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Now, in UTC, truncated to what a BSON date holds (milliseconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// An integer as `Int32` when it fits (shown as a plain number by the shell), else `Int64`.
fn int(i: i64) -> Bson {
    i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32)
}

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// Whether a top-level key of a view may be stored as a field of the canvas document.
fn settable(key: &str) -> bool {
    !RESERVED.contains(&key) && valid_field(key)
}

/// Whether a key of the view's `metadata` may be stored; the times and the version history
/// are the store's.
fn settable_metadata(key: &str) -> bool {
    key != "created_at" && key != "updated_at" && key != "version_history" && valid_field(key)
}

/// A field name that `$set` would not read as a path or an operator.
fn valid_field(key: &str) -> bool {
    !key.is_empty() && !key.starts_with('$') && !key.contains(['.', '\0'])
}

/// A key nested in view values, made storable: BSON field names cannot hold NUL, and MongoDB
/// reads a leading `$` and `.` as operators and paths, so those become look-alikes
/// (`＄`, `．`, `\u{FFFD}`). Every other key is kept as it is.
fn field_name(key: &str) -> String {
    if !key.starts_with('$') && !key.contains(['.', '\0']) {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 2);
    for (i, c) in key.chars().enumerate() {
        out.push(match c {
            '$' if i == 0 => '\u{FF04}',
            '.' => '\u{FF0E}',
            '\0' => '\u{FFFD}',
            c => c,
        });
    }
    out
}

/// JSON to BSON, losslessly where BSON can: integers become `Int32` when they fit, else
/// `Int64`; integers beyond `i64` and fractions become doubles; objects keep their key order.
fn json_to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => int(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect()),
        Value::Object(fields) => Bson::Document(
            fields
                .iter()
                .map(|(k, v)| (field_name(k), json_to_bson(v)))
                .collect(),
        ),
    }
}

fn record_projection() -> Document {
    doc! {
        "_id": 0, "canvas_id": 1, "project_id": 1, "owner_id": 1, "name": 1,
        "description": 1, "version": 1, "created_at": 1, "updated_at": 1,
    }
}

fn record_from_doc(d: &Document) -> StorageResult<CanvasRecord> {
    let description = match d.get("description") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(s.clone()),
        Some(other) => return Err(corrupt("description", other)),
    };
    Ok(CanvasRecord {
        id: get_uuid(d, "canvas_id")?,
        project_id: get_uuid(d, "project_id")?,
        owner_id: get_uuid(d, "owner_id")?,
        name: get_str(d, "name")?.to_owned(),
        description,
        version: get_int(d, "version")?,
        created_at: get_date(d, "created_at")?,
        updated_at: get_date(d, "updated_at")?,
    })
}

fn corrupt(field: &str, value: &Bson) -> StorageError {
    StorageError::Corrupt(format!("canvas field {field}: unexpected {value:?}"))
}

fn get_field<'a>(d: &'a Document, field: &str) -> StorageResult<&'a Bson> {
    d.get(field)
        .ok_or_else(|| StorageError::Corrupt(format!("canvas field {field} is missing")))
}

fn get_str<'a>(d: &'a Document, field: &str) -> StorageResult<&'a str> {
    match get_field(d, field)? {
        Bson::String(s) => Ok(s),
        other => Err(corrupt(field, other)),
    }
}

fn get_uuid(d: &Document, field: &str) -> StorageResult<Uuid> {
    let s = get_str(d, field)?;
    Uuid::parse_str(s).map_err(|_| corrupt(field, &Bson::String(s.to_owned())))
}

/// An integer field, whichever width it was stored with.
fn get_int(d: &Document, field: &str) -> StorageResult<i64> {
    match get_field(d, field)? {
        Bson::Int64(i) => Ok(*i),
        Bson::Int32(i) => Ok(i64::from(*i)),
        other => Err(corrupt(field, other)),
    }
}

fn get_date(d: &Document, field: &str) -> StorageResult<DateTime<Utc>> {
    match get_field(d, field)? {
        Bson::DateTime(t) => DateTime::from_timestamp_millis(t.timestamp_millis())
            .ok_or_else(|| corrupt(field, &Bson::DateTime(*t))),
        other => Err(corrupt(field, other)),
    }
}

fn get_binary(d: &Document, field: &str) -> StorageResult<Vec<u8>> {
    match get_field(d, field)? {
        Bson::Binary(b) => Ok(b.bytes.clone()),
        other => Err(corrupt(field, other)),
    }
}

/// Whether a write failed on a unique index.
fn is_duplicate_key(e: &MongoError) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .iter()
            .flatten()
            .any(|w| w.code == DUPLICATE_KEY),
        _ => false,
    }
}

#[async_trait]
impl crate::Probe for MongoStore {
    fn service(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StorageResult<()> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_credentials() {
        let uri = "mongodb://alice:s%40cret@db.example:27017/canvas";
        let message = "auth failed for alice:s%40cret and s@cret at db.example";
        let out = redact(message, uri);
        assert!(
            !out.contains("s%40cret") && !out.contains("s@cret"),
            "{out}"
        );
        assert!(out.contains("db.example"));
        assert_eq!(redact("plain", "mongodb://h:1/"), "plain");
    }

    #[test]
    fn json_becomes_bson_with_storable_keys() {
        let v = json!({
            "n": 12, "big": 5_000_000_000_i64, "huge": u64::MAX, "f": 1.5,
            "nested": {"$where": 1, "a.b": [null, true, "s"]},
        });
        let Bson::Document(d) = json_to_bson(&v) else {
            panic!("an object becomes a document")
        };
        assert_eq!(d.get("n"), Some(&Bson::Int32(12)));
        assert_eq!(d.get("big"), Some(&Bson::Int64(5_000_000_000)));
        assert!(matches!(d.get("huge"), Some(Bson::Double(_))));
        assert_eq!(d.get("f"), Some(&Bson::Double(1.5)));
        let nested = d.get_document("nested").expect("nested");
        assert!(nested.contains_key("\u{FF04}where"));
        assert!(nested.contains_key("a\u{FF0E}b"));
    }

    #[test]
    fn reserved_and_invalid_keys_are_not_set() {
        assert!(settable("blocks") && settable("layout"));
        assert!(!settable("state") && !settable("snapshot_seq") && !settable("_id"));
        assert!(!settable("$set") && !settable("a.b") && !settable(""));
        assert!(settable_metadata("tags") && !settable_metadata("created_at"));
    }
}
