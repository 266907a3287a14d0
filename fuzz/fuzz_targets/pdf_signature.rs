//! Fuzz target: `issuer::document::sign::verify_pdf_signature` on arbitrary bytes, against the
//! test municipality's certificate, so that mutations of the committed seed (a PDF signed with
//! that certificate's key, `seeds/pdf_signature/signed.pdf`) reach every check down to the
//! ECDSA verification. It must refuse or accept, never panic, loop or allocate beyond what the
//! input's size bounds; and whatever it accepts must stop verifying once a byte is appended
//! (the whole-file coverage rule).
#![no_main]

use std::sync::LazyLock;

use issuer::document::sign::{pem_blocks, verify_pdf_signature};

static CERT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let pem = include_str!("../../card/testdata/pki/municipality-131016.crt.pem");
    // A broken fixture would make every input fail at the first check: stop at once instead.
    pem_blocks(pem, "CERTIFICATE")
        .ok()
        .and_then(|mut blocks| blocks.pop())
        .expect("the test municipality certificate parses")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if verify_pdf_signature(data, &CERT).is_ok() {
        let mut longer = data.to_vec();
        longer.push(b'\n');
        assert!(verify_pdf_signature(&longer, &CERT).is_err());
    }
});
