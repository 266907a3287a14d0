//! Fuzz target: `card::fuzzing::apdu`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| card::fuzzing::apdu(data));
