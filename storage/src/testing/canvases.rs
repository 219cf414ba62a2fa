//! [`CanvasStore`]: records, the update log (append, ordering, concurrency), checkpoints
//! (including stale ones and appends after them), listing, deletion, unknown canvases and the
//! server-side public link.

use super::{TICK, assert_not_found};
use crate::{CanvasRecord, CanvasStore, NewCanvas, PublicLink, StorageError, StoredDocument};
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __canvas_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx canvases canvas_store [
            create_canvas_returns_and_stores_version_1,
            create_canvas_with_a_taken_id_is_a_conflict,
            the_initial_state_is_the_first_snapshot,
            appends_number_updates_in_order,
            checkpoint_replaces_the_snapshot_and_drops_covered_entries,
            appends_continue_after_a_checkpoint,
            a_stale_checkpoint_changes_nothing,
            a_checkpoint_of_the_whole_log_keeps_what_its_view_lacks,
            concurrent_appends_get_consecutive_ranges,
            canvases_of_a_project_come_newest_first,
            unknown_canvases_are_none_or_not_found,
            delete_takes_the_record_and_its_log,
            a_deleted_canvas_id_can_be_used_again_with_a_fresh_log,
            a_public_link_is_kept_replaced_and_cleared,
            a_public_link_survives_checkpoints_and_goes_with_its_canvas,
        ] }
    };
}

/// Every case at once.
pub async fn all(canvases: &dyn CanvasStore) {
    crate::__canvas_cases!(__join_cases!(canvases));
}

/// A new canvas named `name` in `project`, described "about it".
fn new_canvas(project: Uuid, name: &str) -> NewCanvas {
    NewCanvas {
        id: Uuid::new_v4(),
        project_id: project,
        owner_id: Uuid::new_v4(),
        name: name.into(),
        description: Some("about it".into()),
    }
}

/// A fresh canvas "First" with the initial state `state-0`.
async fn first(canvases: &dyn CanvasStore) -> CanvasRecord {
    let view = json!({"name": "First", "description": "about it", "blocks": []});
    canvases
        .create_canvas(new_canvas(Uuid::new_v4(), "First"), b"state-0", &view)
        .await
        .expect("create_canvas")
}

/// Update number `n`: `n + 1` bytes of `n`.
fn u(n: u8) -> Vec<u8> {
    vec![n; usize::from(n) + 1]
}

async fn load(canvases: &dyn CanvasStore, id: Uuid) -> StoredDocument {
    canvases
        .load_document(id)
        .await
        .expect("load_document")
        .expect("the canvas exists")
}

async fn append(canvases: &dyn CanvasStore, id: Uuid, updates: &[Vec<u8>]) -> i64 {
    canvases.append_updates(id, updates).await.expect("append")
}

async fn record(canvases: &dyn CanvasStore, id: Uuid) -> CanvasRecord {
    canvases.canvas(id).await.expect("canvas").expect("exists")
}

/// A fresh canvas with updates 1 to 3 logged, then (a [`TICK`] later, so `updated_at` can
/// move) checkpointed at 2 with a view that renames it "Renamed", described "new text".
async fn checkpointed(canvases: &dyn CanvasStore) -> CanvasRecord {
    let c1 = first(canvases).await;
    append(canvases, c1.id, &[u(1), u(2), u(3)]).await;
    tokio::time::sleep(TICK).await;
    let view2 = json!({"name": "Renamed", "description": "new text", "blocks": []});
    canvases
        .checkpoint(c1.id, b"state-2", 2, &view2)
        .await
        .expect("checkpoint");
    c1
}

/// `create_canvas` returns the record as stored, at version 1.
pub async fn create_canvas_returns_and_stores_version_1(canvases: &dyn CanvasStore) {
    let (project, owner) = (Uuid::new_v4(), Uuid::new_v4());
    let view = json!({"name": "First", "description": "about it", "blocks": []});
    let c1 = canvases
        .create_canvas(
            NewCanvas {
                owner_id: owner,
                ..new_canvas(project, "First")
            },
            b"state-0",
            &view,
        )
        .await
        .expect("create_canvas");
    assert_eq!((c1.project_id, c1.owner_id), (project, owner));
    assert_eq!(c1.name, "First");
    assert_eq!(c1.description.as_deref(), Some("about it"));
    assert_eq!(c1.version, 1, "a new canvas is version 1");
    assert_eq!(
        canvases.canvas(c1.id).await.expect("canvas").as_ref(),
        Some(&c1)
    );
}

