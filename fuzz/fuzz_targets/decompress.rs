#![no_main]
//! Fuzz target `decompress`: see `bunker_format::fuzzing::decompress`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::decompress(data));
