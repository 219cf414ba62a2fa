//! Running a saved query.
//!
//! [`start`] binds the parameters, finds the query's target (the project's file, api and
//! streaming sources as tables, or its `database` source), computes the result's cache key
//! (the sources' data versions, the normalised text and the bound values) and, unless the
//! caller asked for a fresh run, answers from the cache (`query:result:{key}`): an execution
//! record with `from_cache: true` and the original `computed_at`. Otherwise it runs the
//! execution in the background: it waits for a slot of the node and of the project
//! ([`Jobs`]: a queue beyond them), becomes `running`, executes under the engine's timeout
//! and caps, stores the result in the cache and ends `completed`, `failed` (with the message;
//! a source it could not reach gets status `error`) or `cancelled`. The execution record (any
//! node reads it) and the cached result (any node reads it) are the shared truth: an
//! execution that was cancelled or finished elsewhere is never changed again.
//!
//! The record is written once when the job ends within the request's wait (the common case:
//! nobody but the waiting request knows its id before then, so nobody can miss it). When the
//! wait runs out first, the request writes it as it stands (`pending` or `running`, with its
//! progress in `processing:{job_id}`) before answering with its id, and the job updates it
//! from then on. [`Record`] orders the two: whichever comes second sees what the first did.

use super::{DataLayer, sources};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use canvas_analytics::{BoundQuery, Error, Query, QueryResult, Target};
use canvas_storage::{ExecutionUpdate, QueryExecution, SavedQuery, StorageResult};
use chrono::Utc;
use dashmap::DashMap;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Executions running or queued on this node, and the slots they share.
pub struct Jobs {
    node: Arc<Semaphore>,
    per_project: usize,
    projects: DashMap<Uuid, Arc<Semaphore>>,
    running: DashMap<Uuid, CancellationToken>,
}

impl Jobs {
    /// At most `per_node` executions at once on this node, `per_project` of one project.
    pub fn new(per_node: usize, per_project: usize) -> Jobs {
        Jobs {
            node: Arc::new(Semaphore::new(per_node.max(1))),
            per_project: per_project.max(1),
            projects: DashMap::new(),
            running: DashMap::new(),
        }
    }

