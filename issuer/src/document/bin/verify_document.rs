//! `verify-document`: checks a certificate offline with the municipality's document-signing
//! certificate.
//!
//! ```text
//! verify-document --cert municipality-131016.crt.pem qr 'KV1:...'
//! verify-document --cert municipality-131016.crt.pem pdf certificate.pdf
//! ```
//!
//! `qr` verifies a payload scanned from the paper. `pdf` reads every page's marker, verifies
//! the QR payload carried there, checks that all pages agree, and verifies the embedded PDF
//! signature (coverage, digest, ECDSA) with the given certificate. Exit status 0 when valid,
//! 1 when invalid, 2 on usage errors.

use std::process::ExitCode;

use issuer::document::markers::read_page_markers;
use issuer::document::qr::{TrustedKeys, VerifiedSummary, verify_qr_payload};
use issuer::document::sign::{pem_blocks, verify_pdf_signature};

const USAGE: &str =
    "usage: verify-document --cert <municipality cert .pem> (qr <payload> | pdf <file.pdf>)";

fn print_summary(v: &VerifiedSummary) {
    let f = v.fields();
    println!("QR signature: valid");
    println!("  type:         {} ({})", f.kind.title(), f.kind.code());
    println!("  municipality: {}", f.municipality);
    println!("  serial:       {}", f.serial);
    println!(
        "  issued at:    {} (unix seconds)",
        f.issued_at.unix_seconds()
    );
    let hex: String = f
        .content_digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("  content SHA-256: {hex}");
}

fn run(args: &[String]) -> Result<bool, String> {
    let [flag, cert_path, mode, arg] = args else {
        return Err(USAGE.into());
    };
    if flag != "--cert" {
        return Err(USAGE.into());
    }
    let pem = std::fs::read_to_string(cert_path).map_err(|e| format!("{cert_path}: {e}"))?;
    let cert = pem_blocks(&pem, "CERTIFICATE")
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no CERTIFICATE in the PEM file")?;
    let mut keys = TrustedKeys::new();
    keys.add_certificate_der(&cert, None)
        .map_err(|e| format!("certificate: {e}"))?;
    match mode.as_str() {
        "qr" => match verify_qr_payload(arg.trim(), &keys) {
            Ok(v) => {
                print_summary(&v);
                Ok(true)
            }
            Err(e) => {
                println!("QR payload INVALID: {e}");
                Ok(false)
            }
        },
        "pdf" => {
            let pdf = std::fs::read(arg).map_err(|e| format!("{arg}: {e}"))?;
            let mut ok = true;
            match read_page_markers(&pdf) {
                Ok(markers) => {
                    println!(
                        "pages: {}, issuance id: {}",
                        markers.len(),
                        markers[0].issuance_id
                    );
                    for m in &markers {
                        let subjects: Vec<&str> = m.subjects.iter().map(|s| s.as_str()).collect();
                        println!(
                            "  page {}/{}: subjects [{}]",
                            m.page,
                            m.pages,
                            subjects.join(", ")
                        );
                    }
                    match verify_qr_payload(&markers[0].qr_payload, &keys) {
                        Ok(v) if v.fields().serial == markers[0].serial => print_summary(&v),
                        Ok(_) => {
                            println!("QR payload serial differs from the page markers");
                            ok = false;
                        }
                        Err(e) => {
                            println!("QR payload INVALID: {e}");
                            ok = false;
                        }
                    }
                }
                Err(e) => {
                    println!("page markers INVALID: {e}");
                    ok = false;
                }
            }
            match verify_pdf_signature(&pdf, &cert) {
                Ok(()) => println!("PDF signature: valid (covers the whole file)"),
                Err(e) => {
                    println!("PDF signature INVALID: {e}");
                    ok = false;
                }
            }
            Ok(ok)
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
