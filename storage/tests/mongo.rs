//! The MongoDB canvas store against the generic suite, plus what only it has: the seed's
//! document shape, the log dropped by checkpoints, loads racing checkpoints, and a clear
//! error when the server cannot be reached.
//!
//! Needs a MongoDB-compatible server: `MONGODB_URI_TEST`, e.g.
//! `mongodb://127.0.0.1:27123/?directConnection=true` (`./scripts/test.sh` starts one). Each
//! test works in a database of its own (`canvas_test_<random>`), dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use canvas_storage::mongo_store::MongoStore;
use canvas_storage::testing::{self, Service};
use canvas_storage::{CanvasStore, NewCanvas, StorageError};
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn uri() -> String {
    testing::service_url(Service::Mongo)
}

/// A store on a fresh database; call [`drop_db`] at the end.
async fn store() -> MongoStore {
    let db = format!("canvas_test_{}", Uuid::new_v4().simple());
    MongoStore::connect_db(&uri(), &db)
        .await
        .expect("connect to MONGODB_URI_TEST")
}

async fn drop_db(store: MongoStore) {
    store.database().drop().await.expect("drop test database");
}

/// Runs `test` on a store on a fresh database, then drops the database, whether the test
/// passed or not, and re-raises the test's panic if it had one.
async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(MongoStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = store().await;
    let outcome = tokio::spawn(test(store.clone())).await;
    drop_db(store).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn new_canvas() -> NewCanvas {
    NewCanvas {
        id: Uuid::new_v4(),
        project_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        name: "Q4 Sales Analysis".into(),
        description: Some("Analysis of Q4 2024 sales performance".into()),
    }
}

/// A view like the server's (`canvas_view` over the engine's JSON).
fn seed_view(c: &NewCanvas) -> serde_json::Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "project_id": c.project_id,
        "owner_id": c.owner_id,
        "version": 1,
        "layout": {
            "type": "grid", "columns": 12, "rowHeight": 50,
            "breakpoints": {"lg": 1200, "md": 996, "sm": 768, "xs": 480}
        },
        "blocks": [
            {"id": "block_1", "type": "chart", "position": {"x": 0, "y": 0, "w": 6, "h": 4},
             "content": {"chart_type": "bar", "title": "Sales by Region",
                         "style": {"colors": ["#1f77b4", "#ff7f0e"]}},
             "metadata": {"created_by": c.owner_id}},
            {"id": "block_2", "type": "narrative", "position": {"x": 6, "y": 0, "w": 6, "h": 4},
             "content": {"text": "## Key Insights", "data_bindings": [],
                         "$odd key": {"a.b": 1.5}}}
        ],
        "sharing": {
            "visibility": "private", "permissions": [], "public_link": null,
            "embed_settings": {"enabled": false, "allowed_domains": []}
        },
        "interactions": {"views": 0, "last_viewed_at": null, "comments_count": 0,
                         "favorites_count": 0},
        "metadata": {
            "tags": ["sales", "q4"],
            "created_at": "2024-01-01T10:00:00+00:00",
            "updated_at": "2024-01-01T10:00:00+00:00",
            "version_history": [{"version": 1, "changes": "Initial creation",
                                 "changed_by": c.owner_id}]
        }
    })
}

async fn raw_canvas(store: &MongoStore, id: Uuid) -> Document {
    store
        .database()
        .collection::<Document>("canvases")
        .find_one(doc! { "canvas_id": id.to_string() })
        .await
        .expect("find canvas")
        .expect("canvas document")
}

async fn log_seqs(store: &MongoStore, id: Uuid) -> Vec<i64> {
    let mut cursor = store
        .database()
        .collection::<Document>("canvas_updates")
        .find(doc! { "canvas_id": id.to_string() })
        .sort(doc! { "seq": 1 })
        .await
        .expect("find log");
    let mut seqs = Vec::new();
    while cursor.advance().await.expect("cursor") {
        let entry = cursor.deserialize_current().expect("entry");
        seqs.push(entry.get_i64("seq").expect("seq is an i64"));
    }
    seqs
}

canvas_storage::contract_tests!(canvases, with_store, |store| (&store));
canvas_storage::contract_tests!(interactions, with_store, |store| (&store, &store));
canvas_storage::contract_tests!(templates, with_store, |store| (&store));
canvas_storage::contract_tests!(versions, with_store, |store| (&store, &store));

