//! Per-page subject markers: which residents a page is about, bound to the issuance id.
//!
//! # Format
//!
//! Every page dictionary of a signed certificate carries an uncompressed entry
//!
//! ```text
//! /KioskMarker << /V 1 /Issuance (<issuance id>) /Serial (<serial>) /Page <n> /Pages <m>
//!                 /Subjects [(<subject ref>) ...] /QR (<KV1 payload>) >>
//! ```
//!
//! written by the signing step as part of the incremental update that the PDF signature
//! covers (so a marker cannot be changed without breaking the signature). `/Page` is 1-based
//! and must equal the page's position in the page tree; `/Pages` must equal the page count.
//!
//! The gateway calls [`read_page_markers`] on the bytes it is about to release and compares
//! each page's issuance id and subjects with its own session — it trusts what it reads back,
//! not what the issuer claims alongside the PDF.

use crate::ids::{IssuanceId, ResidentRef, Serial};
use crate::pdf::{Dict, Obj, PdfError, PdfFile};
use crate::qr::MAX_PAYLOAD_LEN;

/// The page dictionary key of the marker.
pub const MARKER_KEY: &[u8] = b"KioskMarker";
const VERSION: i64 = 1;

/// Why markers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The PDF structure could not be read.
    #[error(transparent)]
    Pdf(#[from] PdfError),
    /// A page has no marker.
    #[error("page {0} has no marker")]
    Missing(usize),
    /// A marker is malformed or inconsistent with the page tree.
    #[error("page {0}: invalid marker ({1})")]
    Invalid(usize, &'static str),
    /// Pages of one document name different issuance ids or serials.
    #[error("pages disagree on issuance id or serial")]
    Inconsistent,
    /// The document has no pages.
    #[error("document has no pages")]
    NoPages,
}

/// The marker of one page, as read back from the PDF bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMarker {
    /// 1-based page number (equals the position in the page tree).
    pub page: u32,
    /// Page count of the document.
    pub pages: u32,
    /// The issuance id the page was rendered for.
    pub issuance_id: IssuanceId,
    /// The document serial.
    pub serial: Serial,
    /// The residents whose data the page prints (may be empty for a page with only the
    /// certification footer).
    pub subjects: Vec<ResidentRef>,
    /// The signed QR payload printed on the page.
    pub qr_payload: String,
}

impl PageMarker {
    /// The marker dictionary as written into the page.
    pub fn to_obj(&self) -> Obj {
        let mut d = Dict::default();
        d.set(b"V", Obj::Int(VERSION));
        d.set(
            b"Issuance",
            Obj::Str(self.issuance_id.as_str().as_bytes().to_vec()),
        );
        d.set(
            b"Serial",
            Obj::Str(self.serial.as_str().as_bytes().to_vec()),
        );
        d.set(b"Page", Obj::Int(i64::from(self.page)));
        d.set(b"Pages", Obj::Int(i64::from(self.pages)));
        d.set(
            b"Subjects",
            Obj::Array(
                self.subjects
                    .iter()
                    .map(|s| Obj::Str(s.as_str().as_bytes().to_vec()))
                    .collect(),
            ),
        );
        d.set(b"QR", Obj::Str(self.qr_payload.as_bytes().to_vec()));
        Obj::Dict(d)
    }

    fn from_obj(idx: usize, o: &Obj) -> Result<Self, MarkerError> {
        let inv = |why| MarkerError::Invalid(idx + 1, why);
        let d = match o {
            Obj::Dict(d) => d,
            _ => return Err(inv("not a dictionary")),
        };
        if d.get(b"V") != Some(&Obj::Int(VERSION)) {
            return Err(inv("version"));
        }
        let text = |k: &[u8]| -> Result<String, MarkerError> {
            match d.get(k) {
                Some(Obj::Str(s)) => String::from_utf8(s.clone()).map_err(|_| inv("utf-8")),
                _ => Err(inv("missing string")),
            }
        };
        let int = |k: &[u8]| -> Result<u32, MarkerError> {
            match d.get(k) {
                Some(Obj::Int(i)) => u32::try_from(*i).map_err(|_| inv("number")),
                _ => Err(inv("missing number")),
            }
        };
        let issuance_id = IssuanceId::parse(&text(b"Issuance")?).map_err(|_| inv("issuance"))?;
        let serial = Serial::parse(&text(b"Serial")?).map_err(|_| inv("serial"))?;
        let subjects = match d.get(b"Subjects") {
            Some(Obj::Array(a)) => a
                .iter()
                .map(|s| match s {
                    Obj::Str(s) => std::str::from_utf8(s)
                        .ok()
                        .and_then(|s| ResidentRef::parse(s).ok())
                        .ok_or(inv("subject")),
                    _ => Err(inv("subject")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(inv("subjects")),
        };
        let qr_payload = text(b"QR")?;
        if qr_payload.len() > MAX_PAYLOAD_LEN {
            return Err(inv("qr payload too long"));
        }
        Ok(PageMarker {
            page: int(b"Page")?,
            pages: int(b"Pages")?,
            issuance_id,
            serial,
            subjects,
            qr_payload,
        })
    }
}

/// Reads every page's marker from untrusted PDF bytes, in page order.
///
/// Fails unless every page has a well-formed marker, the page numbers equal the positions in
/// the page tree, the page counts equal the number of pages, and all pages agree on issuance
/// id and serial.
pub fn read_page_markers(pdf: &[u8]) -> Result<Vec<PageMarker>, MarkerError> {
    let file = PdfFile::parse(pdf)?;
    let pages = file.pages()?;
    if pages.is_empty() {
        return Err(MarkerError::NoPages);
    }
    let mut out = Vec::with_capacity(pages.len());
    for (i, (_, page)) in pages.iter().enumerate() {
        let raw = page.get(MARKER_KEY).ok_or(MarkerError::Missing(i + 1))?;
        let obj = file.resolve(raw)?;
        let m = PageMarker::from_obj(i, &obj)?;
        if m.page as usize != i + 1 || m.pages as usize != pages.len() {
            return Err(MarkerError::Invalid(i + 1, "page number"));
        }
        if let Some(first) = out.first() {
            let first: &PageMarker = first;
            if first.issuance_id != m.issuance_id || first.serial != m.serial {
                return Err(MarkerError::Inconsistent);
            }
        }
        out.push(m);
    }
    Ok(out)
}
