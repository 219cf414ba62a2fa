//! Data pipelines: re-syncing a source on a cron schedule, once per due time across every
//! node, and announcing the new data.
//!
//! - **Schedules** are cron expressions read by `croner` in UTC: five fields (minute hour
//!   day-of-month month day-of-week), or six with seconds first, or seven with a year last;
//!   `L`, `W`, `#`, names and `@hourly`-style aliases are accepted. One that runs more often
//!   than `--pipeline-min-interval-secs` (60 by default) is refused: [`Schedule::parse`].
//! - **The scheduler** ([`start`]) is one task per node. It looks at the due pipelines
//!   (`next_run_at <= now`, active), claims each run with a compare-and-set on `next_run_at`
//!   (`DataStore::claim_pipeline_run`: of the nodes that read the same due time, one moves it
//!   on to the next occurrence after now and runs; the others get nothing), and sleeps until
//!   the earliest due time, at most `--pipeline-tick-ms`, or until a pipeline changes on
//!   this node. Runs missed while no node ran are one run, not a backlog.
//! - **A run** ([`run`]) syncs the source through the engine (`Analytics::sync`: an `api`
//!   source fetches its URL again into a new snapshot; a `database` source lists its schema
//!   again; a `file` source checks its stored file), stores what the sync reports (status,
//!   schema, data version: [`super::sources::synced`]), records the outcome on the pipeline
//!   (`last_status` `ok` / `error`, `last_error`), and when the source synced, announces the
//!   refresh ([`super::refresh`]) so bound blocks compute their numbers again. A new data
//!   version means new result cache keys, so no query reads the old cached results again.

use super::sources;
use crate::state::AppState;
use canvas_storage::{DataPipeline, PipelineOutcome};
use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// How many due pipelines one look takes.
const BATCH: u32 = 64;

/// Runs at once on one node; a node that is busy leaves due runs to the others.
const RUNS_PER_NODE: usize = 4;

/// Shortest sleep of the scheduler (a due run another node holds must not make it spin).
const MIN_SLEEP: Duration = Duration::from_millis(50);

/// How many coming occurrences the minimum interval is checked over.
const CHECKED_OCCURRENCES: usize = 64;

/// A pipeline's parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses a cron expression (UTC) and checks that no two of its coming runs are closer
    /// than `floor`. The error is a message for the caller.
    pub fn parse(text: &str, floor: Duration) -> Result<Schedule, String> {
        let text = text.trim();
        if text.is_empty() || text.len() > 255 {
            return Err("schedule_cron is a cron expression of 1 to 255 characters".into());
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            .build()
            .parse(text)
            .map_err(|e| format!("schedule_cron {text:?} is not a cron expression: {e}"))?;
        let schedule = Schedule(cron);
        let mut previous = schedule
            .next_after(Utc::now())
            .ok_or_else(|| format!("schedule_cron {text:?} never runs again"))?;
        for _ in 0..CHECKED_OCCURRENCES {
            let Some(next) = schedule.next_after(previous) else {
                break;
            };
            let gap = (next - previous).to_std().unwrap_or(Duration::ZERO);
            if gap < floor {
                return Err(format!(
                    "schedule_cron {text:?} runs every {} s at times; the shortest interval \
                     allowed is {} s",
                    gap.as_secs(),
                    floor.as_secs()
                ));
            }
            previous = next;
        }
        Ok(schedule)
    }

    /// The first run strictly after `t`; `None` when it never runs again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&t, false).ok()
    }

    /// A human description ("At every 5th minute.").
    pub fn describe(&self) -> String {
        self.0.describe()
    }
}

/// A stored schedule as the scheduler reads it (no minimum: it was checked when set).
fn stored_schedule(pipeline: &DataPipeline) -> Result<Schedule, String> {
    match &pipeline.schedule_cron {
        Some(text) => Schedule::parse(text, Duration::ZERO),
        None => Err("the pipeline has no schedule".into()),
    }
}

/// The scheduler's settings and its wake-up call; one per node, in [`crate::data::DataLayer`].
pub struct PipelineSettings {
    /// Longest sleep between two looks at the due pipelines.
    pub tick: Duration,
    /// Shortest interval a schedule may have.
    pub min_interval: Duration,
    /// Woken when a pipeline changes on this node, so the scheduler looks again.
    pub wake: Notify,
    /// Runs at once on this node.
    runs: Arc<Semaphore>,
}

