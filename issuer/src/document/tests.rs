//! End-to-end checks of rendered certificates with outside judges: poppler (pdftotext,
//! pdffonts, pdfsig, pdftoppm), pyHanko, and rqrr for the QR code.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiosk_document::CertificateType;
use kiosk_document::markers::{MarkerError, read_page_markers};
use kiosk_document::pem::pem_blocks;
use kiosk_document::qr::{QrError, TrustedKeys, verify_qr_payload};
use kiosk_document::signature::{PdfSignatureError, verify_pdf_signature};

use crate::document::render::{RenderError, RenderedDocument, Renderer};
use crate::document::samples;
use crate::document::sign::DocumentSigner;

mod pdf_signature;

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../devkit/testdata/pki")
}

fn signer() -> DocumentSigner {
    let key = std::fs::read_to_string(pki().join("municipality-131016.key.pem")).unwrap();
    let crt = std::fs::read_to_string(pki().join("municipality-131016.crt.pem")).unwrap();
    let ca = std::fs::read_to_string(pki().join("municipality-ca.crt.pem")).unwrap();
    DocumentSigner::from_pem(&key, &format!("{crt}{ca}")).unwrap()
}

fn trusted() -> TrustedKeys {
    let crt = std::fs::read_to_string(pki().join("municipality-131016.crt.pem")).unwrap();
    let der = pem_blocks(&crt, "CERTIFICATE").unwrap().remove(0);
    let mut t = TrustedKeys::new();
    t.add_certificate_der(&der, None).unwrap();
    t
}

fn render(kind: CertificateType) -> RenderedDocument {
    Renderer::new(signer())
        .render(&samples::sample(kind).unwrap())
        .unwrap()
}

#[test]
fn renders_every_type_with_markers() {
    for kind in CertificateType::ALL {
        let doc = render(kind);
        let markers = read_page_markers(&doc.pdf).unwrap();
        assert_eq!(markers.len(), doc.pages.len(), "{kind:?}");
        for (m, subjects) in markers.iter().zip(&doc.pages) {
            assert_eq!(m.issuance_id.as_str(), "iss-01JD8X5Q7R2T9");
            assert_eq!(&m.subjects, subjects);
            assert_eq!(m.qr_payload, doc.qr_payload);
        }
    }
}

fn tool(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/install-deps.sh): {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn write_pdf(dir: &Path, name: &str, pdf: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pdf).unwrap();
    p.to_string_lossy().into_owned()
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{3000}')
        .collect()
}

/// (type, names that must appear, names that must not)
const TEXT_CASES: &[(CertificateType, &[&str], &[&str])] = &[
    (
        CertificateType::ResidentRecord,
        &["見本太郎", "見本花子", "試験"],
        &["一樹", "美咲"],
    ),
    (
        CertificateType::ResidentRecordItems,
        &["見本花子"],
        &["太郎", "一樹"],
    ),
    (
        CertificateType::SealRegistration,
        &["見本太郎", "第12345号"],
        &["花子", "一樹"],
    ),
    (
        CertificateType::IncomeTax,
        &["見本太郎", "5,200,000円", "147,600円"],
        &["花子"],
    ),
    (
        CertificateType::KosekiFull,
        &["太郎", "花子", "一樹", "美咲", "健二"],
        &[],
    ),
    (
        CertificateType::KosekiIndividual,
        &["一樹", "平成27年2月14日"],
        &["美咲", "健二", "昭和62年8月20日"],
    ),
    (
        CertificateType::KosekiFuhyo,
        &["見本太郎", "芝公園四丁目"],
        &["花子", "一樹"],
    ),
];

#[test]
fn pdftotext_shows_the_right_people_only() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, present, absent) in TEXT_CASES {
        let doc = render(*kind);
        let pdf = write_pdf(dir.path(), "t.pdf", &doc.pdf);
        let (ok, text) = tool("pdftotext", &[&pdf, "-"]);
        assert!(ok, "{text}");
        let text = squash(&text);
        assert!(text.contains(&squash(kind.title())), "{kind:?} title");
        assert!(text.contains("令和8年11月24日"), "{kind:?} date");
        assert!(text.contains("千代田区長見本一郎"), "{kind:?} mayor");
        assert!(text.contains("R8-"), "{kind:?} serial");
        assert!(text.contains("iss-01JD8X5Q7R2T9"), "{kind:?} issuance id");
        for p in *present {
            assert!(text.contains(p), "{kind:?} must show {p}");
        }
        for a in *absent {
            assert!(!text.contains(a), "{kind:?} must not show {a}");
        }
        // The 地紋 word and the 公印 are outlines, not text.
        assert_eq!(
            text.matches("複写").count(),
            2 * doc.pages.len(),
            "{kind:?}: only the footer notice says 複写"
        );
    }
    // The very long address is printed whole (wrapped, not cut).
    let doc = render(CertificateType::ResidentRecord);
    let pdf = write_pdf(dir.path(), "t.pdf", &doc.pdf);
    let text = squash(&tool("pdftotext", &[&pdf, "-"]).1);
    assert!(text.contains(&squash(samples::LONG_ADDRESS)));
}

