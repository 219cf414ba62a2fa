//! [`WebhookStore`]: subscriptions (created, listed, deleted with their deliveries), the
//! outbox (a delivery claimed once, recorded only by its lease's holder, due again when the
//! lease ends), coalescing (one open delivery per key takes the later data) and pruning (ended
//! deliveries go with their attempts once old enough; pending ones stay).
//!
//! Claims take every due delivery of the store, so the cases of this suite never run at once
//! on one store ([`all`] runs them in turn; [`contract_tests!`](crate::contract_tests) gives
//! each its own store).

use super::{assert_not_found, new_user, unique};
use crate::{
    DeliveryOutcome, NewProject, NewWebhook, NewWebhookDelivery, Project, ProjectStore, User,
    UserStore, Webhook, WebhookAttempt, WebhookDelivery, WebhookStore,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __webhook_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx webhooks webhook_store [
            a_webhook_is_created_listed_and_deleted_with_its_deliveries,
            a_delivery_is_claimed_once_and_recorded_only_by_its_lease_holder,
            an_unrecorded_attempt_is_due_again_when_its_lease_ends,
            coalesced_deliveries_merge_until_the_first_attempt,
            ended_deliveries_are_pruned_with_their_attempts_and_pending_ones_stay,
        ] }
    };
}

/// Every case, one after the other (claims would take each other's deliveries).
pub async fn all(users: &dyn UserStore, projects: &dyn ProjectStore, hooks: &dyn WebhookStore) {
    // A claim takes any due delivery of the database, as a delivery worker does: two runs
    // of this suite at once on one database (`run_all` twice, concurrently) would take each
    // other's rows, so they take turns.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    a_webhook_is_created_listed_and_deleted_with_its_deliveries(users, projects, hooks).await;
    a_delivery_is_claimed_once_and_recorded_only_by_its_lease_holder(users, projects, hooks).await;
    an_unrecorded_attempt_is_due_again_when_its_lease_ends(users, projects, hooks).await;
    coalesced_deliveries_merge_until_the_first_attempt(users, projects, hooks).await;
    ended_deliveries_are_pruned_with_their_attempts_and_pending_ones_stay(users, projects, hooks)
        .await;
}

/// The deliveries of `mine` among `claimed`: a database shared with other cases may hold
/// their leased leftovers, which a claim takes too once due.
fn of(claimed: Vec<WebhookDelivery>, mine: &[Uuid]) -> Vec<WebhookDelivery> {
    claimed
        .into_iter()
        .filter(|d| mine.contains(&d.webhook_id))
        .collect()
}

async fn project(users: &dyn UserStore, projects: &dyn ProjectStore) -> (User, Project) {
    let owner = new_user(users).await;
    let project = projects
        .create_project(NewProject {
            name: unique("hooks-"),
            description: None,
            organization_id: owner.organization_id,
            owner_id: owner.id,
        })
        .await
        .expect("create_project");
    (owner, project)
}

async fn webhook(hooks: &dyn WebhookStore, project: Uuid, by: Uuid) -> Webhook {
    hooks
        .create_webhook(NewWebhook {
            id: Uuid::new_v4(),
            project_id: project,
            url: "https://example.com/hook".into(),
            events: vec!["canvas.created".into(), "canvas.updated".into()],
            secret_sealed: "v1:sealed".into(),
            secret_hint: "abcd".into(),
            created_by: Some(by),
        })
        .await
        .expect("create_webhook")
}

/// Now, to the millisecond (every backend keeps at least that).
fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

fn delivery(hook: Uuid, due: DateTime<Utc>, coalesce: Option<(&str, i64)>) -> NewWebhookDelivery {
    NewWebhookDelivery {
        id: Uuid::new_v4(),
        webhook_id: hook,
        event_id: Uuid::new_v4(),
        event_type: "canvas.updated".into(),
        data: json!({"version": coalesce.map_or(0, |(_, v)| v)}),
        created_at: now_ms(),
        next_attempt_at: due,
        expires_at: due + Duration::hours(24),
        coalesce: coalesce.map(|(k, v)| (k.to_owned(), v)),
    }
}

fn attempt(delivery: Uuid, n: i64, status: Option<i64>) -> WebhookAttempt {
    WebhookAttempt {
        delivery_id: delivery,
        attempt: n,
        attempted_at: now_ms(),
        status_code: status,
        error: status
            .filter(|s| *s >= 300)
            .map(|s| format!("answered {s}")),
        duration_ms: 12,
    }
}

