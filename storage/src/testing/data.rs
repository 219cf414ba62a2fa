//! [`DataStore`]: data sources (unique names per project, updates, deletion while in use),
//! saved queries (updates, their source, deletion with their executions) and executions
//! (only an execution that has not ended changes).

use super::{TICK, assert_conflict, assert_not_found, new_user, unique};
use crate::{
    DataPipeline, DataPipelineUpdate, DataSource, DataSourceUpdate, DataStore, ExecutionUpdate,
    NewDataPipeline, NewDataSource, NewProject, NewSavedQuery, PipelineOutcome, Project,
    ProjectStore, QueryExecution, SavedQuery, SavedQueryUpdate, StorageError, User, UserStore,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __data_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx data data_store [
            a_source_is_created_read_and_listed_by_name,
            source_names_are_unique_per_project_in_any_case,
            a_source_update_changes_only_what_it_names,
            a_source_in_use_cannot_be_deleted,
            a_query_is_created_changed_and_listed_newest_first,
            a_query_refers_to_real_records,
            deleting_a_query_deletes_its_executions,
            an_execution_changes_until_it_ends,
            a_pipeline_is_created_read_changed_and_deleted,
            a_pipeline_refers_to_a_real_project_and_source,
            due_pipelines_are_the_active_ones_whose_time_has_come,
            one_of_concurrent_claims_of_a_due_run_wins,
            a_run_outcome_is_recorded_only_for_the_latest_run,
        ] }
    };
}

/// Every case at once.
pub async fn all(users: &dyn UserStore, projects: &dyn ProjectStore, data: &dyn DataStore) {
    crate::__data_cases!(__join_cases!(users, projects, data));
}

/// A user and a project of theirs.
async fn project(users: &dyn UserStore, projects: &dyn ProjectStore) -> (User, Project) {
    let owner = new_user(users).await;
    let project = projects
        .create_project(NewProject {
            name: unique("data-"),
            description: None,
            organization_id: owner.organization_id,
            owner_id: owner.id,
        })
        .await
        .expect("create_project");
    (owner, project)
}

fn new_source(project: Uuid, name: &str, kind: &str) -> NewDataSource {
    NewDataSource {
        id: Uuid::new_v4(),
        project_id: project,
        name: name.into(),
        kind: kind.into(),
        connection_config: json!({"format": "csv", "sealed": {"password": "v1:abc"}}),
        metadata: json!({"note": name}),
    }
}

async fn source(data: &dyn DataStore, project: Uuid, name: &str, kind: &str) -> DataSource {
    data.create_source(new_source(project, name, kind))
        .await
        .expect("create_source")
}

fn new_query(project: Uuid, by: Uuid, name: &str, source: Option<Uuid>) -> NewSavedQuery {
    NewSavedQuery {
        project_id: project,
        name: name.into(),
        query_text: "SELECT region, sum(amount) FROM sales WHERE amount > {{min}} GROUP BY 1"
            .into(),
        query_type: "sql".into(),
        parameters: json!({"min": {"type": "number", "default": 0}}),
        created_by: Some(by),
        is_public: false,
        data_source_id: source,
    }
}

async fn query(data: &dyn DataStore, project: Uuid, by: Uuid, name: &str) -> SavedQuery {
    data.create_query(new_query(project, by, name, None))
        .await
        .expect("create_query")
}

/// Now, to the millisecond (every backend keeps at least that).
fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

fn pending(query: Uuid, by: Uuid) -> QueryExecution {
    QueryExecution {
        id: Uuid::new_v4(),
        query_id: query,
        executed_by: Some(by),
        status: "pending".into(),
        parameters: json!({"min": 10}),
        result_location: None,
        error_message: None,
        execution_time_ms: None,
        rows_returned: None,
        started_at: now_ms(),
        completed_at: None,
        query_hash: Some("hash-1".into()),
        from_cache: false,
        computed_at: None,
    }
}

