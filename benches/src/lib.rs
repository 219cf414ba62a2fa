//! # canvas-bench
//!
//! Benchmarks of the canvas engine and server. Nothing here asserts on time: figures go to
//! `BENCHMARKS.md`, each with the command that produced it.
//!
//! - [`traces`]: real editing traces (shipped by the `diamond-types` 0.1.0 crate, located in
//!   the local cargo registry at run time, never committed) turned into per-edit yrs updates
//!   and cached under `target/traces/`. [`traces::trace_updates`]`("automerge-paper")`
//!   returns the 259,779 updates (the first adds the narrative block the others type into)
//!   and the text they must produce; any benchmark or load generator can send them.
//! - [`workload`]: a synthetic canvas workload (blocks added, moved, resized, narrative
//!   typing), seeded, as per-edit updates from several clients.
//! - `benches/engine.rs` (criterion, `cargo bench -p canvas-bench --bench engine`): raw yrs
//!   apply against our ingest path, per update and batched, on the traces and the canvas
//!   workload; snapshot encode and load.
//! - `benches/memory.rs` (`cargo bench -p canvas-bench --bench memory`): bytes held per
//!   loaded document, counted by a counting global allocator.
//! - `examples/`: `trace_cost` (one replay of a trace through one path, for callgrind
//!   instruction counts), the earlier ingest ratio and durable ingest measurements.

pub mod traces;
pub mod workload;
