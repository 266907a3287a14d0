//! Signing keys that are either in memory (a PKCS#8 file, as ring loads it) or on a PKCS#11
//! token (the private key never leaves it), behind one [`Signer`].
//!
//! Operators name a key by a reference ([`Signer::open`]): a PEM file path, or an RFC 7512
//! PKCS#11 URI ([`uri::Pkcs11Uri`]) such as
//! `pkcs11:token=municipality;object=doc-signing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/kiosk/hsm.pin`.
//! The issuer's document signer (ECDSA P-256) and the audit log's checkpoint signer (Ed25519)
//! are built on it; it knows nothing of documents or checkpoints.
//!
//! Signatures come in the algorithm's natural fixed form: `r || s` (64 bytes) for ECDSA P-256,
//! which [`ecdsa_fixed_to_der`] turns into the DER that X.509 and CMS carry, and the 64-byte
//! Ed25519 signature.
#![forbid(unsafe_code)]

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, UnparsedPublicKey,
};
use zeroize::Zeroizing;

mod token;
pub mod uri;

use token::TokenKey;
pub use uri::{PinSource, Pkcs11Uri, UriError};

/// The signature algorithms a [`Signer`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (document signing).
    EcdsaP256Sha256,
    /// Ed25519 (audit checkpoints).
    Ed25519,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::EcdsaP256Sha256 => "an ECDSA P-256 key",
            Algorithm::Ed25519 => "an Ed25519 key",
        })
    }
}

/// Why a key could not be loaded or used. Texts name files, tokens and objects, never a PIN
/// or key material; the caller prefixes the setting the reference came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PKCS#11 URI is malformed.
    #[error("bad PKCS#11 URI: {0}")]
    Uri(#[from] UriError),
    /// The key file could not be read.
    #[error("cannot read key file {0}: {1}")]
    Read(String, String),
    /// The key file holds no `PRIVATE KEY` PEM block.
    #[error("key file {0}: no PKCS#8 `PRIVATE KEY` PEM block")]
    Pem(String),
    /// The PKCS#8 key is not of the algorithm asked for.
    #[error("the key is not {0}")]
    WrongAlgorithm(Algorithm),
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("PKCS#11 module {0}: {1}")]
    Module(String, String),
    /// No token with that label.
    #[error("no token labelled `{0}`")]
    TokenNotFound(String),
    /// The PIN source could not be read.
    #[error("PIN source: {0}")]
    PinSource(String),
    /// The token refused the PIN.
    #[error("the token refused the PIN (incorrect PIN)")]
    WrongPin,
    /// Another token failure (session, login, search).
    #[error("token: {0}")]
    Token(String),
    /// No private key object matches.
    #[error("no private key object {0} on the token")]
    ObjectNotFound(String),
    /// Several private key objects match.
    #[error("several private key objects match {0}; add id= or a unique object=")]
    Ambiguous(String),
    /// The object is not a key of the algorithm asked for.
    #[error("{0} is not {1}")]
    WrongKind(String, Algorithm),
    /// The matching public key object is missing or unreadable.
    #[error("no readable public key object matching {0} on the token")]
    PublicKey(String),
    /// The public key does not verify the private key's signature.
    #[error("the public key does not match the private key")]
    Mismatch,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A thread panicked while signing with this key.
    #[error("the key's session is unusable after a panic")]
    Poisoned,
}

enum Inner {
    Ecdsa(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
    Token(TokenKey),
}

/// A private key and what it signs with. `Debug` never shows the key.
pub struct Signer {
    inner: Inner,
    algorithm: Algorithm,
    public_key: Vec<u8>,
    description: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm)
            .field("key", &self.description)
            .finish()
    }
}

impl Signer {
    /// Opens the key a reference names: a `pkcs11:` URI, or else the path of a PEM file with
    /// a PKCS#8 `PRIVATE KEY`.
    pub fn open(reference: &str, algorithm: Algorithm) -> Result<Self, KeyError> {
        if reference.starts_with("pkcs11:") {
            Self::open_token(&Pkcs11Uri::parse(reference)?, algorithm)
        } else {
            Self::open_file(Path::new(reference), algorithm)
        }
    }

