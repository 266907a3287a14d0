//! The signed QR payload printed on every certificate, and its offline verifier.
//!
//! # Format `KV1`
//!
//! Text: `"KV1:"` followed by the RFC 9285 base45 encoding of `body || signature`, so the
//! whole payload stays in the QR alphanumeric mode (≈ 5.5 bits per character).
//!
//! `body` (big-endian integers):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `0x01` |
//! | 1 | certificate type, kiosk.v1 number 1..=7 |
//! | 3 | municipality code as an integer (6 digits incl. check digit) |
//! | 8 | issue time, UNIX seconds (i64) |
//! | 8 | key id: first 8 bytes of SHA-256 of the signer's SEC1 uncompressed public key |
//! | 32 | content digest: SHA-256 of [`Certificate::canonical_content`] |
//! | 1 + n | serial (交付番号): length n ≤ 32, then ASCII |
//!
//! `signature`: 64 bytes, ECDSA P-256 with SHA-256 in fixed `r || s` form, over the ASCII
//! bytes `"KV1:"` followed by `body` (the prefix is a domain separator).
//!
//! A verifier holds [`TrustedKeys`] (municipality code → public key, loaded from the
//! municipality's document-signing certificate or a raw key) and calls
//! [`verify_qr_payload`]. A [`VerifiedSummary`] only comes out of that function, so holding one
//! is proof that the signature checked; comparing its digest with the content in hand
//! ([`VerifiedSummary::check_content`]) proves the printed content was not changed.

use std::collections::HashMap;

use ring::signature::{self, UnparsedPublicKey};

use crate::certificate_type::CertificateType;
use crate::ids::Serial;
use crate::model::{Certificate, IssuedAt};
use crate::municipality::MunicipalityCode;

/// The text prefix of a payload.
pub const PREFIX: &str = "KV1:";
const VERSION: u8 = 1;
const SIG_LEN: usize = 64;
const FIXED_LEN: usize = 1 + 1 + 3 + 8 + 8 + 32;
/// Longest accepted payload text (a generous bound over the largest valid payload).
pub const MAX_PAYLOAD_LEN: usize = 512;

/// Why a QR payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// Not a `KV1:` payload.
    #[error("not a KV1 payload")]
    Prefix,
    /// Too long.
    #[error("payload too long")]
    TooLong,
    /// Not valid base45.
    #[error("invalid base45")]
    Base45,
    /// The body is truncated, has trailing bytes or an unknown version.
    #[error("malformed payload body")]
    Malformed,
    /// A field does not parse (type, municipality code, serial, time).
    #[error("invalid payload field")]
    Field,
    /// No trusted key with this key id, or the key belongs to another municipality.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The signature verified but the content digest differs from the content in hand.
    #[error("content digest mismatch")]
    ContentMismatch,
    /// A trusted key could not be loaded.
    #[error("invalid trusted key")]
    InvalidKey,
}

/// Key id of a SEC1 uncompressed P-256 public key: SHA-256 prefix.
pub fn key_id(public_key: &[u8]) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d.as_ref()[..8]);
    id
}

/// The unsigned fields of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFields {
    /// Certificate type.
    pub kind: CertificateType,
    /// Issuing municipality.
    pub municipality: MunicipalityCode,
    /// Issue time.
    pub issued_at: IssuedAt,
    /// Signer key id.
    pub key_id: [u8; 8],
    /// SHA-256 of the canonical printed content.
    pub content_digest: [u8; 32],
    /// 交付番号.
    pub serial: Serial,
}

impl PayloadFields {
    /// The fields for a certificate signed by the key with `key_id`.
    pub fn for_certificate(cert: &Certificate, key_id: [u8; 8]) -> Self {
        PayloadFields {
            kind: cert.kind(),
            municipality: cert.municipality().code.clone(),
            issued_at: cert.issued_at(),
            key_id,
            content_digest: cert.content_digest(),
            serial: cert.serial().clone(),
        }
    }

