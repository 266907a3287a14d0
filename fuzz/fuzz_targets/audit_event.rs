//! Fuzz target: `audit::event::fuzz_decode` (decode, and re-encode to the same bytes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| audit::event::fuzz_decode(data));
