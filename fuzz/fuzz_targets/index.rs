#![no_main]
//! Fuzz target `index`: see `bunker_format::fuzzing::index`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::index(data));
