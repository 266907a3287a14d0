//! The files a gateway serves with, and reading them: its TLS server certificate and key, the
//! CAs whose clients it accepts (terminals, auditors), the JPKI user-authentication CA and its
//! CRL, the client CRLs, the internal CA and its client certificate toward the issuers, the
//! municipality CA with each municipality's document-signing certificate (and key, for an
//! issuer in this process), the pseudonym key and the checkpoint seed.
//!
//! [`TrustFiles`] holds the paths; both deployments fill it, the production one from the
//! configuration's `[trust]` and `[keys]` sections ([`TrustFiles::from_config`]) and the
//! embedded one from its development PKI (`crate::provision`), so that one path builds the
//! server from it (`crate::deployment::server_parts`). [`TrustFiles::load`] reads every file
//! and reports every problem at once, each with the configuration key it concerns. Nothing
//! here creates a file: the secrets must exist.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiosk_document::pem;

use crate::config::{Config, Profile, env_var};
use crate::tls_key::ServerKey;

/// The length of the pseudonym key and of the checkpoint seed, bytes.
pub const SECRET_LEN: usize = 32;

/// One thing wrong with the files a gateway would serve with: the configuration key it
/// concerns and what is wrong (a file's path, never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The configuration key, e.g. `trust.terminal_ca`.
    pub key: String,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.what)
    }
}

/// The gateway refused to start: every problem found, nothing bound or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub Vec<Problem>);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the configuration is not usable ({} problem{}; see kiosk-gateway/README.md)",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// Problems collected while checking or reading, all reported together.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            what: what.into(),
        });
    }

    /// The path set for `key`, checked readable; a problem if it is not set or not readable.
    fn required(&mut self, key: &str, value: Option<&PathBuf>) -> PathBuf {
        match value {
            Some(path) => {
                self.readable(key, path);
                path.clone()
            }
            None => {
                self.push(key, format!("not set (or {})", env_var(key)));
                PathBuf::new()
            }
        }
    }

    /// A problem if `path` is not a readable file.
    fn readable(&mut self, key: &str, path: &Path) {
        let opened = std::fs::File::open(path).and_then(|file| file.metadata());
        match opened {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => self.push(key, format!("{}: not a file", path.display())),
            Err(e) => self.push(key, format!("{}: {e}", path.display())),
        }
    }

    /// The bytes of `path`, or a problem.
    fn read(&mut self, key: &str, path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| {
            self.push(key, format!("{}: {e}", path.display()));
            Vec::new()
        })
    }

    fn finish<T>(self, value: T) -> Result<T, Refused> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Refused(self.0))
        }
    }
}

/// Where a gateway's certificates, keys and revocation lists are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustFiles {
    /// `trust.server_cert`: the TLS server certificate chain, leaf first (PEM).
    pub server_cert: PathBuf,
    /// `keys.server_key`: its private key, a PEM file or a `pkcs11:` URI (a P-256 key).
    pub server_key: PathBuf,
    /// `trust.terminal_ca` (PEM).
    pub terminal_ca: PathBuf,
    /// `trust.auditor_ca` (PEM).
    pub auditor_ca: PathBuf,
    /// `trust.card_auth_ca`: the JPKI user-authentication CAs (a PEM bundle, or one DER).
    pub card_auth_ca: PathBuf,
    /// `card_crl_file`: their CRLs (PEM, one per CA, concatenated; or one DER), re-read while
    /// serving.
    pub card_crl: PathBuf,
    /// `client_crl_files`: one CRL per client CA, re-read while serving. Empty only in the
    /// embedded deployment, which mints its own.
    pub client_crls: Vec<PathBuf>,
    /// `trust.internal_ca` (PEM).
    pub internal_ca: PathBuf,
    /// `trust.internal_client_cert` (PEM).
    pub internal_client_cert: PathBuf,
    /// `keys.internal_client_key` (PEM).
    pub internal_client_key: PathBuf,
    /// `trust.municipality_ca` (PEM or DER).
    pub municipality_ca: PathBuf,
    /// Each routed municipality's document-signing certificate (PEM or DER), by code
    /// (`remote_issuers.signing_cert`).
    pub signing_certs: BTreeMap<String, PathBuf>,
    /// The signing key of each municipality issued in this process, by code (embedded only).
    pub signing_keys: BTreeMap<String, PathBuf>,
    /// `keys.pseudonym_key`: 32 bytes.
    pub pseudonym_key: PathBuf,
    /// `keys.checkpoint_seed`: 32 bytes (unused when `checkpoint_key` is set).
    pub checkpoint_seed: PathBuf,
    /// `keys.checkpoint_key`: a PKCS#11 URI or PEM file of the checkpoints' Ed25519 key.
    pub checkpoint_key: Option<String>,
}

