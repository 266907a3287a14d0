//! `admin terminal enroll --cert FILE`: registers a terminal from the client certificate it
//! will present, so the operator never retypes the id the certificate carries and never
//! registers a terminal whose certificate the gateway would refuse anyway.
//!
//! The certificate is checked as the TLS handshake will check it — it chains to one of the
//! configured terminal CAs, is valid now by the deployment's clock, allows client
//! authentication, and is not on a configured client CRL — and its SAN URI
//! `urn:kiosk:terminal:<chain>/<store>/<terminal>` gives the id. The `TERMINAL_CHANGED` event
//! carries the certificate's fingerprint (`key_id` = `sha256:` and the first 16 hex digits of
//! the SHA-256 of its DER), so an auditor can tell which certificate was enrolled.
//!
//! Enrolment does not pin the certificate: like every terminal, it is recognised by its CA and
//! SAN, so a renewed certificate under the same id needs no new enrolment.

use std::path::Path;

use audit::event::{Ident, UnixMillis};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why a certificate cannot be enrolled (`admin::EnrollError::BadInput` carries it: the
/// operator's input was wrong, exit 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnrollError(String);
use crate::identity::TerminalIdentity;

/// A terminal certificate that passed the checks: the id it carries and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledCertificate {
    /// The terminal the certificate's SAN names.
    pub terminal: TerminalIdentity,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the certificate's DER.
    pub fingerprint: Ident,
}

/// The trust a terminal certificate is checked against: every certificate of the terminal CA
/// file (several, when generations overlap) and the configured client CRLs.
pub struct TerminalTrust {
    anchors: Vec<CertificateDer<'static>>,
    crls: Vec<OwnedCertRevocationList>,
}

impl TerminalTrust {
    /// Reads the terminal CA file (PEM, one or more certificates) and the CRL files.
    pub fn read(terminal_ca: &Path, crl_files: &[impl AsRef<Path>]) -> Result<Self, EnrollError> {
        let bad = EnrollError;
        let pem = std::fs::read(terminal_ca)
            .map_err(|e| bad(format!("trust.terminal_ca: {}: {e}", terminal_ca.display())))?;
        let anchors = kiosk_document::pem::certificates(&pem)
            .map_err(|e| bad(format!("trust.terminal_ca: {}: {e}", terminal_ca.display())))?;
        if anchors.is_empty() {
            return Err(bad(format!(
                "trust.terminal_ca: {}: no certificate",
                terminal_ca.display()
            )));
        }
        let mut crls = Vec::new();
        for file in crl_files {
            let file = file.as_ref();
            let der = crate::revocation::read_crl(file)
                .map_err(|e| bad(format!("client_crl_files: {}: {e:#}", file.display())))?;
            let crl = OwnedCertRevocationList::from_der(&der)
                .map_err(|e| bad(format!("client_crl_files: {}: {e}", file.display())))?;
            crls.push(crl);
        }
        Ok(TerminalTrust { anchors, crls })
    }

    /// Checks `certificate` (PEM or DER) at `now`: chain, validity, client-auth usage,
    /// revocation when CRLs are configured, and a terminal SAN URI.
    pub fn check(
        &self,
        certificate: &[u8],
        now: UnixMillis,
    ) -> Result<EnrolledCertificate, EnrollError> {
        let der = kiosk_document::pem::certificate_der(certificate)
            .map_err(|e| EnrollError(format!("--cert: {e}")))?;
        self.verify_chain(&der, now)?;
        let terminal = terminal_of(&der)?;
        let fingerprint = Ident::fingerprint(&der);
        Ok(EnrolledCertificate {
            terminal,
            fingerprint,
        })
    }

    fn verify_chain(&self, der: &[u8], now: UnixMillis) -> Result<(), EnrollError> {
        let refused = |why: String| EnrollError(format!("--cert: {why}"));
        let cert = CertificateDer::from(der);
        let end_entity = EndEntityCert::try_from(&cert)
            .map_err(|e| refused(format!("not a certificate: {e}")))?;
        let anchors = self
            .anchors
            .iter()
            .map(webpki::anchor_from_trusted_cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(format!("trust.terminal_ca is not a CA certificate: {e}")))?;
        let crls: Vec<CertRevocationList<'_>> = self
            .crls
            .iter()
            .map(|crl| CertRevocationList::from(crl.clone()))
            .collect();
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
        // With CRLs configured, as in production, a certificate whose status no list gives is
        // refused, exactly as the handshake refuses it; without any (the development PKI),
        // revocation is not checked here either.
        let revocation = RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|builder| {
                builder
                    .with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(UnknownStatusPolicy::Deny)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build()
            });
        let seconds = u64::try_from(now.0 / 1000).unwrap_or_default();
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                time,
                webpki::KeyUsage::client_auth(),
                revocation,
                None,
            )
            .map_err(|e| refused(format!("the gateway would refuse it: {e}")))?;
        Ok(())
    }
}

/// The terminal a certificate's SAN URI names.
fn terminal_of(der: &[u8]) -> Result<TerminalIdentity, EnrollError> {
    let refused = |why: &str| EnrollError(format!("--cert: {why}"));
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| refused("not a DER certificate"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| refused("its subjectAltName is malformed"))?
        .ok_or_else(|| refused("no subjectAltName: it names no terminal"))?;
    let path = san
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix("urn:kiosk:terminal:"),
            _ => None,
        })
        .ok_or_else(|| refused("no urn:kiosk:terminal: URI in its subjectAltName"))?;
    TerminalIdentity::parse(path).ok_or_else(|| {
        EnrollError(format!(
            "{path:?} is not a terminal id (<chain>/<store>/<terminal>)"
        ))
    })
}

/// Reads `--cert`.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, EnrollError> {
    std::fs::read(path).map_err(|e| EnrollError(format!("--cert {}: {e}", path.display())))
}
