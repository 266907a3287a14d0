//! The identifiers a document carries: whom it is about ([`ResidentRef`]), which issuance it
//! belongs to ([`IssuanceId`]) and its own number ([`Serial`]).
//!
//! Each is checked once, at parse, against a charset that lets it travel everywhere it goes
//! unchanged: the kiosk.v1 identifier charset on the wire, a PDF literal string in the page
//! markers (no `(`, `)` or `\`), a QR alphanumeric code for the serial.

use std::fmt;

use crate::error::ModelError;

/// The `kiosk.v1` identifier charset: 1 to 64 characters from `[A-Za-z0-9._:/-]`.
fn is_wire_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// An opaque resident reference (the issuer's `subject_ref`): what leaves the issuer instead
/// of any register key that means something, and never the individual number or a name.
/// Documents carry it in their page markers only; it is never printed.
///
/// Invariant: 1 to 64 characters from `[A-Za-z0-9._:-]` (the wire charset without `/`; so `,`
/// and `;` never occur, which the issuer's page-subject column relies on).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentRef(String);

impl ResidentRef {
    /// Parses a reference received from outside.
    pub fn parse(value: &str) -> Result<ResidentRef, ModelError> {
        if is_wire_id(value) && !value.contains('/') {
            Ok(ResidentRef(value.to_owned()))
        } else {
            Err(ModelError::ResidentRef)
        }
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentRef({})", self.0)
    }
}

impl fmt::Display for ResidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gateway's issuance id, printed on every page and bound into every page marker.
///
/// Invariant: 1 to 64 characters from `[A-Za-z0-9._:/-]` (so it can also be written into a
/// PDF literal string unescaped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuanceId(String);

impl IssuanceId {
    /// Parses an issuance id.
    pub fn parse(value: &str) -> Result<IssuanceId, ModelError> {
        if is_wire_id(value) {
            Ok(IssuanceId(value.to_owned()))
        } else {
            Err(ModelError::IssuanceId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssuanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 交付番号 printed on the certificate and signed into the QR code.
///
/// Invariant: 1 to 32 characters from `[0-9A-Z-]` (QR alphanumeric-friendly).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    /// Parses a serial.
    pub fn parse(value: &str) -> Result<Serial, ModelError> {
        let ok = |b: u8| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'-';
        if value.is_empty() || value.len() > 32 || !value.bytes().all(ok) {
            return Err(ModelError::Serial);
        }
        Ok(Serial(value.to_owned()))
    }

    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_bad_characters() {
        assert!(Serial::parse("R8-000123").is_ok());
        assert!(Serial::parse("r8").is_err());
        assert!(Serial::parse("").is_err());
        assert!(IssuanceId::parse("iss_01J(").is_err());
        assert!(ResidentRef::parse("res:000042").is_ok());
        assert!(ResidentRef::parse("山田").is_err());
        assert!(ResidentRef::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn issuance_ids_are_wire_ids_and_resident_refs_have_no_slash() {
        assert!(IssuanceId::parse("lawson/store-17/iss-1").is_ok());
        assert!(IssuanceId::parse(&"i".repeat(64)).is_ok());
        assert!(IssuanceId::parse(&"i".repeat(65)).is_err());
        assert!(IssuanceId::parse("iss 1").is_err());
        assert!(IssuanceId::parse("iss\\1").is_err());
        assert_eq!(ResidentRef::parse("a/b"), Err(ModelError::ResidentRef));
        assert_eq!(
            format!("{:?}", ResidentRef::parse("res:1").unwrap()),
            "ResidentRef(res:1)"
        );
    }
}
