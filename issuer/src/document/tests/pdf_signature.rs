//! The PDF signature verifier against the attacks it exists for, each refusal with its own
//! reason: an incremental update appended after signing (with poppler's `pdfsig` as outside
//! judge), a second signature dictionary, byte ranges that lie, damaged `/Contents`, and CMS
//! structures re-signed with the municipality's real key so that only the one check under test
//! can refuse them.

use std::collections::BTreeMap;
use std::ops::Range;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Reader, SliceReader};
use kiosk_document::CertificateType;
use kiosk_document::markers::read_page_markers;
use kiosk_document::model::IssuedAt;
use kiosk_document::pdf::{self, Dict, Obj, PdfFile};
use kiosk_document::pem::pem_blocks;
use kiosk_document::signature::{MAX_CMS_LEN, PdfSignatureError as E, verify_pdf_signature};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::{pki, render, signer, tool, write_pdf};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

fn cert_der(name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(pki().join(name)).unwrap();
    pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0)
}

/// The certificate of the test signer ([`super::signer`]).
fn our_cert() -> Vec<u8> {
    cert_der("municipality-131016.crt.pem")
}

/// The test signer's private key, to re-sign altered CMS structures as the municipality would.
fn our_key() -> EcdsaKeyPair {
    let pem = std::fs::read_to_string(pki().join("municipality-131016.key.pem")).unwrap();
    let pkcs8 = pem_blocks(&pem, "PRIVATE KEY").unwrap().remove(0);
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
        &SystemRandom::new(),
    )
    .unwrap()
}

/// A one-page certificate signed by us (the smallest type renders fastest).
fn signed_pdf() -> Vec<u8> {
    let pdf = render(CertificateType::ResidentRecordItems).pdf;
    verify_pdf_signature(&pdf, &our_cert()).unwrap();
    pdf
}

fn verify(pdf: &[u8]) -> Result<(), E> {
    verify_pdf_signature(pdf, &our_cert())
}

// === incremental updates ===

/// Appends an incremental update (objects, a new xref section, a trailer with `/Prev`) with
/// the library's own writer, as any PDF editor would.
fn append_update(pdf: &[u8], objects: BTreeMap<u32, Vec<u8>>) -> Vec<u8> {
    let file = PdfFile::parse(pdf).unwrap();
    pdf::incremental_update(pdf, &file, &objects).unwrap()
}

/// The attack: page 1 gets new content (white over everything, then "FORGED") and a font to
/// draw it with, and keeps its dictionary otherwise, markers included.
fn forge_page_one(pdf: &[u8]) -> Vec<u8> {
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
    append_update(
        pdf,
        BTreeMap::from([(page_num, page_body), (content_num, stream)]),
    )
}

#[test]
fn an_incremental_update_after_signing_is_refused_and_pdfsig_agrees() {
    let pdf = signed_pdf();
    let forged = forge_page_one(&pdf);
    assert!(forged.starts_with(&pdf), "an update only appends");
    assert_eq!(verify(&forged), Err(E::NotCoveringWholeFile));

    // The attack is real: a viewer shows the new content, the markers still read (so the
    // gateway gets as far as the signature check), and the old signature still verifies
    // over the bytes it covers.
    let dir = tempfile::tempdir().unwrap();
    let path = write_pdf(dir.path(), "forged.pdf", &forged);
    let (ok, text) = tool("pdftotext", &[&path, "-"]);
    assert!(ok && text.contains("FORGED"), "{text}");
    assert!(
        !text.contains("見本"),
        "the original content is gone: {text}"
    );
    assert!(read_page_markers(&forged).is_ok());

    // poppler agrees: the signature is intact but does not cover the whole document.
    let (_, out) = tool("pdfsig", &[&path]);
    assert!(
        out.contains("Signature Validation: Signature is Valid."),
        "{out}"
    );
    assert!(out.contains("Not total document signed"), "{out}");
    assert!(!out.contains("Total document signed"), "{out}");
    let original = write_pdf(dir.path(), "original.pdf", &pdf);
    let (_, out) = tool("pdfsig", &[&original]);
    assert!(out.contains("Total document signed"), "{out}");
    assert!(!out.contains("Not total document signed"), "{out}");
}

