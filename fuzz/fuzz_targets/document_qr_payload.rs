//! Fuzz target: the KV1 QR payload parser and verifier on arbitrary text. Whatever the
//! parser accepts must re-encode to the same body.
#![no_main]

use kiosk_document::qr;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((fields, body, _sig)) = qr::parse_unverified(text) {
        assert_eq!(fields.body(), body);
    }
    let _ = qr::verify_qr_payload(text, &qr::TrustedKeys::new());
    let _ = qr::base45_decode(text);
});
