//! Engine benchmarks (criterion): raw yrs apply against our ingest path, on real editing
//! traces and on a synthetic canvas workload; snapshot encode and load.
//!
//! `cargo bench -p canvas-bench --bench engine` (add a filter such as `trace/` to run part).
//! Every iteration starts from a fresh document loaded from the base snapshot (not timed),
//! applies every update of the case (timed), then checks the result (not timed): a trace
//! must end as its `endContent`, the canvas workload as its expected blocks. At the end a
//! table of ratios (ours / raw throughput) from this very invocation is printed.
//!
//! - `raw`: `Update::decode_v1` + `apply_update`, one yrs transaction per update. The baseline.
//! - `ingest`: what the server's room does per update: decode the y-websocket frame, inspect
//!   it for the sender's role and the schema, apply it, keep it for the log and encode the
//!   relay frame (`CanvasDoc::apply_checked` + `protocol`).
//! - `batched`: the same, with the updates queued for a room taken 64 at a time through
//!   `CanvasDoc::apply_batch` (one verdict per update, accepted runs applied together and
//!   kept for the log and relayed as one merged update, as the room does).

use canvas_bench::traces::{self, TRACES};
use canvas_bench::workload::{self, Edit, Mix};
use canvas_engine::canvas::LogEntry;
use canvas_engine::protocol;
use canvas_engine::{CanvasDoc, Role};
use criterion::{Criterion, Throughput};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

/// Updates a room takes from its queue at once in the `batched` variant.
const BATCH: usize = 64;

/// Checks a replayed document: `Err` says what differs.
type Check = Box<dyn Fn(&Doc) -> Result<(), String>>;

/// One set of updates to replay.
struct Case {
    name: String,
    base: Vec<u8>,
    updates: Vec<Vec<u8>>,
    /// The same updates as y-websocket frames, as they arrive from a client.
    frames: Vec<Vec<u8>>,
    check: Check,
}

fn trace_case(name: &str) -> Case {
    let (updates, end) = traces::trace_updates(name).expect("the trace loads");
    Case {
        name: format!("trace/{name}"),
        base: traces::empty_canvas().encode_state(),
        frames: updates.iter().map(|u| protocol::update(u)).collect(),
        updates,
        check: Box::new(move |doc| {
            let text = traces::text_of(doc);
            if text == end {
                Ok(())
            } else {
                Err(format!(
                    "final text ({} chars) differs from endContent ({} chars)",
                    text.len(),
                    end.len()
                ))
            }
        }),
    }
}

fn canvas_case(mix: Mix, n: usize) -> Case {
    let w = workload::canvas_workload(mix, n, 42);
    let expected = w.expected;
    Case {
        name: format!("canvas/{}", mix.name()),
        base: w.base,
        frames: w.updates.iter().map(|u| protocol::update(u)).collect(),
        updates: w.updates,
        check: Box::new(move |doc| {
            if workload::blocks_json(doc) == expected {
                Ok(())
            } else {
                Err("the blocks differ from the expected ones".into())
            }
        }),
    }
}

fn raw_doc(base: &[u8]) -> Doc {
    let doc = canvas_engine::new_doc();
    doc.transact_mut()
        .apply_update(Update::decode_v1(base).expect("base decodes"))
        .expect("base applies");
    doc
}

fn run_raw(doc: &Doc, updates: &[Vec<u8>]) {
    for u in updates {
        let update = Update::decode_v1(u).expect("decodes");
        doc.transact_mut().apply_update(update).expect("applies");
    }
}

fn frame_update(frame: &[u8]) -> Vec<u8> {
    match protocol::decode(frame) {
        Ok(Message::Sync(SyncMessage::Update(u))) => u,
        other => panic!("not an update frame: {other:?}"),
    }
}

/// The room's per-update work: decode, inspect + apply, keep for the log, relay frame.
fn run_ingest(canvas: &mut CanvasDoc, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut log = Vec::with_capacity(frames.len());
    for frame in frames {
        let update = frame_update(frame);
        let applied = canvas.apply_checked(Role::Editor, &update);
        assert!(applied.is_ok(), "refused: {applied:?}");
        black_box(protocol::update(&update));
        log.push(update);
    }
    log
}

fn run_batched(canvas: &mut CanvasDoc, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut log = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(BATCH) {
        let mut updates: Vec<Vec<u8>> = chunk.iter().map(|f| frame_update(f)).collect();
        let batch = canvas.apply_batch(updates.iter().map(|u| (Role::Editor, u.as_slice())));
        assert_eq!(batch.verdicts.len(), updates.len());
        for verdict in &batch.verdicts {
            assert!(verdict.is_ok(), "refused: {verdict:?}");
        }
        // What the room logs and relays: one entry per merged run, one frame per entry.
        for entry in batch.entries {
            let update = match entry {
                LogEntry::One(i) => std::mem::take(&mut updates[i]),
                LogEntry::Merged { update, .. } => update,
            };
            black_box(protocol::update(&update));
            log.push(update);
        }
    }
    log
}