/// A subscription is created, read, listed; deleting it deletes its deliveries and attempts;
/// one for an unknown project is `NotFound`.
pub async fn a_webhook_is_created_listed_and_deleted_with_its_deliveries(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    hooks: &dyn WebhookStore,
) {
    let (owner, p) = project(users, projects).await;
    let first = webhook(hooks, p.id, owner.id).await;
    let second = webhook(hooks, p.id, owner.id).await;
    assert_eq!(first.events, ["canvas.created", "canvas.updated"]);
    assert!(first.is_active);
    assert_eq!(
        hooks.webhook(first.id).await.expect("webhook").as_ref(),
        Some(&first)
    );
    let listed = hooks.webhooks_in_project(p.id).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first) && listed.contains(&second));

    let queued = delivery(first.id, now_ms() - Duration::seconds(1), None);
    hooks
        .enqueue_deliveries(std::slice::from_ref(&queued))
        .await
        .expect("enqueue");
    let lease = now_ms() + Duration::seconds(60);
    let claimed = hooks
        .claim_deliveries(now_ms(), lease, 100)
        .await
        .expect("claim");
    assert!(claimed.iter().any(|d| d.id == queued.id));
    assert!(
        hooks
            .finish_attempt(
                lease,
                &attempt(queued.id, 1, Some(500)),
                DeliveryOutcome::Failed
            )
            .await
            .expect("finish")
    );
    assert!(hooks.delete_webhook(first.id).await.expect("delete"));
    assert!(!hooks.delete_webhook(first.id).await.expect("delete again"));
    assert_eq!(hooks.webhook(first.id).await.expect("webhook"), None);
    assert!(
        hooks
            .deliveries_of_webhook(first.id, 10)
            .await
            .expect("deliveries")
            .is_empty()
    );
    assert!(
        hooks
            .attempts_of_webhook(first.id, 10)
            .await
            .expect("attempts")
            .is_empty()
    );
    assert_eq!(
        hooks.webhooks_in_project(p.id).await.expect("list"),
        [second]
    );

    let orphan = NewWebhook {
        id: Uuid::new_v4(),
        project_id: Uuid::new_v4(),
        url: "https://example.com".into(),
        events: vec!["canvas.created".into()],
        secret_sealed: "v1:x".into(),
        secret_hint: "x".into(),
        created_by: None,
    };
    assert_not_found(hooks.create_webhook(orphan).await, "an unknown project");
}

/// Of concurrent claims one gets a due delivery; a wrong lease records nothing; a retry is
/// due again at its time, counted, and its attempts are in the log.
pub async fn a_delivery_is_claimed_once_and_recorded_only_by_its_lease_holder(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    hooks: &dyn WebhookStore,
) {
    let (owner, p) = project(users, projects).await;
    let hook = webhook(hooks, p.id, owner.id).await;
    let now = now_ms();
    let due = delivery(hook.id, now - Duration::seconds(1), None);
    let later = delivery(hook.id, now + Duration::hours(1), None);
    hooks
        .enqueue_deliveries(&[due.clone(), later.clone()])
        .await
        .expect("enqueue");
    assert!(
        hooks
            .next_delivery_due()
            .await
            .expect("next")
            .is_some_and(|next| next <= due.next_attempt_at),
        "the due one is due"
    );
    let lease = now + Duration::seconds(40);
    let claims = (0..4).map(|_| hooks.claim_deliveries(now, lease, 1000));
    let won: Vec<_> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flat_map(|r| of(r.expect("claim"), &[hook.id]))
        .collect();
    assert_eq!(won.len(), 1, "one claim of four gets it: {won:?}");
    let claimed = &won[0];
    assert_eq!(claimed.id, due.id);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_until, Some(lease));
    assert_eq!(claimed.status, "pending");

    let other_lease = lease + Duration::seconds(1);
    assert!(
        !hooks
            .finish_attempt(
                other_lease,
                &attempt(due.id, 1, Some(200)),
                DeliveryOutcome::Delivered
            )
            .await
            .expect("finish"),
        "not the lease's holder"
    );
    let retry_at = now + Duration::seconds(5);
    assert!(
        hooks
            .finish_attempt(
                lease,
                &attempt(due.id, 1, Some(503)),
                DeliveryOutcome::Retry(retry_at)
            )
            .await
            .expect("finish")
    );
    assert!(
        !hooks
            .finish_attempt(
                lease,
                &attempt(due.id, 1, Some(200)),
                DeliveryOutcome::Delivered
            )
            .await
            .expect("finish twice"),
        "a lease records once"
    );
    assert!(
        of(
            hooks
                .claim_deliveries(now, lease, 1000)
                .await
                .expect("claim"),
            &[hook.id]
        )
        .is_empty(),
        "not due before its retry time"
    );
    let second_lease = retry_at + Duration::seconds(40);
    let again = of(
        hooks
            .claim_deliveries(retry_at, second_lease, 1000)
            .await
            .expect("claim"),
        &[hook.id],
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_status_code, Some(503));
    assert!(
        hooks
            .finish_attempt(
                second_lease,
                &attempt(due.id, 2, Some(204)),
                DeliveryOutcome::Delivered
            )
            .await
            .expect("finish")
    );
    let log = hooks.deliveries_of_webhook(hook.id, 10).await.expect("log");
    let done = log.iter().find(|d| d.id == due.id).expect("in the log");
    assert_eq!(done.status, "delivered");
    assert_eq!(done.attempts, 2);
    assert_eq!(done.lease_until, None);
    assert!(done.delivered_at.is_some());
    let attempts = hooks
        .attempts_of_webhook(hook.id, 10)
        .await
        .expect("attempts");
    let mut codes: Vec<(i64, Option<i64>)> = attempts
        .iter()
        .filter(|a| a.delivery_id == due.id)
        .map(|a| (a.attempt, a.status_code))
        .collect();
    codes.sort();
    assert_eq!(codes, [(1, Some(503)), (2, Some(204))]);
    // Other cases may leave leased rows in a shared database: look at this hook's own.
    let pending: Vec<Uuid> = hooks
        .deliveries_of_webhook(hook.id, 10)
        .await
        .expect("log")
        .iter()
        .filter(|d| d.status == "pending")
        .map(|d| d.id)
        .collect();
    assert_eq!(pending, [later.id], "only the later one is pending");
    assert!(
        hooks
            .next_delivery_due()
            .await
            .expect("next")
            .is_some_and(|next| next <= later.next_attempt_at),
        "the later one is due at the latest"
    );
}

