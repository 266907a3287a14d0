//! Verifying the embedded PDF signature that the issuer's signer writes
//! (`issuer::document::sign::DocumentSigner::sign_pdf`).
//!
//! The input is untrusted: anyone may hand a PDF to the gateway's public `VerifyService`. What
//! we accept is exactly the shape our signer produces, and every other shape is refused with its
//! own [`PdfSignatureError`]:
//!
//! 1. **One signature in the whole file.** Every name token of the file is read (with `#xx`
//!    escapes decoded, so `/Byte#52ange` counts too) and every `/ByteRange` key and every
//!    `/Type /Sig` (or `/DocTimeStamp`) pair is counted, wherever it is: in a referenced object,
//!    an orphan one or a later revision. Exactly one of each is accepted. This is a byte scan
//!    on purpose: a structural reader only sees what the cross-reference chain points at, and
//!    an attacker decides that. It does not inflate compressed streams, so a dictionary inside
//!    an object stream escapes it; rule 2 is what makes that harmless: once the signature
//!    covers every byte but its own `/Contents`, the file is byte for byte what our signer
//!    wrote, and it writes no object streams. The census gives the precise reason first.
//! 2. **The whole file is signed.** The `/ByteRange` is `[0 a b c]` with `0 < a < b`, both
//!    ranges inside the file, and `b + c` equal to the file length: a PDF with an incremental
//!    update appended after signing (new objects overriding page content, a new xref section
//!    and a trailer with `/Prev`) leaves bytes outside the signed ranges and is refused. This
//!    is the attack of ETSI EN 319 142 / ISO 32000-2 §12.8 that jpki/myna fixed in 2026
//!    (GHSA-g258-q5gf-7hvx).
//! 3. **The gap is the `/Contents` hex string**, delimiters included, and nothing else.
//! 4. **The signature is the document's signature field**: the AcroForm has one field of type
//!    `/Sig`, whose `/V` is a `/Type /Sig /Filter /Adobe.PPKLite /SubFilter
//!    /ETSI.CAdES.detached` dictionary with that `/ByteRange` and `/Contents` (how pdfsig and
//!    pyHanko find it).
//! 5. **The CMS** (parsed with RustCrypto's `cms`; its SignerInfo must re-encode to the very
//!    bytes we read, so the signed attributes we hash are the ones that were signed) is a
//!    detached `id-data` SignedData with exactly one SignerInfo, SHA-256 and
//!    ecdsa-with-SHA256, signed attributes with one content-type (`id-data`) and one
//!    message-digest equal to SHA-256 of the covered bytes, a signer identifier naming the
//!    expected certificate, and an ECDSA P-256 signature over the attributes' DER (as a
//!    `SET OF`, tag 0x31) that verifies with that certificate's key (ring).
//!
//! Every length read from the file is bounded before it is used ([`pdf::MAX_PDF_LEN`],
//! [`MAX_CMS_LEN`]), numbers are parsed with overflow checks, and nothing panics.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, AnyRef, Decode, Encode, Reader, SliceReader};
use x509_cert::Certificate;
use x509_cert::attr::Attributes;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::pdf::{self, Dict, Obj, PdfFile};

/// Bytes the signer reserves for the CMS in `/Contents` (hex-encoded, twice this in the file).
/// Both sides use this one number: the signer to size its placeholder, the verifier to bound
/// what it accepts ([`MAX_CMS_LEN`]).
pub const CONTENTS_LEN: usize = 8192;

/// Largest CMS accepted in `/Contents`: four times what our signer reserves. It bounds the
/// allocation for the decoded hex whatever the file claims.
pub const MAX_CMS_LEN: usize = 4 * CONTENTS_LEN;

/// How far after the `/ByteRange` key its array may end: four 20-digit numbers and generous
/// whitespace. Bounds the scan on a file that never closes the array.
const MAX_BYTE_RANGE_TEXT: usize = 256;