/// The gateway's client side toward the issuers: the CA its server certificates chain to,
/// and the gateway's client certificate and key (PEM).
pub struct InternalTls {
    /// The internal CA.
    pub ca_pem: Vec<u8>,
    /// The gateway's internal client certificate.
    pub client_cert_pem: Vec<u8>,
    /// Its private key.
    pub client_key_pem: Vec<u8>,
}

/// Everything [`TrustFiles`] names, read and checked. Holds secrets: no `Debug`.
pub struct TrustMaterial {
    /// The server certificate chain (PEM).
    pub server_cert_pem: Vec<u8>,
    /// The server key (PEM).
    pub server_key: ServerKey,
    /// The terminal CA (PEM).
    pub terminal_ca_pem: Vec<u8>,
    /// The auditor CA (PEM).
    pub auditor_ca_pem: Vec<u8>,
    /// The JPKI user-authentication CAs (DER each).
    pub card_auth_cas_der: Vec<Vec<u8>>,
    /// Where the card CRLs are re-read from.
    pub card_crl_file: PathBuf,
    /// The card CRLs as read at start (DER each).
    pub card_crls: Vec<Vec<u8>>,
    /// The client CRL files (empty: minted by the embedded deployment).
    pub client_crl_files: Vec<PathBuf>,
    /// The client side toward the issuers.
    pub internal: InternalTls,
    /// The municipality CA (DER).
    pub municipality_ca_der: Vec<u8>,
    /// The document-signing certificates by municipality code (DER).
    pub signing_certs: BTreeMap<String, Vec<u8>>,
    /// The pseudonym key.
    pub pseudonym_key: Vec<u8>,
    /// The checkpoint seed (zero when `checkpoint_key` is set).
    pub checkpoint_seed: [u8; SECRET_LEN],
    /// The checkpoint key `keys.checkpoint_key` names, opened (a token key stays there).
    pub checkpoint_key: Option<Arc<kiosk_keys::Signer>>,
}

impl TrustFiles {
    /// The files a production configuration names, each checked readable. Every key that is
    /// not set and every file that cannot be read is reported, together with the settings a
    /// production gateway needs otherwise: CRL files, remote issuers with a name and a
    /// signing certificate each, and no municipality in process.
    pub fn from_config(config: &Config) -> Result<TrustFiles, Refused> {
        let (files, problems) = TrustFiles::collect(config);
        problems.finish(files)
    }

    /// [`TrustFiles::from_config`] and then [`TrustFiles::load`], every problem of both named
    /// once: a file that is set and readable but undecodable or of the wrong length is named
    /// even when another key is not set.
    pub fn read(config: &Config) -> Result<(TrustFiles, TrustMaterial), Refused> {
        let (files, mut problems) = TrustFiles::collect(config);
        match files.load() {
            Ok(material) => problems.finish((files, material)),
            Err(Refused(more)) => {
                let named: std::collections::BTreeSet<String> =
                    problems.0.iter().map(|p| p.key.clone()).collect();
                problems
                    .0
                    .extend(more.into_iter().filter(|p| !named.contains(&p.key)));
                Err(Refused(problems.0))
            }
        }
    }