#[test]
fn a_second_signature_dictionary_anywhere_is_refused() {
    let pdf = signed_pdf();
    let next = PdfFile::parse(&pdf).unwrap().size().unwrap();
    // In an incremental update, with a byte range that covers the new file as well.
    let second = format!(
        "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached \
         /ByteRange [0 {} {} 0] /Contents <00> >>",
        pdf.len(),
        pdf.len()
    );
    let updated = append_update(&pdf, BTreeMap::from([(next, second.into_bytes())]));
    assert_eq!(verify(&updated), Err(E::MultipleSignatures));
    // As an orphan object no cross-reference section names, or spelled with `#` escapes.
    for extra in [
        &b"\n99 0 obj\n<< /ByteRange [0 1 2 3] >>\nendobj\n"[..],
        b"\n% << /Type /S#69g >>\n",
        b"\n<< /Type/DocTimeStamp >>\n",
        b"\n<< /Byte#52ange [0 1 2 3] >>\n",
    ] {
        let mut appended = pdf.clone();
        appended.extend_from_slice(extra);
        assert_eq!(
            verify(&appended),
            Err(E::MultipleSignatures),
            "{}",
            String::from_utf8_lossy(extra)
        );
    }
}

#[test]
fn a_pdf_without_a_signature_is_refused() {
    let cert = super::samples::resident_record().unwrap();
    let (unsigned, _) = crate::document::render::Renderer::new(signer())
        .render_unsigned(&cert, "KV1:00")
        .unwrap();
    assert_eq!(verify(&unsigned), Err(E::NoSignature));
    assert_eq!(verify(b""), Err(E::NoSignature));
    // A /Type /Sig dictionary without a /ByteRange signs nothing.
    let pdf = signed_pdf();
    let unranged = replace_once(&pdf, b"/ByteRange [", b"/ByteRangX [");
    assert_eq!(verify(&unranged), Err(E::MalformedByteRange));
}

// === the byte range ===

/// The numbers our signer wrote: [0 a b c].
fn byte_range(pdf: &[u8]) -> [usize; 4] {
    let at = find(pdf, b"/ByteRange [") + b"/ByteRange [".len();
    let end = at + find(&pdf[at..], b"]");
    let text = std::str::from_utf8(&pdf[at..end]).unwrap();
    let numbers: Vec<usize> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    numbers.try_into().unwrap()
}

/// The PDF with its `/ByteRange` array replaced by `array` (brackets included).
fn with_byte_range(pdf: &[u8], array: &str) -> Vec<u8> {
    let at = find(pdf, b"/ByteRange [") + b"/ByteRange ".len();
    let end = at + find(&pdf[at..], b"]") + 1;
    [&pdf[..at], array.as_bytes(), &pdf[end..]].concat()
}

/// Same width as the signer writes, so no other byte moves.
fn fixed(a: usize, b: usize, c: usize) -> String {
    format!("[0 {a:010} {b:010} {c:010}]")
}

#[test]
fn byte_ranges_that_lie_are_refused() {
    let pdf = signed_pdf();
    let [_, a, b, c] = byte_range(&pdf);
    assert_eq!(b + c, pdf.len());
    let cases: &[(String, E)] = &[
        // The gap is one byte too wide, or too narrow, on either side.
        (fixed(a - 1, b, c), E::GapNotContents),
        (fixed(a + 1, b, c), E::GapNotContents),
        (fixed(a, b - 1, c + 1), E::GapNotContents),
        (fixed(a, b + 1, c - 1), E::GapNotContents),
        // A gap over other bytes entirely (the first range's tail).
        (fixed(a / 2, b, c), E::GapNotContents),
        // Ranges that end before the file does.
        (fixed(a, b, c - 1), E::NotCoveringWholeFile),
        // Beyond the file, and numbers no usize holds.
        (fixed(a, b, c + 1), E::ByteRangeOutOfBounds),
        (fixed(a, b, usize::MAX - b + 1), E::ByteRangeOutOfBounds),
        (
            format!("[0 {a} {b} 99999999999999999999999999]"),
            E::ByteRangeOutOfBounds,
        ),
        (
            format!("[0 {a} 18446744073709551615 {c}]"),
            E::ByteRangeOutOfBounds,
        ),
        // Not [0 a b c] with 0 < a < b.
        (format!("[1 {a} {b} {c}]"), E::MalformedByteRange),
        (format!("[0 {b} {a} {c}]"), E::MalformedByteRange),
        (format!("[0 0 {b} {c}]"), E::MalformedByteRange),
        (format!("[0 {a} {b}]"), E::MalformedByteRange),
        (format!("[0 {a} {b} {c} 0]"), E::MalformedByteRange),
        (format!("[0 {a} {b} -{c}]"), E::MalformedByteRange),
        (format!("[0 {a} {b} {c}.0]"), E::MalformedByteRange),
        ("9 0 R".to_owned(), E::MalformedByteRange),
        (format!("[0 {a} {b} {c}"), E::MalformedByteRange),
    ];
    for (array, expected) in cases {
        assert_eq!(
            verify(&with_byte_range(&pdf, array)),
            Err(*expected),
            "{array}"
        );
    }
    // Our own width, unchanged, still verifies: the cases above fail for their reason.
    verify(&with_byte_range(&pdf, &fixed(a, b, c))).unwrap();
}