/// Most AcroForm fields looked at for the signature field (our signer writes one).
const MAX_FORM_FIELDS: usize = 16;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// Why an embedded PDF signature did not verify. Each refusal has its own variant, and the
/// variants are stable: tests, logs and the `verify-document` tool name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PdfSignatureError {
    /// The file is larger than [`pdf::MAX_PDF_LEN`].
    #[error("pdf too large to verify")]
    TooLarge,
    /// The expected signer certificate does not parse or has no P-256 key.
    #[error("the expected signer certificate is not a P-256 certificate")]
    Certificate,
    /// No signature dictionary anywhere in the file.
    #[error("no signature dictionary")]
    NoSignature,
    /// More than one signature dictionary (a `/ByteRange` key or a `/Type /Sig` pair) anywhere
    /// in the file; our signer writes exactly one.
    #[error("more than one signature dictionary")]
    MultipleSignatures,
    /// The `/ByteRange` is not `[0 a b c]` with `0 < a < b` in plain non-negative integers.
    #[error("malformed /ByteRange")]
    MalformedByteRange,
    /// A `/ByteRange` number, or the end of its second range, lies beyond the end of the file.
    #[error("/ByteRange reaches beyond the end of the file")]
    ByteRangeOutOfBounds,
    /// Bytes after the signed ranges: something was appended after signing (an incremental
    /// update).
    #[error("signature does not cover the whole file")]
    NotCoveringWholeFile,
    /// The gap between the two ranges is not exactly one `/Contents <...>` hex string.
    #[error("the /ByteRange gap is not exactly the /Contents hex string")]
    GapNotContents,
    /// The `/Contents` hex string is longer than [`MAX_CMS_LEN`] bytes would need.
    #[error("/Contents too large")]
    ContentsTooLarge,
    /// The `/Contents` hex string is not plain hex digits of even count, or the bytes after
    /// the CMS are not zero padding.
    #[error("malformed /Contents")]
    MalformedContents,
    /// The cross-reference chain or the catalog cannot be read.
    #[error("pdf structure unreadable")]
    UnreadablePdf,
    /// The AcroForm does not have exactly one signature field whose value is the signature
    /// dictionary holding this `/ByteRange` and `/Contents`.
    #[error("no single signature field holds the signature")]
    SignatureField,
    /// The signature dictionary is not `/Type /Sig /Filter /Adobe.PPKLite /SubFilter
    /// /ETSI.CAdES.detached` with a direct `/ByteRange` and `/Contents`.
    #[error("signature dictionary is not a PAdES signature of this issuer")]
    MalformedSignatureDictionary,
    /// The CMS is not a strict-DER, detached `id-data` SignedData.
    #[error("malformed CMS")]
    MalformedCms,
    /// The SignedData has no SignerInfo or more than one.
    #[error("the CMS must have exactly one SignerInfo")]
    SignerCount,
    /// The SignerInfo has no signed attributes.
    #[error("no signed attributes")]
    MissingSignedAttributes,
    /// The content-type attribute is missing, repeated, multi-valued or not `id-data`.
    #[error("content-type attribute missing or not id-data")]
    ContentTypeAttribute,
    /// The message-digest attribute is missing, repeated, multi-valued or not an OCTET STRING.
    #[error("message-digest attribute missing or malformed")]
    MessageDigestAttribute,
    /// The digest algorithm is not SHA-256 or the signature algorithm not ecdsa-with-SHA256.
    #[error("unsupported digest or signature algorithm")]
    UnsupportedAlgorithm,
    /// The signed message digest differs from SHA-256 of the covered bytes (a changed byte).
    #[error("message digest does not match the signed bytes")]
    DigestMismatch,
    /// The SignerInfo's identifier names another certificate than the expected one.
    #[error("the signer is not the expected certificate")]
    SignerMismatch,
    /// The signature over the signed attributes does not verify with the certificate's key.
    #[error("signature does not verify with the certificate's key")]
    BadSignature,
}

use PdfSignatureError as E;