#[test]
fn pdffonts_shows_an_embedded_subset() {
    let dir = tempfile::tempdir().unwrap();
    let doc = render(CertificateType::KosekiFull);
    let pdf = write_pdf(dir.path(), "f.pdf", &doc.pdf);
    let (ok, out) = tool("pdffonts", &[&pdf]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("IPAexMincho")).collect();
    assert!(!lines.is_empty(), "{out}");
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        // name type... enc emb sub uni object ID
        assert!(
            cols[0].len() > 7 && cols[0].as_bytes()[6] == b'+',
            "subset tag: {l}"
        );
        assert!(l.contains("CID TrueType"), "{l}");
        let n = cols.len();
        assert_eq!(
            &cols[n - 5..n - 2],
            &["yes", "yes", "yes"],
            "emb sub uni: {l}"
        );
    }
    // A subset, not the 7.8 MB font.
    assert!(doc.pdf.len() < 600_000, "{} bytes", doc.pdf.len());
}

/// Rasterises the QR area of a page with pdftoppm (cropped: rqrr fails on the busy page) and
/// decodes it.
fn decode_qr(pdf: &str, page: usize) -> String {
    // rqrr needs ~5 px per module and at 300 dpi (~5.6 px) missed about one page in 40
    // (the payload's ECDSA signature differs each run, and so does the pattern); at 600 dpi
    // it has twice the margin. A phone camera needs far less care.
    let dpi = 600.0f32;
    let px = |pt: f32| ((pt * dpi / 72.0).round() as i64).to_string();
    // The white quiet-zone square of the QR (render.rs: ML, PAGE_H - 98, QR_SIZE).
    let (x, y, w) = (48.0 + 0.5, 841.89 - 98.0 + 0.5, 78.0 - 1.0);
    let page = page.to_string();
    let out = Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-gray", "-f", &page, "-l", &page])
        .args(["-x", &px(x), "-y", &px(y), "-W", &px(w), "-H", &px(w)])
        .arg(pdf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pgm = out.stdout;
    // P5 <w> <h> <max>\n<data>
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while pgm[i].is_ascii_whitespace() {
            i += 1;
        }
        let st = i;
        while !pgm[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[st..i]).into_owned());
    }
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = &pgm[i + 1..];
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| data[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on page {page}");
    grids[0].decode().unwrap().1
}

#[test]
fn qr_decodes_from_the_printed_page_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keys = trusted();
    for kind in CertificateType::ALL {
        let cert = samples::sample(kind).unwrap();
        let doc = Renderer::new(signer()).render(&cert).unwrap();
        let pdf = write_pdf(dir.path(), "q.pdf", &doc.pdf);
        for page in 1..=doc.pages.len() {
            let payload = decode_qr(&pdf, page);
            assert_eq!(payload, doc.qr_payload);
            let v = verify_qr_payload(&payload, &keys).unwrap();
            v.check_content(&cert).unwrap();
            assert_eq!(v.fields().serial, *cert.serial());
            assert_eq!(v.fields().content_digest, doc.content_digest);
        }
    }
}