/// Forgetting a canvas deletes its favorites' documents, not the other canvas's.
#[tokio::test]
async fn forgetting_a_canvas_deletes_its_favorite_documents() {
    let store = store().await;
    testing::interactions::forget_canvas_drops_its_counters_and_favorites(&store, &store).await;
    let favorites = store.database().collection::<Document>("canvas_favorites");
    assert_eq!(
        favorites.count_documents(doc! {}).await.expect("count"),
        1,
        "one favorite of the surviving canvas is left"
    );
    drop_db(store).await;
}

/// The seed's shape: a `find` shows a template's blocks as documents.
#[tokio::test]
async fn stored_template_has_the_seed_shape() {
    let store = store().await;
    testing::templates::every_field_round_trips(&store).await;
    let raw = store
        .database()
        .collection::<Document>("canvas_templates")
        .find_one(doc! { "is_public": true })
        .await
        .expect("find")
        .expect("a public template");
    assert!(raw.get_array("blocks").is_ok(), "blocks: {raw:?}");
    assert!(raw.get_str("created_by").is_ok());
    assert!(raw.get_i64("usage_count").is_ok() || raw.get_i32("usage_count").is_ok());
    drop_db(store).await;
}

#[tokio::test]
async fn unreachable_server_fails_fast_naming_mongodb() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let uri = format!("mongodb://alice:hunter2@127.0.0.1:{port}/?directConnection=true");
    let err = MongoStore::connect(&uri)
        .await
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
    match &err {
        StorageError::Unreachable { service, cause } => {
            assert_eq!(*service, "MongoDB");
            assert!(!cause.contains("hunter2"), "credentials leaked: {cause}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(!err.to_string().contains("hunter2"));
    eprintln!("unreachable after {:?}: {err}", started.elapsed());
}

#[tokio::test]
async fn default_database_comes_from_the_uri() {
    let base = uri();
    let name = format!("canvas_test_{}", Uuid::new_v4().simple());
    // Put the database name into the URI's path: `mongodb://host:port/NAME?options`.
    let (scheme, rest) = base.split_once("://").expect("a mongodb:// URI");
    let (hosts, query) = match rest.split_once('/') {
        Some((hosts, tail)) => (hosts, tail.split_once('?').map(|(_, q)| q)),
        None => (rest, None),
    };
    let with_db = match query {
        Some(q) => format!("{scheme}://{hosts}/{name}?{q}"),
        None => format!("{scheme}://{hosts}/{name}"),
    };
    let store = MongoStore::connect(&with_db).await.expect("connect");
    assert_eq!(store.database().name(), name);
    drop_db(store).await;
}

#[tokio::test]
async fn stored_document_has_the_seed_shape() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    let view = seed_view(&new);
    let record = store
        .create_canvas(new.clone(), b"yrs-state", &view)
        .await
        .expect("create_canvas");

    let d = raw_canvas(&store, id).await;
    assert!(
        matches!(d.get("_id"), Some(Bson::ObjectId(_))),
        "_id is an ObjectId"
    );
    assert_eq!(d.get_str("canvas_id").expect("canvas_id"), id.to_string());
    assert_eq!(d.get_str("name").expect("name"), "Q4 Sales Analysis");
    assert_eq!(
        d.get_str("project_id").expect("project_id"),
        new.project_id.to_string()
    );
    assert_eq!(
        d.get_str("owner_id").expect("owner_id"),
        new.owner_id.to_string()
    );
    assert_eq!(
        d.get("version"),
        Some(&Bson::Int32(1)),
        "version: 1, as in the seed"
    );
    let layout = d.get_document("layout").expect("layout");
    assert_eq!(layout.get_str("type").expect("type"), "grid");
    assert_eq!(layout.get_i32("columns").expect("columns"), 12);
    assert_eq!(
        layout
            .get_document("breakpoints")
            .expect("breakpoints")
            .get_i32("lg")
            .expect("lg"),
        1200
    );
    let blocks = d.get_array("blocks").expect("blocks is an array");
    assert_eq!(blocks.len(), 2);
    let first = blocks[0].as_document().expect("a block is a document");
    assert_eq!(first.get_str("id").expect("id"), "block_1");
    assert_eq!(
        first
            .get_document("position")
            .expect("position")
            .get_i32("w")
            .expect("w"),
        6
    );
    // Keys MongoDB would read as operators or paths are stored as look-alikes.
    let odd = blocks[1]
        .as_document()
        .expect("block")
        .get_document("content")
        .expect("content")
        .get_document("\u{FF04}odd key")
        .expect("escaped key");
    assert_eq!(odd.get_f64("a\u{FF0E}b").expect("escaped nested key"), 1.5);
    let sharing = d.get_document("sharing").expect("sharing");
    assert_eq!(
        sharing.get_str("visibility").expect("visibility"),
        "private"
    );
    assert!(
        sharing
            .get_array("permissions")
            .expect("permissions")
            .is_empty()
    );
    assert!(d.get_document("interactions").is_ok());
    let metadata = d.get_document("metadata").expect("metadata");
    let tags: Vec<&str> = metadata
        .get_array("tags")
        .expect("tags")
        .iter()
        .filter_map(Bson::as_str)
        .collect();
    assert_eq!(tags, ["sales", "q4"]);
    assert!(metadata.get_array("version_history").is_ok());
    // The times are the store's, as BSON dates, at the top level and in the metadata.
    let created = d.get_datetime("created_at").expect("created_at is a date");
    assert_eq!(
        created.timestamp_millis(),
        record.created_at.timestamp_millis()
    );
    assert_eq!(metadata.get_datetime("created_at").expect("date"), created);
    assert!(d.get_datetime("updated_at").is_ok());
    assert_eq!(
        d.get_binary_generic("state").expect("state is binary"),
        b"yrs-state"
    );
    assert_eq!(d.get_i64("snapshot_seq").expect("snapshot_seq"), 0);
    assert!(!d.contains_key("id"), "the canvas id is `canvas_id`");

    // Queries on the shape work: by tag.
    let by_tag = store
        .database()
        .collection::<Document>("canvases")
        .count_documents(doc! { "metadata.tags": "q4" })
        .await
        .expect("count");
    assert_eq!(by_tag, 1);

    // A checkpoint keeps the shape and replaces what its view carries.
    store
        .append_updates(id, &[b"u1".to_vec()])
        .await
        .expect("append");
    let mut view2 = seed_view(&new);
    view2["blocks"] = json!([]);
    view2["metadata"]["tags"] = json!(["renamed"]);
    view2["description"] = json!(null);
    store
        .checkpoint(id, b"yrs-state-2", 1, &view2)
        .await
        .expect("checkpoint");
    let d = raw_canvas(&store, id).await;
    assert!(d.get_array("blocks").expect("blocks").is_empty());
    let metadata = d.get_document("metadata").expect("metadata");
    assert_eq!(
        metadata.get_array("tags").expect("tags"),
        &vec![Bson::String("renamed".into())]
    );
    assert_eq!(metadata.get_datetime("created_at").expect("date"), created);
    assert!(*metadata.get_datetime("updated_at").expect("date") > *created);
    assert_eq!(d.get("description"), Some(&Bson::Null), "null clears it");
    assert_eq!(
        d.get_binary_generic("state").expect("state"),
        b"yrs-state-2"
    );
    drop_db(store).await;
}

#[tokio::test]
async fn checkpoint_drops_the_covered_log() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    store
        .create_canvas(new, b"s0", &json!({}))
        .await
        .expect("create_canvas");
    let batch: Vec<Vec<u8>> = (1..=4u8).map(|i| vec![i]).collect();
    assert_eq!(store.append_updates(id, &batch).await.expect("append"), 4);
    assert_eq!(log_seqs(&store, id).await, [1, 2, 3, 4]);

    store
        .checkpoint(id, b"s3", 3, &json!({}))
        .await
        .expect("checkpoint");
    assert_eq!(log_seqs(&store, id).await, [4], "entries up to 3 are gone");
    store
        .checkpoint(id, b"s4", 4, &json!({}))
        .await
        .expect("checkpoint");
    assert!(log_seqs(&store, id).await.is_empty(), "the log is empty");
    assert_eq!(
        store
            .append_updates(id, &[b"5".to_vec()])
            .await
            .expect("append"),
        5,
        "numbering continues after the snapshot"
    );

    // Deleting the canvas takes its log and versions too.
    store
        .database()
        .collection::<Document>("canvas_versions")
        .insert_one(doc! { "canvas_id": id.to_string(), "version": 1 })
        .await
        .expect("insert a version");
    assert!(store.delete_canvas(id).await.expect("delete"));
    assert!(log_seqs(&store, id).await.is_empty());
    let versions = store
        .database()
        .collection::<Document>("canvas_versions")
        .count_documents(doc! { "canvas_id": id.to_string() })
        .await
        .expect("count");
    assert_eq!(versions, 0);
    drop_db(store).await;
}

