//! Every Prometheus series the server exports, in one place (`GET /metrics`, see the README's
//! "Metrics" section for what each means and what to alert on).
//!
//! One [`Metrics`] per server, in its own [`Registry`] (not a process-global recorder): tests
//! run several servers in one process, and each scrapes only its own figures. It is built in
//! `state.rs` and handed down like any other dependency (rooms get it in their `RoomDeps`).
//!
//! Names follow the Prometheus guide: prefix `canvas_`, base units (`_seconds`, `_bytes`),
//! `_total` on counters, and labels with a small fixed set of values only (never a canvas, a
//! user or a raw path). The series bumped on the room's hot path (updates, relays, frames)
//! are resolved once here, so an update costs a few atomic additions and no allocation.

use canvas_engine::inspect::RefusalCode;
use canvas_storage::StorageError;
use http::StatusCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::time::Duration;
use tracing::warn;
use uuid::Uuid;

/// Bounds (seconds) of the durations of storage round trips: durable writes, checkpoints,
/// room loads, HTTP requests.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bounds (seconds) of query execution times (the engine's timeout is minutes).
const QUERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Bounds (bytes) of document update sizes.
const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

/// Bounds of how many connections one relayed update goes to.
const FANOUT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The server's series. Fields are public for the few places that bump them directly;
/// the methods cover the ones with labels.
pub struct Metrics {
    registry: Registry,
    /// `canvas_ws_connections`: WebSocket connections joined to a room now.
    pub ws_connections: IntGauge,
    /// `canvas_rooms_loaded`: canvas rooms loaded now (set when scraped).
    pub rooms_loaded: IntGauge,
    /// `canvas_room_loads_total{outcome="ok"}`.
    room_loads_ok: IntCounter,
    /// `canvas_room_loads_total{outcome="failed"}`.
    room_loads_failed: IntCounter,
    /// `canvas_room_load_duration_seconds`: reading a canvas's snapshot, log and versions.
    pub room_load_seconds: Histogram,
    /// `canvas_updates_total{outcome}`: `accepted`, `noop` or the refusal code.
    updates: IntCounterVec,
    updates_accepted: IntCounter,
    updates_noop: IntCounter,
    /// `canvas_update_size_bytes`: each document update a client sent to a room.
    pub update_bytes: Histogram,
    /// `canvas_ws_received_frames_total`.
    pub ws_received_frames: IntCounter,
    /// `canvas_ws_received_bytes_total`.
    pub ws_received_bytes: IntCounter,
    /// `canvas_ws_sent_frames_total`.
    pub ws_sent_frames: IntCounter,
    /// `canvas_ws_sent_bytes_total`.
    pub ws_sent_bytes: IntCounter,
    /// `canvas_ws_oversized_frames_sent_total`: frames sent larger than a client may send.
    pub oversized_frames: IntCounter,
    /// `canvas_ws_oversized_frame_bytes_total`: their bytes.
    pub oversized_frame_bytes: IntCounter,
    /// `canvas_durable_write_duration_seconds`: one group commit to the update log.
    pub durable_write_seconds: Histogram,
    /// `canvas_checkpoint_duration_seconds`: one checkpoint (snapshot written, log compacted).
    pub checkpoint_seconds: Histogram,
    /// `canvas_relay_fanout_connections`: connections one durable update was offered to.
    pub relay_fanout: Histogram,
    /// `canvas_slow_consumer_closes_total`: connections closed (1013) for lagging too long.
    pub slow_consumer_closes: IntCounter,
    /// `canvas_rate_limit_refusals_total{kind}`.
    rate_limit_ws_connect: IntCounter,
    rate_limit_ws_message: IntCounter,
    rate_limit_http: IntCounter,
    /// `canvas_storage_errors_total{backend}`.
    storage_errors: IntCounterVec,
    /// The SQL service a driver-level error (no server error code) is counted against.
    sql_service: &'static str,
    /// `canvas_presence_writes_total{op}`.
    presence_put: IntCounter,
    presence_remove: IntCounter,
    presence_active: IntCounter,
    /// `canvas_cluster_messages_published_total`: live messages sent to the other nodes.
    pub cluster_published: IntCounter,
    /// `canvas_cluster_messages_received_total`: the other nodes' live messages taken in.
    pub cluster_received: IntCounter,
    /// `canvas_cluster_catch_ups_total`: reads of the durable log to catch up with them.
    pub cluster_catch_ups: IntCounter,
    /// `canvas_http_requests_total{method,route,status}`.
    http_requests: IntCounterVec,
    /// `canvas_http_request_duration_seconds{method,route}`.
    http_seconds: HistogramVec,
    /// `canvas_query_executions_total{status}`: `completed`, `failed`, `cancelled`.
    query_executions: IntCounterVec,
    /// `canvas_query_execution_duration_seconds`: the engine's run time of one execution.
    pub query_seconds: Histogram,
    /// `canvas_query_cache_hits_total`: executions answered from the result cache.
    pub query_cache_hits: IntCounter,
    /// `canvas_webhook_deliveries_total{outcome}`: recorded webhook attempts by what became
    /// of the delivery (`delivered`, `retry`, `failed`).
    webhook_deliveries: IntCounterVec,
    /// `canvas_webhook_events_queued_total{event}`: deliveries written to the outbox, by
    /// event type.
    webhook_queued: IntCounterVec,
}

