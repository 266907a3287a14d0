//! Card bindings: which card certificate (issuer name, serial) belongs to which resident of
//! which municipality. The synthetic register generator (`kiosk_devkit::generator`, TEST
//! ONLY) writes test ones; the gateway loads them into its binding table
//! (`kiosk_gateway::store::bind_card`).
//!
//! Format: JSON Lines, one object per card, UTF-8:
//!
//! ```text
//! {"card_issuer":"C=JP, O=JPKI TEST, CN=...","card_serial":131010000000001,"card_serial_hex":"7727e3a40501","municipality_code":"131016","resident_ref":"r...","card_file":null}
//! ```
//!
//! `card_issuer` is the issuer name as x509-parser prints it (what the gateway keys on);
//! `card_serial_hex` is the serial in the gateway's form (lowercase hex, no leading zero
//! bytes); `card_file`, when cards were minted, is the card file's path relative to the card
//! directory.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IssuerError;

/// The issuer name used when no test PKI is given: the subject of card's test JPKI CA is only
/// known once a PKI exists, so this is a placeholder the gateway will not match.
pub const DEFAULT_CARD_ISSUER: &str = "CN=JPKI TEST AUTH CA (no PKI given)";

/// One card binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBinding {
    /// The card certificate's issuer name as x509-parser prints it: the RDNs in certificate
    /// order joined by `, ` (`C=JP, O=JPKI, OU=…`), not RFC 4514's reversed order.
    pub card_issuer: String,
    /// The certificate serial.
    pub card_serial: u64,
    /// The serial as lowercase hex without leading zero bytes.
    pub card_serial_hex: String,
    /// The resident's municipality.
    pub municipality_code: String,
    /// The issuer's opaque resident reference.
    pub resident_ref: String,
    /// The minted card file, relative to the card directory, when cards were minted.
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
        card_issuer: &str,
        serial: u64,
        municipality_code: &str,
        resident_ref: &str,
    ) -> Self {
        CardBinding {
            card_issuer: card_issuer.to_owned(),
            card_serial: serial,
            card_serial_hex: serial_hex(serial),
            municipality_code: municipality_code.to_owned(),
            resident_ref: resident_ref.to_owned(),
            card_file: None,
        }
    }
}

/// Errors reading a bindings file.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Reading failed.
    #[error("cannot read bindings: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a binding.
    #[error("line {line} is not a card binding")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
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

/// Reads every binding from JSON Lines (blank lines are skipped).
pub fn read_jsonl(input: impl BufRead) -> Result<Vec<CardBinding>, BindingError> {
    let mut out = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let binding: CardBinding =
            serde_json::from_str(&line).map_err(|_| BindingError::Malformed { line: index + 1 })?;
        if binding.card_serial_hex != serial_hex(binding.card_serial) {
            return Err(BindingError::Malformed { line: index + 1 });
        }
        out.push(binding);
    }
    Ok(out)
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
        let b = CardBinding::new("C=JP, O=JPKI TEST", 131_010_000_000_001, "131016", "r1");
        let mut out = Vec::new();
        write_row(&mut out, &b).unwrap();
        write_row(&mut out, &b).unwrap();
        let back = read_jsonl(&out[..]).unwrap();
        assert_eq!(back, vec![b.clone(), b]);
        assert!(matches!(
            read_jsonl(&b"{\"x\":1}\n"[..]),
            Err(BindingError::Malformed { line: 1 })
        ));
    }
}
