//! The embedded SQLite backend against the generic suites, plus what only it has: a file
//! that outlives the process's handle to it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use canvas_engine::Role;
use canvas_storage::embedded::SqliteStore;
use canvas_storage::memory::{MemoryPresence, MemoryRateLimiter, MemoryResults};
use canvas_storage::{
    AuditStore, CanvasStore, NewCanvas, NewMember, NewProject, ProjectStore, SessionStore, Storage,
    StorageError, UserStore, testing,
};
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    (dir, store)
}

/// Runs `test` on a store in a fresh directory, then closes it.
async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(SqliteStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let (_dir, store) = store().await;
    test(store.clone()).await;
    store.close().await;
}

async fn with_memory_presence<F, Fut>(test: F)
where
    F: FnOnce(MemoryPresence) -> Fut,
    Fut: Future<Output = ()>,
{
    test(MemoryPresence::default()).await;
}

async fn with_memory_limiter<F, Fut>(test: F)
where
    F: FnOnce(MemoryRateLimiter) -> Fut,
    Fut: Future<Output = ()>,
{
    test(MemoryRateLimiter::default()).await;
}

async fn with_memory_results<F, Fut>(test: F)
where
    F: FnOnce(MemoryResults) -> Fut,
    Fut: Future<Output = ()>,
{
    test(MemoryResults::default()).await;
}

canvas_storage::contract_tests!(users, with_store, |store| (&store));
canvas_storage::contract_tests!(sessions, with_store, |store| (&store));
canvas_storage::contract_tests!(projects, with_store, |store| (&store, &store));
canvas_storage::contract_tests!(audit, with_store, |store| (&store, &store));
canvas_storage::contract_tests!(data, with_store, |store| (&store, &store, &store));
canvas_storage::contract_tests!(webhooks, with_store, |store| (&store, &store, &store));
canvas_storage::contract_tests!(canvases, with_store, |store| (&store));
canvas_storage::contract_tests!(interactions, with_store, |store| (&store, &store));
canvas_storage::contract_tests!(templates, with_store, |store| (&store));
canvas_storage::contract_tests!(versions, with_store, |store| (&store, &store));
canvas_storage::contract_tests!(presence, with_memory_presence, |store| (&store));
canvas_storage::contract_tests!(rate_limits, with_memory_limiter, |store| (&store));
canvas_storage::contract_tests!(results, with_memory_results, |store| (&store));

/// The in-process stores shared by concurrent suites: they must not see each other's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stores_shared_by_concurrent_suites() {
    let presence = MemoryPresence::default();
    let limiter = MemoryRateLimiter::default();
    tokio::join!(
        testing::presence::all(&presence),
        testing::presence::all(&presence),
        testing::rate_limits::all(&limiter),
        testing::rate_limits::all(&limiter),
    );
}

/// Every suite at once on one database, twice over: they must not see each other's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_suites_share_one_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::embedded(dir.path())
        .await
        .expect("Storage::embedded");
    assert!(
        dir.path().join("canvas.sqlite3").exists(),
        "the database file is made"
    );
    tokio::join!(testing::run_all(&storage), testing::run_all(&storage));
}

