//! Certificate documents as only the issuer makes them: layout and PDF rendering with the
//! embedded Mincho font, and the signer with the municipality's private key (the QR payload's
//! signature and the PDF signature, with the per-page subject markers in the signed update).
//!
//! The format itself — the document model, era dates, page markers, the QR payload, the PDF
//! reader and the verifiers — is [`kiosk_document`]'s, shared with every reader of a document.
//!
//! # Using it (the register side)
//!
//! ```text
//! use kiosk_document::model::*;
//! use issuer::document::{render::Renderer, sign::DocumentSigner};
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
//! See [`kiosk_document`]: [`kiosk_document::markers::read_page_markers`] with
//! [`kiosk_document::signature::verify_pdf_signature`], [`kiosk_document::qr::verify_qr_payload`],
//! and its `verify-document` binary.
//!
//! # Modules
//!
//! * [`font`] — the embedded IPAex Mincho, advances, line breaking and fitting.
//! * [`render`] — layout and drawing (krilla), then signing.
//! * [`sign`] — document-signing key: QR payload signature, PAdES B-B signature as an
//!   incremental update with the page markers.
//! * [`csr`] — the certificate request a document-signing key (file or token) signs for
//!   the operator's CA.
//! * [`samples`] — synthetic certificates of every type for tests, benches and previews.

pub mod csr;
pub mod font;
pub mod render;
pub mod samples;
pub mod sign;

#[cfg(test)]
mod tests;