/// A new source is active, unsynced, read back as created, and listed by name.
pub async fn a_source_is_created_read_and_listed_by_name(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "file").await;
    assert_eq!(
        (
            sales.status.as_str(),
            sales.last_sync_at,
            &sales.schema_info
        ),
        ("active", None, &None)
    );
    assert_eq!(
        data.source(sales.id).await.expect("source"),
        Some(sales.clone())
    );
    let accounts = source(data, p.id, "Accounts", "database").await;
    let listed = data
        .sources_in_project(p.id)
        .await
        .expect("sources_in_project");
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![accounts.id, sales.id],
        "by name, in any case"
    );
    let (_, other) = project(users, projects).await;
    assert!(
        data.sources_in_project(other.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(data.source(Uuid::new_v4()).await.expect("source"), None);
    assert_not_found(
        data.create_source(new_source(Uuid::new_v4(), "x", "file"))
            .await,
        "a source of an unknown project",
    );
}

/// Two sources of one project cannot share a name, even in another case (it is their table
/// name); another project may use it.
pub async fn source_names_are_unique_per_project_in_any_case(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "file").await;
    assert_conflict(
        data.create_source(new_source(p.id, "SALES", "api")).await,
        "name",
        "the same name in another case",
    );
    let other = source(data, p.id, "other", "file").await;
    assert_conflict(
        data.update_source(
            other.id,
            DataSourceUpdate {
                name: Some("Sales".into()),
                ..DataSourceUpdate::default()
            },
        )
        .await,
        "name",
        "renaming to a taken name",
    );
    let (_, q) = project(users, projects).await;
    source(data, q.id, "sales", "file").await;
    assert_eq!(data.source(sales.id).await.expect("source"), Some(sales));
}

/// An update changes what it names (and `updated_at`), keeps the rest; `None` for an
/// unknown source.
pub async fn a_source_update_changes_only_what_it_names(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let before = source(data, p.id, "sales", "file").await;
    tokio::time::sleep(TICK).await;
    let synced_at = now_ms();
    let schema = json!({"columns": [{"name": "region", "type": "string"}]});
    let after = data
        .update_source(
            before.id,
            DataSourceUpdate {
                schema_info: Some(schema.clone()),
                status: Some("error".into()),
                last_sync_at: Some(synced_at),
                ..DataSourceUpdate::default()
            },
        )
        .await
        .expect("update_source")
        .expect("exists");
    assert_eq!(after.schema_info, Some(schema));
    assert_eq!(after.status, "error");
    assert_eq!(after.last_sync_at, Some(synced_at));
    assert!(after.updated_at > before.updated_at);
    assert_eq!(
        (
            &after.name,
            &after.connection_config,
            &after.metadata,
            after.created_at
        ),
        (
            &before.name,
            &before.connection_config,
            &before.metadata,
            before.created_at
        )
    );
    assert_eq!(data.source(before.id).await.expect("source"), Some(after));
    assert_eq!(
        data.update_source(Uuid::new_v4(), DataSourceUpdate::default())
            .await
            .expect("update_source"),
        None
    );
}

/// A source a query runs on cannot be deleted; once the query is gone it can, once.
pub async fn a_source_in_use_cannot_be_deleted(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (owner, p) = project(users, projects).await;
    let db = source(data, p.id, "warehouse", "database").await;
    let q = data
        .create_query(new_query(p.id, owner.id, "on the warehouse", Some(db.id)))
        .await
        .expect("create_query");
    assert_eq!(q.data_source_id, Some(db.id));
    assert!(
        matches!(
            data.delete_source(db.id).await,
            Err(StorageError::Conflict(_))
        ),
        "a source in use"
    );
    assert!(data.source(db.id).await.expect("source").is_some());
    assert!(data.delete_query(q.id).await.expect("delete_query"));
    assert!(data.delete_source(db.id).await.expect("delete_source"));
    assert!(!data.delete_source(db.id).await.expect("delete_source"));
    assert_eq!(data.source(db.id).await.expect("source"), None);
}

