//! Memory held per loaded document, counted by a counting global allocator (`stats_alloc`
//! wraps the system allocator and counts every allocation and release of this process).
//!
//! `cargo bench -p canvas-bench --bench memory`
//!
//! For each real trace: the final document's snapshot, then the bytes still allocated after
//! loading it (a plain yrs `Doc`, and our `CanvasDoc`, which adds the inspector's location
//! index, also given alone), and after building it live (every update through `CanvasDoc::apply_checked`, as
//! a room that stays open does). Same for the synthetic canvas workload. Nothing is timed.

use canvas_bench::traces::{self, TRACES};
use canvas_bench::workload::{self, Mix};
use canvas_engine::{CanvasDoc, Role};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::hint::black_box;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes still allocated after `f` returns a value (which is kept alive while counting).
fn held<T>(f: impl FnOnce() -> T) -> (T, i64) {
    let region = Region::new(GLOBAL);
    let value = black_box(f());
    let stats = region.change();
    // (a reallocation is already counted in bytes_allocated / bytes_deallocated)
    let bytes = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
    (value, bytes)
}

fn raw_load(snapshot: &[u8]) -> Doc {
    let doc = canvas_engine::new_doc();
    doc.transact_mut()
        .apply_update(Update::decode_v1(snapshot).expect("decodes"))
        .expect("applies");
    doc
}

fn kib(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn measure(name: &str, base: &[u8], updates: &[Vec<u8>], chars: usize) {
    let (live, live_bytes) = held(|| {
        let mut canvas = CanvasDoc::from_stored(base, []).expect("loads");
        for u in updates {
            let applied = canvas.apply_checked(Role::Editor, u);
            assert!(applied.is_ok(), "{applied:?}");
        }
        canvas
    });
    let snapshot = live.encode_state();
    drop(live);
    let (raw, raw_bytes) = held(|| raw_load(&snapshot));
    let (index, index_bytes) =
        held(|| canvas_engine::inspect::DocIndex::build(&raw).expect("indexes"));
    drop(index);
    drop(raw);
    let (ours, ours_bytes) = held(|| CanvasDoc::from_stored(&snapshot, []).expect("loads"));
    let ranges = ours.index().range_count();
    drop(ours);
    println!(
        "| {name} | {} | {chars} | {} | {} | {} | {} ({ranges} ranges) | {} |",
        updates.len(),
        kib(snapshot.len() as i64),
        kib(raw_bytes),
        kib(ours_bytes),
        kib(index_bytes),
        kib(live_bytes),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench --list: nothing to list
    }
    println!(
        "| document | updates | characters | snapshot | loaded: plain yrs Doc | loaded: CanvasDoc | of which the index | built live through apply_checked |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let empty = traces::empty_canvas().encode_state();
    for name in TRACES {
        let trace = traces::load_trace(name).expect("the trace loads");
        let chars = trace.end_content.chars().count();
        measure(&format!("trace/{name}"), &empty, &trace.updates, chars);
    }
    let w = workload::canvas_workload(Mix::Mixed, 10_000, 42);
    measure("canvas/mixed", &w.base, &w.updates, 0);
}
