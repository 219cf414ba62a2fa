//! Puts every server's results side by side: a Markdown table with ratios (how many times
//! better ours is: for rates ours / peer, for latencies and memory peer / ours), the targets
//! of issue 5 with met or missed, SVG charts, and the BENCHMARKS.md section between the
//! `<!-- bench-compare:start -->` and `<!-- bench-compare:end -->` markers.

use crate::Error;
use crate::results::Results;
use crate::target::Kind;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `canvas-load report`.
#[derive(clap::Parser)]
pub struct ReportArgs {
    /// Folder of results files (`*.json`, one or more per server; merged per server).
    #[arg(long)]
    results: PathBuf,
    /// Folder to write the SVG charts into (also how the Markdown links them).
    #[arg(long)]
    charts: PathBuf,
    /// A Markdown file whose `bench-compare` section is replaced (appended if missing).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// The command that produced the results (printed with the table).
    #[arg(long, default_value = "./scripts/bench-compare.sh")]
    command: String,
    /// How the servers ran (printed with the table).
    #[arg(long, default_value = "")]
    conditions: String,
}

const START: &str = "<!-- bench-compare:start -->";
const END: &str = "<!-- bench-compare:end -->";
const ORDER: [Kind; 4] = [
    Kind::Canvas,
    Kind::YSweet,
    Kind::YWebsocket,
    Kind::Hocuspocus,
];

/// Loads, merges and reports; `Ok(true)` when every server's results are complete.
pub fn report(args: &ReportArgs) -> Result<bool, Error> {
    let mut merged: BTreeMap<usize, Results> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.results)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let r: Results = serde_json::from_slice(&std::fs::read(&file)?)?;
        let key = ORDER
            .iter()
            .position(|k| *k == r.target)
            .unwrap_or(ORDER.len());
        let entry = merged.entry(key).or_insert_with(|| Results {
            target: r.target,
            w2: None,
            w3: None,
            w4: None,
            w5: None,
            w6: None,
            w7: None,
            w8: None,
            errors: vec![],
        });
        entry.w2 = r.w2.or(entry.w2.take());
        entry.w3 = r.w3.or(entry.w3.take());
        entry.w4 = r.w4.or(entry.w4.take());
        entry.w5 = r.w5.or(entry.w5.take());
        entry.w6 = r.w6.or(entry.w6.take());
        entry.w7 = r.w7.or(entry.w7.take());
        entry.w8 = r.w8.or(entry.w8.take());
        entry.errors.extend(r.errors);
    }
    let servers: Vec<Results> = merged.into_values().collect();
    std::fs::create_dir_all(&args.charts)?;
    let charts = charts(&servers, &args.charts)?;
    let table = table(&servers);
    let targets = targets(&servers);
    let mut section = String::new();
    let _ = writeln!(section, "{START}");
    let _ = writeln!(
        section,
        "Produced by `{}` ({}).\n",
        args.command,
        chrono_free_date()
    );
    if !args.conditions.is_empty() {
        let _ = writeln!(section, "{}\n", args.conditions);
    }
    let _ = writeln!(section, "{table}");
    let _ = writeln!(section, "{targets}");
    for (title, file) in &charts {
        let link = args.charts.join(file);
        let _ = writeln!(section, "![{title}]({})\n", link.display());
    }
    let errors: Vec<String> = servers
        .iter()
        .flat_map(|s| {
            s.errors
                .iter()
                .map(move |e| format!("- {}: {e}", s.target.label()))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(section, "Failures in this run:\n\n{}\n", errors.join("\n"));
    }
    let _ = write!(section, "{END}");
    println!("{table}\n{targets}");
    if let Some(md) = &args.markdown {
        let old = std::fs::read_to_string(md).unwrap_or_default();
        let new = match (old.find(START), old.find(END)) {
            (Some(s), Some(e)) if s < e => {
                format!("{}{section}{}", &old[..s], &old[e + END.len()..])
            }
            _ => format!("{}\n{section}\n", old.trim_end()),
        };
        std::fs::write(md, new)?;
    }
    Ok(errors.is_empty())
}