/// A saved query reads back as created; an update changes what it names; a project's
/// queries come newest first.
pub async fn a_query_is_created_changed_and_listed_newest_first(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (owner, p) = project(users, projects).await;
    let first = query(data, p.id, owner.id, "first").await;
    assert_eq!(
        data.query(first.id).await.expect("query"),
        Some(first.clone())
    );
    tokio::time::sleep(TICK).await;
    let second = query(data, p.id, owner.id, "second").await;
    let listed = data.queries_in_project(p.id).await.expect("queries");
    assert_eq!(
        listed.iter().map(|q| q.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    let db = source(data, p.id, "db", "database").await;
    let changed = data
        .update_query(
            first.id,
            SavedQueryUpdate {
                query_text: Some("SELECT 1".into()),
                is_public: Some(true),
                data_source_id: Some(Some(db.id)),
                ..SavedQueryUpdate::default()
            },
        )
        .await
        .expect("update_query")
        .expect("exists");
    assert_eq!(
        (
            changed.query_text.as_str(),
            changed.is_public,
            changed.data_source_id
        ),
        ("SELECT 1", true, Some(db.id))
    );
    assert_eq!(
        (&changed.name, &changed.parameters),
        (&first.name, &first.parameters)
    );
    let cleared = data
        .update_query(
            first.id,
            SavedQueryUpdate {
                data_source_id: Some(None),
                ..SavedQueryUpdate::default()
            },
        )
        .await
        .expect("update_query")
        .expect("exists");
    assert_eq!((cleared.data_source_id, cleared.is_public), (None, true));
    assert_eq!(
        data.update_query(Uuid::new_v4(), SavedQueryUpdate::default())
            .await
            .expect("update_query"),
        None
    );
}

/// A query of an unknown project, or on an unknown source, is `NotFound`; so is an
/// execution of an unknown query.
pub async fn a_query_refers_to_real_records(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (owner, p) = project(users, projects).await;
    assert_not_found(
        data.create_query(new_query(Uuid::new_v4(), owner.id, "q", None))
            .await,
        "a query of an unknown project",
    );
    assert_not_found(
        data.create_query(new_query(p.id, owner.id, "q", Some(Uuid::new_v4())))
            .await,
        "a query on an unknown source",
    );
    assert_not_found(
        data.create_execution(&pending(Uuid::new_v4(), owner.id))
            .await,
        "an execution of an unknown query",
    );
}

/// Deleting a query takes its executions with it.
pub async fn deleting_a_query_deletes_its_executions(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (owner, p) = project(users, projects).await;
    let q = query(data, p.id, owner.id, "q").await;
    let run = pending(q.id, owner.id);
    data.create_execution(&run).await.expect("create_execution");
    assert!(data.delete_query(q.id).await.expect("delete_query"));
    assert!(!data.delete_query(q.id).await.expect("delete_query"));
    assert_eq!(data.query(q.id).await.expect("query"), None);
    assert_eq!(data.execution(run.id).await.expect("execution"), None);
}

/// An execution reads back as recorded, changes while pending or running, and not at all
/// once it has ended; a query's executions come newest first, up to the limit.
pub async fn an_execution_changes_until_it_ends(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (owner, p) = project(users, projects).await;
    let q = query(data, p.id, owner.id, "q").await;
    let run = pending(q.id, owner.id);
    data.create_execution(&run).await.expect("create_execution");
    assert_eq!(
        data.execution(run.id).await.expect("execution"),
        Some(run.clone())
    );

    let running = data
        .update_execution(
            run.id,
            ExecutionUpdate {
                status: Some("running".into()),
                ..ExecutionUpdate::default()
            },
        )
        .await
        .expect("update_execution")
        .expect("not ended");
    assert_eq!(running.status, "running");
    let done_at = now_ms();
    let done = data
        .update_execution(
            run.id,
            ExecutionUpdate {
                status: Some("completed".into()),
                result_location: Some("query:result:hash-1".into()),
                execution_time_ms: Some(12),
                rows_returned: Some(3),
                completed_at: Some(done_at),
                computed_at: Some(done_at),
                ..ExecutionUpdate::default()
            },
        )
        .await
        .expect("update_execution")
        .expect("not ended");
    assert!(done.is_final());
    assert_eq!(
        (
            done.execution_time_ms,
            done.rows_returned,
            done.completed_at,
            done.computed_at
        ),
        (Some(12), Some(3), Some(done_at), Some(done_at))
    );
    assert_eq!(
        data.update_execution(
            run.id,
            ExecutionUpdate {
                status: Some("failed".into()),
                error_message: Some("late".into()),
                ..ExecutionUpdate::default()
            },
        )
        .await
        .expect("update_execution"),
        None,
        "an ended execution does not change"
    );
    assert_eq!(data.execution(run.id).await.expect("execution"), Some(done));

    tokio::time::sleep(TICK).await;
    let later = QueryExecution {
        started_at: now_ms(),
        ..pending(q.id, owner.id)
    };
    data.create_execution(&later)
        .await
        .expect("create_execution");
    let listed = data.executions_of_query(q.id, 10).await.expect("list");
    assert_eq!(
        listed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![later.id, run.id]
    );
    assert_eq!(
        data.executions_of_query(q.id, 1).await.expect("list").len(),
        1
    );
    assert_eq!(
        data.update_execution(Uuid::new_v4(), ExecutionUpdate::default())
            .await
            .expect("update_execution"),
        None
    );
}

fn new_pipeline(
    project: Uuid,
    source: Uuid,
    name: &str,
    next_run_at: Option<DateTime<Utc>>,
) -> NewDataPipeline {
    NewDataPipeline {
        project_id: project,
        name: name.into(),
        source_id: source,
        pipeline_config: json!({"note": name}),
        schedule_cron: next_run_at.map(|_| "*/5 * * * *".to_owned()),
        is_active: true,
        next_run_at,
    }
}

async fn pipeline(
    data: &dyn DataStore,
    project: Uuid,
    source: Uuid,
    name: &str,
    next_run_at: Option<DateTime<Utc>>,
) -> DataPipeline {
    data.create_pipeline(new_pipeline(project, source, name, next_run_at))
        .await
        .expect("create_pipeline")
}

/// A whole second `secs` from now (what a cron schedule gives).
fn at(secs: i64) -> DateTime<Utc> {
    let now = Utc::now().timestamp() + secs;
    DateTime::from_timestamp(now, 0).unwrap_or_else(Utc::now)
}

/// A new pipeline has never run; it reads back as created, lists by name, changes what an
/// update names (a schedule and a due time can be removed) and is deleted once.
pub async fn a_pipeline_is_created_read_changed_and_deleted(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "api").await;
    let nightly = pipeline(data, p.id, sales.id, "nightly", Some(at(3600))).await;
    assert_eq!(
        (
            nightly.last_run_at,
            nightly.run_count,
            nightly.last_status.as_deref(),
            nightly.is_active
        ),
        (None, 0, None, true)
    );
    assert_eq!(
        data.pipeline(nightly.id).await.expect("pipeline"),
        Some(nightly.clone())
    );
    let hourly = pipeline(data, p.id, sales.id, "Hourly", None).await;
    let listed = data.pipelines_in_project(p.id).await.expect("list");
    assert_eq!(
        listed.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![hourly.id, nightly.id],
        "by name, in any case"
    );
    tokio::time::sleep(TICK).await;
    let changed = data
        .update_pipeline(
            nightly.id,
            DataPipelineUpdate {
                name: Some("nightly sales".into()),
                is_active: Some(false),
                ..DataPipelineUpdate::default()
            },
        )
        .await
        .expect("update")
        .expect("known");
    assert_eq!(changed.name, "nightly sales");
    assert!(!changed.is_active);
    assert_eq!(changed.schedule_cron, nightly.schedule_cron, "kept");
    assert_eq!(changed.next_run_at, nightly.next_run_at, "kept");
    assert_eq!(changed.pipeline_config, nightly.pipeline_config, "kept");
    assert!(changed.updated_at > nightly.updated_at);
    let unscheduled = data
        .update_pipeline(
            nightly.id,
            DataPipelineUpdate {
                schedule_cron: Some(None),
                next_run_at: Some(None),
                pipeline_config: Some(json!({"retries": 2})),
                ..DataPipelineUpdate::default()
            },
        )
        .await
        .expect("update")
        .expect("known");
    assert_eq!(
        (
            unscheduled.schedule_cron,
            unscheduled.next_run_at,
            unscheduled.pipeline_config
        ),
        (None, None, json!({"retries": 2}))
    );
    assert_eq!(
        data.update_pipeline(Uuid::new_v4(), DataPipelineUpdate::default())
            .await
            .expect("update"),
        None
    );
    assert!(data.delete_pipeline(nightly.id).await.expect("delete"));
    assert!(!data.delete_pipeline(nightly.id).await.expect("delete"));
    assert_eq!(data.pipeline(nightly.id).await.expect("pipeline"), None);
    assert_eq!(
        data.pipelines_in_project(p.id).await.expect("list").len(),
        1
    );
}

/// A pipeline of an unknown project or source is `NotFound`; a source a pipeline runs
/// cannot be deleted (`Conflict`) until the pipeline is.
pub async fn a_pipeline_refers_to_a_real_project_and_source(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "api").await;
    assert_not_found(
        data.create_pipeline(new_pipeline(p.id, Uuid::new_v4(), "x", None))
            .await,
        "a pipeline of an unknown source",
    );
    assert_not_found(
        data.create_pipeline(new_pipeline(Uuid::new_v4(), sales.id, "x", None))
            .await,
        "a pipeline of an unknown project",
    );
    assert!(
        data.pipelines_in_project(p.id)
            .await
            .expect("list")
            .is_empty()
    );
    let refresh = pipeline(data, p.id, sales.id, "refresh", None).await;
    assert!(
        matches!(
            data.delete_source(sales.id).await,
            Err(StorageError::Conflict(_))
        ),
        "a source in use by a pipeline"
    );
    assert!(data.delete_pipeline(refresh.id).await.expect("delete"));
    assert!(data.delete_source(sales.id).await.expect("delete source"));
}

