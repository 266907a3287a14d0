//! Certificate documents: the layout model, PDF rendering with the embedded Mincho font, the
//! signed QR payload, the PDF signature, and the per-page subject markers.
//!
//! # Using it (the register side)
//!
//! ```text
//! use issuer::document::{model::*, render::Renderer, sign::DocumentSigner};
//!
//! let signer = DocumentSigner::from_pem(&key_pem, &cert_chain_pem)?;   // once per municipality
//! let renderer = Renderer::new(signer);                                // share it (&self)
//! let cert = Certificate::new(Header { kind, municipality, serial, issuance_id, issued_at,
//!                                      certification: None }, blocks)?;
//! let doc = renderer.render(&cert)?;
//! // doc.pdf (signed), doc.pages (subjects per page, as written into the markers),
//! // doc.content_digest, doc.qr_payload, doc.pdf_sha256
//! ```
//!
//! # Checking it (the gateway and anyone holding the paper or the PDF)
//!
//! * [`markers::read_page_markers`] reads each page's issuance id and subject refs back from
//!   the PDF bytes (untrusted input, fuzzed). Pair it with
//!   [`sign::verify_pdf_signature`] to know the markers are the signed ones (a later
//!   incremental update appended by someone else fails its coverage check).
//! * [`qr::verify_qr_payload`] checks a scanned QR payload offline with the municipality's
//!   key ([`qr::TrustedKeys`]); [`qr::VerifiedSummary::check_content`] compares it with the
//!   content in hand.
//! * The `verify-document` binary does both from the command line.
//!
//! # Modules
//!
//! * [`model`] — what a certificate says (generic blocks, subject refs), canonical encoding.
//! * [`era`] — Japanese era dates (令和8年11月24日).
//! * [`font`] — the embedded IPAex Mincho, advances, line breaking and fitting.
//! * [`render`] — layout and drawing (krilla), then signing.
//! * [`qr`] — the `KV1:` payload, base45, verifier.
//! * [`sign`] — document-signing key, PAdES B-B signature as an incremental update, verifier.
//! * [`markers`] — per-page marker format and reader.
//! * [`pdf`] — the minimal defensive PDF reader/writer both of them use.
//! * [`samples`] — synthetic certificates of every type for tests, benches and previews.

pub mod era;
pub mod font;
pub mod markers;
pub mod model;
pub mod pdf;
pub mod qr;
pub mod render;
pub mod samples;
pub mod sign;

#[cfg(test)]
mod tests;
