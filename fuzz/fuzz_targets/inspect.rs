//! Fuzz target `inspect`: [`canvas_engine::fuzzing::inspect`] (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canvas_engine::fuzzing::inspect(data));
