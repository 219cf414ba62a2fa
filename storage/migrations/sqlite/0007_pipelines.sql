-- Pipelines, as the seed's PostgreSQL `data_pipelines` has them plus what PostgreSQL
-- migration 0005 adds (the last run's outcome, a run counter). UUIDs and timestamps are TEXT
-- (fixed-width RFC 3339 UTC, so they compare as text), JSON is TEXT, booleans are INTEGER.
CREATE TABLE data_pipelines (
    id TEXT PRIMARY KEY NOT NULL,
    project_id TEXT REFERENCES projects(id),
    name TEXT NOT NULL,
    source_id TEXT REFERENCES data_sources(id),
    pipeline_config TEXT NOT NULL,
    schedule_cron TEXT,
    is_active INTEGER DEFAULT 1,
    last_run_at TEXT,
    next_run_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_status TEXT,
    last_error TEXT,
    run_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_data_pipelines_due ON data_pipelines (next_run_at) WHERE is_active;
CREATE INDEX idx_data_pipelines_project ON data_pipelines (project_id, lower(name));
