//! W6 soak: W3's fan-out room (50 peers, five writers) held at half the server's knee for
//! ten minutes, measured in windows (one minute each by default): per window the latency
//! percentiles, the deliveries, the server's CPU per 1,000 updates and its RSS at the end.
//! What it asks of a server: RSS drift under 5 % from the first window to the last, no error
//! (no delivery lost, no peer closed), and a p99 that stays where it started.
//!
//! Each writer keeps at most `keep_chars` characters of its own text (each update past that
//! also deletes its oldest character), so the document does not grow with the run's length
//! and the RSS drift is the server's, not the document's.

use crate::Error;
use crate::procfs::Process;
use crate::results::Soak;
use crate::target::Target;
use crate::workloads::fanout::{self, RoomRun, Rooms};

/// How W6 runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connections in the room.
    pub peers: usize,
    /// Writers among them.
    pub writers: usize,
    /// The total rate, updates/s.
    pub rate: f64,
    /// Where the rate comes from.
    pub rate_basis: String,
    /// Seconds in all.
    pub secs: f64,
    /// Seconds per window.
    pub window_secs: f64,
    /// One peer in this many applies what it receives.
    pub apply_every: usize,
    /// Characters each writer keeps.
    pub keep_chars: usize,
}

/// Runs W6.
pub async fn run(target: &Target, plan: &Plan, server: Option<Process>) -> Result<Soak, Error> {
    if !(plan.rate > 0.0 && plan.secs > 0.0 && plan.window_secs > 0.0) {
        return Err(Error::Setup(format!(
            "w6 needs a positive rate, duration and window (rate {}, {} s, windows of {} s)",
            plan.rate, plan.secs, plan.window_secs
        )));
    }
    let windows = (plan.secs / plan.window_secs).ceil().max(1.0) as usize;
    let rates = vec![plan.rate; windows];
    let servers: Vec<Process> = server.into_iter().collect();
    let rooms = Rooms::one(target.rooms(1).await?.remove(0));
    eprintln!(
        "  w6: {} peers, {} writers, {:.0} updates/s ({}), {windows} windows of {} s",
        plan.peers, plan.writers, plan.rate, plan.rate_basis, plan.window_secs
    );
    let outcome = fanout::room_run(
        &rooms,
        &RoomRun {
            peers: plan.peers,
            writers: plan.writers,
            apply_every: plan.apply_every,
            rates: &rates,
            secs: plan.window_secs,
            stop_at_knee: false,
            servers: &servers,
            keep_chars: Some(plan.keep_chars),
            label: "w6",
        },
    )
    .await?;
    let points = outcome.points;
    let rss_first_mib = points.first().and_then(|p| p.server_rss_mib);
    let rss_last_mib = points.last().and_then(|p| p.server_rss_mib);
    let lost: u64 = points
        .iter()
        .map(|p| p.expected.saturating_sub(p.delivered))
        .sum();
    let sent: u64 = points.iter().map(|p| p.sent).sum();
    let cpu_ms: Option<f64> = points
        .iter()
        .map(|p| p.server_cpu_ms_per_1k.map(|c| c * p.sent as f64 / 1000.0))
        .sum();
    let p99 = |p: Option<&crate::results::FanoutPoint>| p.map_or(0.0, |p| p.p99_ms);
    let soak = Soak {
        peers: plan.peers,
        writers: plan.writers,
        rate: plan.rate,
        rate_basis: plan.rate_basis.clone(),
        secs: plan.window_secs * windows as f64,
        rss_first_mib,
        rss_last_mib,
        rss_drift_pct: rss_first_mib
            .zip(rss_last_mib)
            .filter(|(a, _)| *a > 0.0)
            .map(|(a, b)| (b - a) / a * 100.0),
        errors: lost + outcome.disconnected as u64,
        p99_first_ms: p99(points.first()),
        p99_last_ms: p99(points.last()),
        p99_worst_ms: points.iter().map(|p| p.p99_ms).fold(0.0, f64::max),
        server_cpu_ms_per_1k: cpu_ms
            .filter(|_| sent > 0)
            .map(|ms| ms / (sent as f64 / 1000.0)),
        converged: outcome.converged,
        windows: points,
    };
    eprintln!(
        "  w6: RSS {:?} -> {:?} MiB (drift {:?} %), errors {}, p99 first {:.2} / last {:.2} / worst {:.2} ms, converged {}",
        soak.rss_first_mib.map(|v| (v * 10.0).round() / 10.0),
        soak.rss_last_mib.map(|v| (v * 10.0).round() / 10.0),
        soak.rss_drift_pct.map(|v| (v * 100.0).round() / 100.0),
        soak.errors,
        soak.p99_first_ms,
        soak.p99_last_ms,
        soak.p99_worst_ms,
        soak.converged
    );
    Ok(soak)
}
