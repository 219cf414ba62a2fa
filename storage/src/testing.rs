//! One generic test suite per storage trait: every backend runs the same ones.
//!
//! Each suite is an `async fn` taking the store(s) it exercises as trait objects, checks the
//! trait's contract (as documented in the crate root) and panics with a message saying which
//! expectation failed. Suites only create records with fresh random names and ids, and only
//! look at what they created, so they can share one database and run concurrently (also
//! with each other: see [`run_all`]).
//!
//! ```no_run
//! # async fn example() -> canvas_storage::StorageResult<()> {
//! let dir = std::path::Path::new("/tmp/canvas-test");
//! let storage = canvas_storage::Storage::embedded(dir).await?;
//! canvas_storage::testing::run_all(&storage).await;
//! # Ok(())
//! # }
//! ```
//!
//! Suites that need users (projects, audit) take a [`UserStore`] as well, since those
//! records refer to real users and organizations in the relational backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a broken expectation panics with its message"
)]

use crate::{
    AuditFilter, AuditStore, CanvasStore, InteractionStore, Interactions, NewAuditEntry, NewCanvas,
    NewMember, NewProject, NewUser, NewVersion, PresenceEntry, PresenceStore, ProjectStore,
    RateLimiter, SessionStore, Storage, StorageError, Template, TemplateStore, User, UserStore,
    VersionKind, VersionStore,
};
use canvas_engine::Role;
use chrono::{SubsecRound, TimeDelta, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// Pause between writes whose order a check depends on ("newest first"): longer than the
/// coarsest timestamp resolution of any backend (milliseconds in MongoDB).
const TICK: Duration = Duration::from_millis(15);

/// Runs every suite against one [`Storage`], concurrently.
pub async fn run_all(storage: &Storage) {
    tokio::join!(
        user_store_suite(&*storage.users),
        session_store_suite(&*storage.sessions),
        project_store_suite(&*storage.users, &*storage.projects),
        audit_store_suite(&*storage.users, &*storage.audit),
        canvas_store_suite(&*storage.canvases),
        interaction_store_suite(&*storage.canvases, &*storage.interactions),
        template_store_suite(&*storage.templates),
        version_store_suite(&*storage.canvases, &*storage.versions),
        presence_store_suite(&*storage.presence),
        rate_limiter_suite(&*storage.rate_limits),
    );
}

/// A string unique to this call: `{prefix}{32 hex digits}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

/// Signs up a fresh user (unique email and username, a dummy password hash).
pub async fn new_user(users: &dyn UserStore) -> User {
    let name = unique("user_");
    users
        .create_user(NewUser {
            email: format!("{name}@example.com"),
            username: name,
            hashed_password: "$argon2id$dummy".into(),
        })
        .await
        .expect("create_user of a fresh user must succeed")
}

fn assert_conflict<T: std::fmt::Debug>(result: crate::StorageResult<T>, field: &str, what: &str) {
    match result {
        Err(StorageError::Conflict(f)) => {
            assert_eq!(f, field, "{what}: Conflict must name the field {field:?}")
        }
        other => panic!("{what}: expected Conflict({field:?}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::StorageResult<T>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::NotFound(_))),
        "{what}: expected NotFound, got {result:?}"
    );
}

/// [`UserStore`]: signup with an organization, lookups, case-insensitive email, conflicts,
/// last login.
pub async fn user_store_suite(users: &dyn UserStore) {
    let tag = Uuid::new_v4().simple().to_string();
    let email = format!("Alice.{tag}@Example.COM");
    let username = format!("Alice_{tag}");
    let before = Utc::now() - TimeDelta::seconds(1);
    let alice = users
        .create_user(NewUser {
            email: email.clone(),
            username: username.clone(),
            hashed_password: "$argon2id$alice".into(),
        })
        .await
        .expect("create_user");
    assert_eq!(alice.email, email, "email is stored as given");
    assert_eq!(alice.username, username);
    assert_eq!(
        alice.role, "admin",
        "the signing-up user is admin of their organization"
    );
    assert!(
        alice.organization_id.is_some(),
        "signup makes an organization"
    );
    assert_eq!(alice.last_login_at, None);
    assert!(alice.created_at >= before && alice.created_at <= Utc::now() + TimeDelta::seconds(1));

    let by_id = users.user_by_id(alice.id).await.expect("user_by_id");
    assert_eq!(
        by_id.as_ref(),
        Some(&alice),
        "user_by_id returns what create_user returned"
    );
    for variant in [email.clone(), email.to_lowercase(), email.to_uppercase()] {
        let (found, hash) = users
            .user_by_email(&variant)
            .await
            .expect("user_by_email")
            .unwrap_or_else(|| panic!("user_by_email({variant:?}) must find the user"));
        assert_eq!(found, alice, "user_by_email({variant:?})");
        assert_eq!(
            hash.as_deref(),
            Some("$argon2id$alice"),
            "the stored hash comes back"
        );
    }
    assert_eq!(
        users
            .user_by_email(&unique("nobody"))
            .await
            .expect("user_by_email"),
        None
    );
    assert_eq!(
        users.user_by_id(Uuid::new_v4()).await.expect("user_by_id"),
        None
    );

    // Conflicts: email compared case-insensitively, username exactly.
    let other_name = format!("other_{tag}");
    assert_conflict(
        users
            .create_user(NewUser {
                email: email.to_uppercase(),
                username: other_name.clone(),
                hashed_password: "x".into(),
            })
            .await,
        "email",
        "signup with a taken email in other case",
    );
    assert_conflict(
        users
            .create_user(NewUser {
                email: format!("other.{tag}@example.com"),
                username: username.clone(),
                hashed_password: "x".into(),
            })
            .await,
        "username",
        "signup with a taken username",
    );
    // The refused signups left nothing behind: the username of the first is still free.
    let other = users
        .create_user(NewUser {
            email: format!("other.{tag}@example.com"),
            username: other_name,
            hashed_password: "x".into(),
        })
        .await
        .expect("a refused signup must not reserve its username or email");
    assert_ne!(
        other.organization_id, alice.organization_id,
        "one organization per signup"
    );

    // Usernames that make the same slug still get organizations of their own.
    let a = users
        .create_user(NewUser {
            email: format!("slug1.{tag}@example.com"),
            username: format!("Slug.{tag}"),
            hashed_password: "x".into(),
        })
        .await
        .expect("create_user");
    let b = users
        .create_user(NewUser {
            email: format!("slug2.{tag}@example.com"),
            username: format!("slug-{tag}"),
            hashed_password: "x".into(),
        })
        .await
        .expect("usernames with the same slug must both sign up");
    assert_ne!(a.organization_id, b.organization_id);

    // Last login.
    users.record_login(alice.id).await.expect("record_login");
    let logged = users
        .user_by_id(alice.id)
        .await
        .expect("user_by_id")
        .expect("alice exists");
    let at = logged
        .last_login_at
        .expect("record_login sets last_login_at");
    assert!(
        (Utc::now() - at).abs() < TimeDelta::seconds(60),
        "last_login_at {at} must be about now"
    );
    assert_eq!(logged.created_at, alice.created_at);
    assert_not_found(
        users.record_login(Uuid::new_v4()).await,
        "record_login of an unknown user",
    );
}

/// [`SessionStore`]: token format, several sessions per user, logout of one, malformed and
/// unknown tokens, expiry.
pub async fn session_store_suite(sessions: &dyn SessionStore) {
    let hour = Duration::from_secs(3600);
    let user = Uuid::new_v4();
    let t1 = sessions
        .create_session(user, hour)
        .await
        .expect("create_session");
    let t2 = sessions
        .create_session(user, hour)
        .await
        .expect("create_session");
    assert_ne!(t1, t2, "every session gets its own token");
    for t in [&t1, &t2] {
        let (id, secret) = t.split_once('.').expect("token is {user_id}.{secret}");
        assert_eq!(id, user.to_string(), "token starts with the user id");
        assert!(secret.len() >= 32, "the secret is long: {secret:?}");
        assert_eq!(
            sessions.session_user(t).await.expect("session_user"),
            Some(user)
        );
    }

    let other_user = Uuid::new_v4();
    let t3 = sessions
        .create_session(other_user, hour)
        .await
        .expect("create_session");
    assert_eq!(
        sessions.session_user(&t3).await.expect("session_user"),
        Some(other_user)
    );

    // Logout ends only that session.
    sessions.delete_session(&t1).await.expect("delete_session");
    assert_eq!(
        sessions.session_user(&t1).await.expect("session_user"),
        None,
        "logged out"
    );
    assert_eq!(
        sessions.session_user(&t2).await.expect("session_user"),
        Some(user),
        "the user's other session stays"
    );
    assert_eq!(
        sessions.session_user(&t3).await.expect("session_user"),
        Some(other_user)
    );
    sessions
        .delete_session(&t1)
        .await
        .expect("deleting an ended session is a no-op");

    // Unknown, forged and malformed tokens are `None`, never errors.
    let (_, secret2) = t2.split_once('.').expect("token has a dot");
    let forged = [
        String::new(),
        "garbage".into(),
        ".".into(),
        user.to_string(),
        format!("{user}."),
        format!("{user}.{}", "A".repeat(43)),
        format!("not-a-uuid.{secret2}"),
        format!("{other_user}.{secret2}"),
        format!("{t2}x"),
    ];
    for token in &forged {
        assert_eq!(
            sessions
                .session_user(token)
                .await
                .expect("session_user never fails on bad input"),
            None,
            "token {token:?} must not be accepted"
        );
        sessions
            .delete_session(token)
            .await
            .expect("delete_session of a bad token is a no-op");
    }
    assert_eq!(
        sessions.session_user(&t2).await.expect("session_user"),
        Some(user)
    );

    // Expiry.
    let short = sessions
        .create_session(user, Duration::from_secs(1))
        .await
        .expect("create_session");
    assert_eq!(
        sessions.session_user(&short).await.expect("session_user"),
        Some(user)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sessions.session_user(&short).await.expect("session_user"),
        None,
        "expired"
    );
    assert_eq!(
        sessions.session_user(&t2).await.expect("session_user"),
        Some(user),
        "another session's expiry does not end this one"
    );
}

/// [`ProjectStore`]: creation, roles (owner included), member upsert and removal, the
/// projects of a user newest first, references to unknown records.
pub async fn project_store_suite(users: &dyn UserStore, projects: &dyn ProjectStore) {
    let owner = new_user(users).await;
    let alice = new_user(users).await;
    let bob = new_user(users).await;

    let p1 = projects
        .create_project(NewProject {
            name: unique("p1-"),
            description: Some("first".into()),
            organization_id: owner.organization_id,
            owner_id: owner.id,
        })
        .await
        .expect("create_project");
    assert_eq!(p1.owner_id, owner.id);
    assert_eq!(p1.organization_id, owner.organization_id);
    assert_eq!(p1.description.as_deref(), Some("first"));
    assert!(!p1.is_archived);
    assert_eq!(
        projects.project(p1.id).await.expect("project").as_ref(),
        Some(&p1)
    );
    assert_eq!(
        projects.project(Uuid::new_v4()).await.expect("project"),
        None
    );
    assert_not_found(
        projects
            .create_project(NewProject {
                name: unique("p-"),
                description: None,
                organization_id: None,
                owner_id: Uuid::new_v4(),
            })
            .await,
        "create_project with an unknown owner",
    );

    let role = |project: Uuid, user: Uuid| async move {
        projects
            .member_role(project, user)
            .await
            .expect("member_role")
    };
    assert_eq!(
        role(p1.id, owner.id).await,
        Some(Role::Owner),
        "owner_id is Owner"
    );
    assert_eq!(role(p1.id, alice.id).await, None, "not a member yet");
    assert_eq!(
        role(Uuid::new_v4(), owner.id).await,
        None,
        "unknown project"
    );

    // Add, then change a role (upsert).
    let m = projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: alice.id,
            role: Role::Viewer,
            invited_by: Some(owner.id),
        })
        .await
        .expect("put_member");
    assert_eq!(
        (m.project_id, m.user_id, m.role),
        (p1.id, alice.id, Role::Viewer)
    );
    assert_eq!(m.invited_by, Some(owner.id));
    assert_eq!(role(p1.id, alice.id).await, Some(Role::Viewer));
    let m = projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: alice.id,
            role: Role::Editor,
            invited_by: Some(owner.id),
        })
        .await
        .expect("put_member as a role change");
    assert_eq!(m.role, Role::Editor);
    assert_eq!(
        role(p1.id, alice.id).await,
        Some(Role::Editor),
        "role changed"
    );
    projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: bob.id,
            role: Role::Admin,
            invited_by: Some(alice.id),
        })
        .await
        .expect("put_member");
    assert_eq!(role(p1.id, bob.id).await, Some(Role::Admin));
    let members = projects.members(p1.id).await.expect("members");
    let listed: BTreeSet<_> = members.iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(
        listed,
        BTreeSet::from([(alice.id, Role::Editor), (bob.id, Role::Admin)]),
        "one row per member with the current role; the owner is not listed"
    );

    // Owner is not a member role; an owner's member row does not demote them.
    assert!(
        projects
            .put_member(NewMember {
                project_id: p1.id,
                user_id: alice.id,
                role: Role::Owner,
                invited_by: None,
            })
            .await
            .is_err(),
        "put_member with Role::Owner must be refused"
    );
    assert_eq!(role(p1.id, alice.id).await, Some(Role::Editor));
    projects
        .put_member(NewMember {
            project_id: p1.id,
            user_id: owner.id,
            role: Role::Viewer,
            invited_by: None,
        })
        .await
        .expect("put_member");
    assert_eq!(
        role(p1.id, owner.id).await,
        Some(Role::Owner),
        "owner_id wins over a row"
    );
    assert!(
        projects
            .remove_member(p1.id, owner.id)
            .await
            .expect("remove_member")
    );

    // Unknown project or user.
    assert_not_found(
        projects
            .put_member(NewMember {
                project_id: Uuid::new_v4(),
                user_id: alice.id,
                role: Role::Viewer,
                invited_by: None,
            })
            .await,
        "put_member on an unknown project",
    );
    assert_not_found(
        projects
            .put_member(NewMember {
                project_id: p1.id,
                user_id: Uuid::new_v4(),
                role: Role::Viewer,
                invited_by: None,
            })
            .await,
        "put_member of an unknown user",
    );

    // Removal.
    assert!(
        projects
            .remove_member(p1.id, alice.id)
            .await
            .expect("remove_member")
    );
    assert!(
        !projects
            .remove_member(p1.id, alice.id)
            .await
            .expect("remove_member"),
        "removing a non-member is false"
    );
    assert_eq!(role(p1.id, alice.id).await, None, "removed");
    let members = projects.members(p1.id).await.expect("members");
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![bob.id]
    );

    // Projects of a user: owned or member, newest first.
    tokio::time::sleep(TICK).await;
    let p2 = projects
        .create_project(NewProject {
            name: unique("p2-"),
            description: None,
            organization_id: alice.organization_id,
            owner_id: alice.id,
        })
        .await
        .expect("create_project");
    projects
        .put_member(NewMember {
            project_id: p2.id,
            user_id: owner.id,
            role: Role::Viewer,
            invited_by: Some(alice.id),
        })
        .await
        .expect("put_member");
    let ids = |list: Vec<crate::Project>| list.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let listed = |user: Uuid, archived: bool| async move {
        ids(projects
            .projects_for_user(user, archived)
            .await
            .expect("projects_for_user"))
    };
    let of = |user: Uuid| listed(user, false);
    assert_eq!(
        of(owner.id).await,
        vec![p2.id, p1.id],
        "owned and member-of, newest first"
    );
    assert_eq!(of(alice.id).await, vec![p2.id], "removed from p1, owns p2");
    assert_eq!(of(bob.id).await, vec![p1.id]);
    assert_eq!(of(Uuid::new_v4()).await, Vec::<Uuid>::new());

    // Renaming, archiving and restoring.
    let before = projects.project(p1.id).await.expect("project").expect("p1");
    let renamed = projects
        .update_project(
            p1.id,
            crate::ProjectUpdate {
                name: Some("Renamed".into()),
                description: Some(None),
                is_archived: None,
            },
        )
        .await
        .expect("update_project")
        .expect("p1 exists");
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(
        renamed.description, None,
        "Some(None) clears the description"
    );
    assert!(!renamed.is_archived);
    assert!(renamed.updated_at >= before.updated_at);
    assert_eq!(renamed.created_at, before.created_at);
    let archived = projects
        .update_project(
            p1.id,
            crate::ProjectUpdate {
                is_archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("archive")
        .expect("p1 exists");
    assert!(archived.is_archived);
    assert_eq!(archived.name, "Renamed", "a missing name keeps it");
    assert_eq!(
        projects.project(p1.id).await.expect("project").as_ref(),
        Some(&archived),
        "reads back as written"
    );
    assert_eq!(
        of(owner.id).await,
        vec![p2.id],
        "archived projects leave the list"
    );
    assert_eq!(
        listed(owner.id, true).await,
        vec![p1.id],
        "and are listed as archived"
    );
    let restored = projects
        .update_project(
            p1.id,
            crate::ProjectUpdate {
                is_archived: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("restore")
        .expect("p1 exists");
    assert!(!restored.is_archived);
    assert_eq!(of(owner.id).await, vec![p2.id, p1.id]);
    assert!(
        projects
            .update_project(Uuid::new_v4(), crate::ProjectUpdate::default())
            .await
            .expect("update of an unknown project")
            .is_none()
    );
}

/// [`AuditStore`]: round trip of every field, filters, newest first, limit and offset.
pub async fn audit_store_suite(users: &dyn UserStore, audit: &dyn AuditStore) {
    let u1 = new_user(users).await;
    let u2 = new_user(users).await;
    let org1 = u1.organization_id.expect("signup makes an organization");
    let org2 = u2.organization_id.expect("signup makes an organization");
    let resource = Uuid::new_v4();
    let entry = |user: &User, action: &str, kind: &str, id: Uuid| NewAuditEntry {
        user_id: Some(user.id),
        organization_id: user.organization_id,
        action: action.into(),
        resource_type: kind.into(),
        resource_id: Some(id),
        changes: None,
        ip_address: None,
        user_agent: None,
    };

    let first = NewAuditEntry {
        changes: Some(json!({"name": "x", "nested": {"list": [1, 2]}})),
        ip_address: Some("203.0.113.7".parse().expect("valid ip")),
        user_agent: Some("suite/1.0".into()),
        ..entry(&u1, "project.create", "project", resource)
    };
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
    let canvas = Uuid::new_v4();
    audit
        .record(entry(&u1, "canvas.create", "canvas", canvas))
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

    let list = |filter: AuditFilter| async move { audit.list(filter).await.expect("list") };
    let actions = |entries: &[crate::AuditEntry]| {
        entries.iter().map(|e| e.action.clone()).collect::<Vec<_>>()
    };

    let all1 = list(AuditFilter {
        organization_id: Some(org1),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        actions(&all1),
        ["canvas.create", "member.add", "project.create"],
        "organization filter, newest first"
    );
    let e1 = &all1[2];
    assert_eq!(e1.user_id, Some(u1.id));
    assert_eq!(e1.organization_id, Some(org1));
    assert_eq!(e1.resource_type, "project");
    assert_eq!(e1.resource_id, Some(resource));
    assert_eq!(e1.changes, first.changes);
    assert_eq!(e1.ip_address, first.ip_address);
    assert_eq!(e1.user_agent, first.user_agent);
    assert!(e1.created_at <= mid, "created_at is when it was recorded");
    assert_eq!(
        all1[1].ip_address,
        Some("2001:db8::1".parse().expect("valid ip"))
    );
    let ids: BTreeSet<_> = all1.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3, "every entry has its own id");

    let by_type = list(AuditFilter {
        organization_id: Some(org1),
        resource_type: Some("project".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        actions(&by_type),
        ["member.add", "project.create"],
        "resource_type filter"
    );

    let by_resource = list(AuditFilter {
        resource_id: Some(resource),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        actions(&by_resource),
        ["system.check", "member.add", "member.add", "project.create"],
        "resource_id filter across organizations"
    );
    assert_eq!(by_resource[0].user_id, None);
    assert_eq!(by_resource[0].organization_id, None);
    assert_eq!(by_resource[1].organization_id, Some(org2));

    let since = list(AuditFilter {
        organization_id: Some(org1),
        since: Some(mid),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        actions(&since),
        ["canvas.create", "member.add"],
        "since is inclusive lower bound"
    );
    let until = list(AuditFilter {
        organization_id: Some(org1),
        until: Some(mid),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        actions(&until),
        ["project.create"],
        "until is an exclusive upper bound"
    );

    let page = |limit: u32, offset: u32| {
        list(AuditFilter {
            organization_id: Some(org1),
            limit: Some(limit),
            offset: Some(offset),
            ..AuditFilter::default()
        })
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

    let none = list(AuditFilter {
        organization_id: Some(org2),
        resource_type: Some("canvas".into()),
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty(), "filters combine with AND");
}

/// [`CanvasStore`]: records, the update log (append, ordering, concurrency), checkpoints
/// (including stale ones and appends after them), deletion and unknown canvases.
pub async fn canvas_store_suite(canvases: &dyn CanvasStore) {
    let project = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let new_canvas = |name: &str| NewCanvas {
        id: Uuid::new_v4(),
        project_id: project,
        owner_id: owner,
        name: name.into(),
        description: Some("about it".into()),
    };
    let view = json!({"name": "First", "description": "about it", "blocks": []});
    let c1 = canvases
        .create_canvas(new_canvas("First"), b"state-0", &view)
        .await
        .expect("create_canvas");
    let id = c1.id;
    assert_eq!((c1.project_id, c1.owner_id), (project, owner));
    assert_eq!(c1.name, "First");
    assert_eq!(c1.description.as_deref(), Some("about it"));
    assert_eq!(c1.version, 1, "a new canvas is version 1");
    assert_eq!(
        canvases.canvas(id).await.expect("canvas").as_ref(),
        Some(&c1)
    );
    assert!(
        matches!(
            canvases
                .create_canvas(
                    NewCanvas {
                        id,
                        ..new_canvas("Again")
                    },
                    b"x",
                    &view
                )
                .await,
            Err(StorageError::Conflict(_))
        ),
        "create_canvas with a taken id is a Conflict"
    );

    let load = || async move {
        canvases
            .load_document(id)
            .await
            .expect("load_document")
            .expect("the canvas exists")
    };
    let doc = load().await;
    assert_eq!(
        doc.snapshot, b"state-0",
        "the initial state is the first snapshot"
    );
    assert_eq!(doc.snapshot_seq, 0);
    assert!(doc.updates.is_empty());

    // Appends: sequence numbers 1, 2, ... in one write per call.
    let u = |n: u8| vec![n; usize::from(n) + 1];
    assert_eq!(
        canvases.append_updates(id, &[]).await.expect("append"),
        0,
        "empty append"
    );
    assert_eq!(
        canvases.append_updates(id, &[u(1)]).await.expect("append"),
        1
    );
    assert_eq!(
        canvases
            .append_updates(id, &[u(2), u(3)])
            .await
            .expect("append"),
        3
    );
    assert_eq!(
        canvases.append_updates(id, &[]).await.expect("append"),
        3,
        "empty append"
    );
    let doc = load().await;
    assert_eq!(doc.snapshot, b"state-0");
    assert_eq!(
        doc.updates,
        vec![(1, u(1)), (2, u(2)), (3, u(3))],
        "log in order"
    );

    // Checkpoint: new snapshot, covered entries dropped, name/description from the view.
    tokio::time::sleep(TICK).await;
    let view2 = json!({"name": "Renamed", "description": "new text", "blocks": []});
    canvases
        .checkpoint(id, b"state-2", 2, &view2)
        .await
        .expect("checkpoint");
    let doc = load().await;
    assert_eq!(
        (doc.snapshot.as_slice(), doc.snapshot_seq),
        (&b"state-2"[..], 2)
    );
    assert_eq!(
        doc.updates,
        vec![(3, u(3))],
        "entries up to 2 are covered by the snapshot"
    );
    let rec = canvases.canvas(id).await.expect("canvas").expect("exists");
    assert_eq!(rec.name, "Renamed", "name comes from the checkpoint's view");
    assert_eq!(rec.description.as_deref(), Some("new text"));
    assert!(
        rec.updated_at > c1.updated_at,
        "checkpoint bumps updated_at"
    );
    assert_eq!(rec.created_at, c1.created_at);

    // Appends continue after a checkpoint.
    assert_eq!(
        canvases.append_updates(id, &[u(4)]).await.expect("append"),
        4
    );

    // A stale checkpoint never goes backwards.
    let stale = json!({"name": "Stale"});
    canvases
        .checkpoint(id, b"state-1", 1, &stale)
        .await
        .expect("stale checkpoint is Ok");
    let doc = load().await;
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
    let rec = canvases.canvas(id).await.expect("canvas").expect("exists");
    assert_eq!(rec.name, "Renamed", "a stale checkpoint does not rename");

    // A checkpoint covering the whole log, then appends continue from the snapshot's seq;
    // a view without name/description keeps them.
    canvases
        .checkpoint(id, b"state-4", 4, &json!({"blocks": []}))
        .await
        .expect("checkpoint");
    let doc = load().await;
    assert_eq!(
        (doc.snapshot.as_slice(), doc.snapshot_seq),
        (&b"state-4"[..], 4)
    );
    assert!(doc.updates.is_empty(), "the whole log is covered");
    let rec = canvases.canvas(id).await.expect("canvas").expect("exists");
    assert_eq!(
        (rec.name.as_str(), rec.description.as_deref()),
        ("Renamed", Some("new text"))
    );
    assert_eq!(canvases.append_updates(id, &[]).await.expect("append"), 4);
    assert_eq!(
        canvases.append_updates(id, &[u(5)]).await.expect("append"),
        5
    );

    // Concurrent appends: strictly increasing, no gaps, nothing lost.
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
    let doc = load().await;
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

    // Listing: newest first, only this project's.
    tokio::time::sleep(TICK).await;
    let c2 = canvases
        .create_canvas(new_canvas("Second"), b"s", &json!({}))
        .await
        .expect("create_canvas");
    canvases
        .create_canvas(
            NewCanvas {
                project_id: Uuid::new_v4(),
                ..new_canvas("Elsewhere")
            },
            b"s",
            &json!({}),
        )
        .await
        .expect("create_canvas");
    let listed = canvases
        .canvases_in_project(project)
        .await
        .expect("canvases_in_project");
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c2.id, id]
    );

    // Unknown canvases.
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

    // Deletion takes the record and its log.
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
        .canvases_in_project(project)
        .await
        .expect("canvases_in_project");
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c2.id]);
    // The id can be used again, with a fresh log.
    canvases
        .create_canvas(
            NewCanvas {
                id,
                ..new_canvas("Reborn")
            },
            b"r",
            &json!({}),
        )
        .await
        .expect("create_canvas after delete");
    let doc = load().await;
    assert_eq!((doc.snapshot.as_slice(), doc.snapshot_seq), (&b"r"[..], 0));
    assert!(
        doc.updates.is_empty(),
        "the old log went with the old canvas"
    );
}

/// [`VersionStore`]: version 1 made with the canvas, numbers in order (also under
/// concurrency), the canvas record's `version` in step, snapshots round trip, unknown
/// canvases and versions, deletion with the canvas.
pub async fn version_store_suite(canvases: &dyn CanvasStore, versions: &dyn VersionStore) {
    let owner = Uuid::new_v4();
    let editor = Uuid::new_v4();
    let view = json!({"name": "Versions", "blocks": [{"id": "b1", "content": {"n": 1.5}}]});
    let canvas = canvases
        .create_canvas(
            NewCanvas {
                id: Uuid::new_v4(),
                project_id: Uuid::new_v4(),
                owner_id: owner,
                name: "Versions".into(),
                description: None,
            },
            b"state-1",
            &view,
        )
        .await
        .expect("create_canvas");
    let id = canvas.id;
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
    assert_eq!(stored.view, view, "the view round trips");
    assert_eq!(&stored.record, first);

    tokio::time::sleep(TICK).await;
    let named = versions
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
        .expect("add_version");
    assert_eq!((named.version, named.kind), (2, VersionKind::Named));
    assert_eq!(named.changed_by, editor);
    assert!(
        named.changed_at > first.changed_at,
        "later versions are later"
    );
    assert_eq!(
        canvases
            .canvas(id)
            .await
            .expect("canvas")
            .map(|c| c.version),
        Some(2),
        "the canvas record's version is the latest"
    );
    let got = versions.version(id, 2).await.expect("version").expect("v2");
    assert_eq!(
        (got.state.as_slice(), &got.record),
        (&b"state-2"[..], &named)
    );

    // Concurrent adds get distinct, consecutive numbers.
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
    let mut numbers: Vec<i64> = futures_join_all(adds)
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
    assert_eq!(
        canvases
            .canvas(id)
            .await
            .expect("canvas")
            .map(|c| c.version),
        Some(8)
    );

    // Unknown versions and canvases.
    assert!(versions.version(id, 9).await.expect("version").is_none());
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
                    changed_by: editor,
                },
                b"s",
                &json!({}),
            )
            .await,
        "add_version to an unknown canvas",
    );

    // Versions go with their canvas.
    assert!(canvases.delete_canvas(id).await.expect("delete"));
    assert!(versions.versions(id).await.expect("versions").is_empty());
    assert!(versions.version(id, 2).await.expect("version").is_none());
}

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

/// [`PresenceStore`]: put, refresh and remove; entries older than the reader's `ttl` are not
/// returned; several users, sorted by id; canvases independent; active users are the union
/// over nodes and a node's empty list clears its part.
pub async fn presence_store_suite(presence: &dyn PresenceStore) {
    let ttl = Duration::from_secs(300);
    let canvas = Uuid::new_v4();
    let other_canvas = Uuid::new_v4();
    let get = |canvas: Uuid, ttl: Duration| async move {
        presence.presence(canvas, ttl).await.expect("presence")
    };

    assert!(
        get(canvas, ttl).await.is_empty(),
        "a fresh canvas has nobody"
    );
    assert!(
        presence
            .active_users(canvas)
            .await
            .expect("active_users")
            .is_empty()
    );

    // Put, with any JSON as cursor and selection (null too).
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ea = presence_entry(a, "a", TimeDelta::zero());
    presence.put_presence(canvas, &ea, ttl).await.expect("put");
    assert_eq!(get(canvas, ttl).await, vec![ea.clone()], "what was put");
    let eb = PresenceEntry {
        cursor: serde_json::Value::Null,
        selection: serde_json::Value::Null,
        ..presence_entry(b, "b", TimeDelta::zero())
    };
    presence.put_presence(canvas, &eb, ttl).await.expect("put");
    let mut both = vec![ea.clone(), eb.clone()];
    both.sort_by_key(|e| e.user_id);
    assert_eq!(get(canvas, ttl).await, both, "both users, by user id");

    // Refresh replaces the user's entry.
    let ea2 = PresenceEntry {
        cursor: json!({"x": 99}),
        ..presence_entry(a, "a2", TimeDelta::zero())
    };
    presence.put_presence(canvas, &ea2, ttl).await.expect("put");
    let mut both = vec![ea2.clone(), eb.clone()];
    both.sort_by_key(|e| e.user_id);
    assert_eq!(
        get(canvas, ttl).await,
        both,
        "a refresh replaces, never adds"
    );

    // Canvases are independent.
    assert!(
        get(other_canvas, ttl).await.is_empty(),
        "another canvas sees nothing"
    );
    let ea_elsewhere = presence_entry(a, "elsewhere", TimeDelta::zero());
    presence
        .put_presence(other_canvas, &ea_elsewhere, ttl)
        .await
        .expect("put");
    assert_eq!(get(other_canvas, ttl).await, vec![ea_elsewhere.clone()]);
    assert_eq!(
        get(canvas, ttl).await,
        both,
        "the same user elsewhere changes nothing here"
    );

    // Entries older than the reader's ttl are not returned.
    let c = Uuid::new_v4();
    let old = presence_entry(c, "old", TimeDelta::minutes(10));
    presence.put_presence(canvas, &old, ttl).await.expect("put");
    assert_eq!(
        get(canvas, ttl).await,
        both,
        "an entry last seen 10 minutes ago is gone with a 5 minute ttl"
    );
    let d = Uuid::new_v4();
    let recent = presence_entry(d, "recent", TimeDelta::seconds(30));
    presence
        .put_presence(canvas, &recent, ttl)
        .await
        .expect("put");
    assert!(
        get(canvas, ttl).await.contains(&recent),
        "seen 30 s ago is within 5 minutes"
    );
    assert!(
        !get(canvas, Duration::from_secs(10)).await.contains(&recent),
        "seen 30 s ago is not within 10 s"
    );
    // A stale entry does not come back when others are written, but its user can return.
    presence
        .put_presence(
            canvas,
            &presence_entry(Uuid::new_v4(), "x", TimeDelta::zero()),
            ttl,
        )
        .await
        .expect("put");
    assert!(!get(canvas, ttl).await.iter().any(|e| e.user_id == c));
    let back = presence_entry(c, "back", TimeDelta::zero());
    presence
        .put_presence(canvas, &back, ttl)
        .await
        .expect("put");
    assert!(
        get(canvas, ttl).await.contains(&back),
        "a returning user is there again"
    );

    // Remove: only that user, only on that canvas; unknown users are a no-op.
    presence.remove_presence(canvas, a).await.expect("remove");
    let now_there: Vec<Uuid> = get(canvas, ttl).await.iter().map(|e| e.user_id).collect();
    assert!(!now_there.contains(&a), "removed");
    assert!(now_there.contains(&b), "others stay");
    assert_eq!(
        get(other_canvas, ttl).await,
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
    assert!(get(canvas, ttl).await.is_empty(), "everyone left");

    // Concurrent writers (several server nodes) lose nothing.
    let many: Vec<PresenceEntry> = (0..8)
        .map(|i| presence_entry(Uuid::new_v4(), &format!("m{i}"), TimeDelta::zero()))
        .collect();
    let puts = many.iter().map(|e| presence.put_presence(canvas, e, ttl));
    for result in futures_join_all(puts).await {
        result.expect("concurrent put");
    }
    let mut expected = many.clone();
    expected.sort_by_key(|e| e.user_id);
    assert_eq!(
        get(canvas, ttl).await,
        expected,
        "every concurrent put landed"
    );

    // Active users: the union over nodes, sorted, without duplicates.
    let node1 = unique("node-");
    let node2 = unique("node-");
    let active =
        |canvas: Uuid| async move { presence.active_users(canvas).await.expect("active_users") };
    let mut users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    users.sort();
    let [u1, u2, u3] = [users[0], users[1], users[2]];
    presence
        .set_active_users(canvas, &node1, &[u2, u1])
        .await
        .expect("set_active_users");
    assert_eq!(active(canvas).await, vec![u1, u2], "sorted");
    presence
        .set_active_users(canvas, &node2, &[u3, u2])
        .await
        .expect("set_active_users");
    assert_eq!(active(canvas).await, vec![u1, u2, u3], "union over nodes");
    assert!(
        active(other_canvas).await.is_empty(),
        "another canvas has no active users"
    );
    presence
        .set_active_users(other_canvas, &node1, &[u3])
        .await
        .expect("set_active_users");
    assert_eq!(active(other_canvas).await, vec![u3]);
    // A node's new list replaces its old one.
    presence
        .set_active_users(canvas, &node2, &[u3])
        .await
        .expect("set_active_users");
    assert_eq!(active(canvas).await, vec![u1, u2, u3]);
    presence
        .set_active_users(canvas, &node1, &[u1])
        .await
        .expect("set_active_users");
    assert_eq!(active(canvas).await, vec![u1, u3], "u2 left node1");
    // An empty list clears the node's contribution only.
    presence
        .set_active_users(canvas, &node1, &[])
        .await
        .expect("set_active_users");
    assert_eq!(active(canvas).await, vec![u3]);
    presence
        .set_active_users(canvas, &node1, &[])
        .await
        .expect("clearing twice is a no-op");
    presence
        .set_active_users(canvas, &node2, &[])
        .await
        .expect("set_active_users");
    assert!(active(canvas).await.is_empty(), "every node cleared");
    assert_eq!(active(other_canvas).await, vec![u3], "other canvas kept");
    presence
        .set_active_users(other_canvas, &node1, &[])
        .await
        .expect("set_active_users");
    assert!(active(other_canvas).await.is_empty());
    // Active users and presence entries are separate records.
    assert_eq!(get(canvas, ttl).await, expected, "presence kept");
}

/// Awaits every future concurrently; their outputs in order (a small `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// [`RateLimiter`]: counts up within the window, blocks past the limit (and keeps counting),
/// `n` calls at once, endpoints and users independent, concurrent calls counted exactly.
pub async fn rate_limiter_suite(limiter: &dyn RateLimiter) {
    let user = Uuid::new_v4();
    let endpoint = unique("endpoint_");
    let hit = |user: Uuid, endpoint: String, n: u32, limit: u32| async move {
        let d = limiter.hit(user, &endpoint, n, limit).await.expect("hit");
        assert!(
            (1..=60).contains(&d.retry_after_secs),
            "retry_after_secs within the one-minute window: {d:?}"
        );
        d
    };

    for i in 1..=3 {
        let d = hit(user, endpoint.clone(), 1, 3).await;
        assert_eq!((d.allowed, d.count), (true, i), "call {i} of 3 is allowed");
    }
    let d = hit(user, endpoint.clone(), 1, 3).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 4),
        "the 4th call of 3 is refused"
    );
    let d = hit(user, endpoint.clone(), 1, 3).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 5),
        "refused calls still count"
    );
    let d = hit(user, endpoint.clone(), 1, 10).await;
    assert_eq!(
        (d.allowed, d.count),
        (true, 6),
        "the limit is the caller's: the same count is within a larger one"
    );

    // Endpoints and users are independent.
    let d = hit(user, unique("endpoint_"), 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "another endpoint");
    let d = hit(Uuid::new_v4(), endpoint.clone(), 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "another user");
    // An endpoint that is a prefix of another is still another endpoint.
    let d = hit(user, format!("{endpoint}:x"), 1, 3).await;
    assert_eq!((d.allowed, d.count), (true, 1), "an endpoint with a suffix");

    // n > 1 counts n calls.
    let bulk = unique("bulk_");
    let d = hit(user, bulk.clone(), 5, 10).await;
    assert_eq!((d.allowed, d.count), (true, 5));
    let d = hit(user, bulk.clone(), 5, 10).await;
    assert_eq!((d.allowed, d.count), (true, 10), "exactly at the limit");
    let d = hit(user, bulk.clone(), 1, 10).await;
    assert_eq!((d.allowed, d.count), (false, 11));
    let d = hit(user, unique("bulk_"), 11, 10).await;
    assert_eq!(
        (d.allowed, d.count),
        (false, 11),
        "a first batch larger than the limit"
    );
    let d = hit(user, unique("zero_"), 1, 0).await;
    assert_eq!((d.allowed, d.count), (false, 1), "limit 0 allows nothing");

    // Concurrent calls are each counted once: exactly `limit` of them are allowed.
    let busy = unique("busy_");
    let calls = (0..20).map(|_| limiter.hit(user, &busy, 1, 10));
    let decisions: Vec<_> = futures_join_all(calls)
        .await
        .into_iter()
        .map(|d| d.expect("concurrent hit"))
        .collect();
    let mut counts: Vec<u32> = decisions.iter().map(|d| d.count).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<_>>(),
        "each concurrent call has its own count"
    );
    assert_eq!(
        decisions.iter().filter(|d| d.allowed).count(),
        10,
        "exactly the limit is allowed"
    );
    assert!(
        decisions.iter().all(|d| d.allowed == (d.count <= 10)),
        "allowed means count <= limit"
    );
}