/// Today's date (UTC) from the system clock, without a date crate.
fn chrono_free_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whether a bigger value is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
    Neither,
}

struct Row {
    name: String,
    better: Better,
    values: Vec<Option<f64>>,
}

fn rows(servers: &[Results]) -> Vec<Row> {
    let mut rows = vec![];
    let mut push = |name: String, better, f: &dyn Fn(&Results) -> Option<f64>| {
        rows.push(Row {
            name,
            better,
            values: servers.iter().map(f).collect(),
        })
    };
    push(
        "W2 ingest, updates/s received by an observer".into(),
        Better::Higher,
        &|r| r.w2.as_ref().map(|w| w.received_per_sec),
    );
    push(
        "W2 ingest, updates/s acknowledged (ours: durable)".into(),
        Better::Higher,
        &|r| r.w2.as_ref().and_then(|w| w.acked_per_sec),
    );
    push(
        "W2 server CPU ms per 1k updates".into(),
        Better::Lower,
        &|r| r.w2.as_ref().and_then(|w| w.cpu_ms_per_1k),
    );
    push(
        "W2 bytes per update message".into(),
        Better::Neither,
        &|r| r.w2.as_ref().map(|w| w.bytes_per_update),
    );
    let sizes: Vec<usize> = servers
        .iter()
        .filter_map(|s| s.w3.as_ref())
        .flat_map(|w| w.fixed.iter().map(|p| p.peers))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for n in sizes {
        let point = move |r: &Results| {
            r.w3.as_ref()
                .and_then(|w| w.fixed.iter().find(|p| p.peers == n))
                .cloned()
        };
        let rate = servers
            .iter()
            .find_map(|s| point(s).map(|p| p.rate))
            .unwrap_or(0.0);
        push(
            format!("W3 {n} peers at {rate:.0} updates/s: p50 ms"),
            Better::Lower,
            &move |r| point(r).map(|p| p.p50_ms),
        );
        push(format!("W3 {n} peers: p99 ms"), Better::Lower, &move |r| {
            point(r).map(|p| p.p99_ms)
        });
        push(
            format!("W3 {n} peers: p99.9 ms"),
            Better::Lower,
            &move |r| point(r).map(|p| p.p999_ms),
        );
    }
    push(
        "W3 knee: first ramp rate with p99 > 100 ms, updates/s (empty: none up to the last step)"
            .into(),
        Better::Higher,
        &|r| r.w3.as_ref().and_then(|w| w.knee_rate),
    );
    let levels: Vec<usize> = servers
        .iter()
        .filter_map(|s| s.w4.as_ref())
        .flat_map(|w| w.levels.iter().map(|l| l.connections))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for n in &levels {
        let n = *n;
        push(
            format!("W4 {n} idle connections: server RSS KiB per connection"),
            Better::Lower,
            &move |r| {
                r.w4.as_ref()
                    .and_then(|w| w.levels.iter().find(|l| l.connections == n))
                    .map(|l| l.kib_per_connection)
            },
        );
    }
    if let Some(&n) = levels.last() {
        push(
            format!("W4 up to {n}: KiB per room (with its first connection)"),
            Better::Lower,
            &move |r| {
                r.w4.as_ref()
                    .and_then(|w| w.levels.iter().find(|l| l.connections == n))
                    .map(|l| l.kib_per_room)
            },
        );
        push(
            format!("W4 up to {n}: connects + syncs per second"),
            Better::Higher,
            &move |r| {
                r.w4.as_ref()
                    .and_then(|w| w.levels.iter().find(|l| l.connections == n))
                    .map(|l| l.connects_per_sec)
            },
        );
    }
    push("W5 warm join p50 ms".into(), Better::Lower, &|r| {
        r.w5.as_ref().map(|w| w.warm_p50_ms)
    });
    push(
        "W5 join from storage (after unload) ms".into(),
        Better::Lower,
        &|r| r.w5.as_ref().and_then(|w| w.storage_p50_ms),
    );
    push("W5 simultaneous joins p99 ms".into(), Better::Lower, &|r| {
        r.w5.as_ref().map(|w| w.burst_p99_ms)
    });
    let w6_shape = servers
        .iter()
        .find_map(|s| s.w6.as_ref())
        .map(|w| (w.peers, w.writers, w.secs));
    if let Some((peers, writers, secs)) = w6_shape {
        push(
            format!(
                "W6 soak, {peers} peers ({writers} writers), {secs:.0} s: rate, updates/s (half the server's own W3 knee)"
            ),
            Better::Higher,
            &|r| r.w6.as_ref().map(|w| w.rate),
        );
        push(
            "W6 server RSS drift, first to last window, %".into(),
            Better::Neither,
            &|r| r.w6.as_ref().and_then(|w| w.rss_drift_pct),
        );
        push(
            "W6 errors (deliveries lost + peers closed)".into(),
            Better::Lower,
            &|r| r.w6.as_ref().map(|w| w.errors as f64),
        );
        push("W6 p99 ms, first window".into(), Better::Lower, &|r| {
            r.w6.as_ref().map(|w| w.p99_first_ms)
        });
        push("W6 p99 ms, last window".into(), Better::Lower, &|r| {
            r.w6.as_ref().map(|w| w.p99_last_ms)
        });
        push("W6 p99 ms, worst window".into(), Better::Lower, &|r| {
            r.w6.as_ref().map(|w| w.p99_worst_ms)
        });
        push(
            "W6 server CPU ms per 1k updates".into(),
            Better::Lower,
            &|r| r.w6.as_ref().and_then(|w| w.server_cpu_ms_per_1k),
        );
    }
    let w7_shape = servers
        .iter()
        .find_map(|s| s.w7.as_ref())
        .map(|w| (w.rooms, w.members, w.rate_per_member));
    if let Some((rooms, members, rate)) = w7_shape {
        push(
            format!(
                "W7 {rooms} rooms x {members} members, {rate} update/s each: server CPU ms per 1k updates"
            ),
            Better::Lower,
            &|r| r.w7.as_ref().and_then(|w| w.server_cpu_ms_per_1k),
        );
        push("W7 p50 ms".into(), Better::Lower, &|r| {
            r.w7.as_ref().map(|w| w.p50_ms)
        });
        push("W7 p99 ms".into(), Better::Lower, &|r| {
            r.w7.as_ref().map(|w| w.p99_ms)
        });
        push("W7 server RSS MiB at the end".into(), Better::Lower, &|r| {
            r.w7.as_ref().and_then(|w| w.server_rss_mib)
        });
    }
    let w8_shape = servers
        .iter()
        .find_map(|s| s.w8.as_ref())
        .map(|w| (w.readers, w.fixed.as_ref().map(|p| p.rate)));
    if let Some((readers, rate)) = w8_shape {
        let rate = rate.map_or(String::new(), |r| format!(" at {r:.0} updates/s"));
        push(
            format!("W8 two nodes, 1 writer on node 1, {readers} readers on node 2{rate}: p50 ms"),
            Better::Lower,
            &|r| {
                r.w8.as_ref()
                    .and_then(|w| w.fixed.as_ref())
                    .map(|p| p.p50_ms)
            },
        );
        push("W8 p99 ms".into(), Better::Lower, &|r| {
            r.w8.as_ref()
                .and_then(|w| w.fixed.as_ref())
                .map(|p| p.p99_ms)
        });
        push(
            "W8 server CPU ms per 1k updates (both nodes)".into(),
            Better::Lower,
            &|r| {
                r.w8.as_ref()
                    .and_then(|w| w.fixed.as_ref())
                    .and_then(|p| p.server_cpu_ms_per_1k)
            },
        );
        push(
            "W8 knee: first ramp rate with p99 > 100 ms, updates/s (empty: none up to the last step)"
                .into(),
            Better::Higher,
            &|r| r.w8.as_ref().and_then(|w| w.knee_rate),
        );
    }
    rows
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => {
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn table(servers: &[Results]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = servers.iter().map(|s| s.target.label()).collect();
    let ours = servers.iter().position(|s| s.target == Kind::Canvas);
    let peers: Vec<usize> = (0..servers.len()).filter(|i| Some(*i) != ours).collect();
    let _ = write!(out, "| workload | {} |", names.join(" | "));
    for p in &peers {
        let _ = write!(out, " ours vs {} |", names[*p]);
    }
    let _ = write!(out, " ours vs the best peer |");
    let _ = write!(
        out,
        "\n|---|{}",
        "---|".repeat(names.len() + peers.len() + 1)
    );
    for row in rows(servers) {
        if row.values.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "\n| {} |", row.name);
        for v in &row.values {
            let _ = write!(out, " {} |", fmt(*v));
        }
        let ratio_to = |p: usize| {
            ours.and_then(|o| row.values[o])
                .zip(row.values[p])
                .and_then(|(a, b)| match row.better {
                    Better::Higher if b > 0.0 => Some(a / b),
                    Better::Lower if a > 0.0 => Some(b / a),
                    _ => None,
                })
        };
        for p in &peers {
            let _ = write!(
                out,
                " {} |",
                ratio_to(*p).map_or("-".into(), |r| format!("{r:.2}x"))
            );
        }
        // The best peer on this row: the highest rate, the lowest latency, CPU or memory.
        let best = peers
            .iter()
            .filter_map(|p| row.values[*p].map(|v| (*p, v)))
            .filter(|(_, v)| !matches!(row.better, Better::Lower) || *v >= 0.0)
            .reduce(|a, b| match row.better {
                Better::Higher if b.1 > a.1 => b,
                Better::Lower if b.1 < a.1 => b,
                _ => a,
            });
        let _ = write!(
            out,
            " {} |",
            match (row.better, best) {
                (Better::Neither, _) | (_, None) => "-".into(),
                (_, Some((p, _))) => ratio_to(p).map_or(format!("- ({})", names[p]), |r| format!(
                    "{r:.2}x ({})",
                    names[p]
                )),
            }
        );
    }
    let _ = write!(out, "\n| all workloads converged |");
    for s in servers {
        let ok = s.errors.is_empty()
            && s.w2.as_ref().is_none_or(|w| w.converged)
            && s.w3.as_ref().is_none_or(|w| w.converged)
            && s.w4.as_ref().is_none_or(|w| w.converged)
            && s.w5.as_ref().is_none_or(|w| w.converged)
            && s.w6.as_ref().is_none_or(|w| w.converged)
            && s.w7.as_ref().is_none_or(|w| w.converged)
            && s.w8.as_ref().is_none_or(|w| w.converged);
        let _ = write!(out, " {} |", if ok { "yes" } else { "no" });
    }
    for _ in 0..=peers.len() {
        let _ = write!(out, " |");
    }
    out.push_str("\n\nRatios: how many times better ours is (rates: ours / peer; latencies, CPU and memory: peer / ours); the best peer is the one with the best figure on that row. W6 runs each server at half its own W3 knee, so its latency and CPU rows compare servers at different rates.\n");
    out
}

fn targets(servers: &[Results]) -> String {
    let get = |k: Kind| servers.iter().find(|s| s.target == k);
    let ours = get(Kind::Canvas);
    let w2 = |k: Kind| {
        get(k)
            .and_then(|s| s.w2.as_ref())
            .map(|w| w.received_per_sec)
    };
    let knee = |k: Kind| get(k).and_then(|s| s.w3.as_ref());
    let mut lines: Vec<(String, Option<bool>)> = vec![];
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    lines.push((
        "W2 >= 150,000 updates/s".into(),
        w2(Kind::Canvas).map(|v| v >= 150_000.0),
    ));
    lines.push((
        "W2 >= 3x y-sweet".into(),
        ratio(w2(Kind::Canvas), w2(Kind::YSweet)).map(|r| r >= 3.0),
    ));
    lines.push((
        "W2 >= 10x the y-websocket server".into(),
        ratio(w2(Kind::Canvas), w2(Kind::YWebsocket)).map(|r| r >= 10.0),
    ));
    let p99_50 = ours
        .and_then(|s| s.w3.as_ref())
        .and_then(|w| w.fixed.iter().find(|p| p.peers == 50))
        .map(|p| p.p99_ms);
    lines.push((
        "W3 50 peers, 2,000 updates/s: p99 < 10 ms".into(),
        p99_50.map(|v| v < 10.0),
    ));
    // A server with no knee up to the last step counts as that step.
    let knee_or_max =
        |k: Kind| knee(k).and_then(|w| w.knee_rate.or_else(|| w.ramp.last().map(|p| p.rate * 2.0)));
    lines.push((
        "W3 knee >= 2x y-sweet's".into(),
        ratio(knee_or_max(Kind::Canvas), knee_or_max(Kind::YSweet)).map(|r| r >= 2.0),
    ));
    let w4 = ours
        .and_then(|s| s.w4.as_ref())
        .and_then(|w| w.levels.iter().find(|l| l.connections >= 10_000))
        .map(|l| l.kib_per_connection);
    lines.push((
        "W4 <= 16 KiB per idle connection at 10k".into(),
        w4.map(|v| v <= 16.0),
    ));
    let w5 = ours.and_then(|s| s.w5.as_ref());
    lines.push((
        "W5 warm join < 10 ms".into(),
        w5.map(|w| w.warm_p50_ms < 10.0),
    ));
    lines.push((
        "W5 join from storage < 50 ms".into(),
        w5.and_then(|w| w.storage_p50_ms).map(|v| v < 50.0),
    ));
    lines.push((
        "W5 100 simultaneous joins p99 < 200 ms".into(),
        w5.map(|w| w.burst_p99_ms < 200.0),
    ));
    let w6 = ours.and_then(|s| s.w6.as_ref());
    lines.push((
        "W6 soak: RSS drift < 5 % from the first window to the last".into(),
        w6.and_then(|w| w.rss_drift_pct).map(|d| d.abs() < 5.0),
    ));
    lines.push((
        "W6 soak: 0 errors".into(),
        w6.map(|w| w.errors == 0 && w.converged),
    ));
    lines.push((
        "W6 soak: p99 steady (every window's p99 at most 2x the first window's)".into(),
        w6.map(|w| w.p99_worst_ms <= 2.0 * w.p99_first_ms),
    ));
    let mut out = String::from("| target | result |\n|---|---|");
    for (name, met) in lines {
        let _ = write!(
            out,
            "\n| {name} | {} |",
            match met {
                Some(true) => "met",
                Some(false) => "missed",
                None => "not measured",
            }
        );
    }
    out.push('\n');
    out
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// A line: its legend, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

fn color(k: Kind) -> RGBColor {
    COLORS[ORDER.iter().position(|o| *o == k).unwrap_or(0) % COLORS.len()]
}

/// The colour halfway to white (the second series of a server).
fn lighten(c: RGBColor) -> RGBColor {
    let half = |v: u8| v + (255 - v) / 2;
    RGBColor(half(c.0), half(c.1), half(c.2))
}

fn chart_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Chart(e.to_string())
}

/// Writes the charts; returns (title, file name) of each.
fn charts(servers: &[Results], dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut written = vec![];
    // Throughput bars.
    let bars: Vec<(String, f64, RGBColor)> = servers
        .iter()
        .flat_map(|s| {
            let mut v = vec![];
            if let Some(w) = &s.w2 {
                v.push((
                    s.target.label().to_owned(),
                    w.received_per_sec,
                    color(s.target),
                ));
                if let (Kind::Canvas, Some(a)) = (s.target, w.acked_per_sec) {
                    v.push(("ours, durable acks".to_owned(), a, lighten(color(s.target))));
                }
            }
            v
        })
        .collect();
    if !bars.is_empty() {
        let file = "w2-throughput.svg";
        bar_chart(
            &dir.join(file),
            "W2 single-writer ingest (updates/s)",
            &bars,
        )?;
        written.push(("W2 throughput".into(), file.into()));
    }
    // Latency vs peers.
    let mut lat: Vec<Series> = vec![];
    for s in servers {
        if let Some(w) = &s.w3 {
            let c = color(s.target);
            lat.push((
                format!("{} p99", s.target.label()),
                c,
                w.fixed.iter().map(|p| (p.peers as f64, p.p99_ms)).collect(),
            ));
            lat.push((
                format!("{} p50", s.target.label()),
                lighten(c),
                w.fixed.iter().map(|p| (p.peers as f64, p.p50_ms)).collect(),
            ));
        }
    }
    if lat.iter().any(|l| !l.2.is_empty()) {
        let file = "w3-latency.svg";
        line_chart(
            &dir.join(file),
            "W3 fan-out latency vs peers (ms, log)",
            "peers in the room",
            &lat,
            true,
            false,
        )?;
        written.push(("W3 latency percentiles vs peers".into(), file.into()));
    }
    let ramp: Vec<Series> = servers
        .iter()
        .filter_map(|s| {
            s.w3.as_ref().map(|w| {
                (
                    format!("{} p99", s.target.label()),
                    color(s.target),
                    w.ramp.iter().map(|p| (p.rate, p.p99_ms)).collect(),
                )
            })
        })
        .collect();
    if ramp.iter().any(|l: &Series| !l.2.is_empty()) {
        let file = "w3-ramp.svg";
        line_chart(
            &dir.join(file),
            "W3 ramp: p99 latency vs offered rate (ms, log-log)",
            "updates/s into the room",
            &ramp,
            true,
            true,
        )?;
        written.push(("W3 ramp".into(), file.into()));
    }
    let rss: Vec<Series> = servers
        .iter()
        .filter_map(|s| {
            s.w4.as_ref().map(|w| {
                (
                    s.target.label().to_owned(),
                    color(s.target),
                    w.levels
                        .iter()
                        .map(|l| (l.connections as f64, l.kib_per_connection))
                        .collect(),
                )
            })
        })
        .collect();
    if rss.iter().any(|l: &Series| !l.2.is_empty()) {
        let file = "w4-rss.svg";
        line_chart(
            &dir.join(file),
            "W4 server RSS per idle connection (KiB)",
            "idle connections",
            &rss,
            false,
            false,
        )?;
        written.push(("W4 RSS per connection".into(), file.into()));
    }
    Ok(written)
}

fn bar_chart(path: &Path, title: &str, bars: &[(String, f64, RGBColor)]) -> Result<(), Error> {
    let root = SVGBackend::new(path, (760, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.15;
    let n = bars.len();
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, 0f64..max)
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| fmt(Some(*y)))
        .draw()
        .map_err(chart_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, c))| {
            Rectangle::new([(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)], c.filled())
        }))
        .map_err(chart_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                fmt(Some(*v)),
                (i as f64 + 0.3, *v * 1.06),
                ("sans-serif", 14),
            )
        }))
        .map_err(chart_err)?;
    root.present().map_err(chart_err)?;
    Ok(())
}

fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[Series],
    log_y: bool,
    log_x: bool,
) -> Result<(), Error> {
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (x0, x1) = if log_x {
        (x0.max(1.0) * 0.8, x1 * 1.25)
    } else {
        (0.0, x1 * 1.05)
    };
    let (y0, y1) = if log_y {
        (y0.max(0.01) * 0.7, y1.max(0.02) * 1.6)
    } else {
        (0.0, y1 * 1.15)
    };
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(chart_err)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .x_label_formatter(&|x| fmt(Some(*x)))
                .y_label_formatter(&|y| fmt(Some(*y)))
                .draw()
                .map_err(chart_err)?;
            for (name, c, points) in series {
                let c = *c;
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                    .map_err(chart_err)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .map_err(chart_err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(chart_err)?;
        }};
    }
    match (log_x, log_y) {
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)),
        (false, true) => draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())),
        (true, false) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)),
        (true, true) => {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()))
        }
    }
    root.present().map_err(chart_err)?;
    Ok(())
}
