//! What the gateway checks in every document before it releases it: the municipality's PDF
//! signature, then every page's subject marker against the issuance and the allowed subjects.

use super::*;

/// A document that passed the release checks: signed by its municipality, every page marked
/// with this issuance and naming only subjects the session may obtain, and its bytes those
/// its record's SHA-256 names. Only [`Flow::check_document`] makes one: holding one is the
/// proof that the check ran on exactly these bytes.
///
/// Nothing outside the flow can make one, nor change the bytes after the check:
///
/// ```compile_fail
/// # fn forge(record: kiosk_gateway::store::DocumentRow) {
/// let forged = kiosk_gateway::flow::CheckedDocument { record, pdf: Vec::new() };
/// # }
/// ```
///
/// ```compile_fail
/// # fn tamper(document: &mut kiosk_gateway::flow::CheckedDocument) {
/// document.pdf.push(0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CheckedDocument {
    record: store::DocumentRow,
    pdf: Vec<u8>,
}

impl CheckedDocument {
    /// The document's record.
    pub fn record(&self) -> &store::DocumentRow {
        &self.record
    }

    /// The signed PDF that was checked.
    pub fn pdf(&self) -> &[u8] {
        &self.pdf
    }

    /// The record and the PDF, to stream them.
    pub fn into_parts(self) -> (store::DocumentRow, Vec<u8>) {
        (self.record, self.pdf)
    }
}

/// An issuance ready to stream: its record and its checked documents. It can only be built
/// from [`CheckedDocument`]s, so nothing unchecked is ever released:
///
/// ```compile_fail
/// # fn forge(issuance: kiosk_gateway::store::IssuanceRow) {
/// let forged = kiosk_gateway::flow::ReleasedIssuance {
///     issuance,
///     documents: Vec::new(),
///     replayed: false,
/// };
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReleasedIssuance {
    issuance: IssuanceRow,
    documents: Vec<CheckedDocument>,
    replayed: bool,
}

impl ReleasedIssuance {
    /// `documents` of `issuance`; `replayed` when a retry returned an issuance recorded
    /// earlier.
    pub(super) fn new(
        issuance: IssuanceRow,
        documents: Vec<CheckedDocument>,
        replayed: bool,
    ) -> Self {
        ReleasedIssuance {
            issuance,
            documents,
            replayed,
        }
    }

    /// The stored issuance.
    pub fn issuance(&self) -> &IssuanceRow {
        &self.issuance
    }

    /// Its documents, in order.
    pub fn documents(&self) -> &[CheckedDocument] {
        &self.documents
    }

    /// True when a retry returned an issuance recorded earlier.
    pub fn replayed(&self) -> bool {
        self.replayed
    }

    /// The parts, to stream them.
    pub fn into_parts(self) -> (IssuanceRow, Vec<CheckedDocument>, bool) {
        (self.issuance, self.documents, self.replayed)
    }
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
    /// The release check of one document: its bytes are the ones `record` names (SHA-256),
    /// the municipality's PDF signature holds (so the markers read next are the
    /// municipality's own), and every page is marked with `record`'s issuance and names only
    /// `allowed` subjects, `page_count` pages in all. The witness on success; the record
    /// back when any check fails.
    pub fn check_document(
        &self,
        municipality: &str,
        allowed: &BTreeSet<&str>,
        record: store::DocumentRow,
        pdf: Vec<u8>,
    ) -> Result<CheckedDocument, Box<store::DocumentRow>> {
        let same_bytes = digest(&SHA256, &pdf).as_ref() == record.pdf_sha256.as_slice();
        let signed = self
            .checks
            .signing_certs
            .get(municipality)
            .is_some_and(|cert| (self.checks.pdf_signature)(&pdf, cert));
        let marked = match (self.checks.page_markers)(&pdf) {
            Ok(pages) => {
                usize::try_from(record.page_count).is_ok_and(|n| n == pages.len())
                    && check_page_subjects(&record.issuance_id, &pages, allowed).is_ok()
            }
            Err(_) => false,
        };
        if same_bytes && signed && marked {
            Ok(CheckedDocument { record, pdf })
        } else {
            Err(Box::new(record))
        }
    }
}
