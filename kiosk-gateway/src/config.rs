//! The gateway's configuration: one typed tree, read from an optional TOML file and then
//! `KIOSK_*` environment variables, validated before anything binds.
//!
//! Two profiles ([`Profile`]) read it, chosen explicitly and never by which sections happen
//! to be present. `production` (`crate::deployment`; the only one in a build without the
//! `embedded` feature) serves with the certificates and keys that the `[trust]` and `[keys]`
//! sections name, the CRL files `client_crl_files` and `card_crl_file`, the database
//! `database_url` and the issuers of `[[remote_issuers]]`; it creates no key or certificate.
//! `dev` (`crate::provision`, feature `embedded`, default) is the embedded development
//! deployment: with no file and no variables that is everything under `.kiosk-data/` (SQLite
//! databases, a development PKI, a synthetic register), listening on 127.0.0.1:7443, with the
//! issuers in process. TEST ONLY. [`Config::profile`] says which: `KIOSK_PROFILE`, else
//! `profile` in the file, else `production` when a file is given and `dev` when none is (in a
//! build without `embedded`, `production`); `serve --dev` forces `dev`.
//!
//! `municipalities` are served in process (embedded only); each `[[remote_issuers]]` entry
//! routes one municipality to a separate `issuer serve` process over mutual TLS (the gateway
//! presents its internal client certificate and trusts the internal CA). A municipality is in
//! exactly one of the two lists.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which deployment `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The embedded development deployment (feature `embedded`): a development PKI, synthetic
    /// registers, secrets created on first start. TEST ONLY.
    Dev,
    /// The configured files, database and remote issuers; nothing created.
    Production,
}

impl Profile {
    /// `dev` or `production`, as the file and `KIOSK_PROFILE` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Production => "production",
        }
    }

    /// The profile of a start that does not say: `production` when a configuration file is
    /// given or the build has no development deployment, else `dev`.
    pub fn default_for(file_given: bool) -> Profile {
        if file_given || !cfg!(feature = "embedded") {
            Profile::Production
        } else {
            Profile::Dev
        }
    }
}

/// Why a configuration was refused (the binary exits with code 64).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// Several values are out of range: every one of them.
    #[error("invalid configuration ({} problems):{}", .0.len(), list(.0))]
    Several(Vec<ConfigError>),
    /// A value is out of range.
    #[error("invalid configuration: {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
}

/// Each problem of `errors` on its own line, as `field: why`.
fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|error| match error {
            ConfigError::Invalid { field, why } => format!("\n  {field}: {why}"),
            other => format!("\n  {other}"),
        })
        .collect()
}

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