    /// Waits for a slot of the project, then one of the node (`None` only if the
    /// semaphores were closed, which nothing does).
    async fn slots(&self, project: Uuid) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let project_slots = self
            .projects
            .entry(project)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_project)))
            .clone();
        let project = project_slots.acquire_owned().await.ok()?;
        let node = self.node.clone().acquire_owned().await.ok()?;
        Some((project, node))
    }

    /// Cancels an execution running or queued on this node; `false` if it is not here.
    pub fn cancel(&self, id: Uuid) -> bool {
        match self.running.get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Whether the execution record is in storage yet, and where the job is while it is not.
#[derive(Default)]
struct Record {
    written: bool,
    running: bool,
}

type SharedRecord = Arc<tokio::sync::Mutex<Record>>;

/// Writes the record as it stands if the job has not written it (the wait ran out): from
/// then on the job updates it, and its id can be polled and cancelled.
async fn write_pending(state: &AppState, execution: &QueryExecution, record: &SharedRecord) {
    let mut record = record.lock().await;
    if record.written {
        return;
    }
    let mut now = execution.clone();
    let status = if record.running { "running" } else { "pending" };
    now.status = status.into();
    match state.storage.data.create_execution(&now).await {
        Ok(()) => {
            record.written = true;
            progress(state, now.id, json!({"status": status, "progress": 0.0})).await;
        }
        Err(e) => tracing::warn!(execution = %now.id, error = %e, "cannot record the execution"),
    }
}

/// How a job ended, for the request that may still be waiting for it.
enum Outcome {
    /// Completed: the record and the result.
    Completed(Box<(QueryExecution, QueryResult)>),
    /// The engine refused the query as the caller's mistake (an unknown column, a type
    /// error found when planning): the waiting request answers 400 with it.
    Refused(Error),
    /// Anything else (failed, cancelled, recorded elsewhere): the record says.
    Ended,
}

/// What `execute` answers.
pub enum Started {
    /// The result is there: from the cache, or computed within the wait.
    Done(Box<QueryExecution>, Box<QueryResult>),
    /// Still running (or failed): the execution to poll.
    Pending(Box<QueryExecution>),
}

/// Runs `query` with `parameters` for `user` (see the module's documentation), waiting
/// `--execute-wait-ms` for the end.
pub async fn start(
    state: &AppState,
    query: &SavedQuery,
    parameters: &Value,
    fresh: bool,
    user: Option<Uuid>,
) -> ApiResult<Started> {
    run(
        state,
        query,
        parameters,
        fresh,
        user,
        Some(state.data.execute_wait),
        None,
    )
    .await
}

/// Like [`start`], waiting for the end however long it takes (for bound blocks: the job is
/// under the same limits, timeout and cancellation as any). `fresh` skips the cache.
pub async fn run_to_end(
    state: &AppState,
    query: &SavedQuery,
    parameters: &Value,
    fresh: bool,
    user: Option<Uuid>,
    started: Option<oneshot::Sender<Uuid>>,
) -> ApiResult<Started> {
    run(state, query, parameters, fresh, user, None, started).await
}

/// The result kept in the shared result cache under `key`, if it is still there and readable.
pub async fn cached_result(state: &AppState, key: &str) -> Option<QueryResult> {
    read_cached(state, key).await.unwrap_or_else(|e| {
        tracing::warn!(%key, error = %e, "cannot read the result cache");
        None
    })
}

/// The result under `key` in the shared result cache; `None` if it is not there or cannot
/// be read (logged: it is computed again).
async fn read_cached(state: &AppState, key: &str) -> StorageResult<Option<QueryResult>> {
    let Some(bytes) = state.storage.results.result(key).await? else {
        return Ok(None);
    };
    match QueryResult::from_msgpack(&bytes) {
        Ok(result) => Ok(Some(result)),
        Err(e) => {
            tracing::warn!(%key, error = %e, "unreadable cached result; computed again");
            Ok(None)
        }
    }
}

async fn run(
    state: &AppState,
    query: &SavedQuery,
    parameters: &Value,
    fresh: bool,
    user: Option<Uuid>,
    wait: Option<std::time::Duration>,
    started: Option<oneshot::Sender<Uuid>>,
) -> ApiResult<Started> {
    let layer = &state.data;
    let bound =
        Query::new(&query.query_type, &query.query_text, &query.parameters)?.bind(parameters)?;
    let target = TargetSources::of(state, query).await?;
    let key = match layer.analytics.cache_key(&bound, target.target()).await {
        Ok(key) => key,
        Err(e) => return failed_at_once(state, query, parameters, user, e).await,
    };
    let now = Utc::now();
    let mut execution = QueryExecution {
        id: Uuid::new_v4(),
        query_id: query.id,
        executed_by: user,
        status: "pending".into(),
        parameters: recorded(parameters),
        result_location: None,
        error_message: None,
        execution_time_ms: None,
        rows_returned: None,
        started_at: now,
        completed_at: None,
        query_hash: Some(key.clone()),
        from_cache: false,
        computed_at: None,
    };
    if !fresh && let Some(result) = read_cached(state, &key).await? {
        state.metrics.query_cache_hits.inc();
        execution.status = "completed".into();
        execution.from_cache = true;
        execution.computed_at = Some(result.computed_at);
        execution.completed_at = Some(now);
        execution.execution_time_ms = Some(0);
        execution.rows_returned = Some(row_count(&result));
        execution.result_location = Some(result_location(&key));
        record_ended(state, query.project_id, &execution).await?;
        return Ok(Started::Done(Box::new(execution), Box::new(result)));
    }
    let record = SharedRecord::default();
    let (done_tx, done_rx) = oneshot::channel();
    let token = CancellationToken::new();
    layer.jobs.running.insert(execution.id, token.clone());
    let job = Job {
        state: state.clone(),
        execution: execution.clone(),
        project: query.project_id,
        bound,
        target,
        key,
        token,
        record: record.clone(),
    };
    if let Some(started) = started {
        let _ = started.send(execution.id);
    }
    state.tasks.spawn(async move {
        let outcome = job.run().await;
        let _ = done_tx.send(outcome);
    });
    let waited = match wait {
        Some(wait) => tokio::time::timeout(wait, done_rx).await,
        None => Ok(done_rx.await),
    };
    match waited {
        Ok(Ok(Outcome::Completed(done))) => {
            let (execution, result) = *done;
            Ok(Started::Done(Box::new(execution), Box::new(result)))
        }
        Ok(Ok(Outcome::Refused(error))) => Err(error.into()),
        Ok(Ok(Outcome::Ended)) | Ok(Err(_)) | Err(_) => {
            write_pending(state, &execution, &record).await;
            let now = state.storage.data.execution(execution.id).await?;
            Ok(Started::Pending(Box::new(now.unwrap_or(execution))))
        }
    }
}

/// The sources a query reads, owned so the background job can keep them.
struct TargetSources {
    database: Option<canvas_analytics::DataSource>,
    tables: Vec<canvas_analytics::DataSource>,
    rows: Vec<canvas_storage::DataSource>,
}

impl TargetSources {
    /// A query with a `data_source_id` runs on that database source; any other reads the
    /// project's file, api and streaming sources as tables.
    async fn of(state: &AppState, query: &SavedQuery) -> ApiResult<TargetSources> {
        let layer = &state.data;
        if let Some(id) = query.data_source_id {
            let row = state
                .storage
                .data
                .source(id)
                .await?
                .filter(|s| s.project_id == query.project_id)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "the query's data source is gone")
                })?;
            let source = sources::open(layer, &row)?;
            return Ok(TargetSources {
                database: Some(source),
                tables: Vec::new(),
                rows: vec![row],
            });
        }
        let rows: Vec<_> = state
            .storage
            .data
            .sources_in_project(query.project_id)
            .await?
            .into_iter()
            .filter(|s| s.kind != "database")
            .collect();
        let tables = rows
            .iter()
            .map(|row| sources::open(layer, row))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(TargetSources {
            database: None,
            tables,
            rows,
        })
    }

    fn target(&self) -> Target<'_> {
        match &self.database {
            Some(source) => Target::Database(source),
            None => Target::Tables(&self.tables),
        }
    }
}

