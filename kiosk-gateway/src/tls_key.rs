//! The gateway's TLS server key: a PEM file, or an ECDSA P-256 key on a PKCS#11 token that
//! signs each handshake where it lives (`keys.server_key = "pkcs11:…"`).
//!
//! rustls asks a [`SigningKey`] for a signer per handshake; the token key offers
//! `ecdsa_secp256r1_sha256` only, and signs through `kiosk_keys::Signer` (SHA-256 is hashed by
//! the token's CKM_ECDSA_SHA256 or by kiosk-keys, as the module supports), turning the
//! token's fixed `r || s` into the DER TLS carries. Its public key is given to rustls as a
//! SubjectPublicKeyInfo, so a certificate that does not belong to the key is refused at
//! start (`CertifiedKey::keys_match`), never at the first terminal's handshake.
//!
//! A token signature is a blocking call in the handshake task. SoftHSM2 answers in tens of
//! microseconds; a network HSM's latency is added to every terminal's connection set-up, not
//! to its requests (HTTP/2 connections are long-lived).

use std::sync::Arc;

use kiosk_keys::{Algorithm, Signer as KeySigner};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

/// Why the server key cannot sign for the certificate (`tls::TlsError::Material` carries it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServerKeyError(String);

/// Where the server's private key is.
pub enum ServerKey {
    /// A PEM private key (PKCS#8, PKCS#1 or SEC1), as read from `keys.server_key`.
    Pem(Vec<u8>),
    /// A P-256 key on a PKCS#11 token, opened.
    Token(Arc<KeySigner>),
}

impl ServerKey {
    /// The key certified by `chain` (leaf first), checked to match the leaf's public key.
    pub fn certify(
        &self,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<CertifiedKey, ServerKeyError> {
        let key: Arc<dyn SigningKey> = match self {
            ServerKey::Pem(pem) => {
                let der = kiosk_document::pem::private_key(pem)
                    .map_err(|e| ServerKeyError(format!("server key: {e}")))?;
                rustls::crypto::ring::sign::any_supported_type(&der)
                    .map_err(|e| ServerKeyError(format!("server key: {e}")))?
            }
            ServerKey::Token(signer) => Arc::new(TokenTlsKey::new(signer.clone())?),
        };
        let certified = CertifiedKey::new(chain, key);
        certified
            .keys_match()
            .map_err(|e| ServerKeyError(format!("server certificate and key: {e}")))?;
        Ok(certified)
    }
}

/// A token's P-256 key as rustls signs with it.
#[derive(Debug)]
struct TokenTlsKey {
    signer: Arc<KeySigner>,
    spki: Vec<u8>,
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed point:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (no unused bits) }`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl TokenTlsKey {
    fn new(signer: Arc<KeySigner>) -> Result<Self, ServerKeyError> {
        let point = signer.public_key();
        if signer.algorithm() != Algorithm::EcdsaP256Sha256 || point.len() != 65 {
            return Err(ServerKeyError(
                "keys.server_key: a token key for TLS must be ECDSA P-256".into(),
            ));
        }
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        Ok(TokenTlsKey { signer, spki })
    }
}

impl SigningKey for TokenTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(TokenTlsSigner(self.signer.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TokenTlsSigner(Arc<KeySigner>);

impl Signer for TokenTlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let fixed = self
            .0
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("server key on token: {e}")))?;
        Ok(kiosk_keys::ecdsa_fixed_to_der(&fixed))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}
