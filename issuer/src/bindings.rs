//! Card bindings: which card certificate (its issuer's key identifier and its serial)
//! belongs to which resident of which municipality. The synthetic register generator
//! (`kiosk_devkit::generator`, TEST ONLY) writes test ones; the gateway loads them into its
//! binding table (`kiosk-gateway admin card-binding import`, and at start the files
//! `[[remote_issuers]]` name).
//!
//! Format: JSON Lines, one object per card, UTF-8:
//!
//! ```text
//! {"issuer_key_id":"5e1f…","card_serial_hex":"7727e3a40501","card_serial":131010000000001,"municipality_code":"131016","resident_ref":"r...","card_file":null}
//! ```
//!
//! - `issuer_key_id` (required): the keyIdentifier of the card certificate's
//!   authorityKeyIdentifier extension, lowercase hex (`openssl x509 -noout -ext
//!   authorityKeyIdentifier` prints it in upper case with colons);
//! - `card_serial_hex` (required): the certificate serial, lowercase hex without leading
//!   zero bytes (`openssl x509 -noout -serial`, lowercased, a leading `00` byte dropped);
//! - `card_serial` (optional): the same serial as a decimal number, when it fits 64 bits;
//!   if given it must equal `card_serial_hex`;
//! - `municipality_code`, `resident_ref` (required): where the card leads;
//! - `card_file` (optional): the minted card file, relative to the card directory (test
//!   cards only).
//!
//! `kiosk-gateway card-key --cert FILE` prints the first two for a certificate. A line that
//! is not a binding is refused with its line number and the field concerned.

use std::io::{BufRead, Write};
use std::path::Path;

use kiosk_document::{MunicipalityCode, ResidentRef};
use serde::{Deserialize, Serialize};

use crate::error::IssuerError;

/// The key identifier used when no test PKI is given: a placeholder no card carries.
pub const DEFAULT_ISSUER_KEY_ID: &str = "00";

/// One card binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBinding {
    /// The keyIdentifier of the card certificate's authorityKeyIdentifier, lowercase hex.
    pub issuer_key_id: String,
    /// The serial as lowercase hex without leading zero bytes.
    pub card_serial_hex: String,
    /// The certificate serial as a number, when it fits 64 bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_serial: Option<u64>,
    /// The resident's municipality.
    pub municipality_code: String,
    /// The issuer's opaque resident reference.
    pub resident_ref: String,
    /// The minted card file, relative to the card directory, when cards were minted.
    #[serde(default)]
    pub card_file: Option<String>,
}

/// `serial` as the gateway writes serials: big-endian bytes, leading zero bytes dropped,
/// lowercase hex.
pub fn serial_hex(serial: u64) -> String {
    let bytes = serial.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    hex::encode(&bytes[first..])
}

impl CardBinding {
    /// A binding without a card file.
    pub fn new(
        issuer_key_id: &str,
        serial: u64,
        municipality_code: &str,
        resident_ref: &str,
    ) -> Self {
        CardBinding {
            issuer_key_id: issuer_key_id.to_owned(),
            card_serial_hex: serial_hex(serial),
            card_serial: Some(serial),
            municipality_code: municipality_code.to_owned(),
            resident_ref: resident_ref.to_owned(),
            card_file: None,
        }
    }

    /// The first field that is not in its form, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !is_lower_hex(&self.issuer_key_id, 64) {
            return Err((
                "issuer_key_id",
                "not lowercase hex of 1 to 64 bytes (the authority key identifier)".into(),
            ));
        }
        let serial_ok = is_lower_hex(&self.card_serial_hex, 20)
            && (self.card_serial_hex == "00" || !self.card_serial_hex.starts_with("00"));
        if !serial_ok {
            return Err((
                "card_serial_hex",
                "not lowercase hex of 1 to 20 bytes without a leading zero byte".into(),
            ));
        }
        if let Some(serial) = self.card_serial
            && serial_hex(serial) != self.card_serial_hex
        {
            return Err((
                "card_serial",
                format!("{serial} is not card_serial_hex {}", self.card_serial_hex),
            ));
        }
        if let Err(e) = MunicipalityCode::parse(&self.municipality_code) {
            return Err(("municipality_code", e.to_string()));
        }
        if let Err(e) = ResidentRef::parse(&self.resident_ref) {
            return Err(("resident_ref", e.to_string()));
        }
        Ok(())
    }
}

