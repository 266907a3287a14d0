//! The bytes a card signs to log a resident in, as fixed by the kiosk.v1 contract
//! (`AuthenticateRequest.signature` in `proto/kiosk/v1/terminal.proto`).
//!
//! The terminal sends [`digest_info`] to the card; the gateway rebuilds [`signed_message`]
//! from its own stored challenge and context and verifies an RSASSA-PKCS1-v1_5 SHA-256
//! signature over it. Both sides call this module, so the format exists once.

use ring::digest::{SHA256, digest};

/// The domain tag that starts every signed login message; it keeps these signatures apart
/// from any other use of the card's authentication key.
pub const DOMAIN_TAG: &[u8] = b"KIOSK-V1-CARD-AUTH\0";

/// The prefix of `AuthContext`'s canonical encoding.
pub const CONTEXT_PREFIX: &str = "kiosk.v1/auth-context";

/// The DER prefix of a SHA-256 DigestInfo (RFC 8017 section 9.2, note 1).
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Length of the signed message: tag, two SHA-256 hashes.
pub const SIGNED_MESSAGE_LEN: usize = DOMAIN_TAG.len() + 32 + 32;

/// The canonical encoding of the authentication context:
/// `"kiosk.v1/auth-context\n" gateway_id "\n" terminal_id "\n" session_id`.
///
/// Returns `None` when an identifier is empty or contains a newline, which would make the
/// encoding ambiguous.
pub fn context_bytes(gateway_id: &str, terminal_id: &str, session_id: &str) -> Option<Vec<u8>> {
    let ids = [gateway_id, terminal_id, session_id];
    if ids.iter().any(|id| id.is_empty() || id.contains('\n')) {
        return None;
    }
    Some(format!("{CONTEXT_PREFIX}\n{gateway_id}\n{terminal_id}\n{session_id}").into_bytes())
}

/// The message whose RSASSA-PKCS1-v1_5 SHA-256 signature proves the login:
/// `DOMAIN_TAG || SHA-256(context) || SHA-256(challenge)`.
pub fn signed_message(context: &[u8], challenge: &[u8]) -> [u8; SIGNED_MESSAGE_LEN] {
    let mut message = [0u8; SIGNED_MESSAGE_LEN];
    let (tag, rest) = message.split_at_mut(DOMAIN_TAG.len());
    let (context_hash, challenge_hash) = rest.split_at_mut(32);
    tag.copy_from_slice(DOMAIN_TAG);
    context_hash.copy_from_slice(digest(&SHA256, context).as_ref());
    challenge_hash.copy_from_slice(digest(&SHA256, challenge).as_ref());
    message
}

/// The 51-byte DigestInfo the terminal hands the card's COMPUTE DIGITAL SIGNATURE command.
pub fn digest_info(context: &[u8], challenge: &[u8]) -> [u8; 51] {
    let mut info = [0u8; 51];
    let (prefix, hash) = info.split_at_mut(SHA256_DIGEST_INFO_PREFIX.len());
    prefix.copy_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    hash.copy_from_slice(digest(&SHA256, &signed_message(context, challenge)).as_ref());
    info
}

/// What the terminal sends in `AuthenticateRequest`: the card's user-authentication
/// certificate and its signature over the bound login message.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginProof {
    /// The user-authentication certificate (EF 000A), DER, as read from the card.
    pub certificate: Vec<u8>,
    /// The 256-byte RSASSA-PKCS1-v1_5 SHA-256 signature of [`signed_message`].
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for LoginProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginProof")
            .field("certificate_len", &self.certificate.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

/// The terminal-side login step: with a card session whose PIN was verified, read the
/// user-authentication certificate and sign the DigestInfo of the message bound to the
/// gateway's `challenge` and `auth_context_bytes` (both from `OpenSessionResponse`).
pub fn authenticate<T: crate::transport::Transport>(
    card: &mut crate::jpki::VerifiedJpkiCard<T>,
    challenge: &[u8],
    auth_context_bytes: &[u8],
) -> Result<LoginProof, crate::jpki::JpkiError> {
    let certificate = card.read_auth_certificate()?;
    let signature = card.sign_digest_info(&digest_info(auth_context_bytes, challenge))?;
    Ok(LoginProof {
        certificate,
        signature,
    })
}

/// Why a login signature does not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The certificate is not DER X.509.
    #[error("certificate is not DER X.509")]
    BadCertificate,
    /// The signature does not verify with the certificate's RSA key (or the key is not
    /// RSA 2048–8192).
    #[error("signature does not verify")]
    BadSignature,
}

/// Checks only the signature of a login (RSASSA-PKCS1-v1_5 SHA-256 over
/// [`signed_message`]) with the certificate's public key, using ring. It does NOT check the
/// chain, validity or revocation: the gateway does that with webpki.
pub fn verify_signature(
    certificate_der: &[u8],
    auth_context_bytes: &[u8],
    challenge: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|_| SignatureError::BadCertificate)?;
    // For RSA the subjectPublicKey BIT STRING holds the PKCS#1 RSAPublicKey ring expects.
    let spki = &cert.tbs_certificate.subject_pki.subject_public_key.data;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.as_ref(),
    )
    .verify(&signed_message(auth_context_bytes, challenge), signature)
    .map_err(|_| SignatureError::BadSignature)
}