    /// Encodes the body.
    pub fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_LEN + 33);
        b.push(VERSION);
        b.push(self.kind.number());
        // Six ASCII digits always parse and fit in 24 bits (< 1,000,000).
        let code: u32 = self.municipality.as_str().parse().unwrap_or(0);
        b.extend_from_slice(&code.to_be_bytes()[1..]);
        b.extend_from_slice(&self.issued_at.unix_seconds().to_be_bytes());
        b.extend_from_slice(&self.key_id);
        b.extend_from_slice(&self.content_digest);
        let s = self.serial.as_str().as_bytes();
        b.push(s.len() as u8);
        b.extend_from_slice(s);
        b
    }

    fn parse_body(b: &[u8]) -> Result<Self, QrError> {
        if b.len() < FIXED_LEN + 1 || b[0] != VERSION {
            return Err(QrError::Malformed);
        }
        let kind = CertificateType::from_number(b[1]).ok_or(QrError::Field)?;
        let code = u32::from_be_bytes([0, b[2], b[3], b[4]]);
        let municipality =
            MunicipalityCode::parse(&format!("{code:06}")).map_err(|_| QrError::Field)?;
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[5..13]);
        let issued_at =
            IssuedAt::from_unix_seconds(i64::from_be_bytes(t)).map_err(|_| QrError::Field)?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&b[13..21]);
        let mut content_digest = [0u8; 32];
        content_digest.copy_from_slice(&b[21..53]);
        let n = usize::from(b[53]);
        if b.len() != FIXED_LEN + 1 + n {
            return Err(QrError::Malformed);
        }
        let serial = std::str::from_utf8(&b[54..])
            .ok()
            .and_then(|s| Serial::parse(s).ok())
            .ok_or(QrError::Field)?;
        Ok(PayloadFields {
            kind,
            municipality,
            issued_at,
            key_id,
            content_digest,
            serial,
        })
    }
}

/// The message the signature covers: `"KV1:" || body`.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(PREFIX.len() + body.len());
    m.extend_from_slice(PREFIX.as_bytes());
    m.extend_from_slice(body);
    m
}

/// Assembles the payload text from a body and its 64-byte fixed signature.
pub fn assemble(body: &[u8], signature: &[u8]) -> String {
    let mut all = Vec::with_capacity(body.len() + signature.len());
    all.extend_from_slice(body);
    all.extend_from_slice(signature);
    format!("{PREFIX}{}", base45_encode(&all))
}

/// Public keys a verifier trusts, by key id, each bound to one municipality.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: HashMap<[u8; 8], (MunicipalityCode, Vec<u8>)>,
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts a SEC1 uncompressed P-256 public key (65 bytes) for a municipality.
    pub fn add_public_key(
        &mut self,
        municipality: MunicipalityCode,
        sec1: &[u8],
    ) -> Result<[u8; 8], QrError> {
        if sec1.len() != 65 || sec1[0] != 4 {
            return Err(QrError::InvalidKey);
        }
        let id = key_id(sec1);
        self.keys.insert(id, (municipality, sec1.to_vec()));
        Ok(id)
    }

    /// Trusts the key of a document-signing certificate (DER). The municipality is taken
    /// from its `urn:kiosk:municipality:<code>` SAN URI (the test PKI's convention) unless
    /// given explicitly. The caller is responsible for having validated the certificate's
    /// chain; this function only extracts the key.
    pub fn add_certificate_der(
        &mut self,
        cert_der: &[u8],
        municipality: Option<MunicipalityCode>,
    ) -> Result<[u8; 8], QrError> {
        let (point, san) =
            crate::cert::public_key_and_municipality(cert_der).map_err(|_| QrError::InvalidKey)?;
        let code = municipality.or(san).ok_or(QrError::InvalidKey)?;
        self.add_public_key(code, &point)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A payload whose signature verified against a trusted key. Only [`verify_qr_payload`]
/// builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSummary {
    fields: PayloadFields,
}

impl VerifiedSummary {
    /// The verified fields.
    pub fn fields(&self) -> &PayloadFields {
        &self.fields
    }

