-- Pipelines (seed `data_pipelines`): the last run's outcome and a run counter, and the index
-- the scheduler reads (the earliest due time of an active pipeline). A run is claimed by a
-- compare-and-set on `next_run_at` (see storage/src/sql/data.rs, CLAIM_PIPELINE_RUN).
ALTER TABLE data_pipelines
    ADD COLUMN last_status VARCHAR(20),
    ADD COLUMN last_error TEXT,
    ADD COLUMN run_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_data_pipelines_due ON data_pipelines (next_run_at) WHERE is_active;
CREATE INDEX idx_data_pipelines_project ON data_pipelines (project_id, lower(name));