/// Due pipelines are the active ones whose `next_run_at` has come, earliest first; the
/// earliest due time is at or before theirs. (Other suites share the store: only this
/// case's pipelines are looked at.)
pub async fn due_pipelines_are_the_active_ones_whose_time_has_come(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "api").await;
    let late = pipeline(data, p.id, sales.id, "late", Some(at(-20))).await;
    let due = pipeline(data, p.id, sales.id, "due", Some(at(-5))).await;
    let later = pipeline(data, p.id, sales.id, "later", Some(at(3600))).await;
    let paused = pipeline(data, p.id, sales.id, "paused", Some(at(-30))).await;
    data.update_pipeline(
        paused.id,
        DataPipelineUpdate {
            is_active: Some(false),
            ..DataPipelineUpdate::default()
        },
    )
    .await
    .expect("pause");
    let manual = pipeline(data, p.id, sales.id, "manual", None).await;
    let mine = [late.id, due.id, later.id, paused.id, manual.id];
    let found: Vec<Uuid> = data
        .due_pipelines(Utc::now(), 10_000)
        .await
        .expect("due")
        .into_iter()
        .map(|x| x.id)
        .filter(|id| mine.contains(id))
        .collect();
    assert_eq!(found, vec![late.id, due.id], "earliest first");
    let earliest = data
        .next_pipeline_due()
        .await
        .expect("next due")
        .expect("some pipeline is due");
    assert!(
        earliest <= at(-20),
        "{earliest} is at or before the late one"
    );
}

