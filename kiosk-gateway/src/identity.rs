//! Who is calling, from the verified TLS client certificate and nothing else.
//!
//! Roles are decided by the CA that issued the leaf certificate: the terminal CAs make
//! terminals, the auditor CAs make auditors (each role may have several CAs side by side,
//! `trust.terminal_ca` and `trust.auditor_ca` being PEM bundles). The TLS layer has already verified the chain to
//! one of the configured roots; here the leaf's issuer name is compared with each root's
//! subject name (the roots have distinct names, which [`RoleAnchors::new`] checks), and the
//! leaf's SAN URI must name the same role:
//!
//! - terminal: `urn:kiosk:terminal:<chain>/<store>/<terminal>`
//! - auditor: `urn:kiosk:auditor:<name>`
//!
//! A certificate whose URI claims another role than its CA grants is refused.

use kiosk_proto::reasons;
use std::fmt;
use std::sync::Arc;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::GatewayError;
use crate::tls::{ClientRevocation, RevocationStatus};

/// A store terminal, as named by its certificate.
///
/// Invariant: each part is 1 to 32 characters of `[A-Za-z0-9._-]`, so `id()` is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TerminalIdentity {
    chain: String,
    store: String,
    terminal: String,
}

impl TerminalIdentity {
    /// Parses `<chain>/<store>/<terminal>`.
    pub fn parse(path: &str) -> Option<Self> {
        let mut parts = path.split('/');
        let (chain, store, terminal) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || ![chain, store, terminal].iter().all(|p| valid_part(p)) {
            return None;
        }
        Some(TerminalIdentity {
            chain: chain.to_owned(),
            store: store.to_owned(),
            terminal: terminal.to_owned(),
        })
    }

    /// The store chain.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The store.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The terminal id used everywhere: `<chain>/<store>/<terminal>`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.chain, self.store, self.terminal)
    }
}

impl fmt::Display for TerminalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.chain, self.store, self.terminal)
    }
}

fn valid_part(part: &str) -> bool {
    (1..=32).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A store terminal.
    Terminal(TerminalIdentity),
    /// An auditor, by the name in their certificate.
    Auditor(String),
}

/// The subject names of the CAs that grant each role, and the client CRLs in force. Each
/// role may have several CAs (generations and renewals side by side); a certificate is mapped
/// by its issuer name, so no name may grant both roles.
#[derive(Debug, Clone)]
pub struct RoleAnchors {
    terminal_ca_subjects: Vec<Vec<u8>>,
    auditor_ca_subjects: Vec<Vec<u8>>,
    revocation: Option<Arc<ClientRevocation>>,
}

impl RoleAnchors {
    /// Reads the subject names of the terminal CA and the auditor CA certificates (DER each).
    /// A name among both is refused: its certificates' role would be ambiguous.
    pub fn new(terminal_cas: &[Vec<u8>], auditor_cas: &[Vec<u8>]) -> Result<Self, GatewayError> {
        let terminal_ca_subjects = subjects_of(terminal_cas)?;
        let auditor_ca_subjects = subjects_of(auditor_cas)?;
        if terminal_ca_subjects.is_empty() || auditor_ca_subjects.is_empty() {
            return Err(GatewayError::Internal(
                "at least one terminal CA and one auditor CA are needed".into(),
            ));
        }
        if let Some(shared) = terminal_ca_subjects
            .iter()
            .find(|name| auditor_ca_subjects.contains(name))
        {
            return Err(GatewayError::Internal(format!(
                "terminal CA and auditor CA must have distinct subject names: {} is among both",
                name_text(shared)
            )));
        }
        Ok(RoleAnchors {
            terminal_ca_subjects,
            auditor_ca_subjects,
            revocation: None,
        })
    }