/// [`InteractionStore`]: views, favorites and their counts, per user and per canvas.
pub async fn interaction_store_suite(
    canvases: &dyn CanvasStore,
    interactions: &dyn InteractionStore,
) {
    let make = || NewCanvas {
        id: Uuid::new_v4(),
        project_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        name: "Counted".into(),
        description: None,
    };
    let view = json!({"name": "Counted", "blocks": []});
    let a = canvases
        .create_canvas(make(), b"state", &view)
        .await
        .expect("create_canvas")
        .id;
    let b = canvases
        .create_canvas(make(), b"state", &view)
        .await
        .expect("create_canvas")
        .id;
    let fresh = interactions.interactions(a).await.expect("interactions");
    assert_eq!(fresh, Interactions::default(), "a new canvas has no views");

    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    interactions.record_view(a).await.expect("record_view");
    interactions.record_view(a).await.expect("record_view");
    let counted = interactions.interactions(a).await.expect("interactions");
    assert_eq!(counted.views, 2);
    assert!(counted.last_viewed_at.is_some_and(|t| t >= started));
    assert_eq!(
        interactions.interactions(b).await.expect("b").views,
        0,
        "per canvas"
    );
    // A view of an unknown canvas is not an error and creates nothing.
    let ghost = Uuid::new_v4();
    interactions
        .record_view(ghost)
        .await
        .expect("record_view of an unknown canvas");
    assert_eq!(
        interactions.interactions(ghost).await.expect("ghost").views,
        0
    );

    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(
        interactions
            .set_favorite(u1, a, true)
            .await
            .expect("favorite")
    );
    assert!(
        !interactions.set_favorite(u1, a, true).await.expect("again"),
        "idempotent"
    );
    assert!(
        interactions
            .set_favorite(u2, a, true)
            .await
            .expect("favorite")
    );
    assert!(
        interactions
            .set_favorite(u1, b, true)
            .await
            .expect("favorite")
    );
    assert!(
        !interactions
            .set_favorite(u1, ghost, true)
            .await
            .expect("unknown canvas")
    );
    assert_eq!(
        interactions
            .interactions(a)
            .await
            .expect("a")
            .favorites_count,
        2
    );
    assert_eq!(
        interactions.interactions(a).await.expect("a").views,
        2,
        "views kept"
    );
    assert!(interactions.is_favorite(u1, a).await.expect("is_favorite"));
    assert!(!interactions.is_favorite(u2, b).await.expect("is_favorite"));
    assert_eq!(
        interactions.favorites(u1).await.expect("favorites"),
        vec![b, a],
        "most recently marked first"
    );
    assert!(
        interactions
            .set_favorite(u1, a, false)
            .await
            .expect("unfavorite")
    );
    assert!(
        !interactions
            .set_favorite(u1, a, false)
            .await
            .expect("again")
    );
    assert_eq!(
        interactions
            .interactions(a)
            .await
            .expect("a")
            .favorites_count,
        1
    );
    assert_eq!(
        interactions.favorites(u1).await.expect("favorites"),
        vec![b]
    );

    canvases.delete_canvas(a).await.expect("delete_canvas");
    interactions.forget_canvas(a).await.expect("forget_canvas");
    assert_eq!(
        interactions.favorites(u2).await.expect("favorites"),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        interactions.interactions(a).await.expect("a"),
        Interactions::default()
    );
}