    /// The files `config` names, with the problems found (an unset key is an empty path).
    fn collect(config: &Config) -> (TrustFiles, Problems) {
        let mut problems = Problems::default();
        let trust = config.trust.clone().unwrap_or_default();
        let keys = config.keys.clone().unwrap_or_default();
        let mut required =
            |key: &str, value: &Option<PathBuf>| problems.required(key, value.as_ref());
        let mut files = TrustFiles {
            server_cert: required("trust.server_cert", &trust.server_cert),
            // A token key is no file: `load` opens it and names what is wrong.
            server_key: match &keys.server_key {
                Some(uri) if is_token_uri(uri) => uri.clone(),
                other => required("keys.server_key", other),
            },
            terminal_ca: required("trust.terminal_ca", &trust.terminal_ca),
            auditor_ca: required("trust.auditor_ca", &trust.auditor_ca),
            card_auth_ca: required("trust.card_auth_ca", &trust.card_auth_ca),
            card_crl: required("card_crl_file", &config.card_crl_file),
            client_crls: config.client_crl_files.clone(),
            internal_ca: required("trust.internal_ca", &trust.internal_ca),
            internal_client_cert: required(
                "trust.internal_client_cert",
                &trust.internal_client_cert,
            ),
            internal_client_key: required("keys.internal_client_key", &keys.internal_client_key),
            municipality_ca: required("trust.municipality_ca", &trust.municipality_ca),
            signing_certs: BTreeMap::new(),
            signing_keys: BTreeMap::new(),
            pseudonym_key: required("keys.pseudonym_key", &keys.pseudonym_key),
            // A checkpoint key (on a token) replaces the seed file.
            checkpoint_seed: match keys.checkpoint_key {
                Some(_) => PathBuf::new(),
                None => required("keys.checkpoint_seed", &keys.checkpoint_seed),
            },
            checkpoint_key: keys.checkpoint_key.clone(),
        };
        if keys.checkpoint_key.is_some() && keys.checkpoint_seed.is_some() {
            problems.push(
                "keys.checkpoint_key",
                "set together with keys.checkpoint_seed: set one of them",
            );
        }
        if config.client_crl_files.is_empty() {
            problems.push(
                "client_crl_files",
                "not set: one CRL file per client CA (terminal CA, auditor CA), kept current \
                 by a fetcher",
            );
        }
        for path in &config.client_crl_files {
            problems.readable("client_crl_files", path);
        }
        production_database(config, &mut problems);
        // A policy list no card could meet is refused here, with the other problems.
        if let Some(Err(what)) = trust
            .card_policies
            .as_ref()
            .map(|list| crate::cardauth::CardPolicies::from_list(list))
        {
            problems.push("trust.card_policies", what);
        }
        production_routes(config, &mut problems, &mut files);
        (files, problems)
    }

    /// Reads and checks every file: certificates decode, keys are PEM private keys, secrets
    /// exist with their length. Every problem is reported, each with its key.
    pub fn load(&self) -> Result<TrustMaterial, Refused> {
        let mut problems = Problems::default();
        let p = &mut problems;
        let server_cert_pem = pem_chain(p, "trust.server_cert", &self.server_cert);
        let server_key = self.server_key_into(p, &server_cert_pem);
        let terminal_ca_pem = ca_bundle(p, "trust.terminal_ca", &self.terminal_ca);
        let auditor_ca_pem = ca_bundle(p, "trust.auditor_ca", &self.auditor_ca);
        let card_auth_cas_der = ca_certificates(p, "trust.card_auth_ca", &self.card_auth_ca);
        let card_crls = match crate::revocation::read_crls(&self.card_crl) {
            Ok(bytes) => bytes,
            Err(e) => {
                p.push("card_crl_file", format!("{e:#}"));
                Vec::new()
            }
        };
        let internal = self.internal_tls_into(p);
        let municipality_ca_der = certificate(p, "trust.municipality_ca", &self.municipality_ca);
        let mut signing_certs = BTreeMap::new();
        for (code, path) in &self.signing_certs {
            let key = format!("remote_issuers.signing_cert (municipality {code})");
            signing_certs.insert(code.clone(), certificate(p, &key, path));
        }
        let pseudonym_key = secret(p, "keys.pseudonym_key", &self.pseudonym_key);
        let (checkpoint_seed, checkpoint_key) = self.checkpoint_key_into(p);
        problems.finish(TrustMaterial {
            server_cert_pem,
            server_key,
            terminal_ca_pem,
            auditor_ca_pem,
            card_auth_cas_der,
            card_crl_file: self.card_crl.clone(),
            card_crls,
            client_crl_files: self.client_crls.clone(),
            internal,
            municipality_ca_der,
            signing_certs,
            pseudonym_key,
            checkpoint_seed,
            checkpoint_key,
        })
    }

