//! The municipality's document-signing certificate as a document reader sees it: the public key
//! that checks QR payloads, and the municipality it names.
//!
//! The convention (the test PKI's and the issuer's): the certificate carries a SAN URI
//! `urn:kiosk:municipality:<code>`. Validating the certificate's chain is the caller's job;
//! this only reads it.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::municipality::MunicipalityCode;

/// The certificate does not parse as X.509.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid certificate")]
pub struct CertError;

/// The SEC1 public key of a certificate (DER) and its `urn:kiosk:municipality:<code>` SAN, if
/// any (a code that does not parse counts as none).
pub fn public_key_and_municipality(
    der: &[u8],
) -> Result<(Vec<u8>, Option<MunicipalityCode>), CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertError)?;
    let point = cert.public_key().subject_public_key.data.to_vec();
    let mut code = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::URI(u) = n
                && let Some(c) = u.strip_prefix("urn:kiosk:municipality:")
            {
                code = MunicipalityCode::parse(c).ok();
            }
        }
    }
    Ok((point, code))
}
