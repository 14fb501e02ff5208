#![no_main]
//! Fuzz target `snapshot`: see `bunker_format::fuzzing::snapshot`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::snapshot(data));