#[test]
fn qr_rejects_changed_content_and_forged_payloads() {
    let keys = trusted();
    let cert = samples::resident_record().unwrap();
    let doc = Renderer::new(signer()).render(&cert).unwrap();
    let v = verify_qr_payload(&doc.qr_payload, &keys).unwrap();
    // One changed character of the printed content breaks the digest check.
    let other = samples::resident_record_items().unwrap();
    assert_eq!(v.check_content(&other), Err(QrError::ContentMismatch));
    let mut changed = samples::resident_record().unwrap().canonical_content();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert_ne!(
        ring::digest::digest(&ring::digest::SHA256, &changed).as_ref(),
        &v.fields().content_digest[..]
    );
    // Every single changed character of the payload text is rejected.
    let p = doc.qr_payload.as_bytes();
    for i in 4..p.len() {
        let mut q = p.to_vec();
        q[i] = if q[i] == b'0' { b'1' } else { b'0' };
        let q = String::from_utf8(q).unwrap();
        assert!(verify_qr_payload(&q, &keys).is_err(), "byte {i}");
    }
    // A key of another municipality is not trusted for this one.
    let mut wrong = TrustedKeys::new();
    let crt = std::fs::read_to_string(pki().join("municipality-271004.crt.pem")).unwrap();
    wrong
        .add_certificate_der(&pem_blocks(&crt, "CERTIFICATE").unwrap()[0], None)
        .unwrap();
    assert_eq!(
        verify_qr_payload(&doc.qr_payload, &wrong),
        Err(QrError::UnknownKey)
    );
}

const PYHANKO_VALIDATE: &str = r#"
import sys
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.general import load_cert_from_pemder
from pyhanko_certvalidator import ValidationContext
ca = load_cert_from_pemder(sys.argv[1])
vc = ValidationContext(trust_roots=[ca])
with open(sys.argv[2], 'rb') as f:
    r = PdfFileReader(f)
    sigs = r.embedded_signatures
    assert len(sigs) == 1, len(sigs)
    st = validate_pdf_signature(sigs[0], vc)
    print(st.pretty_print_details())
    print("COVERAGE", st.coverage)
    ok = st.intact and st.valid and st.trusted and st.coverage.name == 'ENTIRE_FILE'
    print("RESULT", "OK" if ok else "BAD")
    sys.exit(0 if ok else 1)
"#;

fn pyhanko(pdf: &str) -> (bool, String) {
    let ca = pki().join("municipality-ca.crt.pem");
    tool(
        "python3",
        &["-c", PYHANKO_VALIDATE, &ca.to_string_lossy(), pdf],
    )
}

#[test]
fn pdf_signature_validates_with_pdfsig_and_pyhanko_and_breaks_on_a_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        CertificateType::ResidentRecord,
        CertificateType::KosekiFull,
        CertificateType::SealRegistration,
    ] {
        let doc = render(kind);
        let pdf = write_pdf(dir.path(), "s.pdf", &doc.pdf);
        let (_, out) = tool("pdfsig", &[&pdf]);
        assert!(
            out.contains("Signature Validation: Signature is Valid."),
            "{kind:?}: {out}"
        );
        assert!(out.contains("ETSI.CAdES.detached"), "{out}");
        assert!(out.contains("Total document signed"), "{out}");
        let (ok, out) = pyhanko(&pdf);
        assert!(ok, "{kind:?}: {out}");

        // Change one byte inside the page content (a glyph code of the drawn text).
        let mut bad = doc.pdf.clone();
        let at = bad.windows(3).position(|w| w == b")]T").unwrap() - 1;
        bad[at] ^= 0x01;
        let badp = write_pdf(dir.path(), "bad.pdf", &bad);
        let (_, out) = tool("pdfsig", &[&badp]);
        assert!(!out.contains("Signature is Valid."), "{out}");
        assert!(out.contains("Signature Validation:"), "{out}");
        let (ok, out) = pyhanko(&badp);
        assert!(!ok, "{out}");
        // And a changed marker byte (a subject ref) as well.
        let mut bad = doc.pdf.clone();
        let at = bad.windows(7).rposition(|w| w == b"/Issuan").unwrap() + 12;
        bad[at] ^= 0x01;
        let badp = write_pdf(dir.path(), "bad2.pdf", &bad);
        assert!(!tool("pdfsig", &[&badp]).1.contains("Signature is Valid."));
        assert!(!pyhanko(&badp).0);
    }
}

#[test]
fn multi_page_koseki_markers_name_each_pages_people() {
    let doc = render(CertificateType::KosekiFull);
    let markers = read_page_markers(&doc.pdf).unwrap();
    assert!(markers.len() >= 2, "戸籍全部 spans pages");
    let all: std::collections::BTreeSet<_> = markers
        .iter()
        .flat_map(|m| m.subjects.iter().cloned())
        .collect();
    assert_eq!(all.len(), 5);
    assert!(
        markers.iter().any(|m| m.subjects.len() < 5),
        "pages differ in subjects"
    );
    let ind = render(CertificateType::KosekiIndividual);
    for m in read_page_markers(&ind.pdf).unwrap() {
        for s in &m.subjects {
            assert!(["res-000101", "res-000103"].contains(&s.as_str()), "{s}");
        }
    }
}

