//! The municipality's document-signing key, and the embedded PDF signature (PAdES B-B).
//!
//! # Approach
//!
//! krilla writes the document; this module then appends one *incremental update* with:
//! the signature dictionary (`/Type /Sig /Filter /Adobe.PPKLite /SubFilter
//! /ETSI.CAdES.detached`, `/ByteRange`, `/Contents`, `/M`), an invisible signature widget on
//! page 1, a new catalog with `/AcroForm << /Fields [...] /SigFlags 3 >>`, and every page
//! dictionary rewritten with its subject marker ([`kiosk_document::markers`]). The
//! `/Contents` placeholder is filled last with a detached CMS `SignedData` over the byte ranges
//! (everything but the placeholder), so the markers are covered by the signature.
//!
//! The CMS is built by hand with a small DER writer: SignedData v1, digest SHA-256,
//! `id-data` detached content, the signer certificate (and chain), one SignerInfo
//! (issuerAndSerialNumber) with signed attributes content-type, message-digest and
//! signing-certificate-v2 (ESS, RFC 5035, as PAdES requires), signed with ECDSA P-256/SHA-256
//! by a [`kiosk_keys::Signer`]: ring with a PKCS#8 key, or a PKCS#11 token whose key never
//! leaves it (both give the fixed `r || s`, turned into the DER that CMS carries). No
//! signing-time attribute: PAdES B-B puts the time in `/M`.
//!
//! [`kiosk_document::signature::verify_pdf_signature`] accepts exactly this shape and nothing
//! else: one signature dictionary in the whole file, a `/ByteRange` covering every byte but the
//! `/Contents` string, and the CMS parsed with RustCrypto's `cms` crate. The space reserved for
//! the CMS ([`CONTENTS_LEN`]) is defined there, once for both sides.

use std::collections::BTreeMap;

use kiosk_document::MunicipalityCode;
use kiosk_document::markers::{MARKER_KEY, PageMarker};
use kiosk_document::model::IssuedAt;
use kiosk_document::pdf::{self, Obj, PdfError, PdfFile};
use kiosk_document::pem::pem_blocks;
use kiosk_document::qr;
use kiosk_document::signature::CONTENTS_LEN;
use kiosk_keys::{Algorithm, Signer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The `/ByteRange` as first written: fixed-width, so the real numbers replace it in place.
const PLACEHOLDER_BYTE_RANGE: &str = "/ByteRange [0 0000000000 0000000000 0000000000]";

/// Signing errors.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key is not a P-256 key or does not match the certificate.
    #[error("invalid signing key")]
    Key,
    /// The key's public key is not the signer certificate's.
    #[error("the signing key does not match the signer certificate")]
    KeyMismatch,
    /// A certificate does not parse.
    #[error("invalid certificate")]
    Certificate,
    /// PEM input is malformed.
    #[error("invalid PEM")]
    Pem,
    /// The rendered PDF could not be read back for the update.
    #[error(transparent)]
    Pdf(#[from] PdfError),
    /// The number of markers differs from the number of pages.
    #[error("marker count does not match page count")]
    Markers,
    /// ECDSA signing failed (in ring or on the token).
    #[error("signing failed: {0}")]
    Sign(kiosk_keys::KeyError),
    /// A certificate request could not be built.
    #[error("certificate request: {0}")]
    Request(String),
    /// The CMS does not fit the reserved space.
    #[error("signature too large")]
    TooLarge,
}

/// A municipality's document-signing key with its certificate chain. `Debug` never shows
/// the key.
pub struct DocumentSigner {
    key: Signer,
    // signer certificate first, then intermediates/CA
    chain: Vec<Vec<u8>>,
    issuer_name: Vec<u8>,
    serial: Vec<u8>,
    municipality: Option<MunicipalityCode>,
}

impl std::fmt::Debug for DocumentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentSigner")
            .field("municipality", &self.municipality)
            .field("key", &self.key)
            .finish()
    }
}

