//! [`InteractionStore`]: views, favorites and their counts, per user and per canvas.

use crate::{CanvasStore, InteractionStore, Interactions, NewCanvas};
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __interaction_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx interactions interaction_store [
            a_new_canvas_has_no_views,
            views_are_counted_per_canvas,
            a_view_of_an_unknown_canvas_creates_nothing,
            set_favorite_says_whether_anything_changed,
            favorites_come_most_recently_marked_first,
            unfavorite_updates_the_count_and_the_list,
            forget_canvas_drops_its_counters_and_favorites,
        ] }
    };
}

/// Every case at once.
pub async fn all(canvases: &dyn CanvasStore, interactions: &dyn InteractionStore) {
    crate::__interaction_cases!(__join_cases!(canvases, interactions));
}

async fn new_canvas(canvases: &dyn CanvasStore) -> Uuid {
    let new = NewCanvas {
        id: Uuid::new_v4(),
        project_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        name: "Counted".into(),
        description: None,
    };
    let view = json!({"name": "Counted", "blocks": []});
    canvases
        .create_canvas(new, b"state", &view)
        .await
        .expect("create_canvas")
        .id
}

async fn counters(interactions: &dyn InteractionStore, canvas: Uuid) -> Interactions {
    interactions
        .interactions(canvas)
        .await
        .expect("interactions")
}

async fn favorite(interactions: &dyn InteractionStore, user: Uuid, canvas: Uuid, on: bool) -> bool {
    interactions
        .set_favorite(user, canvas, on)
        .await
        .expect("set_favorite")
}

/// Two canvases `a` and `b`, `a` viewed twice; `u1` marks `a`, `u2` marks `a`, `u1` marks `b`.
async fn marked(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) -> (Uuid, Uuid, Uuid, Uuid) {
    let (a, b) = (new_canvas(canvases).await, new_canvas(canvases).await);
    interactions.record_view(a).await.expect("record_view");
    interactions.record_view(a).await.expect("record_view");
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    for (user, canvas) in [(u1, a), (u2, a), (u1, b)] {
        assert!(favorite(interactions, user, canvas, true).await, "favorite");
    }
    (a, b, u1, u2)
}

/// A new canvas has no views and no favorites.
pub async fn a_new_canvas_has_no_views(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let a = new_canvas(canvases).await;
    let fresh = counters(interactions, a).await;
    assert_eq!(fresh, Interactions::default(), "a new canvas has no views");
}

/// Each view counts one and sets `last_viewed_at`, on that canvas only.
pub async fn views_are_counted_per_canvas(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let (a, b) = (new_canvas(canvases).await, new_canvas(canvases).await);
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    interactions.record_view(a).await.expect("record_view");
    interactions.record_view(a).await.expect("record_view");
    let counted = counters(interactions, a).await;
    assert_eq!(counted.views, 2);
    assert!(counted.last_viewed_at.is_some_and(|t| t >= started));
    assert_eq!(counters(interactions, b).await.views, 0, "per canvas");
    // A batch adds each canvas's count at once; unknown canvases in it are skipped.
    interactions
        .record_views(&[(a, 3), (Uuid::new_v4(), 2), (b, 1)])
        .await
        .expect("record_views");
    assert_eq!(counters(interactions, a).await.views, 5, "batched");
    assert_eq!(counters(interactions, b).await.views, 1, "batched");
    interactions.record_views(&[]).await.expect("empty batch");
}

/// A view of an unknown canvas is not an error and creates nothing.
pub async fn a_view_of_an_unknown_canvas_creates_nothing(
    _canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let ghost = Uuid::new_v4();
    interactions
        .record_view(ghost)
        .await
        .expect("record_view of an unknown canvas");
    assert_eq!(counters(interactions, ghost).await.views, 0);
}

/// `set_favorite` is `true` when it changed something (marking twice is not; nor is
/// marking an unknown canvas), keeps `favorites_count` in step and leaves the views alone.
pub async fn set_favorite_says_whether_anything_changed(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let (a, b) = (new_canvas(canvases).await, new_canvas(canvases).await);
    interactions.record_view(a).await.expect("record_view");
    interactions.record_view(a).await.expect("record_view");
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(favorite(interactions, u1, a, true).await);
    assert!(!favorite(interactions, u1, a, true).await, "idempotent");
    assert!(favorite(interactions, u2, a, true).await);
    assert!(favorite(interactions, u1, b, true).await);
    assert!(
        !favorite(interactions, u1, Uuid::new_v4(), true).await,
        "unknown canvas"
    );
    assert_eq!(counters(interactions, a).await.favorites_count, 2);
    assert_eq!(counters(interactions, a).await.views, 2, "views kept");
}

/// `is_favorite` is per user and canvas; `favorites` lists the most recently marked first.
pub async fn favorites_come_most_recently_marked_first(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let (a, b, u1, u2) = marked(canvases, interactions).await;
    assert!(interactions.is_favorite(u1, a).await.expect("is_favorite"));
    assert!(!interactions.is_favorite(u2, b).await.expect("is_favorite"));
    assert_eq!(
        interactions.favorites(u1).await.expect("favorites"),
        vec![b, a],
        "most recently marked first"
    );
}

/// Unmarking is `true` once, lowers the count and leaves the list.
pub async fn unfavorite_updates_the_count_and_the_list(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let (a, b, u1, _) = marked(canvases, interactions).await;
    assert!(favorite(interactions, u1, a, false).await, "unfavorite");
    assert!(!favorite(interactions, u1, a, false).await, "again");
    assert_eq!(counters(interactions, a).await.favorites_count, 1);
    assert_eq!(
        interactions.favorites(u1).await.expect("favorites"),
        vec![b]
    );
}

/// `forget_canvas` of a deleted canvas drops its counters and everyone's favorite of it.
pub async fn forget_canvas_drops_its_counters_and_favorites(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let (a, b, u1, u2) = marked(canvases, interactions).await;
    canvases.delete_canvas(a).await.expect("delete_canvas");
    interactions.forget_canvas(a).await.expect("forget_canvas");
    assert_eq!(
        interactions.favorites(u2).await.expect("favorites"),
        Vec::<Uuid>::new()
    );
    assert_eq!(counters(interactions, a).await, Interactions::default());
    assert_eq!(
        interactions.favorites(u1).await.expect("favorites"),
        vec![b],
        "the other canvas's favorite stays"
    );
}