/// Even-length lowercase hex of 1 to `max_bytes` bytes.
fn is_lower_hex(text: &str, max_bytes: usize) -> bool {
    !text.is_empty()
        && text.len().is_multiple_of(2)
        && text.len() <= 2 * max_bytes
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Errors reading a bindings file.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Reading failed.
    #[error("cannot read bindings: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a binding.
    #[error("line {line}: {}{why}", field_prefix(.field))]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The field concerned (empty when the line as a whole is not a JSON object).
        field: String,
        /// Why, without the field's value.
        why: String,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// Nothing precedes the first binding in JSON Lines; kept so that a future header (a format
/// version) has one place to go.
pub fn write_header(_out: &mut dyn Write) -> Result<(), IssuerError> {
    Ok(())
}

/// Writes one binding line.
pub fn write_row(out: &mut dyn Write, binding: &CardBinding) -> Result<(), IssuerError> {
    let line =
        serde_json::to_string(binding).map_err(|_| IssuerError::Corrupt { what: "binding" })?;
    writeln!(out, "{line}").map_err(|_| IssuerError::Corrupt {
        what: "bindings output",
    })
}

/// Reads every binding from JSON Lines (blank lines are skipped); the first line that is not
/// a binding is refused with its number and field.
pub fn read_jsonl(input: impl BufRead) -> Result<Vec<CardBinding>, BindingError> {
    let mut out = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(&line, index + 1)?);
    }
    Ok(out)
}

/// The fields of a binding line, in the order the format lists them.
const FIELDS: [&str; 6] = [
    "issuer_key_id",
    "card_serial_hex",
    "card_serial",
    "municipality_code",
    "resident_ref",
    "card_file",
];

/// One line of a bindings file, numbered `line` in errors. Read field by field rather than
/// through serde's derive, so that every refusal names its field (serde names none for a
/// value of the wrong type) and never quotes a value back (it may be a resident reference).
pub fn parse_line(text: &str, line: usize) -> Result<CardBinding, BindingError> {
    use serde_json::Value;
    let malformed = |field: &str, why: &str| BindingError::Malformed {
        line,
        field: field.to_owned(),
        why: why.to_owned(),
    };
    let value: Value = serde_json::from_str(text).map_err(|_| malformed("", "not JSON"))?;
    let object = value
        .as_object()
        .ok_or_else(|| malformed("", "not a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let name: String = unknown.chars().take(40).collect();
        return Err(malformed(&name, "not a field of a card binding"));
    }
    let string = |name: &str| match object.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(malformed(name, "not a string")),
        None => Err(malformed(name, "missing")),
    };
    let binding = CardBinding {
        issuer_key_id: string("issuer_key_id")?,
        card_serial_hex: string("card_serial_hex")?,
        card_serial: match object.get("card_serial") {
            None | Some(Value::Null) => None,
            Some(number) => Some(
                number
                    .as_u64()
                    .ok_or_else(|| malformed("card_serial", "not a number of 0 to 2^64-1"))?,
            ),
        },
        municipality_code: string("municipality_code")?,
        resident_ref: string("resident_ref")?,
        card_file: match object.get("card_file") {
            None | Some(Value::Null) => None,
            Some(_) => Some(string("card_file")?),
        },
    };
    binding
        .check()
        .map_err(|(field, why)| malformed(field, &why))?;
    Ok(binding)
}

/// Reads a bindings file.
pub fn read_file(path: &Path) -> Result<Vec<CardBinding>, BindingError> {
    read_jsonl(std::io::BufReader::new(std::fs::File::open(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_matches_gateway_form() {
        assert_eq!(serial_hex(0), "00");
        assert_eq!(serial_hex(0x1234), "1234");
        assert_eq!(serial_hex(0x0abc), "0abc");
        assert_eq!(serial_hex(u64::MAX), "ffffffffffffffff");
    }

    #[test]
    fn round_trip_and_malformed_lines() {
        let b = CardBinding::new("5e1f", 131_010_000_000_001, "131016", "r1");
        let mut out = Vec::new();
        write_row(&mut out, &b).unwrap();
        write_row(&mut out, &b).unwrap();
        let back = read_jsonl(&out[..]).unwrap();
        assert_eq!(back, vec![b.clone(), b]);
        let error = read_jsonl(&b"{\"x\":1}\n"[..]).unwrap_err();
        assert!(
            matches!(&error, BindingError::Malformed { line: 1, field, .. } if field == "x"),
            "{error}"
        );
    }
}