// === /Contents ===

/// The hex digits of the `/Contents` string (between `<` and `>`).
fn contents_span(pdf: &[u8]) -> Range<usize> {
    let [_, a, b, _] = byte_range(pdf);
    a + 1..b - 1
}

/// The PDF with its CMS replaced (hex, zero-padded to the reserved width).
fn with_cms(pdf: &[u8], cms: &[u8]) -> Vec<u8> {
    let span = contents_span(pdf);
    let hex = hex::encode_upper(cms);
    assert!(hex.len() <= span.len(), "the CMS fits the reserved space");
    let mut out = pdf.to_vec();
    out[span.clone()].fill(b'0');
    out[span.start..span.start + hex.len()].copy_from_slice(hex.as_bytes());
    out
}

/// The CMS our signer wrote (padding removed).
fn cms_of(pdf: &[u8]) -> Vec<u8> {
    let bytes = hex::decode(&pdf[contents_span(pdf)]).unwrap();
    let mut reader = SliceReader::new(&bytes).unwrap();
    ContentInfo::decode(&mut reader).unwrap();
    let used = usize::try_from(u32::from(reader.position())).unwrap();
    bytes[..used].to_vec()
}

#[test]
fn damaged_contents_are_refused() {
    let pdf = signed_pdf();
    let span = contents_span(&pdf);
    let cms = cms_of(&pdf);
    // Not hex.
    let mut garbage = pdf.clone();
    garbage[span.start..span.start + 4].copy_from_slice(b"ZZZZ");
    assert_eq!(verify(&garbage), Err(E::MalformedContents));
    // Whitespace inside: legal PDF, but not what we write.
    let mut spaced = pdf.clone();
    spaced[span.start + 2] = b' ';
    assert_eq!(verify(&spaced), Err(E::MalformedContents));
    // Junk after the CMS instead of zero padding.
    let mut junk = cms.clone();
    junk.push(0x01);
    assert_eq!(verify(&with_cms(&pdf, &junk)), Err(E::MalformedContents));
    // Truncated CMS, the placeholder's zeros, and a SEQUENCE of nothing.
    assert_eq!(
        verify(&with_cms(&pdf, &cms[..cms.len() / 2])),
        Err(E::MalformedCms)
    );
    assert_eq!(verify(&with_cms(&pdf, &[])), Err(E::MalformedCms));
    assert_eq!(verify(&with_cms(&pdf, &[0x30, 0x00])), Err(E::MalformedCms));
    // A length that claims far more than the file holds.
    assert_eq!(
        verify(&with_cms(&pdf, &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02])),
        Err(E::MalformedCms)
    );
    // A /Contents larger than any CMS we accept: the gap is grown and the range follows it.
    let [_, a, b, c] = byte_range(&pdf);
    let extra = 2 * MAX_CMS_LEN;
    let mut grown = pdf[..b - 1].to_vec();
    grown.extend(std::iter::repeat_n(b'0', extra));
    grown.extend_from_slice(&pdf[b - 1..]);
    let grown = with_byte_range(&grown, &fixed(a, b + extra, c));
    assert_eq!(verify(&grown), Err(E::ContentsTooLarge));
}

// === the signature field and dictionary ===