#[tokio::test]
async fn in_memory_store_passes_the_suites() {
    let store = SqliteStore::open_in_memory().await.expect("open_in_memory");
    testing::users::all(&store).await;
    testing::projects::all(&store, &store).await;
    testing::canvases::all(&store).await;
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A data directory that does not exist yet is created.
    let data_dir = dir.path().join("nested").join("data");

    let store = SqliteStore::open(&data_dir).await.expect("open");
    let user = testing::new_user(&store).await;
    let token = store
        .create_session(user.id, Duration::from_secs(3600))
        .await
        .expect("create_session");
    let project = store
        .create_project(NewProject {
            name: "kept".into(),
            description: None,
            organization_id: user.organization_id,
            owner_id: user.id,
        })
        .await
        .expect("create_project");
    let canvas_id = Uuid::new_v4();
    store
        .create_canvas(
            NewCanvas {
                id: canvas_id,
                project_id: project.id,
                owner_id: user.id,
                name: "kept".into(),
                description: None,
            },
            b"s0",
            &json!({}),
        )
        .await
        .expect("create_canvas");
    store
        .append_updates(canvas_id, &[b"u1".to_vec()])
        .await
        .expect("append");
    store
        .checkpoint(canvas_id, b"s1", 1, &json!({"name": "kept"}))
        .await
        .expect("checkpoint");
    store
        .append_updates(canvas_id, &[b"u2".to_vec(), b"u3".to_vec()])
        .await
        .expect("append");
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&data_dir).await.expect("reopen");
    assert_eq!(
        store.user_by_id(user.id).await.expect("user_by_id"),
        Some(user.clone())
    );
    assert_eq!(
        store.session_user(&token).await.expect("session_user"),
        Some(user.id)
    );
    assert_eq!(
        store.member_role(project.id, user.id).await.expect("role"),
        Some(Role::Owner)
    );
    let doc = store
        .load_document(canvas_id)
        .await
        .expect("load")
        .expect("canvas kept");
    assert_eq!(doc.snapshot, b"s1");
    assert_eq!(doc.snapshot_seq, 1);
    assert_eq!(doc.updates, vec![(2, b"u2".to_vec()), (3, b"u3".to_vec())]);
    assert_eq!(
        store
            .append_updates(canvas_id, &[b"u4".to_vec()])
            .await
            .expect("append"),
        4
    );
    store.close().await;

    // And through the `Storage` bundle the server uses.
    let storage = Storage::embedded(&data_dir)
        .await
        .expect("Storage::embedded");
    assert_eq!(
        storage
            .sessions
            .session_user(&token)
            .await
            .expect("session_user"),
        Some(user.id)
    );
    let doc = storage
        .canvases
        .load_document(canvas_id)
        .await
        .expect("load")
        .expect("kept");
    assert_eq!(doc.updates.last().map(|(seq, _)| *seq), Some(4));
}

/// What the trait cannot express: archived projects are hidden from lists, and a stored
/// role that does not parse is reported as corrupt, not mistaken for another.
#[tokio::test]
async fn archived_projects_and_corrupt_roles() {
    let (dir, store) = store().await;
    let owner = testing::new_user(&store).await;
    let member = testing::new_user(&store).await;
    let project = store
        .create_project(NewProject {
            name: "to archive".into(),
            description: None,
            organization_id: owner.organization_id,
            owner_id: owner.id,
        })
        .await
        .expect("create_project");
    store
        .put_member(NewMember {
            project_id: project.id,
            user_id: member.id,
            role: Role::Editor,
            invited_by: Some(owner.id),
        })
        .await
        .expect("put_member");
    assert_eq!(
        store
            .projects_for_user(member.id, false)
            .await
            .expect("list")
            .len(),
        1
    );

    // Change the rows behind the store's back, through a second connection to the file.
    let url = format!("sqlite://{}", dir.path().join("canvas.sqlite3").display());
    let raw = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE projects SET is_archived = 1 WHERE id = ?")
        .bind(project.id.to_string())
        .execute(&raw)
        .await
        .expect("archive");
    sqlx::query("UPDATE project_members SET role = 'superuser' WHERE project_id = ?")
        .bind(project.id.to_string())
        .execute(&raw)
        .await
        .expect("corrupt the role");
    raw.close().await;

    assert!(
        store
            .projects_for_user(owner.id, false)
            .await
            .expect("list")
            .is_empty(),
        "archived"
    );
    assert!(
        store
            .projects_for_user(member.id, false)
            .await
            .expect("list")
            .is_empty(),
        "archived"
    );
    let archived = store
        .project(project.id)
        .await
        .expect("project")
        .expect("still there");
    assert!(archived.is_archived);
    assert!(matches!(
        store.member_role(project.id, member.id).await,
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        store.members(project.id).await,
        Err(StorageError::Corrupt(_))
    ));
    // The owner's role does not depend on member rows.
    assert_eq!(
        store.member_role(project.id, owner.id).await.expect("role"),
        Some(Role::Owner)
    );
}