    /// Reads a PEM file with a PKCS#8 `PRIVATE KEY`.
    pub fn open_file(path: &Path, algorithm: Algorithm) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| KeyError::Read(shown.clone(), e.kind().to_string()))?,
        );
        let der = kiosk_document::pem::pem_blocks(&text, "PRIVATE KEY")
            .ok()
            .and_then(|blocks| blocks.into_iter().next())
            .map(Zeroizing::new)
            .ok_or_else(|| KeyError::Pem(shown.clone()))?;
        let mut signer = Self::from_pkcs8(&der, algorithm)?;
        signer.description = shown;
        Ok(signer)
    }

    /// An in-memory key from PKCS#8 DER.
    pub fn from_pkcs8(pkcs8: &[u8], algorithm: Algorithm) -> Result<Self, KeyError> {
        let wrong = |_| KeyError::WrongAlgorithm(algorithm);
        let (inner, public_key) = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let rng = SystemRandom::new();
                let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(wrong)?;
                let public = key.public_key().as_ref().to_vec();
                (Inner::Ecdsa(key, rng), public)
            }
            Algorithm::Ed25519 => {
                let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(wrong)?;
                let public = key.public_key().as_ref().to_vec();
                (Inner::Ed25519(key), public)
            }
        };
        Ok(Signer {
            inner,
            algorithm,
            public_key,
            description: "in-memory key".to_owned(),
        })
    }

    /// An in-memory Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let key = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| KeyError::WrongAlgorithm(Algorithm::Ed25519))?;
        let public_key = key.public_key().as_ref().to_vec();
        Ok(Signer {
            inner: Inner::Ed25519(key),
            algorithm: Algorithm::Ed25519,
            public_key,
            description: "in-memory key".to_owned(),
        })
    }

    /// Opens a key on a PKCS#11 token. A test signature, verified with the token's public key,
    /// proves at load time that the public key belongs to the private key.
    pub fn open_token(uri: &Pkcs11Uri, algorithm: Algorithm) -> Result<Self, KeyError> {
        let (key, public_key) = TokenKey::open(uri, algorithm)?;
        let signer = Signer {
            inner: Inner::Token(key),
            algorithm,
            public_key,
            description: uri.to_string(),
        };
        let probe = b"kiosk-keys: does the public key match?";
        let signature = signer.sign(probe)?;
        signer.verify(probe, &signature)?;
        Ok(signer)
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key: SEC1 uncompressed (65 bytes) for P-256, 32 raw bytes for Ed25519.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Whether the private key is on a token.
    pub fn is_token(&self) -> bool {
        matches!(self.inner, Inner::Token(_))
    }

    /// What the key is, for logs: a file path or a URI without its query; never key material.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Signs `message`: ECDSA P-256 over its SHA-256 digest, fixed `r || s`; or Ed25519.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ecdsa(key, rng) => key
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign("ECDSA".to_owned())),
            Inner::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            Inner::Token(key) => key.sign(message),
        }
    }

    /// Verifies a signature of this key (in the form [`Signer::sign`] returns).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let algorithm: &dyn ring::signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_FIXED,
            Algorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(message, signature)
            .map_err(|_| KeyError::Mismatch)
    }
}

/// An ECDSA signature's fixed `r || s` as the DER `ECDSA-Sig-Value` X.509 and CMS carry.
pub fn ecdsa_fixed_to_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = der_uint(r);
    body.extend(der_uint(s));
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

/// A DER INTEGER of an unsigned big-endian number: leading zeros dropped, one added back when
/// the high bit is set.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let digits = &bytes[skip.min(bytes.len().saturating_sub(1))..];
    let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
    let mut out = vec![0x02];
    push_len(&mut out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::ECDSA_P256_SHA256_ASN1;

    #[test]
    fn fixed_signatures_become_der_ring_accepts() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let signer = Signer::from_pkcs8(pkcs8.as_ref(), Algorithm::EcdsaP256Sha256).unwrap();
        // Enough signatures that some r or s has its high bit set or a leading zero byte.
        for i in 0..64u8 {
            let message = [i; 10];
            let fixed = signer.sign(&message).unwrap();
            signer.verify(&message, &fixed).unwrap();
            let der = ecdsa_fixed_to_der(&fixed);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, signer.public_key())
                .verify(&message, &der)
                .unwrap();
        }
    }

    #[test]
    fn der_integers_are_minimal() {
        assert_eq!(der_uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(der_uint(&[0, 0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_uint(&[0, 0]), vec![2, 1, 0]);
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_refused() {
        let rng = SystemRandom::new();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        assert_eq!(
            Signer::from_pkcs8(ed.as_ref(), Algorithm::EcdsaP256Sha256).unwrap_err(),
            KeyError::WrongAlgorithm(Algorithm::EcdsaP256Sha256)
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Signer::open(missing.to_str().unwrap(), Algorithm::Ed25519).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let not_pem = dir.path().join("key.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = Signer::open(not_pem.to_str().unwrap(), Algorithm::Ed25519).unwrap_err();
        assert_eq!(e, KeyError::Pem(not_pem.display().to_string()));
    }
}
