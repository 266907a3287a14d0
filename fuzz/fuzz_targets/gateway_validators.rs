//! Fuzz target: `kiosk_gateway::service::fuzzing::validators` — arbitrary bytes decoded as a
//! kiosk.v1 request (the first byte picks which) and run through its validator, or through the
//! contract status an undecodable request becomes. Never a panic; every refusal a small
//! contract status; what passes within the bounds the validators promise.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_gateway::service::fuzzing::validators(data));