/// Verifies the one embedded signature of a PDF with the expected signer certificate (DER):
/// whole-file coverage, the signature field, the CMS, the message digest, the signer
/// identifier and the ECDSA P-256 signature (see the module documentation for each rule).
/// Chain validation of the certificate is the caller's business: the gateway passes the
/// municipality's configured certificate, `verify-document` the one it was given.
pub fn verify_pdf_signature(pdf: &[u8], signer_cert_der: &[u8]) -> Result<(), PdfSignatureError> {
    if pdf.len() > pdf::MAX_PDF_LEN {
        return Err(E::TooLarge);
    }
    let signer = ExpectedSigner::parse(signer_cert_der)?;
    let byte_range_at = Census::scan(pdf).single_byte_range()?;
    let range = ByteRange::parse(pdf, byte_range_at)?;
    let hex = range.contents_hex(pdf)?;
    let cms = decode_hex(hex)?;
    check_signature_field(pdf, &range, &cms)?;
    let cms = parse_cms(&cms)?;
    let signer_info = single_signer_info(&cms)?;
    verify_signer_info(signer_info, &range.digest(pdf), &signer)
}

// === the census: every signature dictionary in the file ===

/// Counts of signature-dictionary keys over every byte of the file.
#[derive(Debug, Default)]
struct Census {
    /// `/ByteRange` keys.
    byte_ranges: usize,
    /// Offset just after the first `/ByteRange` name.
    first_byte_range_end: usize,
    /// `/Type /Sig` and `/Type /DocTimeStamp` pairs.
    sig_types: usize,
}

impl Census {
    /// Reads every name token of the file. It does not skip strings, comments or stream data:
    /// a key name there is counted too, which can only refuse a file (ours never contains
    /// one), while skipping could hide a real key behind a `%` inside a string.
    fn scan(pdf: &[u8]) -> Census {
        let mut census = Census::default();
        let mut after_type = false;
        let mut i = 0;
        while i < pdf.len() {
            if pdf[i] != b'/' {
                // `/Type /Sig`: only whitespace may separate the two names.
                after_type &= is_ws(pdf[i]);
                i += 1;
                continue;
            }
            let (name, end) = read_name(pdf, i + 1);
            if after_type && (name.is(b"Sig") || name.is(b"DocTimeStamp")) {
                census.sig_types += 1;
            }
            if name.is(b"ByteRange") {
                if census.byte_ranges == 0 {
                    census.first_byte_range_end = end;
                }
                census.byte_ranges += 1;
            }
            after_type = name.is(b"Type");
            i = end;
        }
        census
    }

    /// Where the one `/ByteRange` key ends.
    fn single_byte_range(&self) -> Result<usize, PdfSignatureError> {
        match (self.byte_ranges, self.sig_types) {
            (0, 0) => Err(E::NoSignature),
            (b, s) if b > 1 || s > 1 => Err(E::MultipleSignatures),
            // A `/Type /Sig` without a `/ByteRange` signs nothing.
            (0, _) => Err(E::MalformedByteRange),
            // A `/ByteRange` outside a `/Type /Sig` dictionary: the structural check names it.
            _ => Ok(self.first_byte_range_end),
        }
    }
}

/// A decoded name, kept only as far as the longest key we look for.
struct Name {
    bytes: [u8; 16],
    len: usize,
    /// Longer than `bytes`: equal to none of our keys.
    long: bool,
}

impl Name {
    fn is(&self, key: &[u8]) -> bool {
        !self.long && self.bytes.get(..self.len) == Some(key)
    }
}

