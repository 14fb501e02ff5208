#![no_main]
//! Fuzz target `tree`: see `bunker_format::fuzzing::tree`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::tree(data));
