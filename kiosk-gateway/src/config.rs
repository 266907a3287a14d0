//! The gateway's configuration: one typed tree, read from an optional TOML file and then
//! `KIOSK_*` environment variables, validated before anything binds. The file and the
//! variables are merged and extracted by figment (`config/load.rs`: each variable's name is
//! derived from the schema, so a new key needs no code to be read from its variable); the
//! file's sections are in `config/sections.rs`, the range checks in `config/validate.rs`.
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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;
mod sections;
mod validate;

pub use load::Sources;
pub use sections::{KeysConfig, RemoteIssuer, TRUST_KEYS, TrustConfig, env_var};

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
    /// The file is not valid TOML for this schema (a value of the wrong type, an unknown
    /// key, a missing one: named with the file).
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A `KIOSK_*` variable's value does not fit its setting.
    #[error("invalid configuration: {key} ({variable}): {why}")]
    Variable {
        /// The setting (`max_concurrent_streams`, `trust.terminal_ca`).
        key: String,
        /// Its variable.
        variable: String,
        /// Why.
        why: String,
    },
    /// Several problems: every value of the wrong type, unknown or missing key (or, when
    /// every value fits, every value out of range).
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
            ConfigError::Parse(why) => format!("\n  {why}"),
            ConfigError::Variable { key, variable, why } => {
                format!("\n  {key} ({variable}): {why}")
            }
            other => format!("\n  {other}"),
        })
        .collect()
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
    /// Reads `file` (if given), then applies `KIOSK_*` variables (both through figment, see
    /// `load.rs`), then validates. The profile is always set afterwards (see
    /// [`Config::profile`]), and [`Config::sources`] says where each setting came from. Every
    /// value that does not fit its setting, and every value out of range, is reported at once.
    pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Self, ConfigError> {
        let mut config = load::read(file, env)?;
        config.profile = Some(
            config
                .profile
                .unwrap_or_else(|| Profile::default_for(file.is_some())),
        );
        config.validate()?;
        Ok(config)
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

    #[test]
    fn every_value_of_the_wrong_type_is_named_at_once() {
        let error = load_toml(
            "max_concurrent_streams = \"many\"\ngateway_id = 5\nlisten_port = 1\n\
             [trust]\nterminal_ca = 7\n",
        )
        .unwrap_err();
        let ConfigError::Several(problems) = &error else {
            panic!("{error}")
        };
        assert_eq!(problems.len(), 4, "{error}");
        let text = error.to_string();
        for key in [
            "\n  max_concurrent_streams: ",
            "\n  gateway_id: ",
            "listen_port",
            "\n  trust.terminal_ca: ",
        ] {
            assert!(text.contains(key), "{key}: {text}");
        }
        assert!(text.contains("gateway.toml"), "the file is named: {text}");
        // The file's values keep TOML's types: a number in quotes is not a number.
        assert!(matches!(
            load_toml("max_concurrent_streams = \"64\"\n"),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn every_key_has_its_variable_without_code_of_its_own() {
        let env = FakeEnv(HashMap::from([
            ("KIOSK_FD_RESERVE", "7"),
            ("KIOSK_MAX_CONNECTIONS", "900"),
            ("KIOSK_CLIENT_CRL_FILES", "[/crl/t.crl, /crl/a.crl]"),
            ("KIOSK_MUNICIPALITIES", "[131016]"),
        ]));
        let config = Config::load(None, &env).unwrap();
        assert_eq!(config.fd_reserve, 7);
        assert_eq!(config.max_connections, Some(900));
        assert_eq!(
            config.client_crl_files,
            [PathBuf::from("/crl/t.crl"), PathBuf::from("/crl/a.crl")]
        );
        assert_eq!(
            config.sources.of("client_crl_files"),
            "KIOSK_CLIENT_CRL_FILES"
        );
        assert_eq!(config.sources.of("grace_ms"), "default");

        let bad = FakeEnv(HashMap::from([
            ("KIOSK_MAX_CONCURRENT_STREAMS", "many"),
            ("KIOSK_FD_RESERVE", "-1"),
        ]));
        let error = Config::load(None, &bad).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(&error, ConfigError::Several(p) if p.len() == 2),
            "{text}"
        );
        assert!(
            text.contains("\n  max_concurrent_streams (KIOSK_MAX_CONCURRENT_STREAMS): "),
            "{text}"
        );
        assert!(
            text.contains("\n  fd_reserve (KIOSK_FD_RESERVE): "),
            "{text}"
        );
    }
}
