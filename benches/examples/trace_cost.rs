//! One replay of a trace through one path, for instruction counts that the shared machine's
//! wall-clock noise does not blur:
//!
//! ```sh
//! cargo build --release -p canvas-bench --example trace_cost
//! for v in setup raw ingest batched; do
//!   perf stat -e instructions:u target/release/examples/trace_cost $v automerge-paper
//! done
//! ```
//!
//! Subtract `setup` (loading the cached updates and the base) from the others. `raw`,
//! `ingest` and `batched` are the variants of `benches/engine.rs`.

use canvas_bench::traces;
use canvas_engine::{CanvasDoc, Role};
use yrs::updates::decoder::Decode;
use yrs::{Transact, Update};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let variant = args.get(1).map_or("raw", String::as_str);
    let name = args.get(2).map_or("automerge-paper", String::as_str);
    let (updates, end) = traces::trace_updates(name).expect("the trace loads");
    match variant {
        "raw" => {
            let doc = canvas_engine::new_doc();
            for u in &updates {
                let u = Update::decode_v1(u).expect("decodes");
                doc.transact_mut().apply_update(u).expect("applies");
            }
            assert_eq!(traces::text_of(&doc), end);
        }
        "ingest" | "batched" => {
            let mut canvas = CanvasDoc::new();
            if variant == "ingest" {
                for u in &updates {
                    let applied = canvas.apply_checked(Role::Editor, u);
                    assert!(applied.is_ok(), "{applied:?}");
                }
            } else {
                for chunk in updates.chunks(64) {
                    for r in canvas
                        .apply_batch(chunk.iter().map(|u| (Role::Editor, u.as_slice())))
                        .verdicts
                    {
                        assert!(r.is_ok(), "{r:?}");
                    }
                }
            }
            assert_eq!(traces::text_of(canvas.doc()), end);
        }
        _ => {} // setup only
    }
}
