#![no_main]
//! Fuzz target `config`: see `bunker_format::fuzzing::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::config(data));