/// `[trust]`: the certificate files of a production gateway (PEM; `card_auth_ca`, `municipality_ca`
/// and `signing_cert` may be DER; variables `KIOSK_TRUST_<KEY>`) and the card policies.
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
    /// The internal CA of the issuers' server certificates (and the gateway's client one).
    pub internal_ca: Option<PathBuf>,
    /// The gateway's client certificate toward the issuers (`urn:kiosk:gateway:<id>`).
    pub internal_client_cert: Option<PathBuf>,
    /// Card certificate policy OIDs accepted; default: `cardauth::JPKI_AUTH_POLICY` alone.
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

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `dev` or `production` (variable `KIOSK_PROFILE`). [`Config::load`] always sets it:
    /// when neither the file nor the variable says, `production` if a file was given, else
    /// `dev` (`production` in a build without the `embedded` feature).
    pub profile: Option<Profile>,
    /// Where the embedded defaults live (databases, PKI, keys).
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The gateway's database; default `sqlite://<data_dir>/gateway.db`.
    pub database_url: Option<String>,
    /// The in-process issuers' register database; default `sqlite://<data_dir>/register.db`.
    pub register_url: Option<String>,
    /// This gateway's id (bound into login signatures).
    pub gateway_id: String,
    /// Embedded deployment only: the PKI directory; default `<data_dir>/pki` (a development
    /// PKI is created if empty).
    pub pki_dir: Option<PathBuf>,
    /// Embedded deployment only: municipalities served in process, with a synthetic register
    /// on first start. A production gateway needs `[]` and `[[remote_issuers]]`.
    pub municipalities: Vec<String>,
    /// One CRL file (DER or PEM) per client CA (terminal CA, auditor CA), kept current by an
    /// outside fetcher; re-read every `crl_refresh_secs` and on SIGHUP. Required in
    /// production; empty in the embedded deployment: CRLs minted from the development PKI
    /// (TEST ONLY).
    pub client_crl_files: Vec<PathBuf>,
    /// The JPKI authentication CA's CRL (DER or PEM), re-read like the client CRLs. Required
    /// in production; the embedded deployment's default is `<pki_dir>/jpki-auth-ca.crl.der`.
    pub card_crl_file: Option<PathBuf>,
    /// `[trust]`: the certificates of a production gateway (refused in the `dev` profile,
    /// which uses its development PKI).
    pub trust: Option<TrustConfig>,
    /// `[keys]`: the private keys and secrets of a production gateway (refused in the `dev`
    /// profile, which creates its own).
    pub keys: Option<KeysConfig>,
    /// How often the CRL files are re-read, seconds.
    pub crl_refresh_secs: u64,
    /// Municipalities whose issuer is a separate process, reached over mutual TLS.
    pub remote_issuers: Vec<RemoteIssuer>,
    /// Residents per municipality in the synthetic register created on first start.
    pub synthetic_residents: u32,
    /// TLS handshake limit, ms.
    pub handshake_timeout_ms: u64,
    /// Issuances rendered at once before OVERLOADED.
    pub max_concurrent_issuances: usize,
    /// Sessions one terminal may have open (neither closed nor expired) before OpenSession
    /// answers OVERLOADED. The load generator runs many channels under one certificate.
    pub max_open_sessions_per_terminal: usize,
    /// How often documents pending at the issuers are reconciled with the gateway's records,
    /// seconds (also once at start).
    pub reconcile_interval_secs: u64,
    /// Print report window, seconds.
    pub print_window_secs: u64,
    /// Drain period on SIGTERM, ms.
    pub drain_ms: u64,
    /// Grace period for open connections after the drain, ms.
    pub grace_ms: u64,
    /// Most connections at once, terminals included; default: the soft RLIMIT_NOFILE (raised
    /// to the hard limit at start) less `fd_reserve`. Beyond it a new connection is closed
    /// at once.
    pub max_connections: Option<usize>,
    /// File descriptors kept for everything but client connections (databases, issuer links,
    /// CRL and log files) when `max_connections` is derived from RLIMIT_NOFILE.
    pub fd_reserve: usize,
    /// TLS handshakes in progress from one source address (an IPv6 /64 counts as one).
    pub max_handshakes_per_ip: usize,
    /// Connections without a client certificate (VerifyService callers), in total. Kept well
    /// below `max_connections`, so that the rest stays for terminals.
    pub max_anonymous_connections: usize,
    /// Connections without a client certificate from one source address.
    pub max_anonymous_connections_per_ip: usize,
    /// After the TLS handshake, the HTTP/2 client preface must arrive within this, ms.
    pub preface_timeout_ms: u64,
    /// A connection without a client certificate that carries no request or response
    /// (HTTP/2 HEADERS or DATA) for this long is closed, ms. Terminals are never closed for
    /// being idle.
    pub anonymous_idle_timeout_ms: u64,
    /// The gateway pings every connection after this much silence, ms ...
    pub http2_keepalive_interval_ms: u64,
    /// ... and closes it when the ping is not answered within this, ms.
    pub http2_keepalive_timeout_ms: u64,
    /// Concurrent HTTP/2 streams (calls) on one connection.
    pub max_concurrent_streams: u32,
    /// Bytes of released documents not yet sent, over all Issue streams. Beyond it Issue
    /// answers OVERLOADED (the issuance stays recorded: a retry with the same id gets it).
    pub issue_stream_budget_bytes: u64,
    /// The same, per terminal.
    pub issue_stream_budget_per_terminal_bytes: u64,
    /// An Issue stream not collected within this (or the caller's deadline if shorter) frees
    /// its documents and ends with OVERLOADED, ms.
    pub issue_stream_timeout_ms: u64,
    /// TerminalService calls handled at once; past it a call is refused at once with
    /// OVERLOADED (OpenSession already at three quarters, to let sessions under way finish).
    pub max_terminal_calls_in_flight: usize,
    /// VerifyService calls handled at once (each checks a PDF signature), then OVERLOADED.
    pub max_verify_calls_in_flight: usize,
    /// Calls handled at once for one caller (one client certificate, or one address without
    /// one), so that one caller cannot take every place; then OVERLOADED.
    pub max_calls_in_flight_per_caller: usize,
    /// Rehearsals and benchmarks only: run the deployment's clock from this RFC 3339 instant
    /// (e.g. `2026-11-25T10:00:00+09:00`) so service hours can be exercised at any time of
    /// day. Never set in production: everything the gateway judges by time follows this clock
    /// (sessions, deadlines, certificate and CRL validity at the handshake and at login, audit
    /// event times; see `crate::clock`), so CRL files must be current by it.
    pub rehearsal_clock_start: Option<String>,
    /// Where each setting came from: the keys the file set (`trust.terminal_ca`, ...) and the
    /// `KIOSK_*` variables that were set. Filled by [`Config::load`]; not a setting.
    #[serde(skip)]
    pub sources: Sources,
}

/// Where the settings of a loaded [`Config`] came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The configuration file, if one was read.
    pub file: Option<PathBuf>,
    /// The keys the file sets (top-level keys, and `trust.<key>` / `keys.<key>`).
    pub file_keys: BTreeSet<String>,
    /// The `KIOSK_*` variables that were set and read.
    pub variables: BTreeSet<String>,
}

