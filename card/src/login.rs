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