    /// The checkpoint key: opened from `keys.checkpoint_key`, or the seed file read.
    fn checkpoint_key_into(
        &self,
        p: &mut Problems,
    ) -> ([u8; SECRET_LEN], Option<Arc<kiosk_keys::Signer>>) {
        let Some(reference) = &self.checkpoint_key else {
            let seed = secret(p, "keys.checkpoint_seed", &self.checkpoint_seed);
            return (seed.try_into().unwrap_or([0; SECRET_LEN]), None);
        };
        match kiosk_keys::Signer::open(reference, kiosk_keys::Algorithm::Ed25519) {
            Ok(key) => ([0; SECRET_LEN], Some(Arc::new(key))),
            Err(e) => {
                p.push("keys.checkpoint_key", e.to_string());
                ([0; SECRET_LEN], None)
            }
        }
    }

    /// The server key, from its file or token, checked to belong to the certificate's leaf.
    fn server_key_into(&self, p: &mut Problems, chain_pem: &[u8]) -> ServerKey {
        const KEY: &str = "keys.server_key";
        let key = if is_token_uri(&self.server_key) {
            let uri = self.server_key.to_string_lossy();
            match kiosk_keys::Signer::open(&uri, kiosk_keys::Algorithm::EcdsaP256Sha256) {
                Ok(signer) => ServerKey::Token(Arc::new(signer)),
                Err(e) => {
                    p.push(KEY, e.to_string());
                    return ServerKey::Pem(Vec::new());
                }
            }
        } else {
            ServerKey::Pem(pem_key(p, KEY, &self.server_key))
        };
        let chain = pem::certificates(chain_pem).unwrap_or_default();
        if !chain.is_empty()
            && !matches!(&key, ServerKey::Pem(pem) if pem.is_empty())
            && let Err(e) = key.certify(chain)
        {
            p.push(KEY, format!("{e} (trust.server_cert)"));
        }
        key
    }

    /// The gateway's client side toward the issuers, read.
    pub fn internal_tls(&self) -> Result<InternalTls, Refused> {
        let mut problems = Problems::default();
        let internal = self.internal_tls_into(&mut problems);
        problems.finish(internal)
    }

    fn internal_tls_into(&self, p: &mut Problems) -> InternalTls {
        InternalTls {
            ca_pem: ca_bundle(p, "trust.internal_ca", &self.internal_ca),
            client_cert_pem: pem_chain(p, "trust.internal_client_cert", &self.internal_client_cert),
            client_key_pem: pem_key(p, "keys.internal_client_key", &self.internal_client_key),
        }
    }
}

/// Whether a key setting names a PKCS#11 object rather than a file.
fn is_token_uri(path: &Path) -> bool {
    path.to_string_lossy().starts_with("pkcs11:")
}

/// Every check `serve` makes before it opens or binds anything: the profile's, and for the
/// production profile every setting and file it serves with (read, never created).
pub fn check(config: &Config) -> Result<(), Refused> {
    profile_problems(config)?;
    if config.production() {
        TrustFiles::read(config)?;
    }
    Ok(())
}

/// What the profile itself needs, before either deployment looks at its files: a `dev`
/// profile needs a build with the `embedded` feature, and reads no `[trust]` or `[keys]` (its
/// development PKI and secrets are its own).
pub fn profile_problems(config: &Config) -> Result<(), Refused> {
    let mut problems = Problems::default();
    if config.profile() == Profile::Dev {
        if !cfg!(feature = "embedded") {
            problems.push(
                "profile",
                "dev: this build has no development deployment (built without the cargo \
                 feature embedded); it serves only the production profile",
            );
        }
        for (key, set) in [
            ("trust", config.trust.is_some()),
            ("keys", config.keys.is_some()),
        ] {
            if set {
                problems.push(
                    key,
                    format!(
                        "set, but the dev profile serves with its development PKI and \
                         secrets and reads no [{key}]: remove it, or use the production \
                         profile"
                    ),
                );
            }
        }
    }
    problems.finish(())
}

