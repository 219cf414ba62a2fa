-- What the analytics layer needs beyond the seed's `data_sources`, `saved_queries` and
-- `query_executions` (the seed's columns are kept as they are).

-- A source's name is the table name its queries use: unique per project, in any case.
CREATE UNIQUE INDEX data_sources_project_name ON data_sources (project_id, lower(name));

-- A query over a `database` source runs on that database (push-down): which one. A source
-- in use by a query cannot be deleted (the query would have nowhere to run).
ALTER TABLE saved_queries ADD COLUMN data_source_id UUID REFERENCES data_sources(id);
CREATE INDEX idx_saved_queries_project ON saved_queries (project_id, created_at DESC);

-- Executions: the cache key of their result, whether the answer came from the cache, and
-- when the result was computed (earlier than `started_at` for a cache hit).
ALTER TABLE query_executions ADD COLUMN query_hash TEXT;
ALTER TABLE query_executions ADD COLUMN from_cache BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE query_executions ADD COLUMN computed_at TIMESTAMP;
CREATE INDEX idx_query_executions_query ON query_executions (query_id, started_at DESC);