    /// Checks that `cert` is the content that was signed (its canonical digest and header
    /// fields match).
    pub fn check_content(&self, cert: &Certificate) -> Result<(), QrError> {
        let f = &self.fields;
        if cert.content_digest() != f.content_digest
            || cert.serial() != &f.serial
            || cert.kind() != f.kind
            || cert.municipality().code != f.municipality
            || cert.issued_at() != f.issued_at
        {
            return Err(QrError::ContentMismatch);
        }
        Ok(())
    }
}

/// Parses and verifies a payload text against the trusted keys. Accepts untrusted input of
/// any length and content; every failure is a [`QrError`].
pub fn verify_qr_payload(payload: &str, trusted: &TrustedKeys) -> Result<VerifiedSummary, QrError> {
    let (fields, body, sig) = parse_unverified(payload)?;
    let (code, key) = trusted
        .keys
        .get(&fields.key_id)
        .ok_or(QrError::UnknownKey)?;
    if *code != fields.municipality {
        return Err(QrError::UnknownKey);
    }
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key)
        .verify(&signed_message(&body), &sig)
        .map_err(|_| QrError::BadSignature)?;
    Ok(VerifiedSummary { fields })
}

/// Parses a payload without verifying it (for display and fuzzing). Never trust the result.
pub fn parse_unverified(payload: &str) -> Result<(PayloadFields, Vec<u8>, Vec<u8>), QrError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(QrError::TooLong);
    }
    let rest = payload.strip_prefix(PREFIX).ok_or(QrError::Prefix)?;
    let all = base45_decode(rest)?;
    if all.len() < SIG_LEN + FIXED_LEN + 1 {
        return Err(QrError::Malformed);
    }
    let (body, sig) = all.split_at(all.len() - SIG_LEN);
    let fields = PayloadFields::parse_body(body)?;
    Ok((fields, body.to_vec(), sig.to_vec()))
}

const B45: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// RFC 9285 base45 encoding.
pub fn base45_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() / 2 * 3 + 2);
    for chunk in data.chunks(2) {
        if let [a, b] = chunk {
            let n = u32::from(*a) * 256 + u32::from(*b);
            out.push(char::from(B45[(n % 45) as usize]));
            out.push(char::from(B45[(n / 45 % 45) as usize]));
            out.push(char::from(B45[(n / 2025) as usize]));
        } else {
            let n = u32::from(chunk[0]);
            out.push(char::from(B45[(n % 45) as usize]));
            out.push(char::from(B45[(n / 45) as usize]));
        }
    }
    out
}

/// RFC 9285 base45 decoding; rejects characters outside the alphabet, a dangling single
/// character and values over 65535 / 255.
pub fn base45_decode(text: &str) -> Result<Vec<u8>, QrError> {
    let vals: Vec<u32> = text
        .bytes()
        .map(|c| B45.iter().position(|&x| x == c).map(|p| p as u32))
        .collect::<Option<_>>()
        .ok_or(QrError::Base45)?;
    let mut out = Vec::with_capacity(vals.len() / 3 * 2 + 1);
    for chunk in vals.chunks(3) {
        match chunk {
            [c, d, e] => {
                let n = c + d * 45 + e * 2025;
                if n > 0xFFFF {
                    return Err(QrError::Base45);
                }
                out.push((n >> 8) as u8);
                out.push((n & 0xFF) as u8);
            }
            [c, d] => {
                let n = c + d * 45;
                if n > 0xFF {
                    return Err(QrError::Base45);
                }
                out.push(n as u8);
            }
            _ => return Err(QrError::Base45),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base45_rfc_vectors() {
        assert_eq!(base45_encode(b"AB"), "BB8");
        assert_eq!(base45_encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(base45_encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(base45_decode("QED8WEX0").unwrap(), b"ietf!");
        assert!(base45_decode("GGW").is_err()); // 65536
        assert!(base45_decode("A").is_err());
        assert!(base45_decode("abc").is_err());
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        let keys = TrustedKeys::new();
        for p in [
            "",
            "KV1:",
            "KV1:00",
            "KV2:ABC",
            &format!("KV1:{}", "0".repeat(600)),
        ] {
            assert!(verify_qr_payload(p, &keys).is_err());
        }
    }
}