/// Stored tokens are hashes: the raw token is nowhere in the database file.
#[tokio::test]
async fn raw_tokens_are_not_stored() {
    let (dir, store) = store().await;
    let token = store
        .create_session(Uuid::new_v4(), Duration::from_secs(60))
        .await
        .expect("create_session");
    let url = format!("sqlite://{}", dir.path().join("canvas.sqlite3").display());
    let raw = sqlx::SqlitePool::connect(&url).await.expect("connect");
    let (_, secret) = token.split_once('.').expect("token has a dot");
    let hits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE token_hash LIKE '%' || ?1 || '%' \
         OR user_id LIKE '%' || ?1 || '%'",
    )
    .bind(secret)
    .fetch_one(&raw)
    .await
    .expect("query");
    assert_eq!(hits, 0, "the secret must not be stored");
    raw.close().await;
}

/// Audit entries keep their order and filters on a fresh store too (the store is shared by
/// nothing else here, so the default limit is observable).
#[tokio::test]
async fn audit_limit_defaults_to_100_and_caps_at_1000() {
    let store = SqliteStore::open_in_memory().await.expect("open_in_memory");
    for i in 0..1001 {
        store
            .record(canvas_storage::NewAuditEntry {
                action: format!("a{i}"),
                resource_type: "test".into(),
                ..Default::default()
            })
            .await
            .expect("record");
    }
    let default = store.list(Default::default()).await.expect("list");
    assert_eq!(default.len(), 100);
    assert_eq!(default[0].action, "a1000", "newest first");
    let capped = store
        .list(canvas_storage::AuditFilter {
            limit: Some(5000),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(capped.len(), 1000);
}

/// Records stamped in the same microsecond are ordered by id, as in PostgreSQL: projects and
/// audit entries by id descending, members by user id.
#[tokio::test]
async fn timestamp_ties_are_ordered_by_id() {
    let (dir, store) = store().await;
    let owner = testing::new_user(&store).await;
    let mut projects = Vec::new();
    for _ in 0..4 {
        let project = store
            .create_project(NewProject {
                name: testing::unique("tie-"),
                description: None,
                organization_id: owner.organization_id,
                owner_id: owner.id,
            })
            .await
            .expect("create_project");
        projects.push(project.id);
    }
    let members = [
        testing::new_user(&store).await.id,
        testing::new_user(&store).await.id,
        testing::new_user(&store).await.id,
    ];
    for user in members {
        store
            .put_member(NewMember {
                project_id: projects[0],
                user_id: user,
                role: Role::Viewer,
                invited_by: None,
            })
            .await
            .expect("put_member");
    }
    for i in 0..4 {
        store
            .record(canvas_storage::NewAuditEntry {
                action: format!("tie{i}"),
                resource_type: "tie".into(),
                organization_id: owner.organization_id,
                ..Default::default()
            })
            .await
            .expect("record");
    }

    // Stamp everything with one instant behind the store's back.
    let url = format!("sqlite://{}", dir.path().join("canvas.sqlite3").display());
    let raw = sqlx::SqlitePool::connect(&url).await.expect("connect");
    let instant = "2024-01-15T10:30:00.000000Z";
    for sql in [
        "UPDATE projects SET created_at = ?",
        "UPDATE project_members SET joined_at = ?",
        "UPDATE audit_logs SET created_at = ?",
    ] {
        sqlx::query(sql)
            .bind(instant)
            .execute(&raw)
            .await
            .expect("stamp");
    }
    raw.close().await;

    let listed: Vec<Uuid> = store
        .projects_for_user(owner.id, false)
        .await
        .expect("projects_for_user")
        .into_iter()
        .map(|p| p.id)
        .collect();
    let mut by_id = projects.clone();
    by_id.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, by_id, "projects: ties by id, descending");

    let listed: Vec<Uuid> = store
        .members(projects[0])
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let mut by_user = members.to_vec();
    by_user.sort();
    assert_eq!(listed, by_user, "members: ties by user id");

    let entries = store
        .list(canvas_storage::AuditFilter {
            organization_id: owner.organization_id,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let mut by_id = ids.clone();
    by_id.sort_by(|a, b| b.cmp(a));
    assert_eq!(entries.len(), 4);
    assert_eq!(ids, by_id, "audit entries: ties by id, descending");
}