/// Of several concurrent claims of one due run, exactly one wins: it moves `next_run_at` on,
/// sets `last_run_at` and counts the run. A claim of a due time already moved on, or of a
/// paused pipeline, wins nothing.
pub async fn one_of_concurrent_claims_of_a_due_run_wins(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "api").await;
    let due_at = at(-1);
    let every = pipeline(data, p.id, sales.id, "every", Some(due_at)).await;
    let now = now_ms();
    let next = at(300);
    let claims = (0..2).map(|_| data.claim_pipeline_run(every.id, due_at, now, Some(next)));
    let won: Vec<DataPipeline> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .filter_map(|r| r.expect("claim"))
        .collect();
    assert_eq!(won.len(), 1, "exactly one of two concurrent claims wins");
    let claimed = &won[0];
    assert_eq!(
        (claimed.last_run_at, claimed.next_run_at, claimed.run_count),
        (Some(now), Some(next), 1)
    );
    assert_eq!(
        data.pipeline(every.id).await.expect("pipeline").as_ref(),
        Some(claimed)
    );
    // Eight more nodes, one due time: still one.
    let claims = (0..8).map(|_| data.claim_pipeline_run(every.id, next, now_ms(), None));
    let won = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(won, 1);
    assert_eq!(
        data.claim_pipeline_run(every.id, due_at, now_ms(), Some(next))
            .await
            .expect("claim"),
        None,
        "a due time already moved on"
    );
    let paused = pipeline(data, p.id, sales.id, "paused", Some(due_at)).await;
    data.update_pipeline(
        paused.id,
        DataPipelineUpdate {
            is_active: Some(false),
            ..DataPipelineUpdate::default()
        },
    )
    .await
    .expect("pause");
    assert_eq!(
        data.claim_pipeline_run(paused.id, due_at, now_ms(), Some(next))
            .await
            .expect("claim"),
        None,
        "a paused pipeline"
    );
    let after = data.pipeline(every.id).await.expect("read").expect("known");
    assert_eq!((after.run_count, after.next_run_at), (2, None));
}

