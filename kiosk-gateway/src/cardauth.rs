//! Card authentication: the resident's JPKI user-authentication certificate and the signature
//! over the login message.
//!
//! [`CardVerifier::verify`] checks, in order: the certificate parses; it chains to the
//! configured authentication CAs (several generations may be trusted side by side) at the
//! given time; it is not revoked according to its issuer's CRL, which must be present and
//! itself current (a stale CRL refuses everyone with `REVOCATION_UNAVAILABLE` rather than
//! letting a revoked card through); its KeyUsage allows digital signatures (webpki ignores
//! KeyUsage on end-entity certificates, so it is checked here); it carries a certificate
//! policy the configuration accepts ([`CardPolicies`]: a J-LIS test card where test cards are
//! not accepted is `CARD_TEST_POLICY`, no accepted policy at all `CARD_POLICY_UNACCEPTED`;
//! webpki does not process policies); it names its issuer's key ([`CardKey`]); and the
//! RSASSA-PKCS1-v1_5 SHA-256 signature verifies over the message the gateway rebuilds from
//! its own stored challenge and context with `card::login`. Only then does it return a
//! [`VerifiedCard`], which nothing else can construct.
//!
//! **The binding key.** A card is bound to a resident by [`CardKey`]: the keyIdentifier of
//! the certificate's authorityKeyIdentifier extension and its serial, both lowercase hex.
//! Both are octet strings an operator reads with standard tools (`openssl x509 -noout -ext
//! authorityKeyIdentifier -serial`) and that compare exactly, unlike a distinguished name,
//! whose text forms differ between tools; `kiosk-gateway card-key --cert FILE` prints it.

use kiosk_proto::reasons;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

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

/// The certificate policy of production JPKI user-authentication certificates.
pub const JPKI_AUTH_POLICY: &str = "1.2.392.200149.8.5.1.3.30";

/// The certificate policy J-LIS test cards carry instead of [`JPKI_AUTH_POLICY`].
pub const JLIS_TEST_POLICY: &str = "1.2.392.200149.8.5.1.0.20";

/// The certificate policies a gateway accepts on card certificates (`trust.card_policies`).
/// A card is accepted when one of its policies is in the set; policy mapping and anyPolicy
/// are not honoured, because a card certificate is an end entity whose CA is trusted
/// directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPolicies {
    accepted: BTreeSet<String>,
}

impl CardPolicies {
    /// Production: only [`JPKI_AUTH_POLICY`], the default of `trust.card_policies`.
    pub fn production() -> Self {
        CardPolicies {
            accepted: BTreeSet::from([JPKI_AUTH_POLICY.to_owned()]),
        }
    }

    /// The development profile: the J-LIS test policy, which the development PKI's cards
    /// carry.
    pub fn development() -> Self {
        CardPolicies {
            accepted: BTreeSet::from([JLIS_TEST_POLICY.to_owned()]),
        }
    }

    /// The policies of `trust.card_policies`: dotted-decimal OIDs, at least one. The error
    /// names the entry (1-based) that is not one; the caller names the key.
    pub fn from_list(list: &[String]) -> Result<Self, String> {
        if list.is_empty() {
            return Err("empty: no card would be accepted".into());
        }
        for (index, oid) in list.iter().enumerate() {
            if !is_dotted_oid(oid) {
                return Err(format!(
                    "entry {}: {oid:?} is not a dotted-decimal OID",
                    index + 1
                ));
            }
        }
        Ok(CardPolicies {
            accepted: list.iter().cloned().collect(),
        })
    }

    /// Whether `oid` is accepted.
    pub fn accepts(&self, oid: &str) -> bool {
        self.accepted.contains(oid)
    }

    fn check(&self, cert: &X509Certificate<'_>) -> Result<(), GatewayError> {
        let carried = certificate_policies(cert);
        if carried.iter().any(|oid| self.accepts(oid)) {
            return Ok(());
        }
        if carried.iter().any(|oid| oid == JLIS_TEST_POLICY) {
            return Err(GatewayError::refused(
                reasons::CARD_TEST_POLICY,
                "card certificate carries the J-LIS test-card policy, not accepted here",
            ));
        }
        Err(GatewayError::refused(
            reasons::CARD_POLICY_UNACCEPTED,
            "card certificate carries no accepted certificate policy",
        ))
    }
}

/// `1.2.392…`: at least two arcs of decimal digits without leading zeros.
fn is_dotted_oid(text: &str) -> bool {
    let arcs: Vec<&str> = text.split('.').collect();
    arcs.len() >= 2
        && arcs.iter().all(|arc| {
            !arc.is_empty()
                && arc.len() <= 20
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc.len() == 1 || !arc.starts_with('0'))
        })
}

/// The policy OIDs of the certificatePolicies extension, dotted (empty without one).
fn certificate_policies(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::CertificatePolicies(policies) => Some(policies),
            _ => None,
        })
        .flatten()
        .map(|policy| policy.policy_id.to_id_string())
        .collect()
}

/// What binds a card certificate to a resident: the keyIdentifier of its
/// authorityKeyIdentifier (the issuing CA's key) and its serial number, both lowercase hex,
/// the serial without leading zero bytes. An operator reads both with `openssl x509 -noout
/// -ext authorityKeyIdentifier -serial` (upper case, colons) or `kiosk-gateway card-key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CardKey {
    /// The issuing CA's key identifier.
    pub issuer_key_id: String,
    /// The certificate serial.
    pub serial: String,
}

