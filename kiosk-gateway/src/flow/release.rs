//! What the gateway checks in every document before it releases it: the municipality's PDF
//! signature, then every page's subject marker against the issuance and the allowed subjects.

use super::*;

/// An issuance ready to stream: its header facts and documents.
#[derive(Debug, Clone)]
pub struct ReleasedIssuance {
    /// The stored issuance.
    pub issuance: IssuanceRow,
    /// Its documents with their PDFs, in order.
    pub documents: Vec<store::IssuedDocument>,
    /// True when a retry returned an issuance recorded earlier.
    pub replayed: bool,
}

/// Reads each page's `(issuance id, subject refs)` marker back from a PDF's bytes. The gateway
/// trusts only what it reads from the document itself, not the issuer's claim about it.
pub type PageMarkerReader = fn(&[u8]) -> Result<Vec<(String, Vec<String>)>, String>;

/// Checks a PDF's embedded signature against a municipality's document-signing certificate
/// (DER), so the markers read back are the ones the municipality signed.
pub type PdfSignatureCheck = fn(pdf: &[u8], signer_cert_der: &[u8]) -> bool;

/// What the flow checks in every document before release.
#[derive(Clone)]
pub struct DocumentChecks {
    /// Reads the page markers.
    pub page_markers: PageMarkerReader,
    /// Verifies the PDF signature.
    pub pdf_signature: PdfSignatureCheck,
    /// Each municipality's document-signing certificate (DER), by code.
    pub signing_certs: std::collections::HashMap<String, Vec<u8>>,
}

/// Checks every page's markers against the issuance and the allowed subjects. Returns the
/// first problem found.
pub fn check_page_subjects(
    issuance_id: &str,
    pages: &[(String, Vec<String>)],
    allowed: &BTreeSet<&str>,
) -> Result<(), String> {
    if pages.is_empty() {
        return Err("document has no marked pages".into());
    }
    for (index, (marked_issuance, subjects)) in pages.iter().enumerate() {
        if marked_issuance != issuance_id {
            return Err(format!("page {index} belongs to another issuance"));
        }
        if subjects.is_empty() {
            return Err(format!("page {index} names no subject"));
        }
        // The stranger's reference is not put in the message: it names a resident.
        if subjects.iter().any(|s| !allowed.contains(s.as_str())) {
            return Err(format!("page {index} names a subject outside the request"));
        }
    }
    Ok(())
}

impl Flow {
    /// Whether a released document passes the gateway's own checks: the municipality's PDF
    /// signature first (so the markers read next are the municipality's own), then every
    /// page's marker against the issuance and the allowed subjects.
    pub(super) fn document_passes(
        &self,
        municipality: &str,
        issuance_id: &str,
        pdf: &[u8],
        page_count: u32,
        allowed: &BTreeSet<&str>,
    ) -> bool {
        let signed = self
            .checks
            .signing_certs
            .get(municipality)
            .is_some_and(|cert| (self.checks.pdf_signature)(pdf, cert));
        signed
            && match (self.checks.page_markers)(pdf) {
                Ok(pages) => {
                    pages.len() == page_count as usize
                        && check_page_subjects(issuance_id, &pages, allowed).is_ok()
                }
                Err(_) => false,
            }
    }
}
