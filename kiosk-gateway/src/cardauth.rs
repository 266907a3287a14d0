//! Card authentication: the resident's JPKI user-authentication certificate and the signature
//! over the login message.
//!
//! [`CardVerifier::verify`] checks, in order: the certificate parses; it chains to the
//! configured authentication CA at the given time; it is not revoked according to a CRL that
//! is itself current (a stale CRL refuses everyone with `REVOCATION_UNAVAILABLE` rather than
//! letting a revoked card through); its KeyUsage allows digital signatures (webpki ignores
//! KeyUsage on end-entity certificates, so it is checked here); and the RSASSA-PKCS1-v1_5
//! SHA-256 signature verifies over the message the gateway rebuilds from its own stored
//! challenge and context with `card::login`. Only then does it return a [`VerifiedCard`],
//! which nothing else can construct.

use kiosk_proto::reasons;
use std::sync::{Arc, RwLock};

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::GatewayError;

/// Signature algorithms accepted in card certificate chains.
static CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
];

/// Largest card certificate accepted (the contract's limit).
pub const MAX_CARD_CERTIFICATE_LEN: usize = 4096;

/// Proof that a card certificate and its login signature were verified. Only
/// [`CardVerifier::verify`] constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCard {
    issuer: String,
    serial: String,
}

impl VerifiedCard {
    /// The certificate's issuer name as x509-parser prints it (RDNs in certificate order,
    /// joined by `, `), the first half of the binding key.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The certificate's serial number, lowercase hex without leading zeros.
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

/// Verifies card certificates and login signatures against one authentication CA.
pub struct CardVerifier {
    anchor_der: CertificateDer<'static>,
    crl: RwLock<Arc<OwnedCertRevocationList>>,
}

impl CardVerifier {
    /// A verifier trusting `ca_der` and revoking per `crl_der` (both DER).
    pub fn new(ca_der: Vec<u8>, crl_der: &[u8]) -> Result<Self, GatewayError> {
        let anchor_der = CertificateDer::from(ca_der);
        webpki::anchor_from_trusted_cert(&anchor_der)
            .map_err(|e| GatewayError::Internal(format!("card CA unusable: {e}")))?;
        let crl = OwnedCertRevocationList::from_der(crl_der)
            .map_err(|e| GatewayError::Internal(format!("card CRL unusable: {e}")))?;
        Ok(CardVerifier {
            anchor_der,
            crl: RwLock::new(Arc::new(crl)),
        })
    }

    /// Replaces the CRL (DER). On error the old one stays in force.
    pub fn replace_crl(&self, crl_der: &[u8]) -> Result<(), GatewayError> {
        let crl = OwnedCertRevocationList::from_der(crl_der)
            .map_err(|e| GatewayError::Internal(format!("card CRL unusable: {e}")))?;
        match self.crl.write() {
            Ok(mut current) => *current = Arc::new(crl),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(crl),
        }
        Ok(())
    }

    fn current_crl(&self) -> Arc<OwnedCertRevocationList> {
        match self.crl.read() {
            Ok(crl) => crl.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Verifies `certificate` (DER) and `signature` over the login message for `context` and
    /// `challenge` at `now` (seconds since the Unix epoch).
    pub fn verify(
        &self,
        certificate: &[u8],
        signature: &[u8],
        context: &[u8],
        challenge: &[u8],
        now_unix_seconds: u64,
    ) -> Result<VerifiedCard, GatewayError> {
        let malformed = || {
            GatewayError::refused(
                reasons::CARD_CERTIFICATE_MALFORMED,
                "card certificate is not DER",
            )
        };
        if certificate.is_empty() || certificate.len() > MAX_CARD_CERTIFICATE_LEN {
            return Err(malformed());
        }
        let cert_der = CertificateDer::from(certificate);
        let end_entity = EndEntityCert::try_from(&cert_der).map_err(|_| malformed())?;
        let (rest, parsed) = X509Certificate::from_der(certificate).map_err(|_| malformed())?;
        if !rest.is_empty() {
            return Err(malformed());
        }

        let anchor = webpki::anchor_from_trusted_cert(&self.anchor_der)
            .map_err(|e| GatewayError::Internal(format!("card CA unusable: {e}")))?;
        let crl = self.current_crl();
        let crl_ref = CertRevocationList::from(crl.as_ref().clone());
        let crls = [&crl_ref];
        let revocation = RevocationOptionsBuilder::new(&crls)
            .map_err(|_| GatewayError::Internal("no card CRL".into()))?
            .with_depth(RevocationCheckDepth::EndEntity)
            .with_status_policy(UnknownStatusPolicy::Deny)
            .with_expiration_policy(ExpirationPolicy::Enforce)
            .build();
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix_seconds));
        end_entity
            .verify_for_usage(
                CHAIN_ALGORITHMS,
                &[anchor],
                &[],
                time,
                webpki::KeyUsage::client_auth(),
                Some(revocation),
                None,
            )
            .map_err(chain_error)?;

        let digital_signature = match parsed.key_usage() {
            Ok(Some(usage)) => usage.value.digital_signature(),
            _ => false,
        };
        if !digital_signature {
            return Err(GatewayError::refused(
                reasons::CARD_KEY_USAGE,
                "certificate does not allow digital signatures",
            ));
        }

        let message = card::login::signed_message(context, challenge);
        end_entity
            .verify_signature(
                webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                &message,
                signature,
            )
            .map_err(|_| {
                GatewayError::refused(reasons::SIGNATURE_INVALID, "signature does not verify")
            })?;

        Ok(VerifiedCard {
            issuer: parsed.issuer().to_string(),
            serial: serial_hex(parsed.raw_serial()),
        })
    }
}

/// A serial number as lowercase hex without leading zero bytes, the binding table's form.
pub fn serial_hex(raw: &[u8]) -> String {
    let trimmed: &[u8] = match raw.iter().position(|b| *b != 0) {
        Some(first) => &raw[first..],
        None => &[0],
    };
    hex::encode(trimmed)
}

fn chain_error(error: webpki::Error) -> GatewayError {
    use webpki::Error as E;
    match error {
        E::CertExpired { .. } => {
            GatewayError::refused(reasons::CARD_EXPIRED, "card certificate expired")
        }
        E::CertNotValidYet { .. } => GatewayError::refused(
            reasons::CARD_NOT_YET_VALID,
            "card certificate not valid yet",
        ),
        E::CertRevoked => GatewayError::refused(reasons::CARD_REVOKED, "card certificate revoked"),
        E::CrlExpired { .. } | E::UnknownRevocationStatus => {
            tracing::error!("card CRL is stale or does not cover the card CA: refusing logins");
            GatewayError::refused(reasons::REVOCATION_UNAVAILABLE, "revocation list is stale")
        }
        E::RequiredEkuNotFoundContext(_) => GatewayError::refused(
            reasons::CARD_KEY_USAGE,
            "certificate is not for authentication",
        ),
        E::BadDer | E::BadDerTime | E::TrailingData(_) => GatewayError::refused(
            reasons::CARD_CERTIFICATE_MALFORMED,
            "card certificate is not DER",
        ),
        _ => GatewayError::refused(
            reasons::CARD_CERTIFICATE_UNTRUSTED,
            "card certificate does not chain to the authentication CA",
        ),
    }
}