/// A crash between a checkpoint's two steps leaves entries the snapshot covers: loads skip
/// them and the next checkpoint removes them.
#[tokio::test]
async fn leftover_covered_entries_are_ignored() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    store
        .create_canvas(new, b"s0", &json!({}))
        .await
        .expect("create_canvas");
    store
        .append_updates(id, &[b"1".to_vec(), b"2".to_vec(), b"3".to_vec()])
        .await
        .expect("append");
    // Step 1 only, as if the process died before deleting the log.
    store
        .database()
        .collection::<Document>("canvases")
        .update_one(
            doc! { "canvas_id": id.to_string() },
            doc! { "$set": { "snapshot_seq": 2_i64, "state": Bson::Binary(mongodb::bson::Binary {
            subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: b"s2".to_vec() }) } },
        )
        .await
        .expect("half a checkpoint");
    let doc = store
        .load_document(id)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!((doc.snapshot.as_slice(), doc.snapshot_seq), (&b"s2"[..], 2));
    assert_eq!(doc.updates, vec![(3, b"3".to_vec())]);
    assert_eq!(
        store
            .append_updates(id, &[b"4".to_vec()])
            .await
            .expect("append"),
        4
    );
    store
        .checkpoint(id, b"s4", 4, &json!({}))
        .await
        .expect("checkpoint");
    assert!(log_seqs(&store, id).await.is_empty());
    drop_db(store).await;
}

