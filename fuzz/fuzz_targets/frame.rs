//! Fuzz target `frame`: [`canvas_engine::fuzzing::frame`] (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canvas_engine::fuzzing::frame(data));