/// Reads a name body from `start` (just after its `/`), decoding `#xx` escapes. Returns the
/// name and the offset of the first byte after it.
fn read_name(pdf: &[u8], start: usize) -> (Name, usize) {
    let mut name = Name {
        bytes: [0; 16],
        len: 0,
        long: false,
    };
    let mut i = start;
    while let Some(&c) = pdf.get(i) {
        if is_ws(c) || is_delim(c) {
            break;
        }
        let escaped = (c == b'#')
            .then(|| Some(hex_value(*pdf.get(i + 1)?)? << 4 | hex_value(*pdf.get(i + 2)?)?))
            .flatten();
        let (byte, width) = escaped.map_or((c, 1), |b| (b, 3));
        match name.bytes.get_mut(name.len) {
            Some(slot) => {
                *slot = byte;
                name.len += 1;
            }
            None => name.long = true,
        }
        i += width;
    }
    (name, i.min(pdf.len()))
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0c | 0)
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// === the byte range ===

/// A checked `/ByteRange [0 a b c]`: `0 < a < b`, `b + c` is the file length.
/// Invariant: `pdf[..a]` and `pdf[b..]` are the signed bytes and lie inside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteRange {
    a: usize,
    b: usize,
    c: usize,
}

impl ByteRange {
    /// Parses the array after the `/ByteRange` key ending at `at` and checks it against the
    /// file's length.
    fn parse(pdf: &[u8], at: usize) -> Result<ByteRange, PdfSignatureError> {
        let window = pdf.get(at..).unwrap_or_default();
        let window = window.get(..MAX_BYTE_RANGE_TEXT).unwrap_or(window);
        let open = window
            .iter()
            .position(|&c| !is_ws(c))
            .filter(|&i| window[i] == b'[')
            .ok_or(E::MalformedByteRange)?;
        let close = window
            .iter()
            .position(|&c| c == b']')
            .ok_or(E::MalformedByteRange)?;
        let inner = window.get(open + 1..close).ok_or(E::MalformedByteRange)?;
        let mut numbers = [0usize; 4];
        let mut count = 0;
        for token in inner.split(|&c| is_ws(c)).filter(|t| !t.is_empty()) {
            let slot = numbers.get_mut(count).ok_or(E::MalformedByteRange)?;
            *slot = parse_offset(token)?;
            count += 1;
        }
        let [start, a, b, c] = numbers;
        if count != 4 || start != 0 || a == 0 || a >= b {
            return Err(E::MalformedByteRange);
        }
        let end = b.checked_add(c).ok_or(E::ByteRangeOutOfBounds)?;
        if end > pdf.len() {
            return Err(E::ByteRangeOutOfBounds);
        }
        if end != pdf.len() {
            return Err(E::NotCoveringWholeFile);
        }
        Ok(ByteRange { a, b, c })
    }

    /// The hex digits of the `/Contents` string that fills the gap exactly: `<` at `a`, the
    /// first `>` after it at `b - 1`, and the key `/Contents` just before it.
    fn contents_hex<'p>(&self, pdf: &'p [u8]) -> Result<&'p [u8], PdfSignatureError> {
        let gap = pdf.get(self.a..self.b).ok_or(E::GapNotContents)?;
        let [b'<', inner @ .., b'>'] = gap else {
            return Err(E::GapNotContents);
        };
        if inner.contains(&b'>') || !preceded_by_contents_key(pdf, self.a) {
            return Err(E::GapNotContents);
        }
        if inner.len() > 2 * MAX_CMS_LEN {
            return Err(E::ContentsTooLarge);
        }
        Ok(inner)
    }

    /// SHA-256 of the signed bytes: the file without the gap.
    fn digest(&self, pdf: &[u8]) -> ring::digest::Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(pdf.get(..self.a).unwrap_or_default());
        ctx.update(pdf.get(self.b..).unwrap_or_default());
        ctx.finish()
    }

    fn as_objs(&self) -> [Obj; 4] {
        // The offsets are within a file of at most MAX_PDF_LEN bytes, so they fit an i64.
        let int = |n: usize| Obj::Int(i64::try_from(n).unwrap_or(i64::MAX));
        [Obj::Int(0), int(self.a), int(self.b), int(self.c)]
    }
}

