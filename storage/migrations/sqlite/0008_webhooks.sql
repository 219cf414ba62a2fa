-- Webhooks, as PostgreSQL migration 0006 has them: subscriptions, the durable outbox of
-- their deliveries and the log of every attempt. UUIDs and timestamps are TEXT (fixed-width
-- RFC 3339 UTC, so they compare as text), JSON is TEXT, booleans are INTEGER. SQLite has one
-- writer at a time, so the claim is a plain compare-and-set (storage/src/sql/webhooks.rs).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    secret_hint TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX idx_webhooks_project ON webhooks (project_id, created_at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    lease_until TEXT,
    coalesce_key TEXT,
    coalesce_seq INTEGER NOT NULL DEFAULT 0,
    coalesce_open INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE UNIQUE INDEX idx_webhook_deliveries_open ON webhook_deliveries (webhook_id, coalesce_key)
    WHERE coalesce_open;

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id),
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