/// A canvas with a taken id is a `Conflict`.
pub async fn create_canvas_with_a_taken_id_is_a_conflict(canvases: &dyn CanvasStore) {
    let c1 = first(canvases).await;
    assert!(
        matches!(
            canvases
                .create_canvas(
                    NewCanvas {
                        id: c1.id,
                        ..new_canvas(c1.project_id, "Again")
                    },
                    b"x",
                    &json!({}),
                )
                .await,
            Err(StorageError::Conflict(_))
        ),
        "create_canvas with a taken id is a Conflict"
    );
}

/// A new canvas loads as its initial state with an empty log.
pub async fn the_initial_state_is_the_first_snapshot(canvases: &dyn CanvasStore) {
    let id = first(canvases).await.id;
    let doc = load(canvases, id).await;
    assert_eq!(
        doc.snapshot, b"state-0",
        "the initial state is the first snapshot"
    );
    assert_eq!(doc.snapshot_seq, 0);
    assert!(doc.updates.is_empty());
}

/// Appends get sequence numbers 1, 2, ... (an empty one returns the last) and load in order.
pub async fn appends_number_updates_in_order(canvases: &dyn CanvasStore) {
    let id = first(canvases).await.id;
    assert_eq!(append(canvases, id, &[]).await, 0, "empty append");
    assert_eq!(append(canvases, id, &[u(1)]).await, 1);
    assert_eq!(append(canvases, id, &[u(2), u(3)]).await, 3);
    assert_eq!(append(canvases, id, &[]).await, 3, "empty append");
    let doc = load(canvases, id).await;
    assert_eq!(doc.snapshot, b"state-0");
    assert_eq!(
        doc.updates,
        vec![(1, u(1)), (2, u(2)), (3, u(3))],
        "log in order"
    );
}

/// A checkpoint replaces the snapshot, drops the entries it covers, takes the name and
/// description from its view and bumps `updated_at`.
pub async fn checkpoint_replaces_the_snapshot_and_drops_covered_entries(
    canvases: &dyn CanvasStore,
) {
    let c1 = checkpointed(canvases).await;
    let doc = load(canvases, c1.id).await;
    assert_eq!(
        (doc.snapshot.as_slice(), doc.snapshot_seq),
        (&b"state-2"[..], 2)
    );
    assert_eq!(
        doc.updates,
        vec![(3, u(3))],
        "entries up to 2 are covered by the snapshot"
    );
    let rec = record(canvases, c1.id).await;
    assert_eq!(rec.name, "Renamed", "name comes from the checkpoint's view");
    assert_eq!(rec.description.as_deref(), Some("new text"));
    assert!(
        rec.updated_at > c1.updated_at,
        "checkpoint bumps updated_at"
    );
    assert_eq!(rec.created_at, c1.created_at);
}

/// Sequence numbers go on after a checkpoint.
pub async fn appends_continue_after_a_checkpoint(canvases: &dyn CanvasStore) {
    let id = checkpointed(canvases).await.id;
    assert_eq!(append(canvases, id, &[u(4)]).await, 4);
}

/// A checkpoint older than the snapshot keeps the snapshot, drops nothing, renames nothing.
pub async fn a_stale_checkpoint_changes_nothing(canvases: &dyn CanvasStore) {
    let id = checkpointed(canvases).await.id;
    append(canvases, id, &[u(4)]).await;
    canvases
        .checkpoint(id, b"state-1", 1, &json!({"name": "Stale"}))
        .await
        .expect("stale checkpoint is Ok");
    let doc = load(canvases, id).await;
    assert_eq!(
        (doc.snapshot.as_slice(), doc.snapshot_seq),
        (&b"state-2"[..], 2),
        "kept"
    );
    assert_eq!(
        doc.updates,
        vec![(3, u(3)), (4, u(4))],
        "stale checkpoint drops nothing"
    );
    let rec = record(canvases, id).await;
    assert_eq!(rec.name, "Renamed", "a stale checkpoint does not rename");
}

