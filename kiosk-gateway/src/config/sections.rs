//! The sections and entries of the configuration file: `[trust]`, `[keys]` and
//! `[[remote_issuers]]`, with the `KIOSK_*` variable of each key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A municipality whose issuer runs as its own process (`issuer serve`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoteIssuer {
    /// The 6-digit municipality code.
    pub municipality: String,
    /// The issuer's address, `https://host:port`.
    pub endpoint: String,
    /// The name in the issuer's server certificate; default: the endpoint's host.
    pub server_name: Option<String>,
    /// The municipality's card bindings (JSON Lines, e.g. `kiosk-devkit generate --bindings-out`),
    /// imported on every start so the gateway knows whose cards route here.
    pub bindings: PathBuf,
    /// The municipality's name as kiosks and verifiers show it (required in production).
    pub name: Option<String>,
    /// The municipality's document-signing certificate (PEM or DER), under
    /// `trust.municipality_ca`: the gateway checks every page and PDF signature of its
    /// documents with it. Required in production; the embedded deployment takes
    /// `municipality-<code>.crt.pem` from its PKI directory.
    pub signing_cert: Option<PathBuf>,
}

/// `[trust]`: the certificates a production gateway presents and trusts, as files. TLS
/// material is PEM; `card_auth_ca`, `municipality_ca` and the remote issuers' `signing_cert`
/// may also be DER. Each key has the variable `KIOSK_TRUST_<KEY>` (upper case).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The gateway's TLS server certificate chain, leaf first.
    pub server_cert: Option<PathBuf>,
    /// The CA that issues terminal client certificates (`urn:kiosk:terminal:…`).
    pub terminal_ca: Option<PathBuf>,
    /// The CA that issues auditor client certificates (`urn:kiosk:auditor:…`).
    pub auditor_ca: Option<PathBuf>,
    /// The JPKI user-authentication CA that issues residents' card certificates.
    pub card_auth_ca: Option<PathBuf>,
    /// The CA over the municipalities' document-signing certificates.
    pub municipality_ca: Option<PathBuf>,
    /// The internal CA: it issues the issuers' server certificates (and the gateway's
    /// internal client certificate).
    pub internal_ca: Option<PathBuf>,
    /// The gateway's client certificate toward the issuers (`urn:kiosk:gateway:<id>`).
    pub internal_client_cert: Option<PathBuf>,
    /// The certificate policies a card must carry one of (OIDs); default: the production JPKI
    /// user-authentication policy only.
    pub card_policies: Option<Vec<String>>,
}

/// `[keys]`: a production gateway's private keys and secrets, as files that must exist (the
/// gateway never creates one). Each key has the variable `KIOSK_KEYS_<KEY>` (upper case).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The private key of `trust.server_cert` (PEM).
    pub server_key: Option<PathBuf>,
    /// The private key of `trust.internal_client_cert` (PEM).
    pub internal_client_key: Option<PathBuf>,
    /// 32 random bytes: the key of the residents' pseudonyms in the audit log.
    pub pseudonym_key: Option<PathBuf>,
    /// 32 random bytes: the seed of the audit checkpoints' Ed25519 signing key.
    pub checkpoint_seed: Option<PathBuf>,
    /// Instead of the seed, the checkpoint key: a PKCS#11 URI or PEM file (keys/README.md).
    pub checkpoint_key: Option<String>,
}

/// Every `[trust]` and `[keys]` key (each with its variable, [`env_var`]), as
/// kiosk-gateway/README.md lists them.
pub const TRUST_KEYS: [&str; 11] = [
    "trust.server_cert",
    "trust.terminal_ca",
    "trust.auditor_ca",
    "trust.card_auth_ca",
    "trust.municipality_ca",
    "trust.internal_ca",
    "trust.internal_client_cert",
    "keys.server_key",
    "keys.internal_client_key",
    "keys.pseudonym_key",
    "keys.checkpoint_seed",
];

/// The `KIOSK_*` variable of a configuration key: `trust.terminal_ca` is
/// `KIOSK_TRUST_TERMINAL_CA`.
pub fn env_var(key: &str) -> String {
    format!("KIOSK_{}", key.replace('.', "_").to_uppercase())
}

impl RemoteIssuer {
    /// The TLS server name to expect.
    pub fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            self.endpoint
                .parse::<tonic::codegen::http::Uri>()
                .ok()
                .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
                .unwrap_or_default()
        })
    }
}
