//! What one run measured, written as JSON so that `report` can put the servers side by side.

use crate::target::Kind;
use serde::{Deserialize, Serialize};

/// Everything measured against one server (one workload per file; `report` merges them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The server.
    pub target: Kind,
    /// W2 single-writer ingest.
    pub w2: Option<Ingest>,
    /// W3 fan-out.
    pub w3: Option<Fanout>,
    /// W4 idle scale.
    pub w4: Option<Idle>,
    /// W5 cold join.
    pub w5: Option<Join>,
    /// W6 soak.
    #[serde(default)]
    pub w6: Option<Soak>,
    /// W7 many small rooms.
    #[serde(default)]
    pub w7: Option<ManyRooms>,
    /// W8 two nodes.
    #[serde(default)]
    pub w8: Option<TwoNodes>,
    /// Workloads that failed, with why.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// W2: one writer streams the editing trace; an observer receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingest {
    /// Edits streamed.
    pub updates: usize,
    /// Updates in flight (sent, not yet seen by the observer).
    pub window: usize,
    /// Updates per second from the first send until the observer received the last.
    pub received_per_sec: f64,
    /// Updates per second until the last acknowledgement (ours: durable; Hocuspocus: sync
    /// status), if the server acknowledges.
    pub acked_per_sec: Option<f64>,
    /// Server CPU milliseconds per 1,000 updates (user + system).
    pub cpu_ms_per_1k: Option<f64>,
    /// Mean bytes of one update message on the wire (y-websocket framing, without the
    /// WebSocket header).
    pub bytes_per_update: f64,
    /// Server resident memory after the run, MiB.
    pub server_rss_mib: Option<f64>,
    /// Share of the run's wall time the server spent on a CPU (1.0: one core saturated).
    #[serde(default)]
    pub server_busy: Option<f64>,
    /// Share of the run's wall time the load generator spent on a CPU (near 1.0: the figure
    /// is a floor, the load generator could not go faster).
    #[serde(default)]
    pub load_generator_busy: Option<f64>,
    /// The observer's text equals the trace's end content.
    pub converged: bool,
}

/// One fan-out measurement: a rate held for some seconds in a room of `peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutPoint {
    /// Connections in the room (writers included).
    pub peers: usize,
    /// Offered updates per second, all writers together.
    pub rate: f64,
    /// Updates sent.
    pub sent: u64,
    /// Deliveries expected (each update to every peer but its writer) and received.
    pub expected: u64,
    /// Deliveries received within the drain time.
    pub delivered: u64,
    /// Send-to-receipt latency percentiles over every delivery, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Worst delivery.
    pub max_ms: f64,
    /// Server CPU milliseconds (user + system, every server process of the run) per 1,000
    /// updates sent, over the phase and its drain; `None` when not watched.
    #[serde(default)]
    pub server_cpu_ms_per_1k: Option<f64>,
    /// Server resident memory at the end of the phase (every process of the run), MiB.
    #[serde(default)]
    pub server_rss_mib: Option<f64>,
    /// Share of the phase's wall time the load generator spent on a CPU.
    #[serde(default)]
    pub load_generator_busy: Option<f64>,
}

/// W3 results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fanout {
    /// Writers among the peers.
    pub writers: usize,
    /// The fixed rate at each room size.
    pub fixed: Vec<FanoutPoint>,
    /// The ramp at one room size.
    pub ramp: Vec<FanoutPoint>,
    /// The first ramp rate whose p99 passed 100 ms (or that lost deliveries); `None` if no
    /// step did.
    pub knee_rate: Option<f64>,
    /// Every peer that applies updates holds the same text as the writers.
    pub converged: bool,
}

/// W4: one level of idle connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleLevel {
    /// Open connections.
    pub connections: usize,
    /// Rooms they are in.
    pub rooms: usize,
    /// Server RSS, MiB.
    pub rss_mib: f64,
    /// (RSS - RSS before any connection) / connections, KiB.
    pub kib_per_connection: f64,
    /// RSS growth when this level's new rooms got their first connection, per room, KiB
    /// (a room and one connection).
    pub kib_per_room: f64,
    /// RSS growth for the other nine connections of each new room, per connection, KiB.
    pub kib_per_extra_connection: f64,
    /// Connections opened and synced per second while reaching this level.
    pub connects_per_sec: f64,
}