/// A run asked for by hand counts and keeps the schedule; a run's outcome is recorded while
/// no later run has started, and an `ok` clears the last error.
pub async fn a_run_outcome_is_recorded_only_for_the_latest_run(
    users: &dyn UserStore,
    projects: &dyn ProjectStore,
    data: &dyn DataStore,
) {
    let (_, p) = project(users, projects).await;
    let sales = source(data, p.id, "sales", "api").await;
    let due_at = at(3600);
    let daily = pipeline(data, p.id, sales.id, "daily", Some(due_at)).await;
    let first = now_ms();
    let started = data
        .start_pipeline_run(daily.id, first)
        .await
        .expect("start")
        .expect("known");
    assert_eq!(
        (started.last_run_at, started.next_run_at, started.run_count),
        (Some(first), Some(due_at), 1)
    );
    assert!(
        data.finish_pipeline_run(daily.id, first, PipelineOutcome::Error("HTTP 500".into()))
            .await
            .expect("finish")
    );
    let failed = data.pipeline(daily.id).await.expect("read").expect("known");
    assert_eq!(
        (failed.last_status.as_deref(), failed.last_error.as_deref()),
        (Some("error"), Some("HTTP 500"))
    );
    tokio::time::sleep(TICK).await;
    let second = now_ms();
    data.start_pipeline_run(daily.id, second)
        .await
        .expect("start")
        .expect("known");
    assert!(
        !data
            .finish_pipeline_run(daily.id, first, PipelineOutcome::Ok)
            .await
            .expect("finish"),
        "the first run ends after the second started: not recorded"
    );
    assert!(
        data.finish_pipeline_run(daily.id, second, PipelineOutcome::Ok)
            .await
            .expect("finish")
    );
    let ok = data.pipeline(daily.id).await.expect("read").expect("known");
    assert_eq!(
        (ok.last_status.as_deref(), ok.last_error, ok.run_count),
        (Some("ok"), None, 2)
    );
    assert_eq!(
        data.start_pipeline_run(Uuid::new_v4(), now_ms())
            .await
            .expect("start"),
        None
    );
}