    /// Also refuses, on every request, certificates that `revocation` lists as revoked or
    /// whose CRL went stale since the connection's handshake.
    pub fn with_revocation(mut self, revocation: Arc<ClientRevocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// The caller named by a verified leaf certificate (DER).
    pub fn caller(&self, leaf: &[u8]) -> Result<Caller, GatewayError> {
        let unknown =
            || GatewayError::refused(reasons::TERMINAL_UNKNOWN, "client certificate not usable");
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|_| unknown())?;
        let issuer = cert.issuer().as_raw();
        if let Some(revocation) = &self.revocation {
            match revocation.status_now(issuer, cert.tbs_certificate.raw_serial()) {
                RevocationStatus::Good => {}
                // The contract has no separate reason for a revoked client certificate: to the
                // kiosk it is a terminal the service no longer knows.
                RevocationStatus::Revoked => {
                    return Err(GatewayError::refused(
                        reasons::TERMINAL_UNKNOWN,
                        "client certificate revoked",
                    ));
                }
                RevocationStatus::Unknown => {
                    return Err(GatewayError::refused(
                        reasons::REVOCATION_UNAVAILABLE,
                        "client revocation list stale or missing",
                    ));
                }
            }
        }
        let uris: Vec<&str> = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if self.terminal_ca_subjects.iter().any(|name| name == issuer) {
            let path = uris
                .iter()
                .find_map(|uri| uri.strip_prefix("urn:kiosk:terminal:"))
                .ok_or_else(|| {
                    GatewayError::refused(
                        reasons::WRONG_CLIENT_ROLE,
                        "certificate names no terminal",
                    )
                })?;
            return TerminalIdentity::parse(path)
                .map(Caller::Terminal)
                .ok_or_else(unknown);
        }
        if self.auditor_ca_subjects.iter().any(|name| name == issuer) {
            let name = uris
                .iter()
                .find_map(|uri| uri.strip_prefix("urn:kiosk:auditor:"))
                .filter(|name| valid_part(name))
                .ok_or_else(|| {
                    GatewayError::refused(
                        reasons::WRONG_CLIENT_ROLE,
                        "certificate names no auditor",
                    )
                })?;
            return Ok(Caller::Auditor(name.to_owned()));
        }
        Err(unknown())
    }
}

fn subjects_of(cas: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, GatewayError> {
    cas.iter().map(|der| subject_of(der)).collect()
}

fn subject_of(der: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| GatewayError::Internal(format!("CA certificate unreadable: {e}")))?;
    Ok(cert.subject().as_raw().to_vec())
}

/// A subject name (DER) as text, for a message.
fn name_text(der: &[u8]) -> String {
    x509_parser::x509::X509Name::from_der(der)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|_| hex::encode(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_paths_parse_strictly() {
        let id = TerminalIdentity::parse("seven/131016-0042/k1").unwrap();
        assert_eq!(id.id(), "seven/131016-0042/k1");
        assert_eq!(id.chain(), "seven");
        for bad in ["", "a/b", "a/b/c/d", "a//c", "a/b/c d", "a/b/ｃ"] {
            assert!(TerminalIdentity::parse(bad).is_none(), "{bad:?}");
        }
    }

    fn der(pem: &[u8]) -> Vec<u8> {
        kiosk_document::pem::certificate_der(pem).unwrap()
    }

    const PKI: &str = "../devkit/testdata/pki";

    fn read(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PKI);
        der(&std::fs::read(dir.join(name)).unwrap())
    }

    #[test]
    fn every_ca_of_a_role_grants_it() {
        let terminal_ca = read("terminal-ca.crt.pem");
        let other = read("server-ca.crt.pem");
        let auditor_ca = read("auditor-ca.crt.pem");
        let anchors = RoleAnchors::new(
            &[other.clone(), terminal_ca],
            std::slice::from_ref(&auditor_ca),
        )
        .unwrap();
        let terminal = read("terminal-seven-131016-0042-k1.crt.pem");
        match anchors.caller(&terminal).unwrap() {
            Caller::Terminal(id) => assert_eq!(id.id(), "seven/131016-0042/k1"),
            Caller::Auditor(name) => panic!("auditor {name}"),
        }
        let auditor = read("auditor.crt.pem");
        assert!(matches!(anchors.caller(&auditor), Ok(Caller::Auditor(_))));
        // Only the first terminal CA: the terminal's issuer is not among them.
        let anchors = RoleAnchors::new(&[other], &[auditor_ca]).unwrap();
        assert!(anchors.caller(&terminal).is_err());
    }

    #[test]
    fn a_ca_granting_both_roles_is_refused() {
        let terminal_ca = read("terminal-ca.crt.pem");
        let auditor_ca = read("auditor-ca.crt.pem");
        let error = RoleAnchors::new(
            std::slice::from_ref(&terminal_ca),
            &[auditor_ca, terminal_ca.clone()],
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("distinct subject names"), "{text}");
        assert!(text.contains("among both"), "{text}");
    }
}