/// One execution in the background.
struct Job {
    state: AppState,
    execution: QueryExecution,
    project: Uuid,
    bound: BoundQuery,
    target: TargetSources,
    key: String,
    token: CancellationToken,
    record: SharedRecord,
}

impl Job {
    /// Runs it to its end.
    async fn run(self) -> Outcome {
        let id = self.execution.id;
        let outcome = self.run_inner().await;
        self.state.data.jobs.running.remove(&id);
        outcome
    }

    async fn run_inner(&self) -> Outcome {
        let state = &self.state;
        let layer: &DataLayer = &state.data;
        let id = self.execution.id;
        let slots = tokio::select! {
            slots = layer.jobs.slots(self.project) => slots,
            () = self.token.cancelled() => None,
        };
        let Some(_slots) = slots else {
            return self
                .end(ExecutionUpdate::default(), Err(Error::Cancelled))
                .await;
        };
        {
            let mut record = self.record.lock().await;
            record.running = true;
            if record.written {
                let running = ExecutionUpdate {
                    status: Some("running".into()),
                    ..ExecutionUpdate::default()
                };
                match state.storage.data.update_execution(id, running).await {
                    Ok(Some(_)) => {}
                    // Cancelled (or gone) while it waited.
                    Ok(None) => return Outcome::Ended,
                    Err(e) => {
                        tracing::warn!(execution = %id, error = %e, "cannot mark the execution running");
                        return Outcome::Ended;
                    }
                }
                progress(state, id, json!({"status": "running", "progress": 0.0})).await;
            }
        }
        let started = std::time::Instant::now();
        let result = layer
            .analytics
            .execute(&self.bound, self.target.target(), &self.token)
            .await;
        state
            .metrics
            .query_seconds
            .observe(started.elapsed().as_secs_f64());
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let timing = ExecutionUpdate {
            execution_time_ms: Some(elapsed),
            ..ExecutionUpdate::default()
        };
        self.end(timing, result).await
    }

    /// Records how it ended; the result is cached first, so whoever sees `completed` finds it.
    async fn end(
        &self,
        mut update: ExecutionUpdate,
        result: canvas_analytics::Result<QueryResult>,
    ) -> Outcome {
        let state = &self.state;
        let id = self.execution.id;
        update.completed_at = Some(Utc::now());
        let (result, refused) = match result {
            Ok(result) => match self.keep(&result).await {
                Ok(()) => {
                    update.status = Some("completed".into());
                    update.rows_returned = Some(row_count(&result));
                    update.computed_at = Some(result.computed_at);
                    update.result_location = Some(result_location(&self.key));
                    (Some(result), None)
                }
                Err(message) => {
                    update.status = Some("failed".into());
                    update.error_message = Some(message);
                    (None, None)
                }
            },
            Err(e) => {
                if matches!(e, Error::SourceUnavailable(_)) {
                    self.mark_unreachable(&e.to_string()).await;
                }
                let status = if matches!(e, Error::Cancelled) {
                    "cancelled"
                } else {
                    "failed"
                };
                update.status = Some(status.into());
                update.error_message = Some(e.to_string());
                let refused = (e.kind() == canvas_analytics::ErrorKind::InvalidInput).then_some(e);
                (None, refused)
            }
        };
        let status = update.status.clone().unwrap_or_default();
        state.metrics.query_execution(&status);
        let ended = {
            let mut record = self.record.lock().await;
            let written = if record.written {
                let ended = state.storage.data.update_execution(id, update).await;
                if ended.is_ok() {
                    progress(state, id, json!({"status": status, "progress": 1.0})).await;
                }
                ended
            } else {
                // Nobody has its id yet: the one write of the record.
                let ended = ended_as(&self.execution, update);
                state
                    .storage
                    .data
                    .create_execution(&ended)
                    .await
                    .map(|()| Some(ended))
            };
            record.written = true;
            match written {
                Ok(ended) => ended,
                Err(e) => {
                    tracing::warn!(execution = %id, error = %e, "cannot record how the execution ended");
                    None
                }
            }
        };
        if let Some(execution) = &ended {
            state
                .webhooks
                .execution_ended(self.project, execution)
                .await;
        }
        match (ended, result, refused) {
            (Some(execution), Some(result), _) => Outcome::Completed(Box::new((execution, result))),
            (_, _, Some(error)) => Outcome::Refused(error),
            _ => Outcome::Ended,
        }
    }

