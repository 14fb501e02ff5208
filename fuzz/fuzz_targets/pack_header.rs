#![no_main]
//! Fuzz target `pack_header`: see `bunker_format::fuzzing::pack_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::pack_header(data));
