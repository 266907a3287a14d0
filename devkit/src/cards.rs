//! Resident card files for the generated register, minted with the test PKI
//! ([`crate::testpki`]) for the issuer's card bindings. TEST ONLY: the keys are test keys from
//! a per-user cache, but each card of a PKI has its own (issue 10).

use std::path::Path;

use issuer::bindings::CardBinding;
use issuer::error::IssuerError;

use crate::testpki::{DevPki, PkiError, files};

/// The PIN of every generated card.
pub const TEST_CARD_PIN: &str = "1234";

/// Errors minting cards.
#[derive(Debug, thiserror::Error)]
pub enum CardsError {
    /// The test PKI failed.
    #[error("test PKI: {0}")]
    Pki(#[from] PkiError),
    /// The CA certificate could not be read.
    #[error("cannot parse the card CA certificate")]
    CaCertificate,
    /// The PIN constant is not a PIN.
    #[error("invalid test PIN")]
    Pin,
    /// A binding to mint a card for has no numeric serial.
    #[error("a card binding without card_serial: test cards need a numeric serial")]
    Serial,
}

impl From<CardsError> for IssuerError {
    fn from(_: CardsError) -> IssuerError {
        IssuerError::Corrupt {
            what: "card minting",
        }
    }
}

/// The key identifier card certificates of `pki` name as their authority (the
/// user-authentication CA's subjectKeyIdentifier, lowercase hex): the first half of the
/// gateway's binding key.
pub fn card_issuer_key_id(pki: &DevPki) -> Result<String, CardsError> {
    let pem = std::fs::read(pki.cert_path(files::JPKI_AUTH_CA)).map_err(|source| PkiError::Io {
        path: pki.cert_path(files::JPKI_AUTH_CA),
        source,
    })?;
    let der = kiosk_document::pem::certificate_der(&pem).map_err(|_| CardsError::CaCertificate)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| CardsError::CaCertificate)?;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(hex::encode(id.0))
            }
            _ => None,
        })
        .ok_or(CardsError::CaCertificate)
}

/// Mints a card file for each binding into `out_dir` (named after the resident reference,
/// PIN [`TEST_CARD_PIN`]) and records the file name in the binding.
pub fn mint_cards(
    pki: &DevPki,
    out_dir: &Path,
    bindings: &mut [CardBinding],
) -> Result<usize, CardsError> {
    let mut minter = pki.card_minter()?;
    let pin = card::Pin::parse(TEST_CARD_PIN).map_err(|_| CardsError::Pin)?;
    // Every card its own key, reserved as one batch so that keys missing from the cache are
    // generated in parallel.
    minter.reserve(bindings.len())?;
    for binding in bindings.iter_mut() {
        let name = &binding.resident_ref;
        let serial = binding.card_serial.ok_or(CardsError::Serial)?;
        minter.mint_to(out_dir, name, serial, &pin)?;
        binding.card_file = Some(format!("{name}.toml"));
    }
    Ok(bindings.len())
}