#[test]
fn markers_reject_tampered_or_foreign_pdfs() {
    let doc = render(CertificateType::ResidentRecord);
    // The unsigned krilla output has no markers.
    let cert = samples::resident_record().unwrap();
    let (unsigned, _) = Renderer::new(signer())
        .render_unsigned(&cert, "KV1:00")
        .unwrap();
    assert!(matches!(
        read_page_markers(&unsigned),
        Err(MarkerError::Missing(1))
    ));
    // Truncations never panic and never succeed silently with fewer pages.
    for cut in [10, 1000, doc.pdf.len() / 2, doc.pdf.len() - 40] {
        assert!(read_page_markers(&doc.pdf[..cut]).is_err());
    }
    // A page number that disagrees with the page tree is refused.
    let mut bad = doc.pdf.clone();
    let at = bad.windows(7).rposition(|w| w == b"/Page 1").unwrap();
    bad[at + 6] = b'7';
    assert!(read_page_markers(&bad).is_err());
}

#[test]
fn missing_glyph_is_a_typed_error() {
    let mut blocks = samples::resident_record_items().unwrap().blocks().to_vec();
    if let kiosk_document::model::Block::Section(s) = &mut blocks[0] {
        s.rows[0].value = "𠮷野　家".into();
    }
    let base = samples::resident_record_items().unwrap();
    let cert = kiosk_document::model::Certificate::new(
        kiosk_document::model::Header {
            kind: base.kind(),
            municipality: base.municipality().clone(),
            serial: base.serial().clone(),
            issuance_id: base.issuance_id().clone(),
            issued_at: base.issued_at(),
            certification: None,
        },
        blocks,
    )
    .unwrap();
    let err = Renderer::new(signer()).render(&cert).unwrap_err();
    assert!(matches!(err, RenderError::MissingGlyph(0x20BB7)), "{err}");
}

/// Renders every type to PNG with pdftoppm (a real rasteriser must accept every page). Set
/// `ISSUER_PREVIEW_DIR` to keep the PDFs, PNGs and QR payloads for a look.
#[test]
fn pdftoppm_renders_every_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("ISSUER_PREVIEW_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    for kind in CertificateType::ALL {
        let doc = render(kind);
        let pdf = dir.join(format!("{kind:?}.pdf"));
        std::fs::write(&pdf, &doc.pdf).unwrap();
        std::fs::write(dir.join(format!("{kind:?}.qr.txt")), &doc.qr_payload).unwrap();
        let prefix = dir.join(format!("{kind:?}"));
        let (ok, out) = tool(
            "pdftoppm",
            &[
                "-r",
                "80",
                "-png",
                &pdf.to_string_lossy(),
                &prefix.to_string_lossy(),
            ],
        );
        assert!(ok, "{out}");
        for page in 1..=doc.pages.len() {
            let png = dir.join(format!("{kind:?}-{page}.png"));
            let bytes = std::fs::read(&png).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
        }
    }
}

#[test]
fn own_pdf_signature_verifier_agrees_with_the_outside_judges() {
    let crt = std::fs::read_to_string(pki().join("municipality-131016.crt.pem")).unwrap();
    let der = pem_blocks(&crt, "CERTIFICATE").unwrap().remove(0);
    let doc = render(CertificateType::KosekiIndividual);
    verify_pdf_signature(&doc.pdf, &der).unwrap();
    let mut bad = doc.pdf.clone();
    let at = bad.windows(3).position(|w| w == b")]T").unwrap() - 1;
    bad[at] ^= 1;
    assert_eq!(
        verify_pdf_signature(&bad, &der),
        Err(PdfSignatureError::DigestMismatch)
    );
    // Appending bytes after the signed revision breaks coverage.
    let mut longer = doc.pdf.clone();
    longer.extend_from_slice(b"\n% appended\n");
    assert_eq!(
        verify_pdf_signature(&longer, &der),
        Err(PdfSignatureError::NotCoveringWholeFile)
    );
    // Another municipality's certificate is not the signer.
    let other = std::fs::read_to_string(pki().join("municipality-271004.crt.pem")).unwrap();
    let other = pem_blocks(&other, "CERTIFICATE").unwrap().remove(0);
    assert_eq!(
        verify_pdf_signature(&doc.pdf, &other),
        Err(PdfSignatureError::SignerMismatch)
    );
}