impl Sources {
    /// Where `key` came from: its variable, the file, or the default.
    pub fn of(&self, key: &str) -> String {
        let variable = env_var(key);
        let human = crate::durations::human_key(key).map(env_var);
        if self.variables.contains(&variable) {
            variable
        } else if let Some(human) = human.filter(|v| self.variables.contains(v)) {
            human
        } else if self.file_keys.contains(key) {
            match &self.file {
                Some(file) => file.display().to_string(),
                None => "file".to_owned(),
            }
        } else {
            "default".to_owned()
        }
    }
}

/// An [`Environment`] that remembers which variables were set.
struct Recording<'a> {
    env: &'a dyn Environment,
    seen: RefCell<BTreeSet<String>>,
}

impl Environment for Recording<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let value = self.env.var(name);
        if value.is_some() {
            self.seen.borrow_mut().insert(name.to_owned());
        }
        value
    }
}

/// The keys a configuration file sets: top-level keys, and `<section>.<key>` for the keys of
/// `[trust]` and `[keys]`.
fn file_keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (key, value) in table {
        keys.insert(key.clone());
        if let (true, Some(section)) = (key == "trust" || key == "keys", value.as_table()) {
            keys.extend(section.keys().map(|field| format!("{key}.{field}")));
        }
    }
    keys
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: None,
            data_dir: PathBuf::from(".kiosk-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            database_url: None,
            register_url: None,
            gateway_id: "gw-dev-01".into(),
            pki_dir: None,
            municipalities: vec!["131016".into()],
            remote_issuers: Vec::new(),
            client_crl_files: Vec::new(),
            card_crl_file: None,
            trust: None,
            keys: None,
            crl_refresh_secs: 60,
            synthetic_residents: 200,
            handshake_timeout_ms: 5_000,
            max_concurrent_issuances: 64,
            max_open_sessions_per_terminal: 100,
            reconcile_interval_secs: 60,
            print_window_secs: 300,
            drain_ms: 2_000,
            grace_ms: 10_000,
            max_connections: None,
            fd_reserve: 256,
            max_handshakes_per_ip: 64,
            max_anonymous_connections: 512,
            max_anonymous_connections_per_ip: 8,
            preface_timeout_ms: 5_000,
            anonymous_idle_timeout_ms: 30_000,
            http2_keepalive_interval_ms: 30_000,
            http2_keepalive_timeout_ms: 10_000,
            max_concurrent_streams: 64,
            issue_stream_budget_bytes: 128 << 20,
            issue_stream_budget_per_terminal_bytes: 32 << 20,
            issue_stream_timeout_ms: 120_000,
            max_terminal_calls_in_flight: 64,
            max_verify_calls_in_flight: 16,
            max_calls_in_flight_per_caller: 32,
            rehearsal_clock_start: None,
            sources: Sources::default(),
        }
    }
}