/// A checkpoint covering the whole log leaves it empty, appends continue from the
/// snapshot's number, and a view without name and description keeps them.
pub async fn a_checkpoint_of_the_whole_log_keeps_what_its_view_lacks(canvases: &dyn CanvasStore) {
    let id = checkpointed(canvases).await.id;
    append(canvases, id, &[u(4)]).await;
    canvases
        .checkpoint(id, b"state-4", 4, &json!({"blocks": []}))
        .await
        .expect("checkpoint");
    let doc = load(canvases, id).await;
    assert_eq!(
        (doc.snapshot.as_slice(), doc.snapshot_seq),
        (&b"state-4"[..], 4)
    );
    assert!(doc.updates.is_empty(), "the whole log is covered");
    let rec = record(canvases, id).await;
    assert_eq!(
        (rec.name.as_str(), rec.description.as_deref()),
        ("Renamed", Some("new text"))
    );
    assert_eq!(append(canvases, id, &[]).await, 4);
    assert_eq!(append(canvases, id, &[u(5)]).await, 5);
}

/// Concurrent appends get strictly increasing numbers without gaps, each batch a
/// consecutive range in order, and nothing is lost.
pub async fn concurrent_appends_get_consecutive_ranges(canvases: &dyn CanvasStore) {
    let id = first(canvases).await.id;
    append(canvases, id, &[u(1), u(2), u(3), u(4), u(5)]).await;
    canvases
        .checkpoint(id, b"state-4", 4, &json!({"blocks": []}))
        .await
        .expect("checkpoint");
    let batch = |n: u8| (0..5).map(|i| vec![n, i]).collect::<Vec<_>>();
    let (b1, b2, b3, b4) = (batch(1), batch(2), batch(3), batch(4));
    let lasts = tokio::join!(
        canvases.append_updates(id, &b1),
        canvases.append_updates(id, &b2),
        canvases.append_updates(id, &b3),
        canvases.append_updates(id, &b4),
    );
    let mut lasts = [lasts.0, lasts.1, lasts.2, lasts.3].map(|r| r.expect("concurrent append"));
    lasts.sort_unstable();
    assert_eq!(
        lasts,
        [10, 15, 20, 25],
        "each batch gets its own consecutive range"
    );
    let doc = load(canvases, id).await;
    let seqs: Vec<i64> = doc.updates.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (5..=25).collect::<Vec<_>>(), "contiguous, in order");
    for chunk in doc.updates[1..].chunks(5) {
        let first = chunk[0].1[0];
        let expected: Vec<Vec<u8>> = batch(first);
        let got: Vec<Vec<u8>> = chunk.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(
            got, expected,
            "a batch's updates are consecutive and in order"
        );
    }
}

/// A project's canvases are listed newest first, and only its own.
pub async fn canvases_of_a_project_come_newest_first(canvases: &dyn CanvasStore) {
    let c1 = first(canvases).await;
    // A TICK later, so the second canvas's `created_at` is later.
    tokio::time::sleep(TICK).await;
    let c2 = canvases
        .create_canvas(new_canvas(c1.project_id, "Second"), b"s", &json!({}))
        .await
        .expect("create_canvas");
    canvases
        .create_canvas(new_canvas(Uuid::new_v4(), "Elsewhere"), b"s", &json!({}))
        .await
        .expect("create_canvas");
    let listed = canvases
        .canvases_in_project(c1.project_id)
        .await
        .expect("canvases_in_project");
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c2.id, c1.id]
    );
}

/// An unknown canvas is `None` to read and `NotFound` to append to or checkpoint.
pub async fn unknown_canvases_are_none_or_not_found(canvases: &dyn CanvasStore) {
    let nobody = Uuid::new_v4();
    assert_eq!(canvases.canvas(nobody).await.expect("canvas"), None);
    assert_eq!(
        canvases.load_document(nobody).await.expect("load_document"),
        None
    );
    assert_not_found(
        canvases.append_updates(nobody, &[u(1)]).await,
        "append to unknown",
    );
    assert_not_found(
        canvases.append_updates(nobody, &[]).await,
        "empty append to unknown",
    );
    assert_not_found(
        canvases.checkpoint(nobody, b"s", 1, &json!({})).await,
        "checkpoint of unknown",
    );
}

