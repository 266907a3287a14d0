//! The resident's PIN as a secret: validated once, never printed, zeroed when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// Why a string is not a user-authentication PIN. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The JPKI user-authentication PIN is exactly four ASCII digits.
    #[error("a PIN is exactly 4 ASCII digits")]
    NotFourDigits,
}

/// A JPKI user-authentication PIN (EF 0018).
///
/// Invariant: exactly four ASCII digits. Debug and Display never show it; the bytes are
/// zeroed on drop. The only way out is [`Pin::expose`], which the VERIFY encoder calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<[u8; 4]>);

impl Pin {
    /// Parses four ASCII digits.
    pub fn parse(s: &str) -> Result<Self, PinError> {
        let bytes: [u8; 4] = s
            .as_bytes()
            .try_into()
            .map_err(|_| PinError::NotFourDigits)?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(PinError::NotFourDigits);
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The ASCII bytes, for the VERIFY data field (the card compares them raw).
    pub fn expose(&self) -> &[u8] {
        &self.0[..]
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

impl std::str::FromStr for Pin {
    type Err = PinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_four_digits() {
        assert!(Pin::parse("1234").is_ok());
        for bad in ["123", "12345", "12a4", "１２３４", "", " 123"] {
            assert_eq!(Pin::parse(bad), Err(PinError::NotFourDigits), "{bad}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let pin = Pin::parse("4321").unwrap();
        let shown = format!("{pin:?}");
        assert!(!shown.contains("4321"), "{shown}");
        assert_eq!(pin.expose(), b"4321");
    }
}