#[derive(Clone, Copy)]
enum Variant {
    Raw,
    Ingest,
    Batched,
}

/// Times `iters` replays of a case; checks every result.
fn replay(case: &Case, variant: Variant, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        match variant {
            Variant::Raw => {
                let doc = raw_doc(&case.base);
                let start = Instant::now();
                run_raw(&doc, &case.updates);
                total += start.elapsed();
                (case.check)(&doc).expect("raw yrs ends right");
            }
            Variant::Ingest | Variant::Batched => {
                let mut canvas = CanvasDoc::from_stored(&case.base, []).expect("base loads");
                let start = Instant::now();
                let log = if let Variant::Ingest = variant {
                    run_ingest(&mut canvas, &case.frames)
                } else {
                    run_batched(&mut canvas, &case.frames)
                };
                total += start.elapsed();
                if let Variant::Ingest = variant {
                    assert_eq!(log.len(), case.updates.len());
                }
                (case.check)(canvas.doc()).expect("our ingest path ends right");
            }
        }
    }
    total
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = TRACES.iter().map(|t| trace_case(t)).collect();
    for mix in [
        Mix::Only(Edit::Add),
        Mix::Only(Edit::Move),
        Mix::Only(Edit::Resize),
        Mix::Only(Edit::Type),
        Mix::Mixed,
    ] {
        let n = if mix == Mix::Only(Edit::Add) {
            2_000
        } else {
            10_000
        };
        cases.push(canvas_case(mix, n));
    }
    cases
}

fn apply_benches(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let mut group = c.benchmark_group(&case.name);
        group.throughput(Throughput::Elements(case.updates.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for (id, variant) in [
            ("raw", Variant::Raw),
            ("ingest", Variant::Ingest),
            ("batched", Variant::Batched),
        ] {
            group.bench_function(id, |b| b.iter_custom(|iters| replay(case, variant, iters)));
        }
        group.finish();
    }
}

fn snapshot_benches(c: &mut Criterion, cases: &[Case]) {
    for case in cases.iter().filter(|c| c.name.starts_with("trace/")) {
        let mut canvas = CanvasDoc::from_stored(&case.base, []).expect("loads");
        for u in &case.updates {
            canvas.apply_trusted(u).expect("applies");
        }
        let snapshot = canvas.encode_state();
        let raw: usize = case.updates.iter().map(Vec::len).sum();
        println!(
            "{}: snapshot {} bytes (the {} updates: {} bytes)",
            case.name,
            snapshot.len(),
            case.updates.len(),
            raw
        );
        let mut group = c.benchmark_group(format!("snapshot/{}", &case.name["trace/".len()..]));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Bytes(snapshot.len() as u64));
        group.bench_function("encode", |b| b.iter(|| black_box(canvas.encode_state())));
        group.bench_function("load_raw", |b| {
            b.iter(|| black_box(raw_doc(&snapshot)));
        });
        group.bench_function("load", |b| {
            b.iter(|| {
                let loaded = CanvasDoc::from_stored(&snapshot, []).expect("loads");
                black_box(loaded)
            })
        });
        group.finish();
        let loaded = CanvasDoc::from_stored(&snapshot, []).expect("loads");
        (case.check)(loaded.doc()).expect("the snapshot holds the final text");
    }
}

/// criterion's mean time of a benchmark of this invocation, in seconds.
fn mean(id: &str) -> Option<f64> {
    let path = traces::target_dir()
        .join("criterion")
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64().map(|ns| ns / 1e9)
}

fn summary(cases: &[Case], started: std::time::SystemTime) {
    let fresh = |id: &str| {
        let path = traces::target_dir()
            .join("criterion")
            .join(id)
            .join("new/estimates.json");
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started)
    };
    let mut rows = BTreeMap::new();
    for case in cases {
        let dir = case.name.replace('/', "_");
        let ids = ["raw", "ingest", "batched"].map(|v| format!("{dir}/{v}"));
        if !ids.iter().all(|id| fresh(id)) {
            continue;
        }
        let [Some(raw), Some(ingest), Some(batched)] = ids.map(|id| mean(&id)) else {
            continue;
        };
        let n = case.updates.len() as f64;
        rows.insert(case.name.clone(), (n / raw, n / ingest, n / batched));
    }
    if rows.is_empty() {
        return;
    }
    println!(
        "\n| case | updates | raw yrs updates/s | ingest updates/s | ratio | batched updates/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in cases {
        if let Some((raw, ingest, batched)) = rows.get(&case.name) {
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                case.name,
                case.updates.len(),
                raw,
                ingest,
                ingest / raw,
                batched,
                batched / raw
            );
        }
    }
}

fn main() {
    let started = std::time::SystemTime::now();
    let cases = cases();
    let mut c = Criterion::default().configure_from_args();
    apply_benches(&mut c, &cases);
    snapshot_benches(&mut c, &cases);
    c.final_summary();
    summary(&cases, started);
}
