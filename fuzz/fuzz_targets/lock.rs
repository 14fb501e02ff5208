#![no_main]
//! Fuzz target `lock`: see `bunker_format::fuzzing::lock`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::lock(data));