impl PipelineSettings {
    /// The settings with a tick and a floor.
    pub fn new(tick: Duration, min_interval: Duration) -> Self {
        PipelineSettings {
            tick: tick.max(MIN_SLEEP),
            min_interval,
            wake: Notify::new(),
            runs: Arc::new(Semaphore::new(RUNS_PER_NODE)),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// How it ended.
    pub outcome: PipelineOutcome,
    /// The source after the run (`None` when it is gone).
    pub source: Option<canvas_storage::DataSource>,
}

/// Runs a pipeline whose run started at `started` (claimed by the scheduler or asked for):
/// syncs its source, stores the sync, records the outcome, announces the refresh.
pub async fn run(state: &AppState, pipeline: &DataPipeline, started: DateTime<Utc>) -> RunReport {
    let storage = &state.storage;
    let (outcome, source) = sync_source(state, pipeline).await;
    if let PipelineOutcome::Error(message) = &outcome {
        tracing::info!(pipeline = %pipeline.id, source = %pipeline.source_id, %message, "pipeline run failed");
    }
    if let Err(e) = storage
        .data
        .finish_pipeline_run(pipeline.id, started, outcome.clone())
        .await
    {
        tracing::warn!(pipeline = %pipeline.id, error = %e, "a pipeline run's outcome was not recorded");
    }
    RunReport { outcome, source }
}

async fn sync_source(
    state: &AppState,
    pipeline: &DataPipeline,
) -> (PipelineOutcome, Option<canvas_storage::DataSource>) {
    let (storage, layer) = (&state.storage, &state.data);
    let row = match storage.data.source(pipeline.source_id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return (
                PipelineOutcome::Error(format!("data source {} not found", pipeline.source_id)),
                None,
            );
        }
        Err(e) => return (PipelineOutcome::Error(format!("storage: {e}")), None),
    };
    let source = match sources::open(layer, &row) {
        Ok(source) => source,
        Err(e) => return (PipelineOutcome::Error(e.to_string()), Some(row)),
    };
    let report = layer.analytics.sync(&source).await;
    let row = match storage
        .data
        .update_source(row.id, sources::synced(&row, &report))
        .await
    {
        Ok(Some(row)) => row,
        Ok(None) => {
            return (
                PipelineOutcome::Error(format!("data source {} not found", row.id)),
                None,
            );
        }
        Err(e) => return (PipelineOutcome::Error(format!("storage: {e}")), Some(row)),
    };
    match &report.status {
        canvas_analytics::SourceStatus::Active => {
            super::bound::source_refreshed(state, row.project_id, pipeline.source_id).await;
            (PipelineOutcome::Ok, Some(row))
        }
        canvas_analytics::SourceStatus::Error { message } => {
            (PipelineOutcome::Error(message.clone()), Some(row))
        }
    }
}

/// Starts this node's scheduler on the server's task tracker; it stops when the server
/// shuts down (runs in progress finish first: the tracker waits for them).
pub fn start(state: &AppState) {
    let state = state.clone();
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        loop {
            look(&state).await;
            let sleep = until_next(&state).await;
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = state.data.pipelines.wake.notified() => {}
                () = state.shutdown.cancelled() => return,
            }
        }
    });
}

/// How long to sleep: until the earliest due time, within [`MIN_SLEEP`] and the tick.
async fn until_next(state: &AppState) -> Duration {
    let tick = state.data.pipelines.tick;
    match state.storage.data.next_pipeline_due().await {
        Ok(Some(due)) => (due - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(MIN_SLEEP, tick),
        Ok(None) => tick,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the next pipeline due time");
            tick
        }
    }
}

/// Claims and starts the due runs this node has room for.
async fn look(state: &AppState) {
    let storage = &state.storage;
    let now = Utc::now();
    let due = match storage.data.due_pipelines(now, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the due pipelines");
            return;
        }
    };
    for pipeline in due {
        let Some(due_at) = pipeline.next_run_at else {
            continue;
        };
        // A busy node leaves the rest to the others (or to its next look).
        let Ok(permit) = state.data.pipelines.runs.clone().try_acquire_owned() else {
            return;
        };
        let schedule = stored_schedule(&pipeline);
        let next = schedule.as_ref().ok().and_then(|s| s.next_after(now));
        let started = Utc::now();
        let claimed = match storage
            .data
            .claim_pipeline_run(pipeline.id, due_at, started, next)
            .await
        {
            Ok(Some(claimed)) => claimed,
            // Another node has it, or it changed since it was read.
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(pipeline = %pipeline.id, error = %e, "cannot claim a pipeline run");
                continue;
            }
        };
        if let Err(message) = schedule {
            // A stored schedule that no longer parses (written by another tool): it is not
            // run again, and says why.
            let outcome = PipelineOutcome::Error(message);
            if let Err(e) = storage
                .data
                .finish_pipeline_run(claimed.id, started, outcome)
                .await
            {
                tracing::warn!(pipeline = %claimed.id, error = %e, "a pipeline run's outcome was not recorded");
            }
            continue;
        }
        tracing::info!(pipeline = %claimed.id, due = %due_at, node = %state.node_id, "pipeline run claimed");
        let state = state.clone();
        state.tasks.clone().spawn(async move {
            let _permit = permit;
            run(&state, &claimed, started).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_with_or_without_seconds() {
        let minute = Duration::from_secs(60);
        let every5 = Schedule::parse("*/5 * * * *", minute).expect("five fields");
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:02:30Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            every5.next_after(t).map(|n| n.to_rfc3339()),
            Some("2026-01-01T10:05:00+00:00".into())
        );
        let every2s = Schedule::parse("*/2 * * * * *", Duration::from_secs(1)).expect("six");
        assert_eq!(
            every2s.next_after(t).map(|n| n.to_rfc3339()),
            Some("2026-01-01T10:02:32+00:00".into())
        );
        assert!(Schedule::parse("@hourly", minute).is_ok());
    }

    #[test]
    fn bad_and_too_frequent_schedules_are_refused_with_a_reason() {
        let minute = Duration::from_secs(60);
        for bad in [
            "",
            "not cron",
            "61 * * * *",
            "* * * * * * * *",
            "*/0 * * * *",
        ] {
            let err = Schedule::parse(bad, minute).expect_err(bad);
            assert!(err.contains("schedule_cron"), "{bad}: {err}");
        }
        let err = Schedule::parse("*/10 * * * * *", minute).expect_err("every 10 s");
        assert!(err.contains("shortest interval allowed is 60 s"), "{err}");
        // Two runs a second apart once an hour: still too close.
        let err = Schedule::parse("0,1 0 * * * *", minute).expect_err("bursts");
        assert!(err.contains("every 1 s"), "{err}");
        assert!(
            Schedule::parse("0 0 1 1 * 2020", minute).is_err(),
            "never again"
        );
    }
}