/// Where the environment comes from: injectable so tests never call `env::set_var`.
pub trait Environment {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Reads `file` (if given), then applies `KIOSK_*` variables, then validates. The
    /// profile is always set afterwards (see [`Config::profile`]), and [`Config::sources`]
    /// says where each setting came from.
    pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Self, ConfigError> {
        let env = &Recording {
            env,
            seen: RefCell::default(),
        };
        let (mut config, keys) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let mut table: toml::Table =
                    toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
                let human = crate::durations::DURATION_KEYS
                    .iter()
                    .any(|(key, _, _)| table.contains_key(*key));
                // Durations in human form become their integer keys; without any, the text
                // is read directly, so that errors keep their line and column.
                let config: Config = if human {
                    crate::durations::normalize(&mut table).map_err(ConfigError::Parse)?;
                    table.clone().try_into()
                } else {
                    toml::from_str(&text)
                }
                .map_err(|e| ConfigError::Parse(e.to_string()))?;
                (config, file_keys(&table))
            }
            None => (Config::default(), BTreeSet::new()),
        };
        if let Some(v) = env.var("KIOSK_PROFILE") {
            config.profile = Some(match v.as_str() {
                "dev" => Profile::Dev,
                "production" => Profile::Production,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "KIOSK_PROFILE",
                        why: "dev or production".to_owned(),
                    });
                }
            });
        }
        config.profile = Some(
            config
                .profile
                .unwrap_or_else(|| Profile::default_for(file.is_some())),
        );
        if let Some(v) = env.var("KIOSK_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env.var("KIOSK_LISTEN") {
            config.listen = v.parse().map_err(|e| ConfigError::Invalid {
                field: "KIOSK_LISTEN",
                why: format!("{e}"),
            })?;
        }
        if let Some(v) = env.var("KIOSK_DATABASE_URL") {
            config.database_url = Some(v);
        }
        if let Some(v) = env.var("KIOSK_CARD_CRL_FILE") {
            config.card_crl_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env.var("KIOSK_REGISTER_URL") {
            config.register_url = Some(v);
        }
        if let Some(v) = env.var("KIOSK_GATEWAY_ID") {
            config.gateway_id = v;
        }
        if let Some(v) = env.var("KIOSK_REHEARSAL_CLOCK_START") {
            config.rehearsal_clock_start = Some(v);
        }
        number(
            env,
            "KIOSK_SYNTHETIC_RESIDENTS",
            &mut config.synthetic_residents,
        )?;
        config.limits_from_env(env)?;
        config.durations_from_env(env)?;
        config.trust_from_env(env);
        config.validate()?;
        config.sources = Sources {
            file: file.map(Path::to_owned),
            file_keys: keys,
            variables: env.seen.take(),
        };
        Ok(config)
    }

    /// The `[trust]` and `[keys]` files from `KIOSK_TRUST_*` and `KIOSK_KEYS_*` variables
    /// (`KIOSK_TRUST_TERMINAL_CA`, `KIOSK_KEYS_PSEUDONYM_KEY`, ...). A variable creates its
    /// section; it does not choose the profile.
    fn trust_from_env(&mut self, env: &dyn Environment) {
        let trust = &mut self.trust;
        path_var(env, "trust.server_cert", trust, |t| &mut t.server_cert);
        path_var(env, "trust.terminal_ca", trust, |t| &mut t.terminal_ca);
        path_var(env, "trust.auditor_ca", trust, |t| &mut t.auditor_ca);
        path_var(env, "trust.card_auth_ca", trust, |t| &mut t.card_auth_ca);
        path_var(env, "trust.municipality_ca", trust, |t| {
            &mut t.municipality_ca
        });
        path_var(env, "trust.internal_ca", trust, |t| &mut t.internal_ca);
        path_var(env, "trust.internal_client_cert", trust, |t| {
            &mut t.internal_client_cert
        });
        let keys = &mut self.keys;
        path_var(env, "keys.server_key", keys, |k| &mut k.server_key);
        path_var(env, "keys.internal_client_key", keys, |k| {
            &mut k.internal_client_key
        });
        path_var(env, "keys.pseudonym_key", keys, |k| &mut k.pseudonym_key);
        path_var(env, "keys.checkpoint_seed", keys, |k| {
            &mut k.checkpoint_seed
        });
    }

    /// The profile `serve` runs: as [`Config::load`] set it (`KIOSK_PROFILE`, else `profile`
    /// in the file, else `production` with a file and `dev` without one); a `Config` built
    /// in code without one is `dev` in a build with the `embedded` feature.
    pub fn profile(&self) -> Profile {
        self.profile.unwrap_or_else(|| Profile::default_for(false))
    }

    /// Whether `serve` runs the production deployment (`crate::deployment`).
    pub fn production(&self) -> bool {
        self.profile() == Profile::Production
    }

    /// The duration settings in human form from their variables (`KIOSK_RECONCILE_INTERVAL=60s`,
    /// see `crate::durations`); one and its integer variable are not both set.
    fn durations_from_env(&mut self, env: &dyn Environment) -> Result<(), ConfigError> {
        for (human, integer, unit_ms) in crate::durations::DURATION_KEYS {
            let Some(text) = env.var(&env_var(human)) else {
                continue;
            };
            let invalid = |why: String| ConfigError::Invalid {
                field: human,
                why: format!("{} ({})", why, env_var(human)),
            };
            if env.var(&env_var(integer)).is_some() {
                return Err(invalid(format!("{} is set too: set one", env_var(integer))));
            }
            let units = crate::durations::in_units(&text, unit_ms).map_err(invalid)?;
            if let Some(field) = self.duration_field(integer) {
                *field = units;
            }
        }
        Ok(())
    }

    /// The integer duration setting `key` (`reconcile_interval_secs`, ...).
    fn duration_field(&mut self, key: &str) -> Option<&mut u64> {
        Some(match key {
            "handshake_timeout_ms" => &mut self.handshake_timeout_ms,
            "reconcile_interval_secs" => &mut self.reconcile_interval_secs,
            "print_window_secs" => &mut self.print_window_secs,
            "drain_ms" => &mut self.drain_ms,
            "grace_ms" => &mut self.grace_ms,
            "crl_refresh_secs" => &mut self.crl_refresh_secs,
            "preface_timeout_ms" => &mut self.preface_timeout_ms,
            "anonymous_idle_timeout_ms" => &mut self.anonymous_idle_timeout_ms,
            "http2_keepalive_interval_ms" => &mut self.http2_keepalive_interval_ms,
            "http2_keepalive_timeout_ms" => &mut self.http2_keepalive_timeout_ms,
            "issue_stream_timeout_ms" => &mut self.issue_stream_timeout_ms,
            _ => return None,
        })
    }

    /// The connection and stream limits from `KIOSK_*` variables (names as the fields, upper
    /// case: `KIOSK_MAX_ANONYMOUS_CONNECTIONS`, ...).
    fn limits_from_env(&mut self, env: &dyn Environment) -> Result<(), ConfigError> {
        if let Some(v) = env.var("KIOSK_MAX_CONNECTIONS") {
            self.max_connections = Some(parse_number("KIOSK_MAX_CONNECTIONS", &v)?);
        }
        number(env, "KIOSK_FD_RESERVE", &mut self.fd_reserve)?;
        number(
            env,
            "KIOSK_HANDSHAKE_TIMEOUT_MS",
            &mut self.handshake_timeout_ms,
        )?;
        number(
            env,
            "KIOSK_MAX_HANDSHAKES_PER_IP",
            &mut self.max_handshakes_per_ip,
        )?;
        number(
            env,
            "KIOSK_MAX_ANONYMOUS_CONNECTIONS",
            &mut self.max_anonymous_connections,
        )?;
        number(
            env,
            "KIOSK_MAX_ANONYMOUS_CONNECTIONS_PER_IP",
            &mut self.max_anonymous_connections_per_ip,
        )?;
        number(
            env,
            "KIOSK_PREFACE_TIMEOUT_MS",
            &mut self.preface_timeout_ms,
        )?;
        number(
            env,
            "KIOSK_ANONYMOUS_IDLE_TIMEOUT_MS",
            &mut self.anonymous_idle_timeout_ms,
        )?;
        number(
            env,
            "KIOSK_HTTP2_KEEPALIVE_INTERVAL_MS",
            &mut self.http2_keepalive_interval_ms,
        )?;
        number(
            env,
            "KIOSK_HTTP2_KEEPALIVE_TIMEOUT_MS",
            &mut self.http2_keepalive_timeout_ms,
        )?;
        number(
            env,
            "KIOSK_MAX_CONCURRENT_STREAMS",
            &mut self.max_concurrent_streams,
        )?;
        number(
            env,
            "KIOSK_ISSUE_STREAM_BUDGET_BYTES",
            &mut self.issue_stream_budget_bytes,
        )?;
        number(
            env,
            "KIOSK_ISSUE_STREAM_BUDGET_PER_TERMINAL_BYTES",
            &mut self.issue_stream_budget_per_terminal_bytes,
        )?;
        number(
            env,
            "KIOSK_ISSUE_STREAM_TIMEOUT_MS",
            &mut self.issue_stream_timeout_ms,
        )?;
        number(
            env,
            "KIOSK_MAX_TERMINAL_CALLS_IN_FLIGHT",
            &mut self.max_terminal_calls_in_flight,
        )?;
        number(
            env,
            "KIOSK_MAX_VERIFY_CALLS_IN_FLIGHT",
            &mut self.max_verify_calls_in_flight,
        )?;
        number(
            env,
            "KIOSK_MAX_CALLS_IN_FLIGHT_PER_CALLER",
            &mut self.max_calls_in_flight_per_caller,
        )?;
        number(
            env,
            "KIOSK_MAX_OPEN_SESSIONS_PER_TERMINAL",
            &mut self.max_open_sessions_per_terminal,
        )?;
        number(
            env,
            "KIOSK_RECONCILE_INTERVAL_SECS",
            &mut self.reconcile_interval_secs,
        )?;
        Ok(())
    }

    fn validate_limits(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if self.max_connections == Some(0) {
            invalid("max_connections", "at least 1");
        }
        for (field, value) in [
            ("max_handshakes_per_ip", self.max_handshakes_per_ip),
            (
                "max_terminal_calls_in_flight",
                self.max_terminal_calls_in_flight,
            ),
            (
                "max_verify_calls_in_flight",
                self.max_verify_calls_in_flight,
            ),
            ("max_anonymous_connections", self.max_anonymous_connections),
            (
                "max_anonymous_connections_per_ip",
                self.max_anonymous_connections_per_ip,
            ),
        ] {
            if value == 0 {
                invalid(field, "at least 1");
            }
        }
        if self.max_anonymous_connections_per_ip > self.max_anonymous_connections {
            invalid(
                "max_anonymous_connections_per_ip",
                "at most max_anonymous_connections",
            );
        }
        if let Some(max) = self.max_connections
            && self.max_anonymous_connections >= max
        {
            invalid(
                "max_anonymous_connections",
                "below max_connections: the rest is kept for terminals",
            );
        }
        for (field, value) in [
            ("preface_timeout_ms", self.preface_timeout_ms),
            ("anonymous_idle_timeout_ms", self.anonymous_idle_timeout_ms),
            (
                "http2_keepalive_interval_ms",
                self.http2_keepalive_interval_ms,
            ),
            (
                "http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
            ),
            ("issue_stream_timeout_ms", self.issue_stream_timeout_ms),
        ] {
            if value == 0 {
                invalid(field, "at least 1 ms");
            }
        }
        if self.max_concurrent_streams == 0 {
            invalid("max_concurrent_streams", "at least 1");
        }
        if self.issue_stream_budget_per_terminal_bytes < 1 << 20 {
            invalid("issue_stream_budget_per_terminal_bytes", "at least 1 MiB");
        }
        if self.issue_stream_budget_per_terminal_bytes > self.issue_stream_budget_bytes {
            invalid(
                "issue_stream_budget_per_terminal_bytes",
                "at most issue_stream_budget_bytes",
            );
        }
    }

    /// Every value out of range, all reported together.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.validate_values(&mut problems);
        self.validate_routes(&mut problems);
        self.validate_limits(&mut problems);
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Several(problems)),
        }
    }

    fn validate_values(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if card::login::context_bytes(&self.gateway_id, "t", "s").is_none()
            || self.gateway_id.len() > 64
        {
            invalid("gateway_id", "1 to 64 characters, no newline");
        }
        for (field, url) in [
            ("database_url", &self.database_url),
            ("register_url", &self.register_url),
        ] {
            if let Some(url) = url
                && crate::store::Backend::of_url(url).is_err()
            {
                invalid(field, "must start with sqlite: or postgres:");
            }
        }
        if self.max_open_sessions_per_terminal == 0 {
            invalid(
                "max_open_sessions_per_terminal",
                "at least 1 (a terminal needs one session per resident at the kiosk)",
            );
        }
        for (field, value) in [
            ("reconcile_interval_secs", self.reconcile_interval_secs),
            ("crl_refresh_secs", self.crl_refresh_secs),
            ("print_window_secs", self.print_window_secs),
        ] {
            if value == 0 {
                invalid(field, "at least 1 second");
            }
        }
        if self.max_concurrent_issuances == 0 {
            invalid("max_concurrent_issuances", "at least 1");
        }
        if self.rehearsal_clock_start().is_err() {
            invalid("rehearsal_clock_start", "an RFC 3339 instant");
        }
    }

    /// The municipalities in process and the remote issuers.
    fn validate_routes(&self, problems: &mut Vec<ConfigError>) {
        let mut invalid = |field, why: &str| {
            problems.push(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            });
        };
        if self.municipalities.is_empty() && self.remote_issuers.is_empty() {
            invalid(
                "municipalities",
                "at least one municipality, in process or in remote_issuers",
            );
        }
        if self
            .municipalities
            .iter()
            .any(|code| audit::event::MunicipalityCode::parse(code).is_err())
        {
            invalid("municipalities", "6-digit codes with a valid check digit");
        }
        let mut seen: Vec<&str> = self.municipalities.iter().map(String::as_str).collect();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            invalid("municipalities", "a code is listed twice");
        }
        for remote in &self.remote_issuers {
            if audit::event::MunicipalityCode::parse(&remote.municipality).is_err() {
                invalid(
                    "remote_issuers.municipality",
                    "6-digit codes with a valid check digit",
                );
            }
            if seen.contains(&remote.municipality.as_str()) {
                invalid(
                    "remote_issuers.municipality",
                    "a municipality is served either in process (municipalities) or by one \
                     remote issuer, not both; set municipalities = [] to serve none in process",
                );
            }
            seen.push(&remote.municipality);
            match remote.endpoint.parse::<tonic::codegen::http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
                _ => invalid(
                    "remote_issuers.endpoint",
                    "an https://host:port URL (the issuer is only reached over mutual TLS)",
                ),
            }
            if remote.server_name().is_empty() {
                invalid("remote_issuers.server_name", "a DNS name or address");
            }
        }
    }

    /// Every municipality this gateway routes, in process first, with its configured display
    /// name (only `[[remote_issuers]]` entries configure one).
    pub fn all_municipalities(&self) -> Vec<(String, Option<String>)> {
        let in_process = self.municipalities.iter().map(|code| (code.clone(), None));
        let remote = self
            .remote_issuers
            .iter()
            .map(|r| (r.municipality.clone(), r.name.clone()));
        in_process.chain(remote).collect()
    }

    /// The gateway database URL.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gateway.db").display()))
    }

    /// The in-process register URL.
    pub fn register_url(&self) -> String {
        self.register_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("register.db").display()))
    }

    /// The PKI directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki"))
    }

    /// The rehearsal clock's start in unix ms, if one is configured.
    pub fn rehearsal_clock_start(&self) -> Result<Option<i64>, time::error::Parse> {
        self.rehearsal_clock_start
            .as_deref()
            .map(|text| {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            })
            .transpose()
    }

    /// The deployment's clock: the system clock, or the rehearsal clock when one is
    /// configured. Every process of a deployment (serve, admin) builds it the same way.
    pub fn clock(&self) -> Result<std::sync::Arc<dyn crate::clock::Clock>, time::error::Parse> {
        Ok(match self.rehearsal_clock_start()? {
            Some(start) => std::sync::Arc::new(crate::clock::OffsetClock::starting_at(start)),
            None => std::sync::Arc::new(crate::clock::SystemClock),
        })
    }

    /// The TLS handshake limit.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// The connection and Issue stream limits, for `server::ServerParts`.
    pub fn limits(&self) -> crate::limits::Limits {
        let ms = Duration::from_millis;
        crate::limits::Limits {
            max_connections: self.max_connections,
            fd_reserve: self.fd_reserve,
            max_handshakes_per_ip: self.max_handshakes_per_ip,
            max_anonymous: self.max_anonymous_connections,
            max_anonymous_per_ip: self.max_anonymous_connections_per_ip,
            preface_timeout: ms(self.preface_timeout_ms),
            anonymous_idle_timeout: ms(self.anonymous_idle_timeout_ms),
            keepalive_interval: ms(self.http2_keepalive_interval_ms),
            keepalive_timeout: ms(self.http2_keepalive_timeout_ms),
            max_concurrent_streams: self.max_concurrent_streams,
            stream_budget_bytes: self.issue_stream_budget_bytes,
            stream_budget_per_terminal_bytes: self.issue_stream_budget_per_terminal_bytes,
            stream_timeout: ms(self.issue_stream_timeout_ms),
            max_terminal_calls: self.max_terminal_calls_in_flight,
            max_verify_calls: self.max_verify_calls_in_flight,
            max_calls_per_caller: self.max_calls_in_flight_per_caller,
        }
    }
}

