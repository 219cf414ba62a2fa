//! Fuzz target `json`: [`canvas_engine::fuzzing::json`] (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canvas_engine::fuzzing::json(data));
