//! [`PresenceStore`]: put, refresh and remove; entries older than the reader's `ttl` are not
//! returned; several users, sorted by id; canvases independent; active users are the union
//! over nodes and a node's empty list clears its part.

use super::unique;
use crate::{PresenceEntry, PresenceStore};
use chrono::{TimeDelta, Utc};
use futures_util::future::join_all;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __presence_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx presence presence_store [
            a_fresh_canvas_has_nobody,
            put_keeps_any_json_and_lists_by_user_id,
            a_refresh_replaces_the_entry,
            canvases_are_independent,
            entries_older_than_the_readers_ttl_are_not_returned,
            a_stale_entry_stays_gone_but_its_user_can_return,
            remove_drops_only_that_user_on_that_canvas,
            concurrent_puts_lose_nothing,
            active_users_are_the_sorted_union_over_nodes,
            a_nodes_new_list_replaces_its_old_one,
            an_empty_list_clears_only_that_nodes_part,
            active_users_and_presence_are_separate_records,
        ] }
    };
}

/// Every case at once.
pub async fn all(presence: &dyn PresenceStore) {
    crate::__presence_cases!(__join_cases!(presence));
}

/// The TTL writers and readers use unless a case says otherwise.
const TTL: Duration = Duration::from_secs(300);

/// A presence entry for `user_id` seen `age` ago, with a cursor and selection naming `tag`.
fn presence_entry(user_id: Uuid, tag: &str, age: TimeDelta) -> PresenceEntry {
    PresenceEntry {
        user_id,
        username: format!("user {tag}"),
        cursor: json!({"x": 1.5, "y": -2, "block": tag}),
        selection: json!([tag, {"nested": [1, 2, 3]}]),
        last_seen: Utc::now() - age,
    }
}

async fn get(presence: &dyn PresenceStore, canvas: Uuid, ttl: Duration) -> Vec<PresenceEntry> {
    presence.presence(canvas, ttl).await.expect("presence")
}

async fn put(presence: &dyn PresenceStore, canvas: Uuid, entry: &PresenceEntry) {
    presence
        .put_presence(canvas, entry, TTL)
        .await
        .expect("put");
}

async fn active(presence: &dyn PresenceStore, canvas: Uuid) -> Vec<Uuid> {
    presence.active_users(canvas).await.expect("active_users")
}

async fn set_active(presence: &dyn PresenceStore, canvas: Uuid, node: &str, users: &[Uuid]) {
    presence
        .set_active_users(canvas, node, users)
        .await
        .expect("set_active_users");
}

/// Sorted by user id, as `presence` lists them.
fn by_user(mut entries: Vec<PresenceEntry>) -> Vec<PresenceEntry> {
    entries.sort_by_key(|e| e.user_id);
    entries
}

/// Two users `a` and `b` on a fresh canvas, `b` with null cursor and selection; the canvas
/// and both entries.
async fn two_users(presence: &dyn PresenceStore) -> (Uuid, PresenceEntry, PresenceEntry) {
    let canvas = Uuid::new_v4();
    let ea = presence_entry(Uuid::new_v4(), "a", TimeDelta::zero());
    put(presence, canvas, &ea).await;
    let eb = PresenceEntry {
        cursor: serde_json::Value::Null,
        selection: serde_json::Value::Null,
        ..presence_entry(Uuid::new_v4(), "b", TimeDelta::zero())
    };
    put(presence, canvas, &eb).await;
    (canvas, ea, eb)
}

/// Three sorted user ids.
fn three_users() -> [Uuid; 3] {
    let mut users = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    users.sort();
    users
}

/// A canvas nobody wrote to has no entries and no active users.
pub async fn a_fresh_canvas_has_nobody(presence: &dyn PresenceStore) {
    let canvas = Uuid::new_v4();
    assert!(
        get(presence, canvas, TTL).await.is_empty(),
        "a fresh canvas has nobody"
    );
    assert!(active(presence, canvas).await.is_empty());
}

/// What was put comes back, with any JSON as cursor and selection (null too), by user id.
pub async fn put_keeps_any_json_and_lists_by_user_id(presence: &dyn PresenceStore) {
    let canvas = Uuid::new_v4();
    let ea = presence_entry(Uuid::new_v4(), "a", TimeDelta::zero());
    put(presence, canvas, &ea).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        vec![ea.clone()],
        "what was put"
    );
    let eb = PresenceEntry {
        cursor: serde_json::Value::Null,
        selection: serde_json::Value::Null,
        ..presence_entry(Uuid::new_v4(), "b", TimeDelta::zero())
    };
    put(presence, canvas, &eb).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea, eb]),
        "both users, by user id"
    );
}

