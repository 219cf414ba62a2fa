//! W8 two nodes: one document served by two server processes that share Redis (ours: two
//! `canvas-server` nodes on PostgreSQL and Redis; Hocuspocus: two processes with
//! `@hocuspocus/extension-redis`). One writer on node 1, the readers on node 2, so every
//! delivery crosses from one process to the other through Redis. W3's machinery measures
//! it (latency from the writer's send to a reader's receipt): a fixed rate, then a ramp up
//! to the knee (the first rate whose p99 passes 100 ms or that loses deliveries).

use crate::Error;
use crate::procfs::Process;
use crate::results::TwoNodes;
use crate::target::Target;
use crate::workloads::fanout::{self, RoomRun, Rooms};

/// How W8 runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Readers on node 2.
    pub readers: usize,
    /// The fixed rate, updates/s (0: none).
    pub rate: f64,
    /// Seconds at the fixed rate.
    pub secs: f64,
    /// The ramp's rates (empty: no ramp).
    pub ramp_rates: Vec<f64>,
    /// Seconds per ramp step.
    pub ramp_secs: f64,
    /// One reader in this many applies what it receives.
    pub apply_every: usize,
}

/// Runs W8: `target` is node 1 (where rooms are made and the writer connects), `node2` the
/// address of the second node, `servers` both processes (their CPU and RSS summed).
pub async fn run(
    target: &Target,
    node2: &str,
    plan: &Plan,
    servers: &[Process],
) -> Result<TwoNodes, Error> {
    let rooms = || async {
        let room = target.rooms(1).await?.remove(0);
        let reader = target.room_on(&room, node2)?;
        Ok::<_, Error>(Rooms {
            writer: room,
            reader,
        })
    };
    let mut converged = true;
    let mut fixed = None;
    if plan.rate > 0.0 && plan.secs > 0.0 {
        let outcome = fanout::room_run(
            &rooms().await?,
            &RoomRun {
                peers: plan.readers + 1,
                writers: 1,
                apply_every: plan.apply_every,
                rates: &[plan.rate],
                secs: plan.secs,
                stop_at_knee: false,
                servers,
                keep_chars: None,
                label: "w8",
            },
        )
        .await?;
        converged &= outcome.converged;
        fixed = outcome.points.into_iter().next();
    }
    let mut ramp = vec![];
    if !plan.ramp_rates.is_empty() {
        let outcome = fanout::room_run(
            &rooms().await?,
            &RoomRun {
                peers: plan.readers + 1,
                writers: 1,
                apply_every: plan.apply_every,
                rates: &plan.ramp_rates,
                secs: plan.ramp_secs,
                stop_at_knee: true,
                servers,
                keep_chars: None,
                label: "w8 ramp",
            },
        )
        .await?;
        converged &= outcome.converged;
        ramp = outcome.points;
    }
    let knee_rate = fanout::knee(&ramp);
    eprintln!("  w8: knee {knee_rate:?} updates/s, converged {converged}");
    Ok(TwoNodes {
        readers: plan.readers,
        fixed,
        ramp,
        knee_rate,
        converged,
    })
}
