#![no_main]
//! Fuzz target `tree_walk`: see `bunker_format::fuzzing::tree_walk`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::tree_walk(data));
