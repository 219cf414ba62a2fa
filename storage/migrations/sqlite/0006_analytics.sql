-- The analytics tables, as the seed's PostgreSQL schema has them (`data_sources`,
-- `saved_queries`, `query_executions`) plus what PostgreSQL migration 0004 adds. UUIDs and
-- timestamps are TEXT, JSON is TEXT, as in the other tables of this file.
CREATE TABLE data_sources (
    id TEXT PRIMARY KEY NOT NULL,
    project_id TEXT REFERENCES projects(id),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    schema_info TEXT,
    metadata TEXT DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active',
    last_sync_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX data_sources_project_name ON data_sources (project_id, lower(name));

CREATE TABLE saved_queries (
    id TEXT PRIMARY KEY NOT NULL,
    project_id TEXT REFERENCES projects(id),
    name TEXT NOT NULL,
    query_text TEXT NOT NULL,
    query_type TEXT NOT NULL,
    parameters TEXT DEFAULT '{}',
    created_by TEXT REFERENCES users(id),
    is_public INTEGER DEFAULT 0,
    data_source_id TEXT REFERENCES data_sources(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX idx_saved_queries_project ON saved_queries (project_id, created_at DESC);

CREATE TABLE query_executions (
    id TEXT PRIMARY KEY NOT NULL,
    query_id TEXT REFERENCES saved_queries(id),
    executed_by TEXT REFERENCES users(id),
    status TEXT NOT NULL,
    parameters TEXT DEFAULT '{}',
    result_location TEXT,
    error_message TEXT,
    execution_time_ms INTEGER,
    rows_returned INTEGER,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    query_hash TEXT,
    from_cache INTEGER NOT NULL DEFAULT 0,
    computed_at TEXT
);
CREATE INDEX idx_query_executions_query ON query_executions (query_id, started_at DESC);
