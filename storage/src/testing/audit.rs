//! [`AuditStore`]: round trip of every field, filters, newest first, limit and offset.

use super::{TICK, new_user};
use crate::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry, User, UserStore};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __audit_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx audit audit_store [
            an_organizations_entries_come_newest_first_with_every_field,
            resource_type_filters,
            resource_id_filters_across_organizations,
            since_is_an_inclusive_lower_bound,
            until_is_an_exclusive_upper_bound,
            limit_and_offset_page_the_list,
            filters_combine_with_and,
        ] }
    };
}

/// Every case at once.
pub async fn all(users: &dyn UserStore, audit: &dyn AuditStore) {
    crate::__audit_cases!(__join_cases!(users, audit));
}

/// What [`recorded`] wrote: for u1's organization, in order, `project.create` (every field
/// set), then (after `mid`) `member.add` and `canvas.create`; then u2's `member.add` and a
/// system entry, all but `canvas.create` about `resource`.
struct Recorded {
    u1: User,
    org1: Uuid,
    org2: Uuid,
    resource: Uuid,
    first: NewAuditEntry,
    mid: DateTime<Utc>,
}

fn entry(user: &User, action: &str, kind: &str, id: Uuid) -> NewAuditEntry {
    NewAuditEntry {
        user_id: Some(user.id),
        organization_id: user.organization_id,
        action: action.into(),
        resource_type: kind.into(),
        resource_id: Some(id),
        changes: None,
        ip_address: None,
        user_agent: None,
    }
}

async fn recorded(users: &dyn UserStore, audit: &dyn AuditStore) -> Recorded {
    let u1 = new_user(users).await;
    let u2 = new_user(users).await;
    let org1 = u1.organization_id.expect("signup makes an organization");
    let org2 = u2.organization_id.expect("signup makes an organization");
    let resource = Uuid::new_v4();
    let first = NewAuditEntry {
        changes: Some(json!({"name": "x", "nested": {"list": [1, 2]}})),
        ip_address: Some("203.0.113.7".parse().expect("valid ip")),
        user_agent: Some("suite/1.0".into()),
        ..entry(&u1, "project.create", "project", resource)
    };
    // The TICKs make the entries' `created_at` (and `mid`) distinct: "newest first" and the
    // time filters are about those timestamps.
    audit.record(first.clone()).await.expect("record");
    tokio::time::sleep(TICK).await;
    let mid = Utc::now();
    tokio::time::sleep(TICK).await;
    audit
        .record(NewAuditEntry {
            ip_address: Some("2001:db8::1".parse().expect("valid ip")),
            ..entry(&u1, "member.add", "project", resource)
        })
        .await
        .expect("record");
    tokio::time::sleep(TICK).await;
    audit
        .record(entry(&u1, "canvas.create", "canvas", Uuid::new_v4()))
        .await
        .expect("record");
    tokio::time::sleep(TICK).await;
    audit
        .record(entry(&u2, "member.add", "project", resource))
        .await
        .expect("record");
    // A system entry: no user, no organization.
    audit
        .record(NewAuditEntry {
            action: "system.check".into(),
            resource_type: "project".into(),
            resource_id: Some(resource),
            ..NewAuditEntry::default()
        })
        .await
        .expect("record of a system entry");
    Recorded {
        u1,
        org1,
        org2,
        resource,
        first,
        mid,
    }
}

async fn list(audit: &dyn AuditStore, filter: AuditFilter) -> Vec<AuditEntry> {
    audit.list(filter).await.expect("list")
}

fn actions(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().map(|e| e.action.clone()).collect()
}