/// Parses a `KIOSK_*` number.
fn parse_number<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| ConfigError::Invalid {
        field: name,
        why: format!("{e}"),
    })
}

/// Sets the path `field` of `section` (created if absent) from the variable of `key` when it
/// is set.
fn path_var<T: Default>(
    env: &dyn Environment,
    key: &str,
    section: &mut Option<T>,
    field: fn(&mut T) -> &mut Option<PathBuf>,
) {
    if let Some(value) = env.var(&env_var(key)) {
        *field(section.get_or_insert_with(T::default)) = Some(PathBuf::from(value));
    }
}

/// Overrides `field` with the variable `name` when it is set.
fn number<T: std::str::FromStr>(
    env: &dyn Environment,
    name: &'static str,
    field: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = env.var(name) {
        *field = parse_number(name, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, &'static str>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_describe_the_embedded_mode() {
        let config = Config::load(None, &FakeEnv(HashMap::new())).unwrap();
        assert_eq!(config.database_url(), "sqlite://.kiosk-data/gateway.db");
        assert_eq!(config.pki_dir(), PathBuf::from(".kiosk-data/pki"));
    }

    #[test]
    fn environment_overrides_and_is_validated() {
        let env = FakeEnv(HashMap::from([
            ("KIOSK_DATABASE_URL", "postgres://postgres@127.0.0.1/test"),
            ("KIOSK_LISTEN", "127.0.0.1:0"),
        ]));
        let config = Config::load(None, &env).unwrap();
        assert_eq!(config.database_url(), "postgres://postgres@127.0.0.1/test");
        let bad = FakeEnv(HashMap::from([("KIOSK_DATABASE_URL", "mysql://x")]));
        assert!(matches!(
            Config::load(None, &bad),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn every_value_out_of_range_is_named() {
        let error = load_toml(
            "max_concurrent_streams = 0\nprint_window_secs = 0\n\
             register_url = \"mysql://x\"\nmunicipalities = [\"131017\"]\n",
        )
        .unwrap_err();
        let ConfigError::Several(problems) = &error else {
            panic!("{error}")
        };
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| match p {
                ConfigError::Invalid { field, .. } => *field,
                _ => "?",
            })
            .collect();
        assert_eq!(
            fields,
            [
                "register_url",
                "print_window_secs",
                "municipalities",
                "max_concurrent_streams"
            ]
        );
        let text = error.to_string();
        assert!(
            text.starts_with("invalid configuration (4 problems):\n  register_url: "),
            "{text}"
        );
    }

    #[test]
    fn durations_in_human_form_set_the_integer_settings() {
        let config =
            load_toml("reconcile_interval = \"2m\"\npreface_timeout = \"250ms\"\ndrain_ms = 5\n")
                .unwrap();
        assert_eq!(config.reconcile_interval_secs, 120);
        assert_eq!(config.preface_timeout_ms, 250);
        assert_eq!(config.drain_ms, 5);
        assert!(config.sources.file_keys.contains("reconcile_interval_secs"));
        assert!(matches!(
            load_toml("reconcile_interval = \"2m\"\nreconcile_interval_secs = 60\n"),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            load_toml("crl_refresh = \"1500ms\"\n"),
            Err(ConfigError::Parse(_))
        ));
        let env = FakeEnv(HashMap::from([
            ("KIOSK_RECONCILE_INTERVAL", "90s"),
            ("KIOSK_ISSUE_STREAM_TIMEOUT", "1m"),
        ]));
        let config = Config::load(None, &env).unwrap();
        assert_eq!(config.reconcile_interval_secs, 90);
        assert_eq!(config.issue_stream_timeout_ms, 60_000);
        assert_eq!(
            config.sources.of("reconcile_interval_secs"),
            "KIOSK_RECONCILE_INTERVAL"
        );
        let both = FakeEnv(HashMap::from([
            ("KIOSK_RECONCILE_INTERVAL", "90s"),
            ("KIOSK_RECONCILE_INTERVAL_SECS", "90"),
        ]));
        assert!(matches!(
            Config::load(None, &both),
            Err(ConfigError::Invalid {
                field: "reconcile_interval",
                ..
            })
        ));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlisten_port = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), &FakeEnv(HashMap::new())),
            Err(ConfigError::Parse(_))
        ));
    }

    fn load_toml(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), &FakeEnv(HashMap::new()))
    }

    #[test]
    fn remote_issuers_are_read_and_checked() {
        let config = load_toml(
            "municipalities = [\"131016\"]\n\
             [[remote_issuers]]\nmunicipality = \"271004\"\n\
             endpoint = \"https://issuer-osaka.internal:7444\"\nbindings = \"b.jsonl\"\n",
        )
        .unwrap();
        assert_eq!(config.remote_issuers.len(), 1);
        assert_eq!(
            config.remote_issuers[0].server_name(),
            "issuer-osaka.internal"
        );
        let codes: Vec<String> = config
            .all_municipalities()
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        assert_eq!(codes, ["131016", "271004"]);

        let field = |toml: &str| match load_toml(toml) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        // The default in-process municipality is 131016: routing it remotely too is refused.
        assert_eq!(
            field(
                "[[remote_issuers]]\nmunicipality = \"131016\"\n\
                 endpoint = \"https://i:7444\"\nbindings = \"b\"\n"
            ),
            "remote_issuers.municipality"
        );
        assert_eq!(
            field(
                "municipalities = []\n[[remote_issuers]]\nmunicipality = \"131016\"\n\
                 endpoint = \"http://i:7444\"\nbindings = \"b\"\n"
            ),
            "remote_issuers.endpoint"
        );
        assert_eq!(
            field(
                "municipalities = []\n[[remote_issuers]]\nmunicipality = \"131017\"\n\
                 endpoint = \"https://i:7444\"\nbindings = \"b\"\n"
            ),
            "remote_issuers.municipality"
        );
        assert_eq!(field("municipalities = []\n"), "municipalities");
        // A typo in an entry is refused, not ignored.
        assert!(matches!(
            load_toml(
                "municipalities = []\n[[remote_issuers]]\nmunicipality = \"131016\"\n\
                 endpoint = \"https://i:7444\"\nbindings = \"b\"\nservername = \"x\"\n"
            ),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn a_file_chooses_production_unless_it_says_dev() {
        // A file, even empty, is the production profile; none is the dev profile (production
        // in a build without the embedded deployment).
        assert!(load_toml("").unwrap().production());
        let none = Config::load(None, &FakeEnv(HashMap::new())).unwrap();
        assert_eq!(none.production(), !cfg!(feature = "embedded"));
        assert_eq!(
            load_toml("profile = \"dev\"\n").unwrap().profile(),
            Profile::Dev
        );
        assert_eq!(
            load_toml("profile = \"production\"\n").unwrap().profile(),
            Profile::Production
        );
        assert!(matches!(
            load_toml("profile = \"staging\"\n"),
            Err(ConfigError::Parse(_))
        ));
        // KIOSK_PROFILE overrides the file and chooses without one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "profile = \"dev\"\n").unwrap();
        let env = FakeEnv(HashMap::from([("KIOSK_PROFILE", "production")]));
        let config = Config::load(Some(&path), &env).unwrap();
        assert!(config.production());
        assert!(config.sources.variables.contains("KIOSK_PROFILE"));
        assert_eq!(config.sources.of("profile"), "KIOSK_PROFILE");
        let env = FakeEnv(HashMap::from([("KIOSK_PROFILE", "dev")]));
        assert_eq!(Config::load(None, &env).unwrap().profile(), Profile::Dev);
        let env = FakeEnv(HashMap::from([("KIOSK_PROFILE", "prod")]));
        assert!(matches!(
            Config::load(None, &env),
            Err(ConfigError::Invalid {
                field: "KIOSK_PROFILE",
                ..
            })
        ));
    }

    #[test]
    fn trust_and_keys_sections_are_read() {
        // [trust] or [keys] do not choose the profile: the file does.
        let config = load_toml("profile = \"dev\"\n[trust]\n").unwrap();
        assert_eq!(config.profile(), Profile::Dev);
        let config = load_toml(
            "[trust]\nterminal_ca = \"/etc/kiosk/terminal-ca.pem\"\n\
             [keys]\npseudonym_key = \"/var/lib/kiosk/pseudonym.key\"\n",
        )
        .unwrap();
        assert!(config.sources.file_keys.contains("trust.terminal_ca"));
        assert!(config.sources.file_keys.contains("keys"));
        assert!(!config.sources.file_keys.contains("trust.server_cert"));
        // A typo in a section is refused, not ignored.
        assert!(matches!(
            load_toml("[trust]\nterminal_cert = \"x\"\n"),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn every_trust_and_key_variable_sets_its_key() {
        struct OneVar(String);
        impl Environment for OneVar {
            fn var(&self, name: &str) -> Option<String> {
                (name == self.0).then(|| "/from/env".to_owned())
            }
        }
        for key in TRUST_KEYS {
            let config = Config::load(None, &OneVar(env_var(key))).unwrap();
            assert_eq!(config.sources.of(key), env_var(key));
            let (section, field) = key.split_once('.').unwrap();
            let text = match section {
                "trust" => format!("{:?}", config.trust.unwrap()),
                _ => format!("{:?}", config.keys.unwrap()),
            };
            assert!(
                text.contains(&format!("{field}: Some(\"/from/env\")")),
                "{key} from {}: {text}",
                env_var(key)
            );
        }
        assert_eq!(env_var("trust.terminal_ca"), "KIOSK_TRUST_TERMINAL_CA");
    }
}
