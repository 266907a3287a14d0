//! Fuzz target: `card::fuzzing::softcard`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| card::fuzzing::softcard(data));