/// Registers a new series; the names are constants, so only a typo can make this fail, and
/// the unit test below builds every one.
fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<T>,
) -> T {
    let series = made.expect("a well-formed series");
    registry
        .register(Box::new(series.clone()))
        .expect("a series registered once");
    series
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help))
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new("sqlite")
    }
}

impl Metrics {
    /// Every series, at zero. `sql_service` (`postgresql` or `sqlite`) is where SQL errors
    /// the driver does not attribute (a dropped connection, a pool timeout) are counted.
    pub fn new(sql_service: &'static str) -> Metrics {
        let r = Registry::new();
        let updates = counters(
            &r,
            "canvas_updates_total",
            "Document updates judged by rooms, by outcome: accepted, noop (changed nothing) or the refusal code.",
            &["outcome"],
        );
        let room_loads = counters(
            &r,
            "canvas_room_loads_total",
            "Canvas rooms loaded from storage, by outcome (ok, failed).",
            &["outcome"],
        );
        let rate_limits = counters(
            &r,
            "canvas_rate_limit_refusals_total",
            "Requests and messages refused by a rate limit, by kind (websocket_connect, websocket_message, http).",
            &["kind"],
        );
        let presence = counters(
            &r,
            "canvas_presence_writes_total",
            "Writes to the shared presence store, by op (put, remove, active).",
            &["op"],
        );
        Metrics {
            ws_connections: register(
                &r,
                IntGauge::new(
                    "canvas_ws_connections",
                    "WebSocket connections joined to a canvas room.",
                ),
            ),
            rooms_loaded: register(
                &r,
                IntGauge::new("canvas_rooms_loaded", "Canvas rooms loaded in memory."),
            ),
            room_loads_ok: room_loads.with_label_values(&["ok"]),
            room_loads_failed: room_loads.with_label_values(&["failed"]),
            room_load_seconds: histogram(
                &r,
                "canvas_room_load_duration_seconds",
                "Time to load a canvas room (record, snapshot, log, versions).",
                LATENCY_BUCKETS,
            ),
            updates_accepted: updates.with_label_values(&["accepted"]),
            updates_noop: updates.with_label_values(&["noop"]),
            updates,
            update_bytes: histogram(
                &r,
                "canvas_update_size_bytes",
                "Size of each document update clients sent to a room.",
                SIZE_BUCKETS,
            ),
            ws_received_frames: counter(
                &r,
                "canvas_ws_received_frames_total",
                "WebSocket frames received from clients.",
            ),
            ws_received_bytes: counter(
                &r,
                "canvas_ws_received_bytes_total",
                "Bytes of WebSocket frames received from clients.",
            ),
            ws_sent_frames: counter(
                &r,
                "canvas_ws_sent_frames_total",
                "WebSocket frames sent to clients.",
            ),
            ws_sent_bytes: counter(
                &r,
                "canvas_ws_sent_bytes_total",
                "Bytes of WebSocket frames sent to clients.",
            ),
            oversized_frames: counter(
                &r,
                "canvas_ws_oversized_frames_sent_total",
                "Frames sent larger than a client may send (--max-message-bytes).",
            ),
            oversized_frame_bytes: counter(
                &r,
                "canvas_ws_oversized_frame_bytes_total",
                "Bytes of the frames sent larger than a client may send.",
            ),
            durable_write_seconds: histogram(
                &r,
                "canvas_durable_write_duration_seconds",
                "Time of one group-committed write to a canvas's durable update log.",
                LATENCY_BUCKETS,
            ),
            checkpoint_seconds: histogram(
                &r,
                "canvas_checkpoint_duration_seconds",
                "Time of one checkpoint (snapshot written, log compacted), failed ones included.",
                LATENCY_BUCKETS,
            ),
            relay_fanout: histogram(
                &r,
                "canvas_relay_fanout_connections",
                "Connections one accepted update was relayed to.",
                FANOUT_BUCKETS,
            ),
            slow_consumer_closes: counter(
                &r,
                "canvas_slow_consumer_closes_total",
                "Connections closed (1013) because they stayed behind their room too long.",
            ),
            rate_limit_ws_connect: rate_limits.with_label_values(&["websocket_connect"]),
            rate_limit_ws_message: rate_limits.with_label_values(&["websocket_message"]),
            rate_limit_http: rate_limits.with_label_values(&["http"]),
            storage_errors: counters(
                &r,
                "canvas_storage_errors_total",
                "Storage operations that failed, by backend (postgresql, sqlite, mongodb, redis, mysql, filesystem, unknown).",
                &["backend"],
            ),
            sql_service,
            presence_put: presence.with_label_values(&["put"]),
            presence_remove: presence.with_label_values(&["remove"]),
            presence_active: presence.with_label_values(&["active"]),
            cluster_published: counter(
                &r,
                "canvas_cluster_messages_published_total",
                "Live messages published to the other server nodes.",
            ),
            cluster_received: counter(
                &r,
                "canvas_cluster_messages_received_total",
                "Live messages received from the other server nodes.",
            ),
            cluster_catch_ups: counter(
                &r,
                "canvas_cluster_catch_ups_total",
                "Reads of a canvas's durable log to take in what other nodes wrote.",
            ),
            http_requests: counters(
                &r,
                "canvas_http_requests_total",
                "HTTP requests, by method, matched route template and status.",
                &["method", "route", "status"],
            ),
            http_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "canvas_http_request_duration_seconds",
                        "Time to answer an HTTP request, by method and matched route template.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["method", "route"],
                ),
            ),
            query_executions: counters(
                &r,
                "canvas_query_executions_total",
                "Query executions run by the engine, by how they ended (completed, failed, cancelled).",
                &["status"],
            ),
            query_seconds: histogram(
                &r,
                "canvas_query_execution_duration_seconds",
                "The engine's run time of one query execution.",
                QUERY_BUCKETS,
            ),
            query_cache_hits: counter(
                &r,
                "canvas_query_cache_hits_total",
                "Query executions answered from the result cache.",
            ),
            webhook_deliveries: counters(
                &r,
                "canvas_webhook_deliveries_total",
                "Webhook delivery attempts, by what became of the delivery (delivered, retry, failed).",
                &["outcome"],
            ),
            webhook_queued: counters(
                &r,
                "canvas_webhook_events_queued_total",
                "Webhook deliveries written to the outbox (one per subscription), by event type.",
                &["event"],
            ),
            registry: r,
        }
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(cause) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            warn!(%cause, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// An update a room accepted (`noop`: it changed nothing the document did not have).
    pub fn update_accepted(&self, noop: bool) {
        if noop {
            self.updates_noop.inc();
        } else {
            self.updates_accepted.inc();
        }
    }

    /// An update a room refused.
    pub fn update_refused(&self, code: RefusalCode) {
        self.updates.with_label_values(&[code.as_str()]).inc();
    }

    /// A room load that ended, `ok` or not, after `took`.
    pub fn room_loaded(&self, ok: bool, took: Duration) {
        if ok {
            self.room_loads_ok.inc();
        } else {
            self.room_loads_failed.inc();
        }
        self.room_load_seconds.observe(took.as_secs_f64());
    }

    /// A frame of `bytes` sent to `canvas` although larger than the inbound limit `limit` (a
    /// canvas grown past it is still sent whole: a limit on what clients send must not lock
    /// them out of what the room holds). Counted and logged: a client whose WebSocket
    /// library caps messages at that limit cannot read it.
    pub fn large_frame(&self, canvas: Uuid, bytes: usize, limit: usize) {
        self.oversized_frames.inc();
        self.oversized_frame_bytes.inc_by(bytes as u64);
        warn!(%canvas, bytes, limit, "sending a frame larger than clients may send");
    }

    /// A WebSocket connection refused at admission by the message limit.
    pub fn rate_limited_connect(&self) {
        self.rate_limit_ws_connect.inc();
    }

    /// A WebSocket connection closed for sending over the message limit.
    pub fn rate_limited_message(&self) {
        self.rate_limit_ws_message.inc();
    }

    /// A storage operation failed. Conflicts and missing rows are answers, not failures,
    /// and are not counted.
    pub fn storage_error(&self, error: &StorageError) {
        if matches!(error, StorageError::Conflict(_) | StorageError::NotFound(_)) {
            return;
        }
        let backend = match error.backend() {
            "sql" => self.sql_service,
            named => named,
        };
        self.storage_errors.with_label_values(&[backend]).inc();
    }

    /// A presence write: a user's entry (`Put`), its removal, or the node's active users.
    pub fn presence_write(&self, op: PresenceOp) {
        match op {
            PresenceOp::Put => self.presence_put.inc(),
            PresenceOp::Remove => self.presence_remove.inc(),
            PresenceOp::Active => self.presence_active.inc(),
        }
    }

    /// An HTTP request answered: `route` is the matched route template (`unmatched` for
    /// none), never the raw path. A 429 also counts as a rate-limit refusal.
    pub fn http_request(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_seconds
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limit_http.inc();
        }
    }

    /// A query execution the engine ran ended (`completed`, `failed` or `cancelled`).
    pub fn query_execution(&self, status: &str) {
        let status = match status {
            "completed" => "completed",
            "cancelled" => "cancelled",
            _ => "failed",
        };
        self.query_executions.with_label_values(&[status]).inc();
    }

    /// A webhook attempt was recorded: `delivered`, `retry` or `failed`.
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries.with_label_values(&[outcome]).inc();
    }

    /// `n` deliveries of an `event` (a fixed event type name) were queued.
    pub fn webhook_queued(&self, event: &'static str, n: usize) {
        self.webhook_queued
            .with_label_values(&[event])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// Which presence write (see [`Metrics::presence_write`]).
#[derive(Debug, Clone, Copy)]
pub enum PresenceOp {
    /// A user's entry written.
    Put,
    /// A user's entry removed.
    Remove,
    /// The node's active users written.
    Active,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exported_and_moves() {
        let metrics = Metrics::new("postgresql");
        metrics.update_accepted(false);
        metrics.update_refused(RefusalCode::ReadOnly);
        metrics.large_frame(Uuid::new_v4(), 5_000_000, 1_048_576);
        metrics.large_frame(Uuid::new_v4(), 2_000_000, 1_048_576);
        metrics.storage_error(&StorageError::Io(std::io::Error::other("disk")));
        metrics.storage_error(&StorageError::NotFound("x".into()));
        metrics.http_request(
            "GET",
            "/api/v1/canvases/{id}",
            StatusCode::OK,
            Duration::from_millis(3),
        );
        metrics.http_request(
            "POST",
            "/api/v1/auth/login",
            StatusCode::TOO_MANY_REQUESTS,
            Duration::from_millis(1),
        );
        metrics.webhook_delivery("retry");
        metrics.webhook_queued("canvas.created", 2);
        let text = metrics.render();
        for line in [
            r#"canvas_updates_total{outcome="accepted"} 1"#,
            r#"canvas_updates_total{outcome="read_only"} 1"#,
            "canvas_ws_oversized_frames_sent_total 2",
            "canvas_ws_oversized_frame_bytes_total 7000000",
            r#"canvas_storage_errors_total{backend="filesystem"} 1"#,
            r#"canvas_http_requests_total{method="GET",route="/api/v1/canvases/{id}",status="200"} 1"#,
            r#"canvas_rate_limit_refusals_total{kind="http"} 1"#,
            r#"canvas_http_request_duration_seconds_count{method="GET",route="/api/v1/canvases/{id}"} 1"#,
            r#"canvas_webhook_deliveries_total{outcome="retry"} 1"#,
            r#"canvas_webhook_events_queued_total{event="canvas.created"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // Pre-resolved series show at zero from the start.
        assert!(text.contains(r#"canvas_room_loads_total{outcome="failed"} 0"#));
        assert!(text.contains("# TYPE canvas_ws_connections gauge"));
        assert!(
            !text.contains(r#"backend="unknown""#),
            "NotFound is an answer"
        );
    }

    /// The example dashboard (`docs/grafana-dashboard.json`) names only real series.
    #[test]
    fn the_example_dashboard_uses_real_series() {
        let metrics = Metrics::default();
        metrics.storage_error(&StorageError::Io(std::io::Error::other("disk")));
        metrics.http_request("GET", "/healthz", StatusCode::OK, Duration::ZERO);
        metrics.query_execution("completed");
        let text = metrics.render();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/grafana-dashboard.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard"))
                .expect("JSON");
        let mut checked = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("an expression");
                for (at, _) in expr.match_indices("canvas_") {
                    let name: String = expr[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let family = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(&name);
                    assert!(
                        text.contains(&format!("# TYPE {family} ")),
                        "{name} in the dashboard is no series"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "{checked}");
    }
}
