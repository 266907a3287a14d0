//! Fuzz target: `audit::checkpoint::fuzz_verify` (note parsing, verification, verifier keys).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| audit::checkpoint::fuzz_verify(data));
