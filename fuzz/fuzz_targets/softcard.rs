//! Fuzz target: `kiosk_devkit::fuzzing::softcard`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiosk_devkit::fuzzing::softcard(data));
