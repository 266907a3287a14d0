//! Fuzz target: `card::fuzzing::client`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| card::fuzzing::client(data));