/// A claim whose attempt is never recorded (the node died) is due again at its lease's end.
pub async fn an_unrecorded_attempt_is_due_again_when_its_lease_ends(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    hooks: &dyn WebhookStore,
) {
    let (owner, p) = project(users, projects).await;
    let hook = webhook(hooks, p.id, owner.id).await;
    let now = now_ms();
    let queued = delivery(hook.id, now, None);
    hooks
        .enqueue_deliveries(std::slice::from_ref(&queued))
        .await
        .expect("enqueue");
    let lease = now + Duration::seconds(30);
    let first = of(
        hooks
            .claim_deliveries(now, lease, 1000)
            .await
            .expect("claim"),
        &[hook.id],
    );
    assert_eq!(first.len(), 1);
    let before = now + Duration::seconds(29);
    assert!(
        of(
            hooks
                .claim_deliveries(before, before + Duration::seconds(30), 1000)
                .await
                .expect("claim"),
            &[hook.id]
        )
        .is_empty()
    );
    let after = lease + Duration::seconds(1);
    let second_lease = after + Duration::seconds(30);
    let second = of(
        hooks
            .claim_deliveries(after, second_lease, 1000)
            .await
            .expect("claim"),
        &[hook.id],
    );
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    assert!(
        !hooks
            .finish_attempt(
                lease,
                &attempt(queued.id, 1, Some(200)),
                DeliveryOutcome::Delivered
            )
            .await
            .expect("finish"),
        "the dead node's lease is over"
    );
    assert!(
        hooks
            .finish_attempt(
                second_lease,
                &attempt(queued.id, 2, Some(200)),
                DeliveryOutcome::Delivered
            )
            .await
            .expect("finish")
    );
}