/// A `/ByteRange` number: plain decimal digits. A number too large for `usize` is beyond any
/// file; a sign or anything else is malformed.
fn parse_offset(token: &[u8]) -> Result<usize, PdfSignatureError> {
    if !token.iter().all(u8::is_ascii_digit) {
        return Err(E::MalformedByteRange);
    }
    token.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or(E::ByteRangeOutOfBounds)
    })
}

fn preceded_by_contents_key(pdf: &[u8], at: usize) -> bool {
    let before = pdf.get(..at).unwrap_or_default();
    let key_end = before.iter().rposition(|&c| !is_ws(c)).map_or(0, |i| i + 1);
    before
        .get(..key_end)
        .is_some_and(|b| b.ends_with(b"/Contents"))
}

/// The bytes of a hex string of our signer: hex digits only (no whitespace), even count.
fn decode_hex(hex: &[u8]) -> Result<Vec<u8>, PdfSignatureError> {
    if !hex.len().is_multiple_of(2) {
        return Err(E::MalformedContents);
    }
    hex.chunks_exact(2)
        .map(|pair| match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(E::MalformedContents),
        })
        .collect()
}

// === the signature field ===

/// The document's signature field (AcroForm → one `/FT /Sig` field → `/V`) must be the
/// dictionary that holds this `/ByteRange` and `/Contents`, and a PAdES one.
fn check_signature_field(
    pdf: &[u8],
    range: &ByteRange,
    contents: &[u8],
) -> Result<(), PdfSignatureError> {
    let file = PdfFile::parse(pdf).map_err(|_| E::UnreadablePdf)?;
    let sig = signature_dictionary(&file)?;
    let name_is =
        |key: &[u8], value: &[u8]| matches!(sig.get(key), Some(Obj::Name(n)) if n == value);
    if !name_is(b"Type", b"Sig")
        || !name_is(b"Filter", b"Adobe.PPKLite")
        || !name_is(b"SubFilter", b"ETSI.CAdES.detached")
    {
        return Err(E::MalformedSignatureDictionary);
    }
    let (Some(Obj::Array(byte_range)), Some(Obj::Str(sig_contents))) =
        (sig.get(b"ByteRange"), sig.get(b"Contents"))
    else {
        return Err(E::MalformedSignatureDictionary);
    };
    if byte_range.as_slice() != range.as_objs() || sig_contents.as_slice() != contents {
        return Err(E::SignatureField);
    }
    Ok(())
}

/// The value of the AcroForm's one signature field.
fn signature_dictionary(file: &PdfFile<'_>) -> Result<Dict, PdfSignatureError> {
    let (_, catalog) = file.catalog().map_err(|_| E::UnreadablePdf)?;
    let resolve_dict = |o: Option<&Obj>| match o.map(|o| file.resolve(o)) {
        Some(Ok(Obj::Dict(d))) => Some(d),
        _ => None,
    };
    let acro_form = resolve_dict(catalog.get(b"AcroForm")).ok_or(E::SignatureField)?;
    let fields = match acro_form.get(b"Fields").map(|o| file.resolve(o)) {
        // Each field is parsed from the file: a bound keeps a crafted form of many references
        // to one large object from costing fields × object size. Ours has one field.
        Some(Ok(Obj::Array(fields))) if fields.len() <= MAX_FORM_FIELDS => fields,
        _ => return Err(E::SignatureField),
    };
    let mut values = fields
        .iter()
        .filter_map(|f| resolve_dict(Some(f)))
        .filter(|f| matches!(f.get(b"FT"), Some(Obj::Name(t)) if t == b"Sig"))
        .map(|f| f.get(b"V").cloned());
    let (Some(Some(value @ Obj::Ref(..))), None) = (values.next(), values.next()) else {
        return Err(E::SignatureField);
    };
    resolve_dict(Some(&value)).ok_or(E::SignatureField)
}

// === the CMS ===

/// A decoded SignedData and the bytes its one SignerInfo was read from.
struct Cms {
    signed_data: SignedData,
    /// The value of the `signerInfos` SET as it stands in the file.
    signer_infos_der: Vec<u8>,
}