/// What a production gateway needs of its database: `database_url` set (no default file
/// under `data_dir`), and for SQLite an existing directory. The URL itself is never
/// repeated (it may hold a password).
fn production_database(config: &Config, problems: &mut Problems) {
    let Some(url) = &config.database_url else {
        problems.push(
            "database_url",
            format!(
                "not set (or {}): the gateway's database, e.g. postgres://gateway@db/kiosk",
                env_var("database_url")
            ),
        );
        return;
    };
    if !matches!(
        crate::store::Backend::of_url(url),
        Ok(crate::store::Backend::Sqlite)
    ) {
        database_ca(url, problems);
        return;
    }
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        problems.push(
            "database_url",
            "an in-memory database: the audit log would be lost at exit",
        );
        return;
    }
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir
        && !dir.is_dir()
    {
        problems.push(
            "database_url",
            format!("{}: no such directory", dir.display()),
        );
    }
}

/// A PostgreSQL URL's `sslrootcert` (the CA its server is verified against with
/// `sslmode=verify-full`) must be a readable file: named here, before anything connects,
/// rather than as a failed handshake. Only the path is repeated, never the URL.
fn database_ca(url: &str, problems: &mut Problems) {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    for pair in query.split('&') {
        let Some((name, path)) = pair.split_once('=') else {
            continue;
        };
        if matches!(name, "sslrootcert" | "ssl-root-cert" | "ssl-ca")
            && let Err(e) = std::fs::read(path)
        {
            problems.push("database_url", format!("sslrootcert {path}: {e}"));
        }
    }
}

/// What a production gateway needs of its routes: no municipality in process, at least one
/// `[[remote_issuers]]` entry, each with a name, a readable bindings file and a signing
/// certificate (recorded in `files`).
fn production_routes(config: &Config, problems: &mut Problems, files: &mut TrustFiles) {
    if !config.municipalities.is_empty() {
        problems.push(
            "municipalities",
            format!(
                "{} would be issued in this process, which only the embedded development \
                 deployment does: set municipalities = [] and route each municipality to its \
                 `issuer serve` with [[remote_issuers]]",
                config.municipalities.join(", ")
            ),
        );
    }
    if config.remote_issuers.is_empty() {
        problems.push(
            "remote_issuers",
            "none: route each municipality to its `issuer serve` with [[remote_issuers]]",
        );
    }
    for remote in &config.remote_issuers {
        let code = &remote.municipality;
        let key = |name: &str| format!("remote_issuers.{name} (municipality {code})");
        if remote.name.is_none() {
            problems.push(key("name"), "not set: the name kiosks and verifiers show");
        }
        problems.readable(&key("bindings"), &remote.bindings);
        match &remote.signing_cert {
            Some(path) => {
                problems.readable(&key("signing_cert"), path);
                files.signing_certs.insert(code.clone(), path.clone());
            }
            None => problems.push(
                key("signing_cert"),
                "not set: the municipality's document-signing certificate",
            ),
        }
    }
}

/// The secret in `path` (`len` bytes), or `None` if there is none yet.
pub fn read_secret(path: &Path, len: usize) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == len => Ok(Some(bytes)),
        Ok(_) => anyhow::bail!(
            "{} has the wrong length (expected {len} bytes)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// A secret that must exist: never created here.
fn secret(p: &mut Problems, key: &str, path: &Path) -> Vec<u8> {
    match read_secret(path, SECRET_LEN) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            p.push(
                key,
                format!(
                    "{}: no such file ({SECRET_LEN} random bytes, mode 0600: the gateway \
                     never creates it)",
                    path.display()
                ),
            );
            Vec::new()
        }
        Err(e) => {
            p.push(key, format!("{e:#}"));
            Vec::new()
        }
    }
}

/// A PEM file of one or more certificates, checked to decode.
fn pem_chain(p: &mut Problems, key: &str, path: &Path) -> Vec<u8> {
    let bytes = p.read(key, path);
    if bytes.is_empty() {
        return bytes;
    }
    if let Err(e) = pem::certificates(&bytes) {
        p.push(
            key,
            format!("{}: not PEM certificates: {e}", path.display()),
        );
    }
    bytes
}

/// A PEM file of one or more CA certificates (a role's generations side by side), each
/// checked to be an X.509 CA certificate: a leaf put there by mistake would otherwise only
/// show as every client refused.
fn ca_bundle(p: &mut Problems, key: &str, path: &Path) -> Vec<u8> {
    let bytes = p.read(key, path);
    let decoded =
        pem::certificates(&bytes).map(|certs| certs.into_iter().map(|der| der.to_vec()).collect());
    check_cas(p, key, path, &bytes, decoded);
    bytes
}