impl DocumentSigner {
    /// From a PKCS#8 P-256 key and the certificate chain (signer first), all DER.
    pub fn from_der(pkcs8: &[u8], chain: Vec<Vec<u8>>) -> Result<Self, SignError> {
        let key =
            Signer::from_pkcs8(pkcs8, Algorithm::EcdsaP256Sha256).map_err(|_| SignError::Key)?;
        Self::new(key, chain)
    }

    /// From a P-256 signer (in memory or on a token) and the certificate chain (signer first,
    /// DER), which must certify the signer's public key.
    pub fn new(key: Signer, chain: Vec<Vec<u8>>) -> Result<Self, SignError> {
        if key.algorithm() != Algorithm::EcdsaP256Sha256 {
            return Err(SignError::Key);
        }
        let leaf = chain.first().ok_or(SignError::Certificate)?;
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|_| SignError::Certificate)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key() {
            return Err(SignError::KeyMismatch);
        }
        let issuer_name = cert.tbs_certificate.issuer.as_raw().to_vec();
        let serial = cert.tbs_certificate.raw_serial().to_vec();
        let (_, municipality) = kiosk_document::cert::public_key_and_municipality(leaf)
            .map_err(|_| SignError::Certificate)?;
        Ok(DocumentSigner {
            key,
            chain,
            issuer_name,
            serial,
            municipality,
        })
    }

    /// From PEM texts: a `PRIVATE KEY` (PKCS#8) and `CERTIFICATE`s (signer first).
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<Self, SignError> {
        let key = pem_blocks(key_pem, "PRIVATE KEY")
            .map_err(|_| SignError::Pem)?
            .into_iter()
            .next()
            .ok_or(SignError::Pem)?;
        let chain = pem_blocks(chain_pem, "CERTIFICATE").map_err(|_| SignError::Pem)?;
        Self::from_der(&key, chain)
    }

    /// The SEC1 uncompressed public key.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key()
    }

    /// The key: where it is (file or token) and its algorithm, for logs.
    pub fn key(&self) -> &Signer {
        &self.key
    }

    /// The QR key id of this key.
    pub fn key_id(&self) -> [u8; 8] {
        kiosk_document::qr::key_id(self.public_key())
    }

    /// The municipality named in the certificate's SAN, if any.
    pub fn municipality(&self) -> Option<&MunicipalityCode> {
        self.municipality.as_ref()
    }

    /// The signer certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// Signs QR payload fields into the payload text (`KV1:` and base45 of the body and its
    /// 64-byte fixed `r || s` signature). The format is [`kiosk_document::qr`]'s; only the
    /// private key is here.
    pub fn sign_qr_payload(&self, fields: &qr::PayloadFields) -> Result<String, SignError> {
        let body = fields.body();
        let signature = self
            .key
            .sign(&qr::signed_message(&body))
            .map_err(SignError::Sign)?;
        Ok(qr::assemble(&body, signature.as_ref()))
    }

    /// Appends markers and the PAdES signature to a rendered PDF.
    pub fn sign_pdf(
        &self,
        rendered: &[u8],
        markers: &[PageMarker],
        signed_at: IssuedAt,
    ) -> Result<Vec<u8>, SignError> {
        let file = PdfFile::parse(rendered)?;
        let pages = file.pages()?;
        if pages.len() != markers.len() || pages.is_empty() {
            return Err(SignError::Markers);
        }
        let (cat_num, mut catalog) = file.catalog()?;
        let mut next = file.size()?;
        let sig_num = next;
        let widget_num = next + 1;
        next += 2;
        let _ = next;
        let mut objects: BTreeMap<u32, Vec<u8>> = BTreeMap::new();

        // Pages with markers; the widget sits on page 1.
        for (i, ((num, dict), marker)) in pages.iter().zip(markers).enumerate() {
            let mut d = dict.clone();
            d.set(MARKER_KEY, marker.to_obj());
            if i == 0 {
                let mut annots = match d.get(b"Annots") {
                    Some(Obj::Array(a)) => a.clone(),
                    Some(r @ Obj::Ref(..)) => match file.resolve(r)? {
                        Obj::Array(a) => a,
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                annots.push(Obj::Ref(widget_num, 0));
                d.set(b"Annots", Obj::Array(annots));
            }
            let mut body = Vec::new();
            Obj::Dict(d).write(&mut body);
            objects.insert(*num, body);
        }

        let first_page = pages[0].0;
        let widget = format!(
            "<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /V {sig_num} 0 R \
             /P {first_page} 0 R /Rect [0 0 0 0] /F 132 >>"
        );
        objects.insert(widget_num, widget.into_bytes());

        let mut acro = pdf::Dict::default();
        acro.set(b"Fields", Obj::Array(vec![Obj::Ref(widget_num, 0)]));
        acro.set(b"SigFlags", Obj::Int(3));
        catalog.set(b"AcroForm", Obj::Dict(acro));
        let mut cat_body = Vec::new();
        Obj::Dict(catalog).write(&mut cat_body);
        objects.insert(cat_num, cat_body);

        // Signature dictionary with fixed-width placeholders.
        let dt = signed_at.jst();
        let m = format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}+09'00'",
            dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
        );
        let sig = format!(
            "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached \
             {PLACEHOLDER_BYTE_RANGE} /M ({m}) /Contents <{}> >>",
            "0".repeat(CONTENTS_LEN * 2)
        );
        objects.insert(sig_num, sig.into_bytes());

        let out = pdf::incremental_update(rendered, &file, &objects)?;
        self.fill_signature(out, sig_num)
    }

    /// Fills the placeholders of signature object `sig_num` in `out`: the real `/ByteRange`,
    /// then the CMS over every byte but the `/Contents` string.
    fn fill_signature(&self, mut out: Vec<u8>, sig_num: u32) -> Result<Vec<u8>, SignError> {
        let placeholder_br = PLACEHOLDER_BYTE_RANGE;
        // Locate the placeholders inside the signature object just written.
        let sig_header = format!("\n{sig_num} 0 obj\n");
        let sig_at = find_last(&out, sig_header.as_bytes()).ok_or(SignError::Markers)?;
        let br_at =
            sig_at + find(&out[sig_at..], placeholder_br.as_bytes()).ok_or(SignError::Markers)?;
        let c_at = sig_at + find(&out[sig_at..], b"/Contents <").ok_or(SignError::Markers)?;
        let c_start = c_at + b"/Contents ".len(); // at '<'
        let c_end = c_start + CONTENTS_LEN * 2 + 2; // after '>'
        let total = out.len();
        let br = format!(
            "/ByteRange [0 {:010} {:010} {:010}]",
            c_start,
            c_end,
            total - c_end
        );
        if br.len() != placeholder_br.len() {
            return Err(SignError::TooLarge);
        }
        out[br_at..br_at + br.len()].copy_from_slice(br.as_bytes());

        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&out[..c_start]);
        ctx.update(&out[c_end..]);
        let digest = ctx.finish();
        let cms = self.cms_signed_data(digest.as_ref())?;
        if cms.len() > CONTENTS_LEN {
            return Err(SignError::TooLarge);
        }
        let hex: String = cms.iter().map(|b| format!("{b:02X}")).collect();
        out[c_start + 1..c_start + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(out)
    }

    /// The detached CMS SignedData (DER) for a message digest.
    fn cms_signed_data(&self, message_digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let leaf = self.certificate();
        let cert_hash = ring::digest::digest(&ring::digest::SHA256, leaf);

        let sha256_alg = der::seq(&[der::oid(OID_SHA256)]);
        // ESSCertIDv2 with the default hash algorithm (SHA-256, omitted) and issuerSerial.
        let issuer_serial = der::seq(&[
            der::seq(&[der::tlv(0xA4, &self.issuer_name)]),
            der::tlv(0x02, &self.serial),
        ]);
        let ess_cert_id = der::seq(&[der::tlv(0x04, cert_hash.as_ref()), issuer_serial]);
        let signing_cert_v2 = der::seq(&[der::seq(&[ess_cert_id])]);

        let mut attrs = [
            der::seq(&[der::oid(OID_CONTENT_TYPE), der::set(&[der::oid(OID_DATA)])]),
            der::seq(&[
                der::oid(OID_MESSAGE_DIGEST),
                der::set(&[der::tlv(0x04, message_digest)]),
            ]),
            der::seq(&[der::oid(OID_SIGNING_CERT_V2), der::set(&[signing_cert_v2])]),
        ];
        // DER SET OF: sorted by encoding.
        attrs.sort();
        let signed_attrs_set = der::tlv(0x31, &attrs.concat());
        let signature = kiosk_keys::ecdsa_fixed_to_der(
            &self.key.sign(&signed_attrs_set).map_err(SignError::Sign)?,
        );
        let signed_attrs_implicit = der::tlv(0xA0, &attrs.concat());

        let signer_info = der::seq(&[
            der::int_small(1),
            der::seq(&[self.issuer_name.clone(), der::tlv(0x02, &self.serial)]),
            sha256_alg.clone(),
            signed_attrs_implicit,
            der::seq(&[der::oid(OID_ECDSA_SHA256)]),
            der::tlv(0x04, signature.as_ref()),
        ]);
        let certs = der::tlv(0xA0, &self.chain.concat());
        let signed_data = der::seq(&[
            der::int_small(1),
            der::set(&[sha256_alg]),
            der::seq(&[der::oid(OID_DATA)]),
            certs,
            der::set(&[signer_info]),
        ]);
        Ok(der::seq(&[
            der::oid(OID_SIGNED_DATA),
            der::tlv(0xA0, &signed_data),
        ]))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

const OID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const OID_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const OID_CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
const OID_MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
const OID_SIGNING_CERT_V2: &[u64] = &[1, 2, 840, 113_549, 1, 9, 16, 2, 47];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];