/// Decodes the `/Contents` bytes: one DER ContentInfo with a detached `id-data` SignedData,
/// then zero padding only.
fn parse_cms(contents: &[u8]) -> Result<Cms, PdfSignatureError> {
    let mut reader = SliceReader::new(contents).map_err(|_| E::MalformedCms)?;
    let content_info = ContentInfo::decode(&mut reader).map_err(|_| E::MalformedCms)?;
    let used = usize::try_from(u32::from(reader.position())).map_err(|_| E::MalformedCms)?;
    let (der, padding) = contents.split_at_checked(used).ok_or(E::MalformedCms)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(E::MalformedContents);
    }
    if content_info.content_type != ID_SIGNED_DATA
        || content_info.to_der().ok().as_deref() != Some(der)
    {
        return Err(E::MalformedCms);
    }
    let signed_data: SignedData = content_info
        .content
        .decode_as()
        .map_err(|_| E::MalformedCms)?;
    let encap = &signed_data.encap_content_info;
    if encap.econtent_type != ID_DATA || encap.econtent.is_some() {
        return Err(E::MalformedCms);
    }
    // signerInfos is SignedData's last field (RFC 5652 §5.1): read its raw bytes so that the
    // SignerInfo can be compared with its re-encoding.
    let mut fields = SliceReader::new(content_info.content.value()).map_err(|_| E::MalformedCms)?;
    let mut last = None;
    while !fields.is_finished() {
        last = Some(AnyRef::decode(&mut fields).map_err(|_| E::MalformedCms)?);
    }
    let signer_infos_der = last.ok_or(E::MalformedCms)?.value().to_vec();
    Ok(Cms {
        signed_data,
        signer_infos_der,
    })
}

/// The one SignerInfo of the CMS, as it was signed.
fn single_signer_info(cms: &Cms) -> Result<&SignerInfo, PdfSignatureError> {
    let [signer_info] = cms.signed_data.signer_infos.0.as_slice() else {
        return Err(E::SignerCount);
    };
    // The decoder sorts a SET OF as it reads it (the signed attributes are one). A SignerInfo
    // that does not re-encode to the bytes we read was not DER, and the attributes we would
    // hash would not be the ones that were signed. (The certificates may stay in chain order,
    // as our signer writes them: nothing here relies on them.)
    if signer_info.to_der().ok().as_deref() != Some(cms.signer_infos_der.as_slice()) {
        return Err(E::MalformedCms);
    }
    Ok(signer_info)
}