/// CA certificates, a PEM bundle or one DER certificate, as DER, each checked to be a CA.
fn ca_certificates(p: &mut Problems, key: &str, path: &Path) -> Vec<Vec<u8>> {
    let bytes = p.read(key, path);
    check_cas(p, key, path, &bytes, pem::certificates_der(&bytes))
}

/// The certificates `decoded` from the file's `bytes`, each a CA; a problem naming `key`, the
/// file and the certificate's place in it otherwise. An unreadable file is named once.
fn check_cas(
    p: &mut Problems,
    key: &str,
    path: &Path,
    bytes: &[u8],
    decoded: Result<Vec<Vec<u8>>, pem::PemError>,
) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        if p.0.iter().all(|problem| problem.key != key) {
            p.push(key, format!("{}: empty, no CA certificate", path.display()));
        }
        return Vec::new();
    }
    let ders = match decoded {
        Ok(ders) => ders,
        Err(e) => {
            p.push(
                key,
                format!("{}: not PEM certificates: {e}", path.display()),
            );
            return Vec::new();
        }
    };
    for (index, der) in ders.iter().enumerate() {
        if let Err(what) = ca_certificate(der) {
            p.push(
                key,
                format!("{}: certificate {}: {what}", path.display(), index + 1),
            );
        }
    }
    ders
}

/// Whether `der` is an X.509 certificate whose basicConstraints make it a CA.
pub(crate) fn ca_certificate(der: &[u8]) -> Result<(), &'static str> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| "not an X.509 certificate")?;
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Ok(()),
        Ok(_) => Err("not a CA certificate (basicConstraints cA is not set)"),
        Err(_) => Err("its basicConstraints extension is malformed"),
    }
}

/// A PEM private key file, checked to decode.
fn pem_key(p: &mut Problems, key: &str, path: &Path) -> Vec<u8> {
    let bytes = p.read(key, path);
    if !bytes.is_empty() && pem::private_key(&bytes).is_err() {
        p.push(key, format!("{}: not a PEM private key", path.display()));
    }
    bytes
}