/// A put for a user already there replaces their entry.
pub async fn a_refresh_replaces_the_entry(presence: &dyn PresenceStore) {
    let (canvas, ea, eb) = two_users(presence).await;
    let ea2 = PresenceEntry {
        cursor: json!({"x": 99}),
        ..presence_entry(ea.user_id, "a2", TimeDelta::zero())
    };
    put(presence, canvas, &ea2).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea2, eb]),
        "a refresh replaces, never adds"
    );
}

/// Another canvas sees nothing of this one's, and the same user there changes nothing here.
pub async fn canvases_are_independent(presence: &dyn PresenceStore) {
    let (canvas, ea, eb) = two_users(presence).await;
    let other_canvas = Uuid::new_v4();
    assert!(
        get(presence, other_canvas, TTL).await.is_empty(),
        "another canvas sees nothing"
    );
    let ea_elsewhere = presence_entry(ea.user_id, "elsewhere", TimeDelta::zero());
    put(presence, other_canvas, &ea_elsewhere).await;
    assert_eq!(get(presence, other_canvas, TTL).await, vec![ea_elsewhere]);
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea, eb]),
        "the same user elsewhere changes nothing here"
    );
}

/// Entries last seen longer ago than the reader's `ttl` are not returned.
pub async fn entries_older_than_the_readers_ttl_are_not_returned(presence: &dyn PresenceStore) {
    let (canvas, ea, eb) = two_users(presence).await;
    let old = presence_entry(Uuid::new_v4(), "old", TimeDelta::minutes(10));
    put(presence, canvas, &old).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea, eb]),
        "an entry last seen 10 minutes ago is gone with a 5 minute ttl"
    );
    let recent = presence_entry(Uuid::new_v4(), "recent", TimeDelta::seconds(30));
    put(presence, canvas, &recent).await;
    assert!(
        get(presence, canvas, TTL).await.contains(&recent),
        "seen 30 s ago is within 5 minutes"
    );
    assert!(
        !get(presence, canvas, Duration::from_secs(10))
            .await
            .contains(&recent),
        "seen 30 s ago is not within 10 s"
    );
}

/// A stale entry does not come back when others are written, but its user can return.
pub async fn a_stale_entry_stays_gone_but_its_user_can_return(presence: &dyn PresenceStore) {
    let (canvas, ..) = two_users(presence).await;
    let c = Uuid::new_v4();
    put(
        presence,
        canvas,
        &presence_entry(c, "old", TimeDelta::minutes(10)),
    )
    .await;
    put(
        presence,
        canvas,
        &presence_entry(Uuid::new_v4(), "x", TimeDelta::zero()),
    )
    .await;
    assert!(
        !get(presence, canvas, TTL)
            .await
            .iter()
            .any(|e| e.user_id == c)
    );
    let back = presence_entry(c, "back", TimeDelta::zero());
    put(presence, canvas, &back).await;
    assert!(
        get(presence, canvas, TTL).await.contains(&back),
        "a returning user is there again"
    );
}

/// Removal takes only that user, only on that canvas; removing twice or from an unknown
/// canvas is a no-op; once everyone left the canvas is empty.
pub async fn remove_drops_only_that_user_on_that_canvas(presence: &dyn PresenceStore) {
    let (canvas, ea, eb) = two_users(presence).await;
    let (a, b) = (ea.user_id, eb.user_id);
    let other_canvas = Uuid::new_v4();
    let ea_elsewhere = presence_entry(a, "elsewhere", TimeDelta::zero());
    put(presence, other_canvas, &ea_elsewhere).await;
    presence.remove_presence(canvas, a).await.expect("remove");
    let now_there: Vec<Uuid> = get(presence, canvas, TTL)
        .await
        .iter()
        .map(|e| e.user_id)
        .collect();
    assert!(!now_there.contains(&a), "removed");
    assert!(now_there.contains(&b), "others stay");
    assert_eq!(
        get(presence, other_canvas, TTL).await,
        vec![ea_elsewhere],
        "removal is per canvas"
    );
    presence
        .remove_presence(canvas, a)
        .await
        .expect("removing twice is a no-op");
    presence
        .remove_presence(Uuid::new_v4(), Uuid::new_v4())
        .await
        .expect("removing from an unknown canvas is a no-op");
    for user in now_there {
        presence
            .remove_presence(canvas, user)
            .await
            .expect("remove");
    }
    assert!(get(presence, canvas, TTL).await.is_empty(), "everyone left");
}

