//! `canvas-load`: the WebSocket load generator of the benchmark comparison (BENCHMARKS.md,
//! W2-W8), speaking the y-websocket protocol to our server and to y-sweet, the y-websocket
//! server and Hocuspocus alike.
//!
//! - `canvas-load run --target KIND --addr HOST:PORT --workloads w2,w3 --out FILE.json`
//!   measures one server (started by the caller, `scripts/bench-compare.sh`; `--server-pid`
//!   lets it read the server's CPU time and memory from `/proc`).
//! - `canvas-load report --results DIR --charts DIR --markdown FILE` puts every server's
//!   results side by side: a table with ratios (ours / peer), SVG charts, and the section of
//!   BENCHMARKS.md between its `bench-compare` markers.
//!
//! Layout: `wire` (framing, both dialects), `target` (the servers and their rooms),
//! `client` (one connection), `trace` (the updates), `workloads/` (one file per workload),
//! `procfs` (server CPU and RSS), `results` (what is measured), `report` (table and charts).

mod client;
mod procfs;
mod report;
mod results;
mod target;
mod trace;
mod wire;
mod workloads {
    pub mod fanout;
    pub mod idle;
    pub mod ingest;
    pub mod join;
    pub mod rooms;
    pub mod soak;
    pub mod twonodes;
}

use clap::{Parser, Subcommand};
use results::Results;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use target::{Kind, Target};

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frame did not parse.
    #[error("wire: {0}")]
    Wire(#[from] wire::WireError),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// A REST call failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// Setting up rooms or accounts failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The trace could not be read or replayed.
    #[error("trace: {0}")]
    Trace(String),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A results file did not parse.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The server refused something or broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Something expected did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
}

#[derive(Parser)]
#[command(
    name = "canvas-load",
    about = "WebSocket load generator and comparison report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs workloads against one server and writes its results as JSON.
    Run(Box<RunArgs>),
    /// Merges results files into a table with ratios, charts and a BENCHMARKS.md section.
    Report(report::ReportArgs),
}

