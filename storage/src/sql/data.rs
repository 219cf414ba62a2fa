//! [`DataStore`](crate::DataStore) for both SQL backends: the statements (PostgreSQL's
//! placeholders, rewritten for SQLite like the others in [`crate::sql`]), the row mappings,
//! and one implementation, written once in [`impl_data_store!`] and expanded for each backend
//! with its own conversions of ids, times, JSON and integers.

use super::SqlRow;
use crate::{DataPipeline, DataSource, QueryExecution, SavedQuery, StorageError, StorageResult};

/// The columns of a [`DataSource`].
macro_rules! source_columns {
    () => {
        "id, project_id, name, type, connection_config, schema_info, metadata, status, \
         last_sync_at, created_at, updated_at"
    };
}

/// The columns of a [`SavedQuery`].
macro_rules! query_columns {
    () => {
        "id, project_id, name, query_text, query_type, parameters, created_by, is_public, \
         data_source_id, created_at, updated_at"
    };
}

/// The columns of a [`QueryExecution`].
macro_rules! execution_columns {
    () => {
        "id, query_id, executed_by, status, parameters, result_location, error_message, \
         execution_time_ms, rows_returned, started_at, completed_at, query_hash, from_cache, \
         computed_at"
    };
}

/// Binds id, project, name, type, connection_config, metadata, now.
pub(crate) const INSERT_SOURCE: &str = "INSERT INTO data_sources (id, project_id, name, type, \
     connection_config, schema_info, metadata, status, last_sync_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6, 'active', NULL, $7, $7)";
/// Binds the id.
pub(crate) const SOURCE: &str = concat!(
    "SELECT ",
    source_columns!(),
    " FROM data_sources WHERE id = $1"
);
/// Binds the project.
pub(crate) const SOURCES_IN_PROJECT: &str = concat!(
    "SELECT ",
    source_columns!(),
    " FROM data_sources WHERE project_id = $1 ORDER BY lower(name), id"
);
/// Binds id, then name, connection_config, metadata, schema_info, status, last_sync_at (each
/// NULL to keep it), now.
pub(crate) const UPDATE_SOURCE: &str = concat!(
    "UPDATE data_sources SET name = COALESCE($2, name), \
     connection_config = COALESCE($3, connection_config), metadata = COALESCE($4, metadata), \
     schema_info = COALESCE($5, schema_info), status = COALESCE($6, status), \
     last_sync_at = COALESCE($7, last_sync_at), updated_at = $8 WHERE id = $1 RETURNING ",
    source_columns!()
);
/// Binds the id.
pub(crate) const DELETE_SOURCE: &str = "DELETE FROM data_sources WHERE id = $1";

/// Binds id, project, name, text, type, parameters, created_by, is_public, data_source_id,
/// now.
pub(crate) const INSERT_QUERY: &str = "INSERT INTO saved_queries (id, project_id, name, \
     query_text, query_type, parameters, created_by, is_public, data_source_id, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)";
/// Binds the id.
pub(crate) const QUERY: &str = concat!(
    "SELECT ",
    query_columns!(),
    " FROM saved_queries WHERE id = $1"
);
/// Binds the project.
pub(crate) const QUERIES_IN_PROJECT: &str = concat!(
    "SELECT ",
    query_columns!(),
    " FROM saved_queries WHERE project_id = $1 ORDER BY created_at DESC, id DESC"
);
/// Binds id, then name, text, type, parameters, is_public (each NULL to keep it), whether to
/// set the source, the source, now.
pub(crate) const UPDATE_QUERY: &str = concat!(
    "UPDATE saved_queries SET name = COALESCE($2, name), \
     query_text = COALESCE($3, query_text), query_type = COALESCE($4, query_type), \
     parameters = COALESCE($5, parameters), is_public = COALESCE($6, is_public), \
     data_source_id = CASE WHEN $7 THEN $8 ELSE data_source_id END, updated_at = $9 \
     WHERE id = $1 RETURNING ",
    query_columns!()
);
/// Binds the query.
pub(crate) const DELETE_EXECUTIONS_OF_QUERY: &str =
    "DELETE FROM query_executions WHERE query_id = $1";
