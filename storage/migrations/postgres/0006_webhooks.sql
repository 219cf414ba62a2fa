-- Webhooks: a project's subscriptions, the durable outbox of their deliveries and the log of
-- every attempt. An event is written to the outbox (one row per subscription) before anyone
-- is told about it; the delivery workers of every node claim due rows with
-- `FOR UPDATE SKIP LOCKED` plus a compare-and-set lease (see storage/src/sql/webhooks.rs).
CREATE TABLE webhooks (
    id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects(id),
    url TEXT NOT NULL,
    events JSONB NOT NULL,
    -- AES-256-GCM sealed with the server key, bound to the webhook's id (never plain text)
    secret TEXT NOT NULL,
    -- the last characters of the secret, shown so an admin can tell secrets apart
    secret_hint VARCHAR(16) NOT NULL,
    created_by UUID REFERENCES users(id),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX idx_webhooks_project ON webhooks (project_id, created_at);

CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    webhook_id UUID NOT NULL REFERENCES webhooks(id),
    event_id UUID NOT NULL,
    event_type VARCHAR(64) NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- pending, delivered or failed (gave up)
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- when it may be tried (again); while an attempt runs, when its lease ends
    next_attempt_at TIMESTAMP NOT NULL,
    -- no attempt starts after this (24 h after the event)
    expires_at TIMESTAMP NOT NULL,
    -- the lease of the attempt in flight (the compare-and-set token), NULL between attempts
    lease_until TIMESTAMP,
    -- coalesced events (canvas.updated): one open row per subscription and key takes the
    -- later changes until its first attempt starts
    coalesce_key TEXT,
    coalesce_seq BIGINT NOT NULL DEFAULT 0,
    coalesce_open BOOLEAN NOT NULL DEFAULT FALSE,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE UNIQUE INDEX idx_webhook_deliveries_open ON webhook_deliveries (webhook_id, coalesce_key)
    WHERE coalesce_open;

CREATE TABLE webhook_attempts (
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries(id),
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