/// W4 results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    /// Server RSS before any connection, MiB.
    pub base_rss_mib: f64,
    /// One entry per level.
    pub levels: Vec<IdleLevel>,
    /// In every room one member wrote, and every other member received it.
    pub converged: bool,
}

/// W5 results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    /// Size of the document (its state as one update), bytes.
    pub doc_bytes: usize,
    /// Sequential joins of the loaded room: connect until sync step 2 is received, ms.
    pub warm_p50_ms: f64,
    /// 99th percentile of the sequential joins.
    pub warm_p99_ms: f64,
    /// Simultaneous joins.
    pub burst: usize,
    /// Median of the simultaneous joins, ms.
    pub burst_p50_ms: f64,
    /// 99th percentile of the simultaneous joins, ms.
    pub burst_p99_ms: f64,
    /// Joins after the server unloaded the room (median, ms); `None` for a server
    /// without storage.
    pub storage_p50_ms: Option<f64>,
    /// Every joiner's text equals the trace's end content.
    pub converged: bool,
}

/// W6 soak: one room of fan-out at half the server's knee for a long time, in windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Soak {
    /// Connections in the room.
    pub peers: usize,
    /// Writers among them.
    pub writers: usize,
    /// The offered rate, updates/s.
    pub rate: f64,
    /// Where the rate comes from (half the knee of which run, or given).
    pub rate_basis: String,
    /// Seconds it ran (all windows).
    pub secs: f64,
    /// One point per window, in order (each with the server's RSS at its end).
    pub windows: Vec<FanoutPoint>,
    /// RSS at the end of the first window, MiB (the baseline of the drift).
    pub rss_first_mib: Option<f64>,
    /// RSS at the end of the last window, MiB.
    pub rss_last_mib: Option<f64>,
    /// (last - first) / first, percent.
    pub rss_drift_pct: Option<f64>,
    /// Deliveries lost, peers disconnected and writers cut off, together.
    pub errors: u64,
    /// p99 of the first window, ms.
    pub p99_first_ms: f64,
    /// p99 of the last window, ms.
    pub p99_last_ms: f64,
    /// The worst window's p99, ms.
    pub p99_worst_ms: f64,
    /// Server CPU ms per 1,000 updates over the whole run.
    pub server_cpu_ms_per_1k: Option<f64>,
    /// Every applying peer holds the writers' text and got every delivery.
    pub converged: bool,
}

/// W7 many rooms: small rooms where every member writes now and then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManyRooms {
    /// Rooms.
    pub rooms: usize,
    /// Members per room (each one writes).
    pub members: usize,
    /// Updates per second each member sends.
    pub rate_per_member: f64,
    /// Seconds of writing.
    pub secs: f64,
    /// Updates sent, all members together.
    pub sent: u64,
    /// Deliveries expected (each update to the other members of its room).
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Send-to-receipt latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Worst delivery, ms.
    pub max_ms: f64,
    /// Server CPU ms per 1,000 updates (from the first send until every delivery arrived).
    pub server_cpu_ms_per_1k: Option<f64>,
    /// Share of that time the server spent on a CPU.
    pub server_busy: Option<f64>,
    /// Server RSS at the end, MiB.
    pub server_rss_mib: Option<f64>,
    /// Share of that time the load generator spent on a CPU.
    pub load_generator_busy: Option<f64>,
    /// Connections opened and synced per second while setting up.
    pub connects_per_sec: f64,
    /// Every member of every room holds the room's combined text, every delivery arrived.
    pub converged: bool,
}

/// W8 two nodes: a writer on one node, readers on another, the nodes sharing Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoNodes {
    /// Readers (all on node 2).
    pub readers: usize,
    /// The fixed rate.
    pub fixed: Option<FanoutPoint>,
    /// The ramp.
    pub ramp: Vec<FanoutPoint>,
    /// The first ramp rate whose p99 passed 100 ms (or that lost deliveries); `None` if no
    /// step did.
    pub knee_rate: Option<f64>,
    /// Every applying reader holds the writer's text.
    pub converged: bool,
}