/// Why a certificate has no [`CardKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardKeyError {
    /// Not one DER X.509 certificate.
    #[error("not a DER X.509 certificate")]
    Malformed,
    /// No authorityKeyIdentifier with a keyIdentifier (RFC 5280 §4.2.1.1 requires one in
    /// every certificate but a self-signed CA's).
    #[error("the certificate has no authority key identifier (keyIdentifier)")]
    NoAuthorityKeyId,
}

impl CardKey {
    /// The binding key of a certificate (DER).
    pub fn of_der(der: &[u8]) -> Result<CardKey, CardKeyError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| CardKeyError::Malformed)?;
        if !rest.is_empty() {
            return Err(CardKeyError::Malformed);
        }
        CardKey::of(&cert)
    }

    fn of(cert: &X509Certificate<'_>) -> Result<CardKey, CardKeyError> {
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
                _ => None,
            })
            .filter(|id| !id.0.is_empty())
            .ok_or(CardKeyError::NoAuthorityKeyId)?;
        Ok(CardKey {
            issuer_key_id: hex::encode(key_id.0),
            serial: serial_hex(cert.raw_serial()),
        })
    }
}

/// Proof that a card certificate and its login signature were verified. Only
/// [`CardVerifier::verify`] constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCard {
    key: CardKey,
}

impl VerifiedCard {
    /// The card's binding key.
    pub fn key(&self) -> &CardKey {
        &self.key
    }
}

/// Verifies card certificates and login signatures against the authentication CAs (several
/// generations side by side), each card revoked per the CRL of the CA that issued it.
pub struct CardVerifier {
    anchors_der: Vec<CertificateDer<'static>>,
    crls: RwLock<Arc<Vec<OwnedCertRevocationList>>>,
    policies: CardPolicies,
}

impl CardVerifier {
    /// A verifier trusting each of `cas_der`, revoking per `crls_der` (one CRL per CA; all
    /// DER) and accepting cards with one of `policies`. A CA without a CRL among them is
    /// trusted, but its cards are refused with `REVOCATION_UNAVAILABLE` (fail closed).
    pub fn new(
        cas_der: Vec<Vec<u8>>,
        crls_der: &[Vec<u8>],
        policies: CardPolicies,
    ) -> Result<Self, GatewayError> {
        if cas_der.is_empty() {
            return Err(GatewayError::Internal("no card CA".into()));
        }
        let anchors_der: Vec<CertificateDer<'static>> =
            cas_der.into_iter().map(CertificateDer::from).collect();
        for anchor in &anchors_der {
            webpki::anchor_from_trusted_cert(anchor)
                .map_err(|e| GatewayError::Internal(format!("card CA unusable: {e}")))?;
        }
        Ok(CardVerifier {
            anchors_der,
            crls: RwLock::new(Arc::new(parse_crls(crls_der)?)),
            policies,
        })
    }

    /// Replaces the CRLs (DER each). On error the old ones stay in force.
    pub fn replace_crls(&self, crls_der: &[Vec<u8>]) -> Result<(), GatewayError> {
        let crls = Arc::new(parse_crls(crls_der)?);
        match self.crls.write() {
            Ok(mut current) => *current = crls,
            Err(poisoned) => *poisoned.into_inner() = crls,
        }
        Ok(())
    }

    fn current_crls(&self) -> Arc<Vec<OwnedCertRevocationList>> {
        match self.crls.read() {
            Ok(crls) => crls.clone(),
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

        self.verify_chain(&end_entity, now_unix_seconds)?;

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

        self.policies.check(&parsed)?;
        let key = CardKey::of(&parsed).map_err(|_| {
            GatewayError::refused(
                reasons::CARD_CERTIFICATE_MALFORMED,
                "card certificate has no authority key identifier",
            )
        })?;

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

        Ok(VerifiedCard { key })
    }
}

impl CardVerifier {
    /// The chain to one of the CAs, and revocation by the CRL of the card's issuer. webpki is
    /// given every anchor and every CRL: it picks the anchor whose subject is the card's
    /// issuer name and whose key verifies its signature, and the CRL of that issuer; with no
    /// such CRL the status is unknown, which is denied.
    fn verify_chain(
        &self,
        end_entity: &EndEntityCert<'_>,
        now_unix_seconds: u64,
    ) -> Result<(), GatewayError> {
        let anchors = self
            .anchors_der
            .iter()
            .map(webpki::anchor_from_trusted_cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GatewayError::Internal(format!("card CA unusable: {e}")))?;
        let current = self.current_crls();
        let owned: Vec<CertRevocationList<'_>> = current
            .iter()
            .map(|crl| CertRevocationList::from(crl.clone()))
            .collect();
        let crls: Vec<&CertRevocationList<'_>> = owned.iter().collect();
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
                &anchors,
                &[],
                time,
                webpki::KeyUsage::client_auth(),
                Some(revocation),
                None,
            )
            .map(|_| ())
            .map_err(chain_error)
    }
}

/// The card CRLs, at least one (DER each).
fn parse_crls(crls_der: &[Vec<u8>]) -> Result<Vec<OwnedCertRevocationList>, GatewayError> {
    if crls_der.is_empty() {
        return Err(GatewayError::Internal("no card CRL".into()));
    }
    crls_der
        .iter()
        .map(|der| {
            OwnedCertRevocationList::from_der(der)
                .map_err(|e| GatewayError::Internal(format!("card CRL unusable: {e}")))
        })
        .collect()
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
