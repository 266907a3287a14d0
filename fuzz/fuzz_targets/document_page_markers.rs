//! Fuzz target: `kiosk_document::markers::read_page_markers` on arbitrary bytes. It must
//! return an error or markers, never panic or loop.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kiosk_document::markers::read_page_markers(data);
});