#[test]
fn a_signature_outside_a_pades_signature_field_is_refused() {
    let pdf = signed_pdf();
    // These edits change signed bytes; the structure check comes first and names them.
    let cases: &[(&[u8], &[u8], E)] = &[
        (b"/FT /Sig", b"/FT /Btn", E::SignatureField),
        (b"/SigFlags 3", b"/SigFlagX 3", E::DigestMismatch),
        (b"/Fields [", b"/Fieldz [", E::SignatureField),
        (
            b"/Type /Sig",
            b"/Type /Sog",
            E::MalformedSignatureDictionary,
        ),
        (
            b"/SubFilter /ETSI.CAdES.detached",
            b"/SubFilter /adbe.pkcs7.detached",
            E::MalformedSignatureDictionary,
        ),
        (
            b"/Filter /Adobe.PPKLite",
            b"/Filter /Adobe.PPKLitX",
            E::MalformedSignatureDictionary,
        ),
    ];
    for (from, to, expected) in cases {
        let edited = replace_once(&pdf, from, to);
        assert_eq!(
            verify(&edited),
            Err(*expected),
            "{}",
            String::from_utf8_lossy(to)
        );
    }
    // A cross-reference chain that cannot be read.
    let at = pdf.windows(9).rposition(|w| w == b"startxref").unwrap();
    let broken = [&pdf[..at], b"startxrex", &pdf[at + 9..]].concat();
    assert_eq!(verify(&broken), Err(E::UnreadablePdf));
}

// === the CMS, re-signed with the municipality's key ===

fn signed_data_of(pdf: &[u8]) -> SignedData {
    ContentInfo::from_der(&cms_of(pdf))
        .unwrap()
        .content
        .decode_as()
        .unwrap()
}

