//! Residents in the log: a keyed pseudonym (HMAC-SHA256 of the opaque resident reference
//! under the deployment key) and the pseudonymizer that alone makes new ones.

use std::fmt;

use ring::hmac;

use super::{EventError, invalid};

/// A resident's keyed pseudonym: HMAC-SHA256 of an opaque resident reference under the
/// deployment key. Only [`Pseudonymizer`] makes new ones; [`Pseudonym::from_bytes`] reads a
/// stored one back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub(super) [u8; 32]);

impl Pseudonym {
    /// Reads a stored pseudonym (e.g. from a decoded event).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, EventError> {
        let bytes = hex::decode(s).map_err(|_| invalid("pseudonym", "must be 64 hex digits"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid("pseudonym", "must be 32 bytes"))?;
        Ok(Self(arr))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({})", self.to_hex())
    }
}

/// Turns a resident reference into a [`Pseudonym`] with the deployment's HMAC key. The same
/// reference always gives the same pseudonym in one deployment, so an auditor can follow one
/// resident's events without learning who they are.
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl Pseudonymizer {
    /// Takes the deployment key (at least 32 bytes; keep it secret, e.g. from a key file).
    pub fn new(key: &[u8]) -> Result<Self, EventError> {
        if key.len() < 32 {
            return Err(EventError::WeakKey);
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    /// The pseudonym of an opaque resident reference (the issuer's resident id, never a name).
    pub fn pseudonymize(&self, resident_reference: &[u8]) -> Pseudonym {
        let tag = hmac::sign(&self.key, resident_reference);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Pseudonym(out)
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(<key redacted>)")
    }
}