/// Deletion takes the record and its log (`true` once, then `false`), and the canvas leaves
/// its project's list.
pub async fn delete_takes_the_record_and_its_log(canvases: &dyn CanvasStore) {
    let c1 = first(canvases).await;
    let id = c1.id;
    append(canvases, id, &[u(1), u(2)]).await;
    let c2 = canvases
        .create_canvas(new_canvas(c1.project_id, "Second"), b"s", &json!({}))
        .await
        .expect("create_canvas");
    assert!(canvases.delete_canvas(id).await.expect("delete_canvas"));
    assert!(
        !canvases.delete_canvas(id).await.expect("delete_canvas"),
        "already gone"
    );
    assert_eq!(canvases.canvas(id).await.expect("canvas"), None);
    assert_eq!(
        canvases.load_document(id).await.expect("load_document"),
        None
    );
    assert_not_found(
        canvases.append_updates(id, &[u(1)]).await,
        "append to a deleted canvas",
    );
    let listed = canvases
        .canvases_in_project(c1.project_id)
        .await
        .expect("canvases_in_project");
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c2.id]);
}

/// The id of a deleted canvas can be used again, with a fresh log.
pub async fn a_deleted_canvas_id_can_be_used_again_with_a_fresh_log(canvases: &dyn CanvasStore) {
    let c1 = first(canvases).await;
    let id = c1.id;
    append(canvases, id, &[u(1), u(2)]).await;
    assert!(canvases.delete_canvas(id).await.expect("delete_canvas"));
    canvases
        .create_canvas(
            NewCanvas {
                id,
                ..new_canvas(c1.project_id, "Reborn")
            },
            b"r",
            &json!({}),
        )
        .await
        .expect("create_canvas after delete");
    let doc = load(canvases, id).await;
    assert_eq!((doc.snapshot.as_slice(), doc.snapshot_seq), (&b"r"[..], 0));
    assert!(
        doc.updates.is_empty(),
        "the old log went with the old canvas"
    );
}

/// A link with id `id` and a token made from it, created now (to the millisecond, which
/// every backend keeps).
fn link(id: &str) -> PublicLink {
    let now = chrono::Utc::now();
    PublicLink {
        id: id.into(),
        token: format!("secret-of-{id}"),
        created_at: chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now),
    }
}

/// A canvas has no link until one is set; setting again replaces it; `None` clears it; an
/// unknown canvas has none and cannot get one.
pub async fn a_public_link_is_kept_replaced_and_cleared(canvases: &dyn CanvasStore) {
    let c1 = first(canvases).await;
    let other = first(canvases).await;
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        None
    );
    let one = link("one");
    canvases
        .set_public_link(c1.id, Some(&one))
        .await
        .expect("set_public_link");
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        Some(one)
    );
    assert_eq!(
        canvases.public_link(other.id).await.expect("public_link"),
        None,
        "another canvas is untouched"
    );
    let two = link("two");
    canvases
        .set_public_link(c1.id, Some(&two))
        .await
        .expect("replace");
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        Some(two)
    );
    canvases.set_public_link(c1.id, None).await.expect("clear");
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        None
    );

    let nobody = Uuid::new_v4();
    assert_eq!(
        canvases.public_link(nobody).await.expect("public_link"),
        None
    );
    assert_not_found(
        canvases.set_public_link(nobody, Some(&link("x"))).await,
        "a link for an unknown canvas",
    );
}

/// Checkpoints (whose views carry `sharing.public_link`, the id) leave the stored link as it
/// is; deleting the canvas deletes it, and a canvas made again with the same id has none.
pub async fn a_public_link_survives_checkpoints_and_goes_with_its_canvas(
    canvases: &dyn CanvasStore,
) {
    let c1 = first(canvases).await;
    let kept = link("kept");
    canvases
        .set_public_link(c1.id, Some(&kept))
        .await
        .expect("set_public_link");
    append(canvases, c1.id, &[u(1)]).await;
    let view = json!({"name": "First", "sharing": {"public_link": "kept"},
        "public_link_secret": null, "blocks": []});
    canvases
        .checkpoint(c1.id, b"state-1", 1, &view)
        .await
        .expect("checkpoint");
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        Some(kept)
    );
    assert!(canvases.delete_canvas(c1.id).await.expect("delete_canvas"));
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        None
    );
    canvases
        .create_canvas(
            NewCanvas {
                id: c1.id,
                ..new_canvas(c1.project_id, "Reborn")
            },
            b"r",
            &json!({}),
        )
        .await
        .expect("create_canvas after delete");
    assert_eq!(
        canvases.public_link(c1.id).await.expect("public_link"),
        None
    );
}
