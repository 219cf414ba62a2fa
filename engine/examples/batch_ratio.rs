//! W1's batched merge against raw yrs on the three real editing traces, without building the
//! server: `cargo run --release -p canvas-engine --example batch_ratio [REPS] [TRACE]`.
//!
//! Per trace and repetition, raw yrs (`Update::decode_v1` + `apply_update`, one transaction
//! per update) and `CanvasDoc::apply_batch` (64 updates at a time, as a room takes its queue)
//! run back to back on fresh documents; both results are checked against the trace's
//! `endContent` outside the timing. Prints the medians and their ratio. The criterion bench
//! (`cargo bench -p canvas-bench --bench engine`) measures the same with the relay frames
//! the room builds, but needs the whole server built; this needs only yrs.
//!
//! The traces are loaded by the benches' own loader (`benches/src/traces.rs`, included here
//! by path: the canvas-bench crate depends on the server, which this example must not).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../benches/src/traces.rs"]
#[allow(dead_code)]
mod traces;

use canvas_engine::{CanvasDoc, Role};
use std::time::Instant;
use yrs::updates::decoder::Decode;
use yrs::{Transact, Update};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(7).max(1);
    let only = args.get(2).cloned();
    for name in traces::TRACES {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let (updates, end) = traces::trace_updates(name).expect("the trace loads");
        let (mut raw, mut batched) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let start = Instant::now();
            let doc = canvas_engine::new_doc();
            for u in &updates {
                let u = Update::decode_v1(u).expect("decodes");
                doc.transact_mut().apply_update(u).expect("applies");
            }
            raw.push(start.elapsed().as_secs_f64());
            assert_eq!(traces::text_of(&doc), end);

            let start = Instant::now();
            let mut canvas = CanvasDoc::new();
            for chunk in updates.chunks(64) {
                let applied =
                    canvas.apply_batch(chunk.iter().map(|u| (Role::Editor, u.as_slice())));
                for verdict in applied.verdicts {
                    assert!(verdict.is_ok(), "{verdict:?}");
                }
            }
            batched.push(start.elapsed().as_secs_f64());
            assert_eq!(traces::text_of(canvas.doc()), end);
        }
        raw.sort_by(f64::total_cmp);
        batched.sort_by(f64::total_cmp);
        let (r, b) = (raw[reps / 2], batched[reps / 2]);
        let n = updates.len() as f64;
        println!(
            "{name}: {} updates; raw yrs {:.0}/s, batched {:.0}/s, batched / raw {:.2}x (medians of {reps})",
            updates.len(),
            n / r,
            n / b,
            r / b
        );
    }
}