    /// Stores a result in the cache for every node.
    async fn keep(&self, result: &QueryResult) -> Result<(), String> {
        let bytes = result
            .to_msgpack()
            .map_err(|e| format!("the result could not be encoded: {e}"))?;
        self.state
            .storage
            .results
            .put_result(&self.key, &bytes, self.state.data.result_ttl)
            .await
            .map_err(|e| format!("the result could not be stored: {e}"))
    }

    /// A source the execution could not reach gets status `error` with the message.
    async fn mark_unreachable(&self, message: &str) {
        let data = &self.state.storage.data;
        for row in &self.target.rows {
            if let Err(e) = data
                .update_source(row.id, sources::unreachable(row, message))
                .await
            {
                tracing::warn!(source = %row.id, error = %e, "cannot mark the source unreachable");
            }
        }
    }
}

/// An execution that failed before it could run (a source that could not be read to
/// compute the cache key): recorded as `failed`, answered like one that failed later.
async fn failed_at_once(
    state: &AppState,
    query: &SavedQuery,
    parameters: &Value,
    user: Option<Uuid>,
    error: Error,
) -> ApiResult<Started> {
    if error.kind() != canvas_analytics::ErrorKind::ExecutionFailed {
        return Err(error.into());
    }
    let now = Utc::now();
    let execution = QueryExecution {
        id: Uuid::new_v4(),
        query_id: query.id,
        executed_by: user,
        status: "failed".into(),
        parameters: recorded(parameters),
        result_location: None,
        error_message: Some(error.to_string()),
        execution_time_ms: Some(0),
        rows_returned: None,
        started_at: now,
        completed_at: Some(now),
        query_hash: None,
        from_cache: false,
        computed_at: None,
    };
    state.metrics.query_execution("failed");
    record_ended(state, query.project_id, &execution).await?;
    Ok(Started::Pending(Box::new(execution)))
}

/// Writes the record of an execution that ended before any job ran (a cache hit, a failure
/// to read its sources) and announces it.
async fn record_ended(
    state: &AppState,
    project: Uuid,
    execution: &QueryExecution,
) -> ApiResult<()> {
    state.storage.data.create_execution(execution).await?;
    state.webhooks.execution_ended(project, execution).await;
    Ok(())
}

/// `execution` as it ended with `update`.
fn ended_as(execution: &QueryExecution, update: ExecutionUpdate) -> QueryExecution {
    let mut ended = execution.clone();
    if let Some(status) = update.status {
        ended.status = status;
    }
    ended.result_location = update.result_location.or(ended.result_location);
    ended.error_message = update.error_message.or(ended.error_message);
    ended.execution_time_ms = update.execution_time_ms.or(ended.execution_time_ms);
    ended.rows_returned = update.rows_returned.or(ended.rows_returned);
    ended.completed_at = update.completed_at.or(ended.completed_at);
    ended.computed_at = update.computed_at.or(ended.computed_at);
    ended
}

/// The parameters as recorded: what the caller gave (defaults are the query's).
fn recorded(given: &Value) -> Value {
    match given {
        Value::Object(_) => given.clone(),
        _ => json!({}),
    }
}

/// Where a result is kept, for `result_location`.
fn result_location(key: &str) -> String {
    format!("query:result:{key}")
}

fn row_count(result: &QueryResult) -> i64 {
    i64::try_from(result.rows.len()).unwrap_or(i64::MAX)
}

/// Writes an execution's progress for other nodes (best effort: it is only a hint).
async fn progress(state: &AppState, id: Uuid, value: Value) {
    if let Err(e) = state
        .storage
        .results
        .put_progress(id, &value, state.data.result_ttl)
        .await
    {
        tracing::debug!(execution = %id, error = %e, "cannot write progress");
    }
}