/// The organization filter lists its entries newest first, every field as recorded, each
/// with its own id.
pub async fn an_organizations_entries_come_newest_first_with_every_field(
    users: &dyn UserStore,
    audit: &dyn AuditStore,
) {
    let r = recorded(users, audit).await;
    let all1 = list(
        audit,
        AuditFilter {
            organization_id: Some(r.org1),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        actions(&all1),
        ["canvas.create", "member.add", "project.create"],
        "organization filter, newest first"
    );
    let e1 = &all1[2];
    assert_eq!(e1.user_id, Some(r.u1.id));
    assert_eq!(e1.organization_id, Some(r.org1));
    assert_eq!(e1.resource_type, "project");
    assert_eq!(e1.resource_id, Some(r.resource));
    assert_eq!(e1.changes, r.first.changes);
    assert_eq!(e1.ip_address, r.first.ip_address);
    assert_eq!(e1.user_agent, r.first.user_agent);
    assert!(e1.created_at <= r.mid, "created_at is when it was recorded");
    assert_eq!(
        all1[1].ip_address,
        Some("2001:db8::1".parse().expect("valid ip"))
    );
    let ids: BTreeSet<_> = all1.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3, "every entry has its own id");
}

/// `resource_type` keeps the entries about that kind of resource.
pub async fn resource_type_filters(users: &dyn UserStore, audit: &dyn AuditStore) {
    let r = recorded(users, audit).await;
    let by_type = list(
        audit,
        AuditFilter {
            organization_id: Some(r.org1),
            resource_type: Some("project".into()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        actions(&by_type),
        ["member.add", "project.create"],
        "resource_type filter"
    );
}

/// `resource_id` keeps the entries about that resource, from every organization and
/// system entries too.
pub async fn resource_id_filters_across_organizations(
    users: &dyn UserStore,
    audit: &dyn AuditStore,
) {
    let r = recorded(users, audit).await;
    let by_resource = list(
        audit,
        AuditFilter {
            resource_id: Some(r.resource),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        actions(&by_resource),
        ["system.check", "member.add", "member.add", "project.create"],
        "resource_id filter across organizations"
    );
    assert_eq!(by_resource[0].user_id, None);
    assert_eq!(by_resource[0].organization_id, None);
    assert_eq!(by_resource[1].organization_id, Some(r.org2));
}

/// `since` keeps the entries recorded at or after it.
pub async fn since_is_an_inclusive_lower_bound(users: &dyn UserStore, audit: &dyn AuditStore) {
    let r = recorded(users, audit).await;
    let since = list(
        audit,
        AuditFilter {
            organization_id: Some(r.org1),
            since: Some(r.mid),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        actions(&since),
        ["canvas.create", "member.add"],
        "since is inclusive lower bound"
    );
}

/// `until` keeps the entries recorded before it.
pub async fn until_is_an_exclusive_upper_bound(users: &dyn UserStore, audit: &dyn AuditStore) {
    let r = recorded(users, audit).await;
    let until = list(
        audit,
        AuditFilter {
            organization_id: Some(r.org1),
            until: Some(r.mid),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        actions(&until),
        ["project.create"],
        "until is an exclusive upper bound"
    );
}

/// `limit` and `offset` page the newest-first list; an offset past the end is empty.
pub async fn limit_and_offset_page_the_list(users: &dyn UserStore, audit: &dyn AuditStore) {
    let r = recorded(users, audit).await;
    let page = |limit: u32, offset: u32| {
        list(
            audit,
            AuditFilter {
                organization_id: Some(r.org1),
                limit: Some(limit),
                offset: Some(offset),
                ..AuditFilter::default()
            },
        )
    };
    assert_eq!(
        actions(&page(2, 0).await),
        ["canvas.create", "member.add"],
        "limit"
    );
    assert_eq!(actions(&page(2, 2).await), ["project.create"], "offset");
    assert_eq!(
        actions(&page(1, 1).await),
        ["member.add"],
        "limit and offset"
    );
    assert!(page(10, 3).await.is_empty(), "offset past the end");
}

/// Filters combine with AND: u2's organization has no canvas entries.
pub async fn filters_combine_with_and(users: &dyn UserStore, audit: &dyn AuditStore) {
    let r = recorded(users, audit).await;
    let none = list(
        audit,
        AuditFilter {
            organization_id: Some(r.org2),
            resource_type: Some("canvas".into()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert!(none.is_empty(), "filters combine with AND");
}
