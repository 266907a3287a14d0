//! Fuzz target: `issuer::bindings::read_jsonl` (the card-bindings file the gateway loads) on
//! arbitrary bytes. It must return bindings or a typed error, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = issuer::bindings::read_jsonl(data);
});