/// Binds the id.
pub(crate) const DELETE_QUERY: &str = "DELETE FROM saved_queries WHERE id = $1";

/// Binds every column of `execution_columns!`, in order.
pub(crate) const INSERT_EXECUTION: &str = concat!(
    "INSERT INTO query_executions (",
    execution_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
/// Binds the id.
pub(crate) const EXECUTION: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM query_executions WHERE id = $1"
);
/// Binds id, then status, result_location, error_message, execution_time_ms, rows_returned,
/// completed_at, computed_at (each NULL to keep it). Only an execution that has not ended.
pub(crate) const UPDATE_EXECUTION: &str = concat!(
    "UPDATE query_executions SET status = COALESCE($2, status), \
     result_location = COALESCE($3, result_location), \
     error_message = COALESCE($4, error_message), \
     execution_time_ms = COALESCE($5, execution_time_ms), \
     rows_returned = COALESCE($6, rows_returned), completed_at = COALESCE($7, completed_at), \
     computed_at = COALESCE($8, computed_at) \
     WHERE id = $1 AND status IN ('pending', 'running') RETURNING ",
    execution_columns!()
);
/// Binds the query and the limit.
pub(crate) const EXECUTIONS_OF_QUERY: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM query_executions WHERE query_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
);

/// The columns of a [`DataPipeline`].
macro_rules! pipeline_columns {
    () => {
        "id, project_id, name, source_id, pipeline_config, schedule_cron, is_active, \
         last_run_at, next_run_at, last_status, last_error, run_count, created_at, updated_at"
    };
}

/// Binds id, project, name, source, pipeline_config, schedule_cron, is_active, next_run_at,
/// now.
pub(crate) const INSERT_PIPELINE: &str = "INSERT INTO data_pipelines (id, project_id, name, \
     source_id, pipeline_config, schedule_cron, is_active, last_run_at, next_run_at, \
     last_status, last_error, run_count, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL, NULL, 0, $9, $9)";
/// Binds the id.
pub(crate) const PIPELINE: &str = concat!(
    "SELECT ",
    pipeline_columns!(),
    " FROM data_pipelines WHERE id = $1"
);
/// Binds the project.
pub(crate) const PIPELINES_IN_PROJECT: &str = concat!(
    "SELECT ",
    pipeline_columns!(),
    " FROM data_pipelines WHERE project_id = $1 ORDER BY lower(name), id"
);
/// Binds id, then name, pipeline_config, is_active (each NULL to keep it), whether to set the
/// schedule, the schedule, whether to set the due time, the due time, now.
pub(crate) const UPDATE_PIPELINE: &str = concat!(
    "UPDATE data_pipelines SET name = COALESCE($2, name), \
     pipeline_config = COALESCE($3, pipeline_config), is_active = COALESCE($4, is_active), \
     schedule_cron = CASE WHEN $5 THEN $6 ELSE schedule_cron END, \
     next_run_at = CASE WHEN $7 THEN $8 ELSE next_run_at END, updated_at = $9 \
     WHERE id = $1 RETURNING ",
    pipeline_columns!()
);
/// Binds the id.
pub(crate) const DELETE_PIPELINE: &str = "DELETE FROM data_pipelines WHERE id = $1";
/// The earliest due time of an active pipeline.
pub(crate) const NEXT_PIPELINE_DUE: &str = "SELECT min(next_run_at) AS next_run_at \
     FROM data_pipelines WHERE is_active AND next_run_at IS NOT NULL";
/// Binds now and the limit.
pub(crate) const DUE_PIPELINES: &str = concat!(
    "SELECT ",
    pipeline_columns!(),
    " FROM data_pipelines WHERE is_active AND next_run_at <= $1 \
     ORDER BY next_run_at, id LIMIT $2"
);
/// Binds id, the due time read, now, the next due time. A compare-and-set on `next_run_at`:
/// of two nodes that read the same due time, only the first moves it on, and only it gets
/// the row back.
pub(crate) const CLAIM_PIPELINE_RUN: &str = concat!(
    "UPDATE data_pipelines SET last_run_at = $3, next_run_at = $4, \
     run_count = run_count + 1, updated_at = $3 \
     WHERE id = $1 AND is_active AND next_run_at = $2 RETURNING ",
    pipeline_columns!()
);
/// Binds id, now. A run asked for by hand: the schedule stays as it is.
pub(crate) const START_PIPELINE_RUN: &str = concat!(
    "UPDATE data_pipelines SET last_run_at = $2, run_count = run_count + 1, updated_at = $2 \
     WHERE id = $1 RETURNING ",
    pipeline_columns!()
);
/// Binds id, the run's start, status, error message. Only while no later run has started.
pub(crate) const FINISH_PIPELINE_RUN: &str = "UPDATE data_pipelines SET last_status = $3, \
     last_error = $4 WHERE id = $1 AND last_run_at = $2";