/// [`TemplateStore`]: round trip, visibility by organization, built-ins kept, usage counts.
pub async fn template_store_suite(templates: &dyn TemplateStore) {
    let org = Uuid::new_v4();
    let other_org = Uuid::new_v4();
    let now = chrono::Utc::now().trunc_subsecs(3);
    let template = |id: &str, is_public: bool, organization_id: Option<Uuid>| Template {
        id: id.to_owned(),
        name: format!("Template {id}"),
        description: Some("for tests".into()),
        category: Some("tests".into()),
        thumbnail_url: None,
        is_public,
        usage_count: 0,
        blocks: json!([{"id": "b1", "type": "narrative", "position": {"x": 0, "y": 0, "w": 6, "h": 4},
                        "content": {"text": "Hello", "data_bindings": []}}]),
        required_fields: vec!["date".into(), "region".into()],
        created_by: "someone".into(),
        organization_id,
        created_at: now,
    };
    let private = template(&unique("private-"), false, Some(org));
    let public = template(&unique("public-"), true, Some(other_org));
    let foreign = template(&unique("foreign-"), false, Some(other_org));
    for t in [&private, &public, &foreign] {
        templates.create_template(t).await.expect("create_template");
    }
    assert_conflict(templates.create_template(&private).await, "id", "template");
    assert_eq!(
        templates
            .template(&private.id)
            .await
            .expect("template")
            .as_ref(),
        Some(&private),
        "every field round-trips"
    );
    assert!(
        templates
            .template("no-such-template")
            .await
            .expect("template")
            .is_none()
    );

    let visible = |list: Vec<Template>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let mine = visible(templates.templates(Some(org)).await.expect("templates"));
    assert!(mine.contains(&private.id) && mine.contains(&public.id));
    assert!(
        !mine.contains(&foreign.id),
        "another organization's private template"
    );
    let anonymous = visible(templates.templates(None).await.expect("templates"));
    assert!(anonymous.contains(&public.id) && !anonymous.contains(&private.id));

    templates.count_use(&private.id).await.expect("count_use");
    templates.count_use(&private.id).await.expect("count_use");
    let used = templates
        .template(&private.id)
        .await
        .expect("template")
        .expect("exists");
    assert_eq!(used.usage_count, 2);

    // A built-in template is stored once; later starts keep its count.
    let builtin = Template {
        created_by: "system".into(),
        organization_id: None,
        ..template(&unique("builtin-"), true, None)
    };
    templates
        .ensure_template(&builtin)
        .await
        .expect("ensure_template");
    templates.count_use(&builtin.id).await.expect("count_use");
    templates
        .ensure_template(&builtin)
        .await
        .expect("ensure_template again");
    let kept = templates
        .template(&builtin.id)
        .await
        .expect("template")
        .expect("exists");
    assert_eq!(
        kept.usage_count, 1,
        "ensure_template keeps an existing template"
    );
    assert_eq!(kept.created_by, "system");
}