/// One certificate, PEM or DER, as DER.
fn certificate(p: &mut Problems, key: &str, path: &Path) -> Vec<u8> {
    let bytes = p.read(key, path);
    if bytes.is_empty() {
        return bytes;
    }
    let der = match pem::certificate_der(&bytes) {
        Ok(der) => der,
        Err(e) => {
            p.push(
                key,
                format!("{}: not a PEM certificate: {e}", path.display()),
            );
            return Vec::new();
        }
    };
    if x509_parser::parse_x509_certificate(&der).is_err() {
        p.push(key, format!("{}: not an X.509 certificate", path.display()));
    }
    der
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RemoteIssuer, TrustConfig};

    fn keys(refused: &Refused) -> Vec<&str> {
        refused.0.iter().map(|p| p.key.as_str()).collect()
    }

    /// The keys a refusal of an empty production configuration names.
    const EVERY_KEY: [&str; 16] = [
        "trust.server_cert",
        "keys.server_key",
        "trust.terminal_ca",
        "trust.auditor_ca",
        "trust.card_auth_ca",
        "card_crl_file",
        "trust.internal_ca",
        "trust.internal_client_cert",
        "keys.internal_client_key",
        "trust.municipality_ca",
        "keys.pseudonym_key",
        "keys.checkpoint_seed",
        "client_crl_files",
        "database_url",
        "municipalities",
        "remote_issuers",
    ];

    #[test]
    fn an_empty_production_configuration_names_every_key() {
        let config = Config {
            trust: Some(TrustConfig::default()),
            ..Config::default()
        };
        let refused = TrustFiles::from_config(&config).unwrap_err();
        assert_eq!(keys(&refused), EVERY_KEY);
        let text = refused.to_string();
        assert!(text.contains("trust.terminal_ca: not set (or KIOSK_TRUST_TERMINAL_CA)"));
        assert!(text.contains("keys.pseudonym_key: not set (or KIOSK_KEYS_PSEUDONYM_KEY)"));
        assert!(text.contains("municipalities: 131016 would be issued in this process"));
    }

    #[test]
    fn a_card_policy_list_no_card_could_meet_is_named() {
        let refused = |list: Vec<String>| {
            let config = Config {
                trust: Some(TrustConfig {
                    card_policies: Some(list),
                    ..TrustConfig::default()
                }),
                ..Config::default()
            };
            let refused = TrustFiles::from_config(&config).unwrap_err();
            refused
                .0
                .iter()
                .find(|p| p.key == "trust.card_policies")
                .map(|p| p.what.clone())
        };
        assert!(refused(vec![]).unwrap().contains("empty"));
        let bad = refused(vec!["1.2.392.200149.8.5.1.3.30".into(), "1.2.x".into()]);
        assert!(bad.unwrap().contains("entry 2"));
        assert_eq!(refused(vec!["1.2.392.200149.8.5.1.0.20".into()]), None);
    }

    #[test]
    fn the_production_database_must_be_configured_and_reachable_without_creating_it() {
        let dir = tempfile::tempdir().unwrap();
        let what = |url: Option<String>| {
            let config = Config {
                database_url: url,
                ..Config::default()
            };
            let refused = TrustFiles::from_config(&config).unwrap_err();
            refused
                .0
                .iter()
                .find(|p| p.key == "database_url")
                .map(|p| p.what.clone())
        };
        assert!(
            what(None)
                .unwrap()
                .starts_with("not set (or KIOSK_DATABASE_URL)")
        );
        let missing = dir.path().join("absent");
        let url = format!("sqlite://{}", missing.join("gateway.db").display());
        assert_eq!(
            what(Some(url)).unwrap(),
            format!("{}: no such directory", missing.display())
        );
        assert!(!missing.exists());
        assert!(
            what(Some("sqlite::memory:".into()))
                .unwrap()
                .contains("in-memory")
        );
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        assert_eq!(what(Some(url)), None);
        // A PostgreSQL URL is not opened here; its password is never repeated.
        assert_eq!(what(Some("postgres://gw:s3cret@db/kiosk".into())), None);
        // Its CA file must be there; the problem names the file, not the URL.
        let ca = missing.join("db-ca.pem");
        let url = format!(
            "postgres://gw:s3cret@db/kiosk?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        let problem = what(Some(url)).unwrap();
        assert!(
            problem.starts_with(&format!("sslrootcert {}: ", ca.display())),
            "{problem}"
        );
        assert!(!problem.contains("s3cret"), "{problem}");
    }

    #[test]
    fn the_dev_profile_reads_no_trust_or_keys() {
        let config = Config {
            profile: Some(Profile::Dev),
            keys: Some(crate::config::KeysConfig::default()),
            ..Config::default()
        };
        let refused = profile_problems(&config).unwrap_err();
        let mut expected = vec!["keys"];
        if !cfg!(feature = "embedded") {
            expected.insert(0, "profile");
        }
        assert_eq!(keys(&refused), expected, "{refused}");
        let production = Config {
            profile: Some(Profile::Production),
            keys: Some(crate::config::KeysConfig::default()),
            ..Config::default()
        };
        assert_eq!(profile_problems(&production), Ok(()));
    }

    #[test]
    fn unreadable_files_and_incomplete_remote_issuers_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("terminal-ca.crt.pem");
        let config = Config {
            municipalities: Vec::new(),
            trust: Some(TrustConfig {
                terminal_ca: Some(missing.clone()),
                auditor_ca: Some(dir.path().to_owned()),
                ..TrustConfig::default()
            }),
            remote_issuers: vec![RemoteIssuer {
                municipality: "271004".into(),
                endpoint: "https://issuer.internal:7444".into(),
                server_name: None,
                bindings: dir.path().join("bindings.jsonl"),
                name: None,
                signing_cert: None,
            }],
            ..Config::default()
        };
        let refused = TrustFiles::from_config(&config).unwrap_err();
        let found = |key: &str| {
            refused
                .0
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key} not named: {refused}"))
                .what
                .clone()
        };
        let what = found("trust.terminal_ca");
        assert!(what.contains(&missing.display().to_string()), "{what}");
        assert!(what.contains("No such file"), "{what}");
        assert!(found("trust.auditor_ca").ends_with("not a file"));
        assert!(found("remote_issuers.bindings (municipality 271004)").contains("No such file"));
        assert!(found("remote_issuers.name (municipality 271004)").starts_with("not set"));
        assert!(found("remote_issuers.signing_cert (municipality 271004)").starts_with("not set"));
        assert!(!keys(&refused).contains(&"municipalities"));
        assert!(!keys(&refused).contains(&"remote_issuers"));
    }

    #[test]
    fn secrets_must_exist_with_their_length_and_are_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("checkpoint.seed");
        std::fs::write(&short, [7u8; 16]).unwrap();
        let absent = dir.path().join("pseudonym.key");
        let files = TrustFiles {
            server_cert: dir.path().join("none"),
            server_key: dir.path().join("none"),
            terminal_ca: dir.path().join("none"),
            auditor_ca: dir.path().join("none"),
            card_auth_ca: dir.path().join("none"),
            card_crl: dir.path().join("none"),
            client_crls: Vec::new(),
            internal_ca: dir.path().join("none"),
            internal_client_cert: dir.path().join("none"),
            internal_client_key: dir.path().join("none"),
            municipality_ca: dir.path().join("none"),
            signing_certs: BTreeMap::new(),
            signing_keys: BTreeMap::new(),
            pseudonym_key: absent.clone(),
            checkpoint_seed: short,
            checkpoint_key: None,
        };
        let Err(refused) = files.load() else {
            panic!("loaded without files")
        };
        let what = |key: &str| {
            refused
                .0
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.what.clone())
                .unwrap_or_default()
        };
        assert!(what("keys.pseudonym_key").contains("never creates it"));
        assert!(what("keys.checkpoint_seed").contains("wrong length"));
        assert!(!absent.exists(), "the secret was created");
        // Every file is named, not just the first.
        assert_eq!(refused.0.len(), 12, "{refused}");
    }

    #[test]
    fn every_key_a_refusal_names_is_documented() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for key in EVERY_KEY {
            let field = key.rsplit('.').next().unwrap_or(key);
            assert!(
                readme.contains(&format!("`{key}`"))
                    || readme.contains(&format!("`[[{key}]]`"))
                    || readme.contains(&format!("{field} =")),
                "{key} is not in kiosk-gateway/README.md"
            );
        }
        for key in crate::config::TRUST_KEYS {
            assert!(
                readme.contains(&env_var(key)),
                "{} not documented",
                env_var(key)
            );
        }
        for field in ["signing_cert", "name"] {
            assert!(
                readme.contains(&format!("{field} =")),
                "remote_issuers.{field}"
            );
        }
    }

    const TERMINAL_CA: &[u8] = include_bytes!("../../devkit/testdata/pki/terminal-ca.crt.pem");
    const AUDITOR_CA: &[u8] = include_bytes!("../../devkit/testdata/pki/auditor-ca.crt.pem");
    const TERMINAL: &[u8] =
        include_bytes!("../../devkit/testdata/pki/terminal-seven-131016-0042-k1.crt.pem");

    /// What `ca_bundle` says of a file holding `bytes`: its problems, and the bytes it kept.
    fn bundle_problems(bytes: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cas.pem");
        std::fs::write(&path, bytes).unwrap();
        let mut problems = Problems::default();
        ca_bundle(&mut problems, "trust.terminal_ca", &path);
        problems.0.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_ca_bundle_holds_several_ca_certificates_and_nothing_else() {
        assert!(bundle_problems(TERMINAL_CA).is_empty());
        assert!(bundle_problems(&[TERMINAL_CA, AUDITOR_CA].concat()).is_empty());
        let empty = bundle_problems(b"");
        assert_eq!(empty.len(), 1);
        assert!(empty[0].starts_with("trust.terminal_ca: "), "{empty:?}");
        assert!(empty[0].contains("cas.pem: empty"), "{empty:?}");
        let no_block = bundle_problems(b"# no certificate here\n");
        assert!(no_block[0].contains("not PEM certificates"), "{no_block:?}");
        let leaf = bundle_problems(&[TERMINAL_CA, TERMINAL].concat());
        assert_eq!(leaf.len(), 1);
        assert!(
            leaf[0].contains("certificate 2: not a CA certificate"),
            "{leaf:?}"
        );
    }
}