/// Loads racing appends and checkpoints always see a consistent document: the snapshot plus
/// exactly the entries after it, contiguous, with nothing missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_during_checkpoints_is_consistent() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    store
        .create_canvas(new, b"0", &json!({}))
        .await
        .expect("create_canvas");
    // The "state" at seq n is the text of n, so a load can be checked: snapshot_seq must
    // match the snapshot and the entries must be snapshot_seq+1 ..= some last.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..6 {
                let seq = store
                    .append_updates(id, &[b"a".to_vec(), b"b".to_vec()])
                    .await
                    .expect("append");
                if round % 2 == 1 {
                    store
                        .checkpoint(id, seq.to_string().as_bytes(), seq, &json!({}))
                        .await
                        .expect("checkpoint");
                }
            }
        })
    };
    let mut loads = 0;
    while !writer.is_finished() || loads == 0 {
        let doc = store
            .load_document(id)
            .await
            .expect("load")
            .expect("exists");
        assert_eq!(
            doc.snapshot,
            doc.snapshot_seq.to_string().as_bytes(),
            "the snapshot read with its own seq"
        );
        let seqs: Vec<i64> = doc.updates.iter().map(|(s, _)| *s).collect();
        let expected: Vec<i64> = (doc.snapshot_seq + 1..).take(seqs.len()).collect();
        assert_eq!(seqs, expected, "contiguous after the snapshot");
        loads += 1;
    }
    writer.await.expect("writer");
    let doc = store
        .load_document(id)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(doc.snapshot_seq, 12);
    assert!(doc.updates.is_empty());
    drop_db(store).await;
}

