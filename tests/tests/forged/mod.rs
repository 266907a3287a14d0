//! Forged documents for the verifier tests: an issued PDF after an incremental update, the
//! attack of jpki/myna GHSA-g258-q5gf-7hvx. Kept in its own file (not a test target of its own)
//! so that any test binary can `mod forged;` it.

use std::collections::BTreeMap;

use kiosk_document::pdf::{self, Dict, Obj, PdfFile};

/// `pdf` with an incremental update appended (objects, a new xref section, a trailer with
/// `/Prev`, as any PDF editor writes it) that gives page 1 new content: white over everything,
/// then "FORGED". The page dictionary is otherwise kept, its subject marker included, so the
/// gateway reads the markers and gets as far as the signature check.
pub fn with_page_one_overwritten(pdf: &[u8]) -> Vec<u8> {
    let file = PdfFile::parse(pdf).unwrap();
    let (page_num, mut page) = file.pages().unwrap().remove(0);
    let content_num = file.size().unwrap();
    let content = b"q 1 1 1 rg 0 0 2000 2000 re f Q BT /Forged 36 Tf 72 600 Td (FORGED) Tj ET";
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    let mut font = Dict::default();
    font.set(b"Type", Obj::Name(b"Font".to_vec()));
    font.set(b"Subtype", Obj::Name(b"Type1".to_vec()));
    font.set(b"BaseFont", Obj::Name(b"Helvetica".to_vec()));
    let mut fonts = Dict::default();
    fonts.set(b"Forged", Obj::Dict(font));
    let mut resources = Dict::default();
    resources.set(b"Font", Obj::Dict(fonts));
    page.set(b"Resources", Obj::Dict(resources));
    page.set(b"Contents", Obj::Ref(content_num, 0));
    let mut page_body = Vec::new();
    Obj::Dict(page).write(&mut page_body);
    let objects = BTreeMap::from([(page_num, page_body), (content_num, stream)]);
    pdf::incremental_update(pdf, &file, &objects).unwrap()
}
