//! Fuzz target: `kiosk_document::signature::verify_pdf_signature` on arbitrary bytes, against the
//! test municipality's certificate, so that mutations of the committed seed (a PDF signed with
//! that certificate's key, `seeds/pdf_signature/signed.pdf`) reach every check down to the
//! ECDSA verification. It must refuse or accept, never panic, loop or allocate beyond what the
//! input's size bounds; and whatever it accepts must stop verifying once a byte is appended
//! (the whole-file coverage rule).
//!
//! An input that starts with a zero byte is a CMS alone: the rest is spliced, hex-encoded,
//! into the signed seed's `/Contents`. Mutating the 16 KiB of hex inside a whole PDF rarely
//! makes a DER structure that decodes, so this is how the CMS checks get fuzzed in depth
//! (seed: `seeds/pdf_signature/cms-only`, the seed PDF's own CMS).
#![no_main]

use std::borrow::Cow;
use std::sync::LazyLock;

use kiosk_document::pem::pem_blocks;
use kiosk_document::signature::verify_pdf_signature;

static CERT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let pem = include_str!("../../devkit/testdata/pki/municipality-131016.crt.pem");
    // A broken fixture would make every input fail at the first check: stop at once instead.
    pem_blocks(pem, "CERTIFICATE")
        .ok()
        .and_then(|mut blocks| blocks.pop())
        .expect("the test municipality certificate parses")
});

static SIGNED: &[u8] = include_bytes!("../seeds/pdf_signature/signed.pdf");

/// The signed seed with `cms` in its `/Contents` (zero-padded), or `None` when it does not fit.
fn with_cms(cms: &[u8]) -> Option<Vec<u8>> {
    let key = b"/Contents <";
    let start = SIGNED.windows(key.len()).rposition(|w| w == key)? + key.len();
    let len = SIGNED[start..].iter().position(|&c| c == b'>')?;
    if cms.len() * 2 > len {
        return None;
    }
    let mut pdf = SIGNED.to_vec();
    pdf[start..start + len].fill(b'0');
    for (i, b) in cms.iter().enumerate() {
        let hex = format!("{b:02X}");
        pdf[start + 2 * i..start + 2 * i + 2].copy_from_slice(hex.as_bytes());
    }
    Some(pdf)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let pdf = match data.split_first() {
        Some((0, cms)) => match with_cms(cms) {
            Some(pdf) => Cow::Owned(pdf),
            None => return,
        },
        _ => Cow::Borrowed(data),
    };
    if verify_pdf_signature(&pdf, &CERT).is_ok() {
        let mut longer = pdf.into_owned();
        longer.push(b'\n');
        assert!(verify_pdf_signature(&longer, &CERT).is_err());
    }
});
