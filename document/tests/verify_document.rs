//! The `verify-document` binary on the committed signed PDF and on the same PDF after an
//! incremental update: exit status, the refusal it names, and the offline check's limits in
//! its help and after every valid result.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the tool: (exit code, stdout and stderr).
fn verify_document(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verify-document"))
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), text)
}

fn check_pdf(name: &str) -> (i32, String) {
    let cert = root().join("devkit/testdata/pki/municipality-131016.crt.pem");
    let pdf = root().join("fuzz/seeds/pdf_signature").join(name);
    verify_document(&[
        "--cert",
        &cert.to_string_lossy(),
        "pdf",
        &pdf.to_string_lossy(),
    ])
}

#[test]
fn a_signed_pdf_is_valid_offline_and_the_output_says_what_that_cannot_prove() {
    let (code, out) = check_pdf("signed.pdf");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PDF signature: valid"), "{out}");
    assert!(out.contains("QR signature: valid"), "{out}");
    assert!(
        out.contains("only the online VerifyService can say"),
        "{out}"
    );
}

#[test]
fn an_incremental_update_after_signing_is_invalid_offline() {
    let (code, out) = check_pdf("incremental-update.pdf");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PDF signature INVALID: signature does not cover the whole file"),
        "{out}"
    );
    assert!(!out.contains("VerifyService can say"), "{out}");
}

#[test]
fn help_says_what_an_offline_check_can_and_cannot_prove() {
    let (code, out) = verify_document(&["--help"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("usage: verify-document"), "{out}");
    assert!(out.contains("What an offline check proves"), "{out}");
    assert!(out.contains("What it cannot prove"), "{out}");
    assert!(
        out.contains("voids documents the issuer had already signed"),
        "{out}"
    );
    assert!(out.contains("kiosk.v1.VerifyService"), "{out}");
    let (code, out) = verify_document(&[]);
    assert_eq!(code, 2, "{out}");
}
