-- Ended webhook deliveries (delivered, or failed for good) are pruned after the server's
-- retention (`--webhook-retention-secs`): this index finds them oldest first without
-- reading the pending ones.
CREATE INDEX idx_webhook_deliveries_ended ON webhook_deliveries (updated_at, id)
    WHERE status <> 'pending';