#[derive(Parser)]
struct RunArgs {
    /// The kind of server.
    #[arg(long, value_enum)]
    target: Kind,
    /// Its address, host:port.
    #[arg(long)]
    addr: String,
    /// Its process id, to read its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Workloads to run, comma-separated (w2 ... w8; w8 needs `--addr2`).
    #[arg(long, value_delimiter = ',', default_value = "w2,w3,w4,w5")]
    workloads: Vec<String>,
    /// W8: the second node's address, host:port (sharing the first one's services).
    #[arg(long)]
    addr2: Option<String>,
    /// W8: the second node's process id (CPU and RSS of both nodes are summed).
    #[arg(long)]
    server_pid2: Option<u32>,
    /// Where to write the results (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The automerge-paper trace (`automerge-paper.json.gz`); without it a seeded synthetic
    /// trace of `--synthetic-edits` edits.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Edits of the synthetic trace.
    #[arg(long, default_value_t = 300)]
    synthetic_edits: usize,
    /// Use only the first N edits of the trace.
    #[arg(long)]
    edits: Option<usize>,
    /// W2: updates in flight (our server drops a connection that has 1,024 frames queued,
    /// so the observer must never be that far behind).
    #[arg(long, default_value_t = 512)]
    w2_window: usize,
    /// W3: room sizes at the fixed rate.
    #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
    w3_peers: Vec<usize>,
    /// W3: writers among the peers.
    #[arg(long, default_value_t = 5)]
    w3_writers: usize,
    /// W3: the fixed total rate, updates/s.
    #[arg(long, default_value_t = 2000.0)]
    w3_rate: f64,
    /// W3: seconds at the fixed rate.
    #[arg(long, default_value_t = 5.0)]
    w3_secs: f64,
    /// W3: room size of the ramp (0: no ramp).
    #[arg(long, default_value_t = 50)]
    w3_ramp_peers: usize,
    /// W3: total rates of the ramp steps, updates/s.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,4000,8000,16000,32000,64000"
    )]
    w3_ramp_rates: Vec<f64>,
    /// W3: seconds per ramp step.
    #[arg(long, default_value_t = 3.0)]
    w3_ramp_secs: f64,
    /// W3: one peer in this many applies updates to a document (writers always do).
    #[arg(long, default_value_t = 10)]
    w3_apply_every: usize,
    /// W4: cumulative connection counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    w4_levels: Vec<usize>,
    /// W4: connections opening at once.
    #[arg(long, default_value_t = 64)]
    w4_concurrency: usize,
    /// W4: milliseconds to let the server settle before reading its memory.
    #[arg(long, default_value_t = 1000)]
    w4_settle_ms: u64,
    /// W5: sequential warm joins.
    #[arg(long, default_value_t = 20)]
    w5_warm: usize,
    /// W5: simultaneous joins.
    #[arg(long, default_value_t = 100)]
    w5_burst: usize,
    /// W5: joins from storage.
    #[arg(long, default_value_t = 3)]
    w5_cold_rounds: usize,
    /// W5: milliseconds to wait for the server to unload an empty room.
    #[arg(long, default_value_t = 4000)]
    w5_unload_wait_ms: u64,
    /// W5: the server has no storage (its documents are gone once unloaded).
    #[arg(long)]
    no_storage: bool,
    /// W6: connections in the soak's room.
    #[arg(long, default_value_t = 50)]
    w6_peers: usize,
    /// W6: writers among them.
    #[arg(long, default_value_t = 5)]
    w6_writers: usize,
    /// W6: the total rate, updates/s (default: half the knee in `--w6-knee-from`).
    #[arg(long)]
    w6_rate: Option<f64>,
    /// W6: a results file with this server's W3 ramp; the soak runs at half its knee (or,
    /// with no knee up to the ramp's last step, at half that step: a floor).
    #[arg(long)]
    w6_knee_from: Option<PathBuf>,
    /// W6: seconds in all.
    #[arg(long, default_value_t = 600.0)]
    w6_secs: f64,
    /// W6: seconds per measured window.
    #[arg(long, default_value_t = 60.0)]
    w6_window_secs: f64,
    /// W6: characters each writer keeps (its oldest is deleted past that).
    #[arg(long, default_value_t = 200)]
    w6_keep_chars: usize,
    /// W7: rooms.
    #[arg(long, default_value_t = 1000)]
    w7_rooms: usize,
    /// W7: members per room (each one writes).
    #[arg(long, default_value_t = 3)]
    w7_members: usize,
    /// W7: updates per second per member.
    #[arg(long, default_value_t = 1.0)]
    w7_rate: f64,
    /// W7: seconds of writing.
    #[arg(long, default_value_t = 30.0)]
    w7_secs: f64,
    /// W7: connections opening at once during setup.
    #[arg(long, default_value_t = 64)]
    w7_concurrency: usize,
    /// W8: readers on the second node.
    #[arg(long, default_value_t = 50)]
    w8_readers: usize,
    /// W8: the fixed rate of the one writer, updates/s.
    #[arg(long, default_value_t = 2000.0)]
    w8_rate: f64,
    /// W8: seconds at the fixed rate.
    #[arg(long, default_value_t = 5.0)]
    w8_secs: f64,
    /// W8: the ramp's rates, updates/s.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,4000,8000,16000,32000,64000"
    )]
    w8_ramp_rates: Vec<f64>,
    /// W8: seconds per ramp step.
    #[arg(long, default_value_t = 3.0)]
    w8_ramp_secs: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("canvas-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run(*args)),
        Command::Report(args) => report::report(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("canvas-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen workloads; `Ok(false)` if one failed or did not converge (the results
/// file still says what was measured).
async fn run(args: RunArgs) -> Result<bool, Error> {
    let target = Target::new(args.target, &args.addr).await?;
    let server = args.server_pid.and_then(procfs::Process::watch);
    let mut results = Results {
        target: args.target,
        w2: None,
        w3: None,
        w4: None,
        w5: None,
        w6: None,
        w7: None,
        w8: None,
        errors: vec![],
    };
    let needs_trace = args.workloads.iter().any(|w| w == "w2" || w == "w5");
    let trace = if needs_trace {
        Some(trace::load(
            args.trace.as_deref(),
            args.synthetic_edits,
            args.edits,
        )?)
    } else {
        None
    };
    let label = args.target.label();
    for workload in &args.workloads {
        eprintln!("{label}: {workload}");
        let outcome = match (workload.as_str(), &trace) {
            ("w2", Some(trace)) => workloads::ingest::run(&target, trace, args.w2_window, server)
                .await
                .map(|r| {
                    eprintln!(
                        "  w2 {} updates: {:.0}/s received, acked {:?}/s, {:?} CPU ms/1k, busy: server {:?}, load generator {:?}, converged {}",
                        r.updates, r.received_per_sec, r.acked_per_sec.map(|a| a.round()), r.cpu_ms_per_1k,
                        r.server_busy.map(|b| (b * 100.0).round() / 100.0),
                        r.load_generator_busy.map(|b| (b * 100.0).round() / 100.0),
                        r.converged
                    );
                    let ok = r.converged;
                    results.w2 = Some(r);
                    ok
                }),
            ("w3", _) => {
                let plan = workloads::fanout::Plan {
                    sizes: args.w3_peers.clone(),
                    writers: args.w3_writers,
                    rate: args.w3_rate,
                    secs: args.w3_secs,
                    ramp_peers: args.w3_ramp_peers,
                    ramp_rates: args.w3_ramp_rates.clone(),
                    ramp_secs: args.w3_ramp_secs,
                    apply_every: args.w3_apply_every,
                };
                workloads::fanout::run(&target, &plan).await.map(|r| {
                    let ok = r.converged;
                    results.w3 = Some(r);
                    ok
                })
            }
            ("w4", _) => workloads::idle::run(
                &target,
                &args.w4_levels,
                args.w4_concurrency,
                server,
                Duration::from_millis(args.w4_settle_ms),
            )
            .await
            .map(|r| {
                let ok = r.converged;
                results.w4 = Some(r);
                ok
            }),
            ("w5", Some(trace)) => {
                let plan = workloads::join::Plan {
                    warm: args.w5_warm,
                    burst: args.w5_burst,
                    cold_rounds: args.w5_cold_rounds,
                    unload_wait: Duration::from_millis(args.w5_unload_wait_ms),
                    storage: !args.no_storage,
                };
                workloads::join::run(&target, trace, &plan).await.map(|r| {
                    eprintln!(
                        "  w5 warm p50 {:.2} ms, burst p99 {:.2} ms, from storage {:?} ms, converged {}",
                        r.warm_p50_ms, r.burst_p99_ms, r.storage_p50_ms, r.converged
                    );
                    let ok = r.converged;
                    results.w5 = Some(r);
                    ok
                })
            }
            ("w6", _) => match w6_rate(&args) {
                Ok((rate, rate_basis)) => {
                    let plan = workloads::soak::Plan {
                        peers: args.w6_peers,
                        writers: args.w6_writers,
                        rate,
                        rate_basis,
                        secs: args.w6_secs,
                        window_secs: args.w6_window_secs,
                        apply_every: args.w3_apply_every,
                        keep_chars: args.w6_keep_chars,
                    };
                    workloads::soak::run(&target, &plan, server)
                        .await
                        .map(|r| {
                            let ok = r.converged && r.errors == 0;
                            results.w6 = Some(r);
                            ok
                        })
                }
                Err(e) => Err(e),
            },
            ("w7", _) => {
                let plan = workloads::rooms::Plan {
                    rooms: args.w7_rooms,
                    members: args.w7_members,
                    rate_per_member: args.w7_rate,
                    secs: args.w7_secs,
                    concurrency: args.w7_concurrency,
                };
                workloads::rooms::run(&target, &plan, server).await.map(|r| {
                    let ok = r.converged;
                    results.w7 = Some(r);
                    ok
                })
            }
            ("w8", _) => match (&args.addr2, args.target.two_nodes()) {
                (Some(addr2), true) => {
                    let plan = workloads::twonodes::Plan {
                        readers: args.w8_readers,
                        rate: args.w8_rate,
                        secs: args.w8_secs,
                        ramp_rates: args.w8_ramp_rates.clone(),
                        ramp_secs: args.w8_ramp_secs,
                        apply_every: args.w3_apply_every,
                    };
                    let servers: Vec<procfs::Process> = [args.server_pid, args.server_pid2]
                        .into_iter()
                        .flatten()
                        .filter_map(procfs::Process::watch)
                        .collect();
                    workloads::twonodes::run(&target, addr2, &plan, &servers)
                        .await
                        .map(|r| {
                            let ok = r.converged;
                            results.w8 = Some(r);
                            ok
                        })
                }
                (None, _) => Err(Error::Setup(
                    "w8 needs --addr2, the second node's address".into(),
                )),
                (_, false) => Err(Error::Setup(format!(
                    "{label} has no two-node mode; w8 runs against ours and Hocuspocus only"
                ))),
            },
            (other, _) => Err(Error::Setup(format!("unknown workload {other}"))),
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => results.errors.push(format!("{workload}: did not converge")),
            Err(e) => {
                eprintln!("  {workload} failed: {e}");
                results.errors.push(format!("{workload}: {e}"));
            }
        }
    }
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(results.errors.is_empty())
}

/// W6's rate: `--w6-rate`, or half the knee of the W3 ramp in `--w6-knee-from` (with no
/// knee up to the ramp's last step, half that step, which is below half the real knee).
fn w6_rate(args: &RunArgs) -> Result<(f64, String), Error> {
    if let Some(rate) = args.w6_rate {
        return Ok((rate, "--w6-rate".into()));
    }
    let path = args.w6_knee_from.as_ref().ok_or_else(|| {
        Error::Setup("w6 needs --w6-rate or --w6-knee-from (a results file with W3)".into())
    })?;
    let text = std::fs::read(path)
        .map_err(|e| Error::Setup(format!("w6: cannot read {}: {e}", path.display())))?;
    let w3 = serde_json::from_slice::<Results>(&text)?
        .w3
        .ok_or_else(|| Error::Setup(format!("w6: {} has no W3 results", path.display())))?;
    match (w3.knee_rate, w3.ramp.last()) {
        (Some(knee), _) => Ok((
            knee / 2.0,
            format!("half the W3 knee of {knee:.0} updates/s"),
        )),
        (None, Some(last)) => Ok((
            last.rate / 2.0,
            format!(
                "half the last W3 ramp step, {:.0} updates/s, which had no knee (a floor)",
                last.rate
            ),
        )),
        (None, None) => Err(Error::Setup(format!(
            "w6: {} has no W3 ramp to take the knee from",
            path.display()
        ))),
    }
}
