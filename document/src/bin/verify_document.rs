//! `verify-document`: checks a certificate offline with the municipality's document-signing
//! certificate.
//!
//! ```text
//! verify-document --cert municipality-131016.crt.pem qr 'KV1:...'
//! verify-document --cert municipality-131016.crt.pem pdf certificate.pdf
//! verify-document --help
//! ```
//!
//! `qr` verifies a payload scanned from the paper. `pdf` reads every page's marker, verifies
//! the QR payload carried there, checks that all pages agree, and verifies the embedded PDF
//! signature with the given certificate: exactly one signature in the file, covering every
//! byte but its own `/Contents` (so an incremental update appended after signing is refused),
//! a CMS whose signer is that certificate and whose digest and ECDSA signature match.
//! Exit status 0 when valid, 1 when invalid, 2 on usage errors.
//!
//! What an offline check can and cannot prove is in [`HELP`], printed by `--help` and after
//! every valid result, because it is the part a reader must not get wrong.

use std::process::ExitCode;

use kiosk_document::markers::read_page_markers;
use kiosk_document::pem::pem_blocks;
use kiosk_document::qr::{TrustedKeys, VerifiedSummary, verify_qr_payload};
use kiosk_document::signature::verify_pdf_signature;

const USAGE: &str =
    "usage: verify-document --cert <municipality cert .pem> (qr <payload> | pdf <file.pdf>)
       verify-document --help";

/// The full help: usage, and what the answer means.
const HELP: &str = "\
Checks a certificate issued at a convenience-store kiosk offline, with the municipality's
document-signing certificate (PEM).

  qr <payload>    verifies a QR payload scanned from the paper (KV1:...)
  pdf <file.pdf>  reads every page's subject marker, verifies the QR payload they carry, and
                  verifies the embedded PDF signature: exactly one signature in the file,
                  covering every byte but its own /Contents (anything appended after signing,
                  such as an incremental update that changes a page, is refused), made by the
                  given certificate's key over the file's SHA-256.

What an offline check proves: the document was signed with the municipality's key and has
not been altered since.

What it cannot prove: that the document was actually issued and is still in force. The issuer
signs a document before it is printed; a print failure, or the reconciliation after a crash,
voids documents the issuer had already signed, and those stay validly signed forever. Only the
online verification service (kiosk.v1.VerifyService, which answers from the issuance
registry: VALID, VOIDED, NOT_ISSUED) can say whether a document counts.

Exit status: 0 signature valid, 1 invalid, 2 usage error.";

/// Printed after every valid result, so that nobody reads \"valid\" as \"issued\".
const OFFLINE_LIMIT: &str = "Offline check only: signed by this certificate's key and unaltered. \
Whether it was issued and not voided since, only the online VerifyService can say.";

fn print_summary(v: &VerifiedSummary) {
    let f = v.fields();
    println!("QR signature: valid");
    println!("  type:         {} ({})", f.kind.title(), f.kind.number());
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
    if let [help] = args
        && (help == "--help" || help == "-h")
    {
        println!("{USAGE}\n\n{HELP}");
        return Ok(true);
    }
    let valid = check(args)?;
    if valid {
        println!("{OFFLINE_LIMIT}");
    }
    Ok(valid)
}

fn check(args: &[String]) -> Result<bool, String> {
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
            // Both checks always run, so that the output names every problem.
            let markers_ok = check_markers(&pdf, &keys);
            let signature_ok = match verify_pdf_signature(&pdf, &cert) {
                Ok(()) => {
                    println!("PDF signature: valid (one signature, covers the whole file)");
                    true
                }
                Err(e) => {
                    println!("PDF signature INVALID: {e}");
                    false
                }
            };
            Ok(markers_ok && signature_ok)
        }
        _ => Err(USAGE.into()),
    }
}

/// Prints every page's marker and verifies the QR payload they carry.
fn check_markers(pdf: &[u8], keys: &TrustedKeys) -> bool {
    let markers = match read_page_markers(pdf) {
        Ok(markers) => markers,
        Err(e) => {
            println!("page markers INVALID: {e}");
            return false;
        }
    };
    let Some(first) = markers.first() else {
        println!("page markers INVALID: no pages");
        return false;
    };
    println!(
        "pages: {}, issuance id: {}",
        markers.len(),
        first.issuance_id
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
    match verify_qr_payload(&first.qr_payload, keys) {
        Ok(v) if v.fields().serial == first.serial => {
            print_summary(&v);
            true
        }
        Ok(_) => {
            println!("QR payload serial differs from the page markers");
            false
        }
        Err(e) => {
            println!("QR payload INVALID: {e}");
            false
        }
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