/// Coalesced deliveries with one key make one row that takes the highest order's data,
/// until its first attempt; after that the next one opens a new row.
pub async fn coalesced_deliveries_merge_until_the_first_attempt(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    hooks: &dyn WebhookStore,
) {
    let (owner, p) = project(users, projects).await;
    let hook = webhook(hooks, p.id, owner.id).await;
    let other = webhook(hooks, p.id, owner.id).await;
    let due = now_ms() + Duration::seconds(10);
    for (key, seq) in [
        ("canvas-a", 3),
        ("canvas-a", 7),
        ("canvas-a", 5),
        ("canvas-b", 1),
    ] {
        hooks
            .enqueue_deliveries(&[
                delivery(hook.id, due, Some((key, seq))),
                delivery(other.id, due, Some((key, seq))),
            ])
            .await
            .expect("enqueue");
    }
    let log = hooks.deliveries_of_webhook(hook.id, 10).await.expect("log");
    let mut versions: Vec<i64> = log
        .iter()
        .map(|d| d.data["version"].as_i64().unwrap_or(-1))
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        [1, 7],
        "one row per key, with the highest order's data"
    );
    assert_eq!(
        hooks
            .deliveries_of_webhook(other.id, 10)
            .await
            .expect("log")
            .len(),
        2,
        "per subscription"
    );
    let claimed = of(
        hooks
            .claim_deliveries(due, due + Duration::seconds(30), 1000)
            .await
            .expect("claim"),
        &[hook.id, other.id],
    );
    assert_eq!(claimed.len(), 4);
    hooks
        .enqueue_deliveries(&[delivery(hook.id, due, Some(("canvas-a", 9)))])
        .await
        .expect("enqueue");
    let log = hooks.deliveries_of_webhook(hook.id, 10).await.expect("log");
    assert_eq!(log.len(), 3, "a claimed row takes no more changes");
    assert!(
        log.iter()
            .any(|d| d.data["version"] == 9 && d.attempts == 0)
    );
    assert!(
        log.iter()
            .any(|d| d.data["version"] == 7 && d.attempts == 1)
    );
}

/// Pruning removes the deliveries that ended before the cutoff (delivered or failed), with
/// their attempts, at most `limit` at a time; a pending delivery stays whatever its age, and
/// so do its attempts.
pub async fn ended_deliveries_are_pruned_with_their_attempts_and_pending_ones_stay(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    hooks: &dyn WebhookStore,
) {
    let (owner, p) = project(users, projects).await;
    let hook = webhook(hooks, p.id, owner.id).await;
    let now = now_ms();
    let [delivered, failed, retried] =
        std::array::from_fn(|_| delivery(hook.id, now - Duration::seconds(1), None));
    hooks
        .enqueue_deliveries(&[delivered.clone(), failed.clone(), retried.clone()])
        .await
        .expect("enqueue");
    let lease = now + Duration::seconds(40);
    let claimed = of(
        hooks
            .claim_deliveries(now, lease, 1000)
            .await
            .expect("claim"),
        &[hook.id],
    );
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    for (d, code, outcome) in [
        (&delivered, 200, DeliveryOutcome::Delivered),
        (&failed, 500, DeliveryOutcome::Failed),
        (
            &retried,
            503,
            DeliveryOutcome::Retry(now + Duration::hours(1)),
        ),
    ] {
        let recorded = hooks
            .finish_attempt(lease, &attempt(d.id, 1, Some(code)), outcome)
            .await
            .expect("finish");
        assert!(recorded);
    }
    let mine = |list: Vec<WebhookDelivery>| {
        let mut ids: Vec<Uuid> = list.into_iter().map(|d| d.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };

    // Ended a moment ago: an hour's retention keeps them.
    hooks
        .prune_deliveries(Utc::now() - Duration::hours(1), 1000)
        .await
        .expect("prune");
    assert_eq!(
        mine(hooks.deliveries_of_webhook(hook.id, 50).await.expect("log")),
        sorted(vec![delivered.id, failed.id, retried.id])
    );
    assert_eq!(
        hooks
            .attempts_of_webhook(hook.id, 50)
            .await
            .expect("attempts")
            .len(),
        3
    );

    // Past the cutoff: at most `limit` go per call, until none is left.
    let cutoff = Utc::now() + Duration::seconds(1);
    assert_eq!(
        hooks.prune_deliveries(cutoff, 1).await.expect("prune one"),
        1
    );
    let mut calls = 0;
    while hooks.prune_deliveries(cutoff, 100).await.expect("prune") > 0 {
        calls += 1;
        assert!(calls < 1000, "pruning ends");
    }
    let left = hooks.deliveries_of_webhook(hook.id, 50).await.expect("log");
    assert_eq!(
        mine(left.clone()),
        vec![retried.id],
        "the pending one stays"
    );
    assert_eq!(left[0].status, "pending");
    let attempts = hooks
        .attempts_of_webhook(hook.id, 50)
        .await
        .expect("attempts");
    assert_eq!(
        attempts.iter().map(|a| a.delivery_id).collect::<Vec<_>>(),
        vec![retried.id],
        "the pruned deliveries' attempts went with them"
    );
    // The subscription itself is untouched, and still deletes with what is left.
    assert!(hooks.delete_webhook(hook.id).await.expect("delete"));
}