fn encode(signed_data: &SignedData) -> Vec<u8> {
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(signed_data).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The PDF with its SignedData changed by `edit`, then written back.
fn with_signed_data(pdf: &[u8], edit: impl FnOnce(&mut SignedData)) -> Vec<u8> {
    let mut signed_data = signed_data_of(pdf);
    edit(&mut signed_data);
    with_cms(pdf, &encode(&signed_data))
}

/// The one SignerInfo, to edit.
fn signer_info(signed_data: &mut SignedData) -> SignerInfo {
    signed_data.signer_infos.0.as_slice()[0].clone()
}

fn set_signer_info(signed_data: &mut SignedData, si: SignerInfo) {
    signed_data.signer_infos.0 = SetOfVec::try_from(vec![si]).unwrap();
}

/// Signs the signed attributes (as a SET OF) with `key`.
fn sign_attrs(si: &mut SignerInfo, key: &EcdsaKeyPair) {
    let der = si.signed_attrs.as_ref().unwrap().to_der().unwrap();
    let signature = key.sign(&SystemRandom::new(), &der).unwrap();
    si.signature = OctetString::new(signature.as_ref()).unwrap();
}

/// Changes the signed attributes and re-signs them with the municipality's real key.
fn resigned(pdf: &[u8], edit: impl FnOnce(&mut Vec<x509_cert::attr::Attribute>)) -> Vec<u8> {
    with_signed_data(pdf, |sd| {
        let mut si = signer_info(sd);
        let mut attrs = si.signed_attrs.take().unwrap().into_vec();
        edit(&mut attrs);
        si.signed_attrs = Some(SetOfVec::try_from(attrs).unwrap());
        sign_attrs(&mut si, &our_key());
        set_signer_info(sd, si);
    })
}

#[test]
fn re_signing_with_our_key_changes_nothing_the_checks_see() {
    // The control for the tests below: the helpers alone do not make a PDF invalid.
    let pdf = signed_pdf();
    verify(&resigned(&pdf, |_| {})).unwrap();
    verify(&with_signed_data(&pdf, |_| {})).unwrap();
}

#[test]
fn a_cms_with_two_signer_infos_is_refused() {
    let pdf = signed_pdf();
    let two = with_signed_data(&pdf, |sd| {
        let first = signer_info(sd);
        let mut second = first.clone();
        sign_attrs(&mut second, &our_key());
        sd.signer_infos.0 = SetOfVec::try_from(vec![first, second]).unwrap();
    });
    assert_eq!(verify(&two), Err(E::SignerCount));
    let none = with_signed_data(&pdf, |sd| sd.signer_infos.0 = SetOfVec::new());
    assert_eq!(verify(&none), Err(E::SignerCount));
}

#[test]
fn a_wrong_message_digest_is_refused_even_when_signed_by_us() {
    let pdf = signed_pdf();
    let wrong = resigned(&pdf, |attrs| {
        let md = attrs
            .iter_mut()
            .find(|a| a.oid == ID_MESSAGE_DIGEST)
            .unwrap();
        let value = Any::encode_from(&OctetString::new([0x5a; 32]).unwrap()).unwrap();
        md.values = SetOfVec::try_from(vec![value]).unwrap();
    });
    assert_eq!(verify(&wrong), Err(E::DigestMismatch));
    // And a changed byte of the document, with the CMS untouched.
    let mut changed = pdf.clone();
    let at = find(&changed, b"/SigFlags 3") + 10;
    changed[at] = b'1';
    assert_eq!(verify(&changed), Err(E::DigestMismatch));
}

#[test]
fn missing_or_repeated_signed_attributes_are_refused() {
    let pdf = signed_pdf();
    let without = |oid: ObjectIdentifier| resigned(&pdf, |attrs| attrs.retain(|a| a.oid != oid));
    assert_eq!(
        verify(&without(ID_CONTENT_TYPE)),
        Err(E::ContentTypeAttribute)
    );
    assert_eq!(
        verify(&without(ID_MESSAGE_DIGEST)),
        Err(E::MessageDigestAttribute)
    );
    // A content type other than id-data.
    let other_type = resigned(&pdf, |attrs| {
        let ct = attrs.iter_mut().find(|a| a.oid == ID_CONTENT_TYPE).unwrap();
        ct.values = SetOfVec::try_from(vec![Any::encode_from(&ID_SIGNED_DATA).unwrap()]).unwrap();
    });
    assert_eq!(verify(&other_type), Err(E::ContentTypeAttribute));
    // Two message-digest values in one attribute.
    let two_values = resigned(&pdf, |attrs| {
        let md = attrs
            .iter_mut()
            .find(|a| a.oid == ID_MESSAGE_DIGEST)
            .unwrap();
        let extra = Any::encode_from(&OctetString::new([0u8; 32]).unwrap()).unwrap();
        md.values.insert(extra).unwrap();
    });
    assert_eq!(verify(&two_values), Err(E::MessageDigestAttribute));
    let no_attrs = with_signed_data(&pdf, |sd| {
        let mut si = signer_info(sd);
        si.signed_attrs = None;
        set_signer_info(sd, si);
    });
    assert_eq!(verify(&no_attrs), Err(E::MissingSignedAttributes));
}

#[test]
fn other_algorithms_are_refused() {
    let pdf = signed_pdf();
    let sha1 = with_signed_data(&pdf, |sd| {
        let mut si = signer_info(sd);
        si.digest_alg.oid = ID_SHA1;
        set_signer_info(sd, si);
    });
    assert_eq!(verify(&sha1), Err(E::UnsupportedAlgorithm));
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let pdf = signed_pdf();
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let other_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // Same attributes, same signer identifier, another key's signature.
    let forged = with_signed_data(&pdf, |sd| {
        let mut si = signer_info(sd);
        sign_attrs(&mut si, &other_key);
        set_signer_info(sd, si);
    });
    assert_eq!(verify(&forged), Err(E::BadSignature));
    // Our genuine PDF checked against another municipality's certificate: the signer
    // identifier names ours.
    let other = cert_der("municipality-271004.crt.pem");
    assert_eq!(verify_pdf_signature(&pdf, &other), Err(E::SignerMismatch));
    assert_eq!(
        verify_pdf_signature(&pdf, b"not a certificate"),
        Err(E::Certificate)
    );
}

#[test]
fn the_signer_may_be_named_by_its_subject_key_identifier() {
    let pdf = signed_pdf();
    let cert = x509_cert::Certificate::from_der(&our_cert()).unwrap();
    let ski = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ObjectIdentifier::new_unwrap("2.5.29.14"))
        .map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).unwrap())
        .unwrap();
    let named = |ski: SubjectKeyIdentifier| {
        with_signed_data(&pdf, |sd| {
            let mut si = signer_info(sd);
            si.sid = SignerIdentifier::SubjectKeyIdentifier(ski);
            set_signer_info(sd, si);
        })
    };
    verify(&named(ski)).unwrap();
    let wrong = SubjectKeyIdentifier(OctetString::new([7u8; 20]).unwrap());
    assert_eq!(verify(&named(wrong)), Err(E::SignerMismatch));
}