/// The one SignerInfo: algorithms, attributes, digest, identifier, signature.
fn verify_signer_info(
    signer_info: &SignerInfo,
    digest: &ring::digest::Digest,
    signer: &ExpectedSigner,
) -> Result<(), PdfSignatureError> {
    if signer_info.digest_alg.oid != ID_SHA256
        || signer_info.signature_algorithm.oid != ID_ECDSA_SHA256
    {
        return Err(E::UnsupportedAlgorithm);
    }
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or(E::MissingSignedAttributes)?;
    let content_type = single_attribute(attrs, ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or(E::ContentTypeAttribute)?;
    if content_type != ID_DATA {
        return Err(E::ContentTypeAttribute);
    }
    let message_digest = single_attribute(attrs, ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or(E::MessageDigestAttribute)?;
    if message_digest.as_bytes() != digest.as_ref() {
        return Err(E::DigestMismatch);
    }
    if !signer.is_named_by(&signer_info.sid) {
        return Err(E::SignerMismatch);
    }
    // What was signed is the DER of the attributes with the SET OF tag (RFC 5652 §5.4), not
    // the [0] IMPLICIT form they are stored in.
    let signed = attrs.to_der().map_err(|_| E::MalformedCms)?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        &signer.public_key,
    )
    .verify(&signed, signer_info.signature.as_bytes())
    .map_err(|_| E::BadSignature)
}

/// The value of an attribute that must occur once with one value.
fn single_attribute(attrs: &Attributes, oid: ObjectIdentifier) -> Option<&Any> {
    let mut matching = attrs.iter().filter(|a| a.oid == oid);
    let (Some(attr), None) = (matching.next(), matching.next()) else {
        return None;
    };
    match attr.values.as_slice() {
        [value] => Some(value),
        _ => None,
    }
}

/// The expected signer: how a SignerInfo may name it, and its P-256 key.
struct ExpectedSigner {
    certificate: Certificate,
    subject_key_id: Option<SubjectKeyIdentifier>,
    /// SEC1 point.
    public_key: Vec<u8>,
}

impl ExpectedSigner {
    fn parse(der: &[u8]) -> Result<ExpectedSigner, PdfSignatureError> {
        let certificate = Certificate::from_der(der).map_err(|_| E::Certificate)?;
        let tbs = &certificate.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(ID_P256) {
            return Err(E::Certificate);
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(E::Certificate)?
            .to_vec();
        let subject_key_id = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_SUBJECT_KEY_ID)
            .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok());
        Ok(ExpectedSigner {
            certificate,
            subject_key_id,
            public_key,
        })
    }

    fn is_named_by(&self, sid: &SignerIdentifier) -> bool {
        let tbs = &self.certificate.tbs_certificate;
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                id.issuer == tbs.issuer && id.serial_number == tbs.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                self.subject_key_id.as_ref() == Some(ski)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDF whose AcroForm lists one signature field, then `others` text fields.
    fn pdf_with_fields(others: usize) -> Vec<u8> {
        let field_refs: Vec<String> = (0..=others).map(|i| format!("{} 0 R", 4 + i)).collect();
        let mut objects = vec![
            format!(
                "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [{}] >> >>",
                field_refs.join(" ")
            ),
            "<< /Type /Pages /Kids [] /Count 0 >>".to_owned(),
            "<< /Type /Sig >>".to_owned(),
            "<< /FT /Sig /V 3 0 R >>".to_owned(),
        ];
        objects.extend((0..others).map(|_| "<< /FT /Tx >>".to_owned()));
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        let size = objects.len() + 1;
        out.extend_from_slice(
            format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n")
                .as_bytes(),
        );
        out
    }

    #[test]
    fn the_signature_field_is_looked_for_among_a_bounded_number_of_fields() {
        let within = pdf_with_fields(MAX_FORM_FIELDS - 1);
        let file = PdfFile::parse(&within).unwrap();
        let sig = signature_dictionary(&file).unwrap();
        assert_eq!(sig.get(b"Type"), Some(&Obj::Name(b"Sig".to_vec())));
        let beyond = pdf_with_fields(MAX_FORM_FIELDS);
        let file = PdfFile::parse(&beyond).unwrap();
        assert_eq!(
            signature_dictionary(&file).err(),
            Some(PdfSignatureError::SignatureField)
        );
    }

    #[test]
    fn names_are_read_with_escapes_and_bounded() {
        let (name, end) = read_name(b"/Byte#52ange [", 1);
        assert!(name.is(b"ByteRange"));
        assert_eq!(end, 12);
        // A `#` without two hex digits is itself; a name at the very end of the file ends there.
        let (name, end) = read_name(b"/Sig#", 1);
        assert!(name.is(b"Sig#"));
        assert_eq!(end, 5);
        let (name, _) = read_name(b"/ByteRangeByteRangeByteRange", 1);
        assert!(!name.is(b"ByteRange") && name.long);
    }

    #[test]
    fn the_census_counts_every_key_and_type_pair() {
        let census =
            Census::scan(b"<< /Type /Sig /ByteRange [] >> /Type/DocTimeStamp /Type (x) /Sig");
        assert_eq!((census.byte_ranges, census.sig_types), (1, 2));
        assert_eq!(
            census.single_byte_range(),
            Err(PdfSignatureError::MultipleSignatures)
        );
        assert_eq!(
            Census::scan(b"/FT /Sig").single_byte_range(),
            Err(PdfSignatureError::NoSignature)
        );
    }
}
