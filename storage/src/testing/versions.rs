//! [`VersionStore`]: version 1 made with the canvas, numbers in order (also under
//! concurrency), the canvas record's `version` in step, snapshots round trip, unknown
//! canvases and versions, deletion with the canvas.

use super::{TICK, assert_not_found};
use crate::{CanvasStore, NewCanvas, NewVersion, VersionKind, VersionRecord, VersionStore};
use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __version_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx versions version_store [
            a_new_canvas_has_version_1,
            add_version_takes_the_next_number_and_bumps_the_canvas,
            concurrent_adds_get_distinct_consecutive_numbers,
            unknown_versions_and_canvases_are_none_or_not_found,
            versions_go_with_their_canvas,
        ] }
    };
}

/// Every case at once.
pub async fn all(canvases: &dyn CanvasStore, versions: &dyn VersionStore) {
    crate::__version_cases!(__join_cases!(canvases, versions));
}

fn view() -> serde_json::Value {
    json!({"name": "Versions", "blocks": [{"id": "b1", "content": {"n": 1.5}}]})
}

/// A fresh canvas of `owner` with the state `state-1`; its id.
async fn new_canvas(canvases: &dyn CanvasStore, owner: Uuid) -> Uuid {
    canvases
        .create_canvas(
            NewCanvas {
                id: Uuid::new_v4(),
                project_id: Uuid::new_v4(),
                owner_id: owner,
                name: "Versions".into(),
                description: None,
            },
            b"state-1",
            &view(),
        )
        .await
        .expect("create_canvas")
        .id
}

/// Adds version 2, "Before the review" (named, by `editor`, state `state-2`), a [`TICK`]
/// after version 1 so its `changed_at` is later.
async fn add_named(versions: &dyn VersionStore, id: Uuid, editor: Uuid) -> VersionRecord {
    tokio::time::sleep(TICK).await;
    versions
        .add_version(
            id,
            NewVersion {
                kind: VersionKind::Named,
                changes: "Before the review".into(),
                changed_by: editor,
            },
            b"state-2",
            &json!({"name": "Two"}),
        )
        .await
        .expect("add_version")
}

async fn canvas_version(canvases: &dyn CanvasStore, id: Uuid) -> Option<i64> {
    canvases
        .canvas(id)
        .await
        .expect("canvas")
        .map(|c| c.version)
}

/// `create_canvas` records version 1 ("Initial creation", by the owner) with its state and
/// view.
pub async fn a_new_canvas_has_version_1(canvases: &dyn CanvasStore, versions: &dyn VersionStore) {
    let owner = Uuid::new_v4();
    let id = new_canvas(canvases, owner).await;
    let list = versions.versions(id).await.expect("versions");
    assert_eq!(list.len(), 1, "a new canvas has version 1: {list:?}");
    let first = &list[0];
    assert_eq!(
        (
            first.version,
            first.kind,
            first.changes.as_str(),
            first.changed_by
        ),
        (1, VersionKind::Initial, "Initial creation", owner)
    );
    let stored = versions
        .version(id, 1)
        .await
        .expect("version")
        .expect("version 1 exists");
    assert_eq!(stored.state, b"state-1");
    assert_eq!(stored.view, view(), "the view round trips");
    assert_eq!(&stored.record, first);
}

/// `add_version` records the next number, later than the last, makes it the canvas
/// record's `version`, and reads back with its state.
pub async fn add_version_takes_the_next_number_and_bumps_the_canvas(
    canvases: &dyn CanvasStore,
    versions: &dyn VersionStore,
) {
    let editor = Uuid::new_v4();
    let id = new_canvas(canvases, Uuid::new_v4()).await;
    let first = versions.versions(id).await.expect("versions").remove(0);
    let named = add_named(versions, id, editor).await;
    assert_eq!((named.version, named.kind), (2, VersionKind::Named));
    assert_eq!(named.changed_by, editor);
    assert!(
        named.changed_at > first.changed_at,
        "later versions are later"
    );
    assert_eq!(
        canvas_version(canvases, id).await,
        Some(2),
        "the canvas record's version is the latest"
    );
    let got = versions.version(id, 2).await.expect("version").expect("v2");
    assert_eq!(
        (got.state.as_slice(), &got.record),
        (&b"state-2"[..], &named)
    );
}

/// Concurrent adds get distinct, consecutive numbers; the list is oldest first and the
/// canvas record has the last.
pub async fn concurrent_adds_get_distinct_consecutive_numbers(
    canvases: &dyn CanvasStore,
    versions: &dyn VersionStore,
) {
    let editor = Uuid::new_v4();
    let id = new_canvas(canvases, Uuid::new_v4()).await;
    add_named(versions, id, editor).await;
    let empty = json!({});
    let empty = &empty;
    let adds = (0..6).map(|i| {
        versions.add_version(
            id,
            NewVersion {
                kind: VersionKind::Auto,
                changes: format!("auto {i}"),
                changed_by: editor,
            },
            b"s",
            empty,
        )
    });
    let mut numbers: Vec<i64> = join_all(adds)
        .await
        .into_iter()
        .map(|r| r.expect("concurrent add_version").version)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (3..=8).collect::<Vec<_>>());
    let list = versions.versions(id).await.expect("versions");
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>(),
        "oldest first"
    );
    assert_eq!(canvas_version(canvases, id).await, Some(8));
    assert!(versions.version(id, 9).await.expect("version").is_none());
}

/// A version the canvas does not have, and every version of an unknown canvas, is `None`
/// (an empty list); adding to an unknown canvas is `NotFound`.
pub async fn unknown_versions_and_canvases_are_none_or_not_found(
    canvases: &dyn CanvasStore,
    versions: &dyn VersionStore,
) {
    let id = new_canvas(canvases, Uuid::new_v4()).await;
    assert!(versions.version(id, 2).await.expect("version").is_none());
    assert!(versions.version(id, 0).await.expect("version").is_none());
    let unknown = Uuid::new_v4();
    assert!(
        versions
            .versions(unknown)
            .await
            .expect("versions")
            .is_empty()
    );
    assert!(
        versions
            .version(unknown, 1)
            .await
            .expect("version")
            .is_none()
    );
    assert_not_found(
        versions
            .add_version(
                unknown,
                NewVersion {
                    kind: VersionKind::Named,
                    changes: "x".into(),
                    changed_by: Uuid::new_v4(),
                },
                b"s",
                &json!({}),
            )
            .await,
        "add_version to an unknown canvas",
    );
}

/// Deleting a canvas deletes its versions.
pub async fn versions_go_with_their_canvas(
    canvases: &dyn CanvasStore,
    versions: &dyn VersionStore,
) {
    let id = new_canvas(canvases, Uuid::new_v4()).await;
    add_named(versions, id, Uuid::new_v4()).await;
    assert!(canvases.delete_canvas(id).await.expect("delete"));
    assert!(versions.versions(id).await.expect("versions").is_empty());
    assert!(versions.version(id, 2).await.expect("version").is_none());
}