#[test]
fn signed_attributes_that_are_not_der_sorted_are_refused() {
    // The decoder sorts a SET OF as it reads it. Attributes written unsorted and signed in
    // that order must be refused as not DER, not silently re-sorted (their re-encoding would
    // no longer be what was signed).
    let pdf = signed_pdf();
    let mut sd = signed_data_of(&pdf);
    let mut si = signer_info(&mut sd);
    let attrs: Vec<Vec<u8>> = si
        .signed_attrs
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.to_der().unwrap())
        .collect();
    let swapped = [attrs[1].clone(), attrs[0].clone()].concat();
    let sorted = [attrs[0].clone(), attrs[1].clone()].concat();
    let mut set = vec![0x31];
    let body: Vec<u8> = [swapped.clone(), attrs[2..].concat()].concat();
    set.extend(der::Length::try_from(body.len()).unwrap().to_der().unwrap());
    set.extend(&body);
    let signature = our_key().sign(&SystemRandom::new(), &set).unwrap();
    si.signature = OctetString::new(signature.as_ref()).unwrap();
    set_signer_info(&mut sd, si);
    let cms = encode(&sd);
    let cms = replace_once(&cms, &sorted, &swapped);
    assert_eq!(verify(&with_cms(&pdf, &cms)), Err(E::MalformedCms));
}

// === robustness ===

#[test]
fn truncations_and_flipped_bytes_never_panic_or_pass() {
    let pdf = signed_pdf();
    for cut in (0..pdf.len()).step_by(pdf.len() / 97) {
        assert!(verify(&pdf[..cut]).is_err(), "cut at {cut}");
    }
    // Around the signature dictionary and through its /Contents, where the verifier parses
    // most. Outside the gap every byte is signed, so any change is refused; inside it some
    // changes are equivalent (a hex digit's case) or unsigned (the CMS's copy of the
    // certificates), so there the verifier only has to answer.
    let hex = contents_span(&pdf);
    let sig_at = find(&pdf, b"/Type /Sig");
    for at in (sig_at.saturating_sub(64)..pdf.len()).step_by(61) {
        let mut flipped = pdf.clone();
        flipped[at] ^= 0x20;
        let verdict = verify(&flipped);
        assert!(hex.contains(&at) || verdict.is_err(), "flip at {at}");
    }
}

#[test]
fn the_committed_fuzz_seeds_still_verify() {
    // fuzz/seeds/pdf_signature/ lets the fuzzer start from a PDF that passes every check, from
    // the same PDF after an incremental update, and from its CMS alone (a zero byte, then the
    // DER the target splices back into signed.pdf). Regenerate them with
    // ISSUER_WRITE_FUZZ_SEEDS=1 when the signature format changes.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/pdf_signature");
    let signed = dir.join("signed.pdf");
    let updated = dir.join("incremental-update.pdf");
    let cms_only = dir.join("cms-only");
    if std::env::var_os("ISSUER_WRITE_FUZZ_SEEDS").is_some() {
        let pdf = minimal_signed_pdf();
        std::fs::write(&updated, forge_page_one(&pdf)).unwrap();
        std::fs::write(&cms_only, [&[0u8][..], &cms_of(&pdf)].concat()).unwrap();
        std::fs::write(&signed, pdf).unwrap();
    }
    let pdf = std::fs::read(&signed).unwrap();
    verify(&pdf).unwrap();
    assert_eq!(
        verify(&std::fs::read(&updated).unwrap()),
        Err(E::NotCoveringWholeFile)
    );
    let cms = std::fs::read(&cms_only).unwrap();
    assert_eq!(cms[0], 0, "the fuzz target's CMS-only mode");
    verify(&with_cms(&pdf, &cms[1..])).unwrap();
}

/// A one-page PDF written by hand and signed by our signer: the real signature format at a
/// fraction of a rendered certificate's size, so the fuzzer mutates what matters.
fn minimal_signed_pdf() -> Vec<u8> {
    let objects: [&[u8]; 3] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(b"xref\n0 4\n0000000000 65535 f \n");
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    let doc = render(CertificateType::ResidentRecordItems);
    let markers = read_page_markers(&doc.pdf).unwrap();
    signer()
        .sign_pdf(
            &out,
            &markers[..1],
            IssuedAt::from_unix_seconds(1_795_000_000).unwrap(),
        )
        .unwrap()
}

// === helpers ===

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}

/// `hay` with the first `from` replaced by `to`.
fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = find(hay, from);
    [&hay[..at], to, &hay[at + from.len()..]].concat()
}