/// A tiny DER writer: enough for CMS SignedData.
pub(crate) mod der {
    /// Tag, length, value.
    pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 6);
        out.push(tag);
        let n = value.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(value);
        out
    }

    /// SEQUENCE of already-encoded elements.
    pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &items.concat())
    }

    /// SET of already-encoded elements, sorted as DER requires.
    pub fn set(items: &[Vec<u8>]) -> Vec<u8> {
        let mut v = items.to_vec();
        v.sort();
        tlv(0x31, &v.concat())
    }

    /// A small non-negative INTEGER.
    pub fn int_small(v: u8) -> Vec<u8> {
        if v < 0x80 {
            tlv(0x02, &[v])
        } else {
            tlv(0x02, &[0, v])
        }
    }

    /// OBJECT IDENTIFIER from its arcs (at least two).
    pub fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = Vec::new();
        let (a, b) = (
            arcs.first().copied().unwrap_or(0),
            arcs.get(1).copied().unwrap_or(0),
        );
        let mut enc = |mut v: u64| {
            let mut tmp = vec![(v & 0x7F) as u8];
            v >>= 7;
            while v > 0 {
                tmp.push(0x80 | (v & 0x7F) as u8);
                v >>= 7;
            }
            tmp.reverse();
            body.extend_from_slice(&tmp);
        };
        enc(a * 40 + b);
        for &arc in arcs.iter().skip(2) {
            enc(arc);
        }
        tlv(0x06, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::der;

    #[test]
    fn der_encodings() {
        assert_eq!(
            der::oid(&[1, 2, 840, 113_549, 1, 7, 2]),
            vec![
                0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02
            ]
        );
        assert_eq!(der::tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der::tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(der::int_small(1), vec![2, 1, 1]);
    }
}
