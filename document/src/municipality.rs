//! The municipality code (全国地方公共団体コード), the one key every part of the system names a
//! municipality by: register, issuer routing, QR payload, audit events.

use std::fmt;

use crate::error::ModelError;

/// A 地方公共団体コード (JIS X 0402): five digits and a check digit, e.g. `131016` (千代田区).
///
/// Invariant: exactly six ASCII digits and the sixth is the check digit of the first five.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode(String);

impl MunicipalityCode {
    /// Parses a six-digit code and checks its check digit.
    pub fn parse(code: &str) -> Result<Self, ModelError> {
        let b = code.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ModelError::MunicipalityCode("must be 6 digits"));
        }
        if Self::check_digit(&b[..5]) != b[5] - b'0' {
            return Err(ModelError::MunicipalityCode("check digit does not match"));
        }
        Ok(Self(code.to_owned()))
    }

    /// Builds a code from its first five digits by appending the check digit (useful for a
    /// synthetic register that numbers municipalities itself).
    pub fn from_prefix(prefix: &str) -> Result<Self, ModelError> {
        let b = prefix.as_bytes();
        if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ModelError::MunicipalityCode("prefix must be 5 digits"));
        }
        Ok(Self(format!("{prefix}{}", Self::check_digit(b))))
    }

    // JIS X 0402: weights 6..2, check = (11 - sum mod 11) mod 10.
    fn check_digit(five: &[u8]) -> u8 {
        let sum: u32 = five
            .iter()
            .zip([6u32, 5, 4, 3, 2])
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        ((11 - sum % 11) % 10) as u8
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_code_check_digit() {
        assert!(MunicipalityCode::parse("131016").is_ok()); // 千代田区
        assert!(MunicipalityCode::parse("011002").is_ok()); // 札幌市
        assert!(MunicipalityCode::parse("271004").is_ok()); // 大阪市
        assert_eq!(
            MunicipalityCode::parse("131017"),
            Err(ModelError::MunicipalityCode("check digit does not match"))
        );
        assert!(MunicipalityCode::parse("13101").is_err());
        assert!(MunicipalityCode::parse("13101a").is_err());
        assert_eq!(
            MunicipalityCode::from_prefix("13101").unwrap().as_str(),
            "131016"
        );
    }

    #[test]
    fn only_ascii_digits_count() {
        // Full-width digits are digits to `char::is_numeric`, not to the code.
        assert_eq!(
            MunicipalityCode::parse("１３１０１６"),
            Err(ModelError::MunicipalityCode("must be 6 digits"))
        );
        assert!(MunicipalityCode::parse("1310166").is_err());
        assert!(MunicipalityCode::parse("").is_err());
        assert!(MunicipalityCode::from_prefix("1310").is_err());
    }
}
