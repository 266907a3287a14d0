//! The shared vocabulary of the kiosk system and the certificate document format, as every
//! reader of a document needs it. No I/O: nothing here opens a file or a socket, touches a
//! database or reads a clock (times are passed in).
//!
//! # The vocabulary
//!
//! One type per concept, used by the issuer, the gateway, the audit log and the terminal alike:
//! [`MunicipalityCode`] (six digits with the JIS X 0402 check digit), [`CertificateType`] (its
//! stable code, kiosk.v1 number, Japanese title and accepted options), [`PrintOutcome`],
//! [`ResidentRef`], [`IssuanceId`] and [`Serial`]. Each has one `parse` that checks its
//! invariant; [`ModelError`] says which one failed. The protobuf enums of `kiosk-proto` are the
//! wire types; the issuer's service and the gateway convert by hand at the edge.
//!
//! # The document format
//!
//! * [`model`] — what a certificate says (generic blocks, subject refs), its canonical
//!   encoding and content digest.
//! * [`era`] — Japanese era dates (令和8年11月24日).
//! * [`markers`] — the per-page subject marker: its format, its writer and the reader the
//!   gateway checks every page with before release.
//! * [`qr`] — the signed `KV1:` QR payload: encoding, base45, offline verifier
//!   ([`qr::TrustedKeys`], [`qr::verify_qr_payload`]).
//! * [`signature`] — the embedded PDF signature's verifier ([`signature::verify_pdf_signature`]:
//!   exactly one signature dictionary, a ByteRange covering the whole file, the CMS parsed
//!   with RustCrypto's `cms` and verified with ring).
//! * [`pdf`] — the minimal defensive PDF reader under both, with the writing the issuer's
//!   signer needs.
//! * [`cert`] and [`pem`] — the document-signing certificate's key and municipality, and PEM
//!   to DER.
//!
//! What only the issuer needs stays there: layout and rendering, the font, and the signer with
//! the municipality's private key (`issuer::document`). The `verify-document` binary is the
//! offline verifier; it is the only part of this package that reads files.
#![forbid(unsafe_code)]

pub mod cert;
mod certificate_type;
pub mod era;
mod error;
mod ids;
pub mod markers;
pub mod model;
mod municipality;
pub mod pdf;
pub mod pem;
mod print;
pub mod qr;
pub mod signature;

pub use certificate_type::CertificateType;
pub use error::ModelError;
pub use ids::{IssuanceId, ResidentRef, Serial};
pub use municipality::MunicipalityCode;
pub use print::PrintOutcome;
