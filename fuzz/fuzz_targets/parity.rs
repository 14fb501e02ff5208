#![no_main]
//! Fuzz target `parity`: see `bunker_format::fuzzing::parity_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::parity_file(data));
