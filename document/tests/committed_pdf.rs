//! Every reader of this crate on a committed signed certificate (the fuzz seed
//! `fuzz/seeds/pdf_signature/signed.pdf`, signed by the test municipality 131016), without the
//! issuer: the page markers, the QR payload they carry and the embedded PDF signature.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};

use kiosk_document::markers::{MarkerError, read_page_markers};
use kiosk_document::pem::pem_blocks;
use kiosk_document::qr::{QrError, TrustedKeys, verify_qr_payload};
use kiosk_document::signature::{PdfSignatureError, verify_pdf_signature};
use kiosk_document::{CertificateType, MunicipalityCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn signed_pdf() -> Vec<u8> {
    std::fs::read(root().join("fuzz/seeds/pdf_signature/signed.pdf")).unwrap()
}

fn certificate(name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(root().join("devkit/testdata/pki").join(name)).unwrap();
    pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0)
}

#[test]
fn markers_qr_payload_and_signature_of_a_committed_certificate_verify() {
    let pdf = signed_pdf();
    let cert = certificate("municipality-131016.crt.pem");
    verify_pdf_signature(&pdf, &cert).unwrap();

    let markers = read_page_markers(&pdf).unwrap();
    assert_eq!(markers.len(), 1);
    let marker = &markers[0];
    assert_eq!((marker.page, marker.pages), (1, 1));
    assert_eq!(marker.issuance_id.as_str(), "iss-01JD8X5Q7R2T9");
    assert!(!marker.subjects.is_empty());

    let mut keys = TrustedKeys::new();
    keys.add_certificate_der(&cert, None).unwrap();
    let summary = verify_qr_payload(&marker.qr_payload, &keys).unwrap();
    let fields = summary.fields();
    assert_eq!(fields.kind, CertificateType::ResidentRecordItems);
    assert_eq!(
        fields.municipality,
        MunicipalityCode::parse("131016").unwrap()
    );
    assert_eq!(fields.serial, marker.serial);
}

#[test]
fn another_municipality_key_verifies_neither_the_qr_payload_nor_the_signature() {
    let pdf = signed_pdf();
    let other = certificate("issuer.crt.pem");
    assert!(verify_pdf_signature(&pdf, &other).is_err());
    let marker = read_page_markers(&pdf).unwrap().remove(0);
    let mut keys = TrustedKeys::new();
    // Trusted for 131016 by explicit choice, but it is not the key that signed.
    keys.add_certificate_der(&other, Some(MunicipalityCode::parse("131016").unwrap()))
        .unwrap();
    assert_eq!(
        verify_qr_payload(&marker.qr_payload, &keys).err(),
        Some(QrError::UnknownKey)
    );
}

#[test]
fn an_appended_byte_or_a_truncation_is_refused() {
    let pdf = signed_pdf();
    let cert = certificate("municipality-131016.crt.pem");
    let mut longer = pdf.clone();
    longer.push(b'\n');
    assert_eq!(
        verify_pdf_signature(&longer, &cert),
        Err(PdfSignatureError::NotCoveringWholeFile)
    );
    assert!(matches!(
        read_page_markers(&pdf[..pdf.len() / 2]),
        Err(MarkerError::Pdf(_))
    ));
}
