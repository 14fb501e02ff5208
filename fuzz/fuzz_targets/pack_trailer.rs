#![no_main]
//! Fuzz target `pack_trailer`: see `bunker_format::fuzzing::pack_trailer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::pack_trailer(data));