/// Concurrent writers (several server nodes) lose nothing.
pub async fn concurrent_puts_lose_nothing(presence: &dyn PresenceStore) {
    let canvas = Uuid::new_v4();
    let many: Vec<PresenceEntry> = (0..8)
        .map(|i| presence_entry(Uuid::new_v4(), &format!("m{i}"), TimeDelta::zero()))
        .collect();
    let puts = many.iter().map(|e| presence.put_presence(canvas, e, TTL));
    for result in join_all(puts).await {
        result.expect("concurrent put");
    }
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(many),
        "every concurrent put landed"
    );
}

/// Active users are the union of the nodes' lists, sorted, without duplicates, per canvas.
pub async fn active_users_are_the_sorted_union_over_nodes(presence: &dyn PresenceStore) {
    let (canvas, other_canvas) = (Uuid::new_v4(), Uuid::new_v4());
    let (node1, node2) = (unique("node-"), unique("node-"));
    let [u1, u2, u3] = three_users();
    set_active(presence, canvas, &node1, &[u2, u1]).await;
    assert_eq!(active(presence, canvas).await, vec![u1, u2], "sorted");
    set_active(presence, canvas, &node2, &[u3, u2]).await;
    assert_eq!(
        active(presence, canvas).await,
        vec![u1, u2, u3],
        "union over nodes"
    );
    assert!(
        active(presence, other_canvas).await.is_empty(),
        "another canvas has no active users"
    );
    set_active(presence, other_canvas, &node1, &[u3]).await;
    assert_eq!(active(presence, other_canvas).await, vec![u3]);
}

/// A node's new list replaces its old one.
pub async fn a_nodes_new_list_replaces_its_old_one(presence: &dyn PresenceStore) {
    let canvas = Uuid::new_v4();
    let (node1, node2) = (unique("node-"), unique("node-"));
    let [u1, u2, u3] = three_users();
    set_active(presence, canvas, &node1, &[u2, u1]).await;
    set_active(presence, canvas, &node2, &[u3, u2]).await;
    set_active(presence, canvas, &node2, &[u3]).await;
    assert_eq!(active(presence, canvas).await, vec![u1, u2, u3]);
    set_active(presence, canvas, &node1, &[u1]).await;
    assert_eq!(
        active(presence, canvas).await,
        vec![u1, u3],
        "u2 left node1"
    );
}

/// An empty list clears that node's contribution only (twice is a no-op), on that canvas
/// only.
pub async fn an_empty_list_clears_only_that_nodes_part(presence: &dyn PresenceStore) {
    let (canvas, other_canvas) = (Uuid::new_v4(), Uuid::new_v4());
    let (node1, node2) = (unique("node-"), unique("node-"));
    let [u1, _, u3] = three_users();
    set_active(presence, canvas, &node1, &[u1]).await;
    set_active(presence, canvas, &node2, &[u3]).await;
    set_active(presence, other_canvas, &node1, &[u3]).await;
    set_active(presence, canvas, &node1, &[]).await;
    assert_eq!(active(presence, canvas).await, vec![u3]);
    presence
        .set_active_users(canvas, &node1, &[])
        .await
        .expect("clearing twice is a no-op");
    set_active(presence, canvas, &node2, &[]).await;
    assert!(
        active(presence, canvas).await.is_empty(),
        "every node cleared"
    );
    assert_eq!(
        active(presence, other_canvas).await,
        vec![u3],
        "other canvas kept"
    );
    set_active(presence, other_canvas, &node1, &[]).await;
    assert!(active(presence, other_canvas).await.is_empty());
}

/// Active users and presence entries are separate records: setting and clearing one leaves
/// the other.
pub async fn active_users_and_presence_are_separate_records(presence: &dyn PresenceStore) {
    let (canvas, ea, eb) = two_users(presence).await;
    let node = unique("node-");
    set_active(presence, canvas, &node, &[ea.user_id]).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea.clone(), eb.clone()]),
        "presence kept"
    );
    set_active(presence, canvas, &node, &[]).await;
    assert_eq!(
        get(presence, canvas, TTL).await,
        by_user(vec![ea, eb]),
        "presence kept"
    );
}