/// A crash between an append's reservation and its insert leaves a hole in the numbering:
/// entries after it still load (after a short wait for the hole to fill), and numbering goes
/// on after the reserved range.
#[tokio::test]
async fn crash_gap_does_not_hide_later_entries() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    store
        .create_canvas(new, b"s0", &json!({}))
        .await
        .expect("create_canvas");
    assert_eq!(
        store
            .append_updates(id, &[b"1".to_vec()])
            .await
            .expect("append"),
        1
    );
    // Reserve 2..=3 the way `append_updates` does, then "crash" before inserting.
    store
        .database()
        .collection::<Document>("canvases")
        .update_one(
            doc! { "canvas_id": id.to_string() },
            doc! { "$inc": { "last_seq": 2_i64 } },
        )
        .await
        .expect("reserve");
    assert_eq!(
        store
            .append_updates(id, &[b"4".to_vec()])
            .await
            .expect("append"),
        4
    );
    assert_eq!(store.append_updates(id, &[]).await.expect("append"), 4);
    let doc = store
        .load_document(id)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(doc.updates, vec![(1, b"1".to_vec()), (4, b"4".to_vec())]);
    store
        .checkpoint(id, b"s4", 4, &json!({}))
        .await
        .expect("checkpoint");
    let doc = store
        .load_document(id)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!((doc.snapshot_seq, doc.updates.len()), (4, 0));
    drop_db(store).await;
}

/// Many appenders on one canvas at once: every batch gets its own consecutive range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_never_share_a_seq() {
    let store = store().await;
    let new = new_canvas();
    let id = new.id;
    store
        .create_canvas(new, b"s0", &json!({}))
        .await
        .expect("create_canvas");
    let tasks: Vec<_> = (0..8u8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lasts = Vec::new();
                for round in 0..3u8 {
                    let batch: Vec<Vec<u8>> = (0..3u8).map(|i| vec![task, round, i]).collect();
                    lasts.push(store.append_updates(id, &batch).await.expect("append"));
                }
                lasts
            })
        })
        .collect();
    let mut lasts = Vec::new();
    for task in tasks {
        lasts.extend(task.await.expect("task"));
    }
    lasts.sort_unstable();
    assert_eq!(lasts, (1..=24).map(|i| i * 3).collect::<Vec<i64>>());
    let doc = store
        .load_document(id)
        .await
        .expect("load")
        .expect("exists");
    let seqs: Vec<i64> = doc.updates.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=72).collect::<Vec<i64>>());
    for chunk in doc.updates.chunks(3) {
        let (task, round) = (chunk[0].1[0], chunk[0].1[1]);
        let got: Vec<&[u8]> = chunk.iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(got, [[task, round, 0], [task, round, 1], [task, round, 2]]);
    }
    drop_db(store).await;
}

#[tokio::test]
async fn the_canvas_document_keeps_version_and_history_in_step() {
    use canvas_storage::{NewVersion, VersionKind, VersionStore};
    let store = store().await;
    let c = new_canvas();
    let view = seed_view(&c);
    let record = store
        .create_canvas(c.clone(), b"state", &view)
        .await
        .expect("create");
    let editor = Uuid::new_v4();
    let v2 = store
        .add_version(
            record.id,
            NewVersion {
                kind: VersionKind::Named,
                changes: "Reviewed".into(),
                changed_by: editor,
            },
            b"state-2",
            &view,
        )
        .await
        .expect("add_version");
    // a checkpoint's view never overwrites the store's history
    store
        .checkpoint(record.id, b"state-3", 0, &view)
        .await
        .expect("checkpoint");
    let raw = raw_canvas(&store, record.id).await;
    assert_eq!(raw.get("version"), Some(&Bson::Int32(2)));
    let history = raw
        .get_document("metadata")
        .and_then(|m| m.get_array("version_history"))
        .expect("version_history");
    let entries: Vec<(i32, &str, &str)> = history
        .iter()
        .map(|h| {
            let h = h.as_document().expect("entry");
            (
                h.get_i32("version").expect("version"),
                h.get_str("changes").expect("changes"),
                h.get_str("kind").expect("kind"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![(1, "Initial creation", "initial"), (2, "Reviewed", "named")]
    );
    let h2 = history[1].as_document().expect("entry");
    assert_eq!(
        h2.get_str("changed_by").ok(),
        Some(editor.to_string().as_str())
    );
    assert!(matches!(h2.get("changed_at"), Some(Bson::DateTime(_))));
    assert_eq!(v2.version, 2);
    let versions = store
        .database()
        .collection::<Document>("canvas_versions")
        .count_documents(doc! { "canvas_id": record.id.to_string() })
        .await
        .expect("count");
    assert_eq!(versions, 2);
    drop_db(store).await;
}
