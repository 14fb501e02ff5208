#![no_main]
//! Fuzz target `keyfile`: see `bunker_format::fuzzing::keyfile`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bunker_format::fuzzing::keyfile(data));
