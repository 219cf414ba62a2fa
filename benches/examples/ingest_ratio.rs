//! Throughput of the full ingest path (inspect + apply + index) against raw yrs apply.
//!
//! Run with `cargo run --release -p canvas-bench --example ingest_ratio`, or one side only
//! (for `perf stat` / callgrind) with `PERF_SIDE=raw|ours PERF_LOAD=typing|moves`.
//! Figures go to BENCHMARKS.md; nothing here asserts on time.

use canvas_engine::Role;
use canvas_engine::canvas::CanvasDoc;
use canvas_engine::schema;
use std::time::{Duration, Instant};
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Doc, In, Map, MapPrelim, Out, ReadTxn, StateVector, Text, TextPrelim, Transact, Update,
    WriteTxn,
};

fn setup() -> (Vec<u8>, Doc) {
    let author = Doc::with_client_id(1);
    {
        let mut txn = author.transact_mut();
        let layout = txn.get_or_insert_map(schema::LAYOUT);
        layout.insert(&mut txn, "columns", 12);
        let blocks = txn.get_or_insert_map(schema::BLOCKS);
        for i in 0..50 {
            let pos = MapPrelim::from([
                ("x", In::Any(Any::from(0))),
                ("y", In::Any(Any::from(i * 4))),
                ("w", In::Any(Any::from(6))),
                ("h", In::Any(Any::from(4))),
            ]);
            let content = MapPrelim::from([("text", In::from(TextPrelim::new("start")))]);
            blocks.insert(
                &mut txn,
                format!("b{i}"),
                MapPrelim::from([
                    ("id", In::Any(format!("b{i}").into())),
                    ("type", In::Any("narrative".into())),
                    ("position", In::Map(pos)),
                    ("content", In::Map(content)),
                ]),
            );
        }
    }
    let base = author
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    (base, author)
}

fn typing(author: &Doc, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut txn = author.transact_mut();
        let blocks = txn.get_map(schema::BLOCKS).expect("blocks");
        let block = format!("b{}", (i / 500) % 50);
        let Some(Out::YMap(b)) = blocks.get(&txn, &block) else {
            panic!("block")
        };
        let Some(Out::YMap(c)) = b.get(&txn, "content") else {
            panic!("content")
        };
        let Some(Out::YText(t)) = c.get(&txn, "text") else {
            panic!("text")
        };
        let len = t.len(&txn);
        t.insert(&mut txn, len.min(3 + (i as u32 % 7)), "x");
        out.push(txn.encode_update_v1());
    }
    out
}

fn moves(author: &Doc, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut txn = author.transact_mut();
        let blocks = txn.get_map(schema::BLOCKS).expect("blocks");
        let Some(Out::YMap(b)) = blocks.get(&txn, &format!("b{}", i % 50)) else {
            panic!("block")
        };
        let Some(Out::YMap(p)) = b.get(&txn, "position") else {
            panic!("position")
        };
        p.insert(&mut txn, "x", (i % 7) as i64);
        out.push(txn.encode_update_v1());
    }
    out
}

fn raw(base: &[u8], updates: &[Vec<u8>]) -> Duration {
    let doc = canvas_engine::new_doc();
    doc.transact_mut()
        .apply_update(Update::decode_v1(base).expect("base"))
        .expect("base applies");
    let start = Instant::now();
    for u in updates {
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(u).expect("decodes"))
            .expect("applies");
    }
    start.elapsed()
}

fn ours(base: &[u8], updates: &[Vec<u8>]) -> Duration {
    let mut server = CanvasDoc::from_stored(base, std::iter::empty()).expect("loads");
    let start = Instant::now();
    for u in updates {
        server.apply_checked(Role::Editor, u).expect("accepted");
    }
    start.elapsed()
}

/// Time spent in inspect and in apply_inspected, separately.
fn breakdown(base: &[u8], updates: &[Vec<u8>]) -> (Duration, Duration) {
    let mut server = CanvasDoc::from_stored(base, std::iter::empty()).expect("loads");
    let mut inspect = Duration::ZERO;
    let mut apply = Duration::ZERO;
    for u in updates {
        let t0 = Instant::now();
        let i = server.inspect(Role::Editor, u).expect("accepted");
        let t1 = Instant::now();
        server.apply_inspected(u, i).expect("applies");
        apply += t1.elapsed();
        inspect += t1 - t0;
    }
    (inspect, apply)
}

fn compare(name: &str, base: &[u8], updates: &[Vec<u8>]) -> f64 {
    // best of 3 to tame noise
    let r = (0..3).map(|_| raw(base, updates)).min().unwrap_or_default();
    let o = (0..3)
        .map(|_| ours(base, updates))
        .min()
        .unwrap_or_default();
    let n = updates.len() as f64;
    let (i, a) = breakdown(base, updates);
    println!(
        "{name}: per update: raw {:.0} ns, inspect {:.0} ns, apply+index {:.0} ns",
        r.as_secs_f64() * 1e9 / n,
        i.as_secs_f64() * 1e9 / n,
        a.as_secs_f64() * 1e9 / n
    );
    let ratio = r.as_secs_f64() / o.as_secs_f64();
    println!(
        "{name}: raw yrs {:.0} updates/s, inspect+apply {:.0} updates/s, ratio {:.2}",
        n / r.as_secs_f64(),
        n / o.as_secs_f64(),
        ratio
    );
    ratio
}

fn both_sides() {
    let (base, author) = setup();
    let keys = typing(&author, 20_000);
    let typing_ratio = compare("typing", &base, &keys);
    let (base, author) = setup();
    let mv = moves(&author, 5_000);
    let moves_ratio = compare("moves", &base, &mv);
    println!("ratios (ours / raw throughput): typing {typing_ratio:.2}, moves {moves_ratio:.2}");
}

/// One side only, for `perf stat`: `PERF_SIDE=raw|ours PERF_LOAD=typing|moves`.
fn one_side() {
    let side = std::env::var("PERF_SIDE").unwrap_or_default();
    let load = std::env::var("PERF_LOAD").unwrap_or_default();
    let (base, author) = setup();
    let updates = if load == "moves" {
        moves(&author, 5_000)
    } else {
        typing(&author, 20_000)
    };
    let rounds: usize = std::env::var("PERF_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for _ in 0..rounds {
        if side == "raw" {
            raw(&base, &updates);
        } else if side == "ours" {
            ours(&base, &updates);
        }
    }
}

fn main() {
    if std::env::var("PERF_SIDE").is_ok() {
        one_side();
    } else {
        both_sides();
    }
}