/// A [`DataSource`] from `source_columns!`.
pub(crate) fn source_from_row(row: &impl SqlRow) -> StorageResult<DataSource> {
    Ok(DataSource {
        id: row.uuid("id")?,
        project_id: row.uuid("project_id")?,
        name: row.text("name")?,
        kind: row.text("type")?,
        connection_config: row.opt_json("connection_config")?.unwrap_or_default(),
        schema_info: row.opt_json("schema_info")?,
        metadata: row
            .opt_json("metadata")?
            .unwrap_or_else(|| serde_json::json!({})),
        status: row.text("status")?,
        last_sync_at: row.opt_ts("last_sync_at")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// A [`SavedQuery`] from `query_columns!`.
pub(crate) fn query_from_row(row: &impl SqlRow) -> StorageResult<SavedQuery> {
    Ok(SavedQuery {
        id: row.uuid("id")?,
        project_id: row.uuid("project_id")?,
        name: row.text("name")?,
        query_text: row.text("query_text")?,
        query_type: row.text("query_type")?,
        parameters: row
            .opt_json("parameters")?
            .unwrap_or_else(|| serde_json::json!({})),
        created_by: row.opt_uuid("created_by")?,
        is_public: row.opt_bool("is_public")?.unwrap_or(false),
        data_source_id: row.opt_uuid("data_source_id")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// A [`QueryExecution`] from `execution_columns!`.
pub(crate) fn execution_from_row(row: &impl SqlRow) -> StorageResult<QueryExecution> {
    Ok(QueryExecution {
        id: row.uuid("id")?,
        query_id: row.uuid("query_id")?,
        executed_by: row.opt_uuid("executed_by")?,
        status: row.text("status")?,
        parameters: row
            .opt_json("parameters")?
            .unwrap_or_else(|| serde_json::json!({})),
        result_location: row.opt_text("result_location")?,
        error_message: row.opt_text("error_message")?,
        execution_time_ms: row.opt_int("execution_time_ms")?,
        rows_returned: row.opt_int("rows_returned")?,
        started_at: row.ts("started_at")?,
        completed_at: row.opt_ts("completed_at")?,
        query_hash: row.opt_text("query_hash")?,
        from_cache: row.opt_bool("from_cache")?.unwrap_or(false),
        computed_at: row.opt_ts("computed_at")?,
    })
}

/// A [`DataPipeline`] from `pipeline_columns!`.
pub(crate) fn pipeline_from_row(row: &impl SqlRow) -> StorageResult<DataPipeline> {
    Ok(DataPipeline {
        id: row.uuid("id")?,
        project_id: row.uuid("project_id")?,
        name: row.text("name")?,
        source_id: row.uuid("source_id")?,
        pipeline_config: row
            .opt_json("pipeline_config")?
            .unwrap_or_else(|| serde_json::json!({})),
        schedule_cron: row.opt_text("schedule_cron")?,
        is_active: row.opt_bool("is_active")?.unwrap_or(false),
        last_run_at: row.opt_ts("last_run_at")?,
        next_run_at: row.opt_ts("next_run_at")?,
        last_status: row.opt_text("last_status")?,
        last_error: row.opt_text("last_error")?,
        run_count: row.opt_int("run_count")?.unwrap_or(0),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// A failed source write: a taken name is `Conflict("name")`, an unknown project
/// `NotFound("project")`.
pub(crate) fn source_write_error(err: sqlx::Error) -> StorageError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::Conflict("name".into())
        }
        _ => super::missing_reference(err, "project"),
    }
}

/// A failed source delete: while a query or pipeline refers to it, `Conflict`.
pub(crate) fn source_delete_error(err: sqlx::Error) -> StorageError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::Conflict("the data source is in use by a saved query or pipeline".into())
        }
        _ => StorageError::Database(err),
    }
}

/// The [`DataStore`](crate::DataStore) implementation for one SQL backend. `$sql` turns a
/// statement into the backend's form; `$uuid`, `$ts`, `$json` and `$int` turn values into
/// what its columns take. The store must have `pool` and `begin_write()`.
macro_rules! impl_data_store {
    ($store:ty, sql: $sql:ident, uuid: $uuid:path, ts: $ts:path, json: $json:path, int: $int:path, now: $now:path) => {
        #[async_trait::async_trait]
        impl $crate::DataStore for $store {
            async fn create_source(
                &self,
                new: $crate::NewDataSource,
            ) -> $crate::StorageResult<$crate::DataSource> {
                use $crate::sql::data as s;
                let now = $now();
                let source = $crate::DataSource {
                    id: new.id,
                    project_id: new.project_id,
                    name: new.name,
                    kind: new.kind,
                    connection_config: new.connection_config,
                    schema_info: None,
                    metadata: new.metadata,
                    status: "active".into(),
                    last_sync_at: None,
                    created_at: now,
                    updated_at: now,
                };
                sqlx::query($sql!(s::INSERT_SOURCE))
                    .bind($uuid(source.id))
                    .bind($uuid(source.project_id))
                    .bind(&source.name)
                    .bind(&source.kind)
                    .bind($json(&source.connection_config))
                    .bind($json(&source.metadata))
                    .bind($ts(now))
                    .execute(&self.pool)
                    .await
                    .map_err(s::source_write_error)?;
                Ok(source)
            }

            async fn source(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StorageResult<Option<$crate::DataSource>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::SOURCE))
                    .bind($uuid(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::source_from_row(&r)).transpose()
            }

            async fn sources_in_project(
                &self,
                project_id: uuid::Uuid,
            ) -> $crate::StorageResult<Vec<$crate::DataSource>> {
                use $crate::sql::data as s;
                let rows = sqlx::query($sql!(s::SOURCES_IN_PROJECT))
                    .bind($uuid(project_id))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::source_from_row).collect()
            }

            async fn update_source(
                &self,
                id: uuid::Uuid,
                update: $crate::DataSourceUpdate,
            ) -> $crate::StorageResult<Option<$crate::DataSource>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::UPDATE_SOURCE))
                    .bind($uuid(id))
                    .bind(update.name)
                    .bind(update.connection_config.as_ref().map($json))
                    .bind(update.metadata.as_ref().map($json))
                    .bind(update.schema_info.as_ref().map($json))
                    .bind(update.status)
                    .bind(update.last_sync_at.map($ts))
                    .bind($ts($now()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(s::source_write_error)?;
                row.map(|r| s::source_from_row(&r)).transpose()
            }

            async fn delete_source(&self, id: uuid::Uuid) -> $crate::StorageResult<bool> {
                use $crate::sql::data as s;
                let done = sqlx::query($sql!(s::DELETE_SOURCE))
                    .bind($uuid(id))
                    .execute(&self.pool)
                    .await
                    .map_err(s::source_delete_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_query(
                &self,
                new: $crate::NewSavedQuery,
            ) -> $crate::StorageResult<$crate::SavedQuery> {
                use $crate::sql::data as s;
                let now = $now();
                let query = $crate::SavedQuery {
                    id: uuid::Uuid::new_v4(),
                    project_id: new.project_id,
                    name: new.name,
                    query_text: new.query_text,
                    query_type: new.query_type,
                    parameters: new.parameters,
                    created_by: new.created_by,
                    is_public: new.is_public,
                    data_source_id: new.data_source_id,
                    created_at: now,
                    updated_at: now,
                };
                sqlx::query($sql!(s::INSERT_QUERY))
                    .bind($uuid(query.id))
                    .bind($uuid(query.project_id))
                    .bind(&query.name)
                    .bind(&query.query_text)
                    .bind(&query.query_type)
                    .bind($json(&query.parameters))
                    .bind(query.created_by.map($uuid))
                    .bind(query.is_public)
                    .bind(query.data_source_id.map($uuid))
                    .bind($ts(now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::sql::missing_reference(e, "project, user or source"))?;
                Ok(query)
            }

            async fn query(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StorageResult<Option<$crate::SavedQuery>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::QUERY))
                    .bind($uuid(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::query_from_row(&r)).transpose()
            }

            async fn queries_in_project(
                &self,
                project_id: uuid::Uuid,
            ) -> $crate::StorageResult<Vec<$crate::SavedQuery>> {
                use $crate::sql::data as s;
                let rows = sqlx::query($sql!(s::QUERIES_IN_PROJECT))
                    .bind($uuid(project_id))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::query_from_row).collect()
            }

            async fn update_query(
                &self,
                id: uuid::Uuid,
                update: $crate::SavedQueryUpdate,
            ) -> $crate::StorageResult<Option<$crate::SavedQuery>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::UPDATE_QUERY))
                    .bind($uuid(id))
                    .bind(update.name)
                    .bind(update.query_text)
                    .bind(update.query_type)
                    .bind(update.parameters.as_ref().map($json))
                    .bind(update.is_public)
                    .bind(update.data_source_id.is_some())
                    .bind(update.data_source_id.flatten().map($uuid))
                    .bind($ts($now()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| $crate::sql::missing_reference(e, "source"))?;
                row.map(|r| s::query_from_row(&r)).transpose()
            }

            async fn delete_query(&self, id: uuid::Uuid) -> $crate::StorageResult<bool> {
                use $crate::sql::data as s;
                let mut tx = self.begin_write().await?;
                sqlx::query($sql!(s::DELETE_EXECUTIONS_OF_QUERY))
                    .bind($uuid(id))
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query($sql!(s::DELETE_QUERY))
                    .bind($uuid(id))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_execution(
                &self,
                e: &$crate::QueryExecution,
            ) -> $crate::StorageResult<()> {
                use $crate::sql::data as s;
                sqlx::query($sql!(s::INSERT_EXECUTION))
                    .bind($uuid(e.id))
                    .bind($uuid(e.query_id))
                    .bind(e.executed_by.map($uuid))
                    .bind(&e.status)
                    .bind($json(&e.parameters))
                    .bind(&e.result_location)
                    .bind(&e.error_message)
                    .bind(e.execution_time_ms.map($int))
                    .bind(e.rows_returned.map($int))
                    .bind($ts(e.started_at))
                    .bind(e.completed_at.map($ts))
                    .bind(&e.query_hash)
                    .bind(e.from_cache)
                    .bind(e.computed_at.map($ts))
                    .execute(self.records())
                    .await
                    .map_err(|err| $crate::sql::missing_reference(err, "query or user"))?;
                Ok(())
            }

            async fn execution(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StorageResult<Option<$crate::QueryExecution>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::EXECUTION))
                    .bind($uuid(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::execution_from_row(&r)).transpose()
            }

            async fn update_execution(
                &self,
                id: uuid::Uuid,
                u: $crate::ExecutionUpdate,
            ) -> $crate::StorageResult<Option<$crate::QueryExecution>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::UPDATE_EXECUTION))
                    .bind($uuid(id))
                    .bind(u.status)
                    .bind(u.result_location)
                    .bind(u.error_message)
                    .bind(u.execution_time_ms.map($int))
                    .bind(u.rows_returned.map($int))
                    .bind(u.completed_at.map($ts))
                    .bind(u.computed_at.map($ts))
                    .fetch_optional(self.records())
                    .await?;
                row.map(|r| s::execution_from_row(&r)).transpose()
            }

            async fn executions_of_query(
                &self,
                query_id: uuid::Uuid,
                limit: u32,
            ) -> $crate::StorageResult<Vec<$crate::QueryExecution>> {
                use $crate::sql::data as s;
                let rows = sqlx::query($sql!(s::EXECUTIONS_OF_QUERY))
                    .bind($uuid(query_id))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::execution_from_row).collect()
            }

            async fn create_pipeline(
                &self,
                new: $crate::NewDataPipeline,
            ) -> $crate::StorageResult<$crate::DataPipeline> {
                use $crate::sql::data as s;
                let now = $now();
                let pipeline = $crate::DataPipeline {
                    id: uuid::Uuid::new_v4(),
                    project_id: new.project_id,
                    name: new.name,
                    source_id: new.source_id,
                    pipeline_config: new.pipeline_config,
                    schedule_cron: new.schedule_cron,
                    is_active: new.is_active,
                    last_run_at: None,
                    next_run_at: new.next_run_at,
                    last_status: None,
                    last_error: None,
                    run_count: 0,
                    created_at: now,
                    updated_at: now,
                };
                sqlx::query($sql!(s::INSERT_PIPELINE))
                    .bind($uuid(pipeline.id))
                    .bind($uuid(pipeline.project_id))
                    .bind(&pipeline.name)
                    .bind($uuid(pipeline.source_id))
                    .bind($json(&pipeline.pipeline_config))
                    .bind(&pipeline.schedule_cron)
                    .bind(pipeline.is_active)
                    .bind(pipeline.next_run_at.map($ts))
                    .bind($ts(now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::sql::missing_reference(e, "project or source"))?;
                Ok(pipeline)
            }

            async fn pipeline(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StorageResult<Option<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::PIPELINE))
                    .bind($uuid(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::pipeline_from_row(&r)).transpose()
            }

            async fn pipelines_in_project(
                &self,
                project_id: uuid::Uuid,
            ) -> $crate::StorageResult<Vec<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let rows = sqlx::query($sql!(s::PIPELINES_IN_PROJECT))
                    .bind($uuid(project_id))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::pipeline_from_row).collect()
            }

            async fn update_pipeline(
                &self,
                id: uuid::Uuid,
                update: $crate::DataPipelineUpdate,
            ) -> $crate::StorageResult<Option<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::UPDATE_PIPELINE))
                    .bind($uuid(id))
                    .bind(update.name)
                    .bind(update.pipeline_config.as_ref().map($json))
                    .bind(update.is_active)
                    .bind(update.schedule_cron.is_some())
                    .bind(update.schedule_cron.flatten())
                    .bind(update.next_run_at.is_some())
                    .bind(update.next_run_at.flatten().map($ts))
                    .bind($ts($now()))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::pipeline_from_row(&r)).transpose()
            }

            async fn delete_pipeline(&self, id: uuid::Uuid) -> $crate::StorageResult<bool> {
                use $crate::sql::data as s;
                let done = sqlx::query($sql!(s::DELETE_PIPELINE))
                    .bind($uuid(id))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn next_pipeline_due(
                &self,
            ) -> $crate::StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
                use $crate::sql::SqlRow as _;
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::NEXT_PIPELINE_DUE))
                    .fetch_one(&self.pool)
                    .await?;
                row.opt_ts("next_run_at")
            }

            async fn due_pipelines(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StorageResult<Vec<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let rows = sqlx::query($sql!(s::DUE_PIPELINES))
                    .bind($ts(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(s::pipeline_from_row).collect()
            }

            async fn claim_pipeline_run(
                &self,
                id: uuid::Uuid,
                due: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
                next: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::StorageResult<Option<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::CLAIM_PIPELINE_RUN))
                    .bind($uuid(id))
                    .bind($ts(due))
                    .bind($ts(now))
                    .bind(next.map($ts))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::pipeline_from_row(&r)).transpose()
            }

            async fn start_pipeline_run(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StorageResult<Option<$crate::DataPipeline>> {
                use $crate::sql::data as s;
                let row = sqlx::query($sql!(s::START_PIPELINE_RUN))
                    .bind($uuid(id))
                    .bind($ts(now))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| s::pipeline_from_row(&r)).transpose()
            }

            async fn finish_pipeline_run(
                &self,
                id: uuid::Uuid,
                started: chrono::DateTime<chrono::Utc>,
                outcome: $crate::PipelineOutcome,
            ) -> $crate::StorageResult<bool> {
                use $crate::sql::data as s;
                let (status, error) = match outcome {
                    $crate::PipelineOutcome::Ok => ("ok", None),
                    $crate::PipelineOutcome::Error(message) => ("error", Some(message)),
                };
                let done = sqlx::query($sql!(s::FINISH_PIPELINE_RUN))
                    .bind($uuid(id))
                    .bind($ts(started))
                    .bind(status)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_data_store;
