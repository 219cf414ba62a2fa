//! Fuzz target `extension`: [`canvas_engine::fuzzing::extension`] (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canvas_engine::fuzzing::extension(data));
