#![no_main]
//! Fuzz target `condemnation`: see `bunker_format::fuzzing::condemnation`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::condemnation(data));
