//! The gateway's configuration: one typed tree, read from an optional TOML file and then
//! `KIOSK_*` environment variables, validated before anything binds.
//!
//! With no file and no variables it describes the embedded default: everything under
//! `.kiosk-data/` (SQLite databases, a development PKI, a synthetic register), listening on
//! 127.0.0.1:7443, with the issuers in process.
//!
//! `serve` runs every issuer in process. Routing a municipality to a separate issuer process
//! over mutual TLS exists as a library (`route::Remote`, used by the end-to-end tests) but not
//! yet as configuration: there is no `issuer serve` binary to point at, and a setting that was
//! accepted and ignored would be worse than none (an unknown key is refused).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    /// A value is out of range.
    #[error("invalid configuration: {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
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
    /// The PKI directory; default `<data_dir>/pki` (a development PKI is created if empty).
    pub pki_dir: Option<PathBuf>,
    /// Municipalities served in process, with a synthetic register on first start.
    pub municipalities: Vec<String>,
    /// Residents per municipality in the synthetic register created on first start.
    pub synthetic_residents: u32,
    /// TLS handshake limit, ms.
    pub handshake_timeout_ms: u64,
    /// Issuances rendered at once before OVERLOADED.
    pub max_concurrent_issuances: usize,
    /// Print report window, seconds.
    pub print_window_secs: u64,
    /// Drain period on SIGTERM, ms.
    pub drain_ms: u64,
    /// Grace period for open connections after the drain, ms.
    pub grace_ms: u64,
    /// Rehearsals and benchmarks only: run the flow's clock from this RFC 3339 instant (e.g.
    /// `2026-11-25T10:00:00+09:00`) so service hours can be exercised at any time of day.
    /// Never set in production: issue times and deadlines follow this clock.
    pub rehearsal_clock_start: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".kiosk-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            database_url: None,
            register_url: None,
            gateway_id: "gw-dev-01".into(),
            pki_dir: None,
            municipalities: vec!["131016".into()],
            synthetic_residents: 200,
            handshake_timeout_ms: 5_000,
            max_concurrent_issuances: 64,
            print_window_secs: 300,
            drain_ms: 2_000,
            grace_ms: 10_000,
            rehearsal_clock_start: None,
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
    /// Reads `file` (if given), then applies `KIOSK_*` variables, then validates.
    pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?
            }
            None => Config::default(),
        };
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
        if let Some(v) = env.var("KIOSK_REGISTER_URL") {
            config.register_url = Some(v);
        }
        if let Some(v) = env.var("KIOSK_GATEWAY_ID") {
            config.gateway_id = v;
        }
        if let Some(v) = env.var("KIOSK_REHEARSAL_CLOCK_START") {
            config.rehearsal_clock_start = Some(v);
        }
        if let Some(v) = env.var("KIOSK_SYNTHETIC_RESIDENTS") {
            config.synthetic_residents = v.parse().map_err(|e| ConfigError::Invalid {
                field: "KIOSK_SYNTHETIC_RESIDENTS",
                why: format!("{e}"),
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, why: &str| ConfigError::Invalid {
            field,
            why: why.to_owned(),
        };
        if card::login::context_bytes(&self.gateway_id, "t", "s").is_none()
            || self.gateway_id.len() > 64
        {
            return Err(invalid("gateway_id", "1 to 64 characters, no newline"));
        }
        for url in [&self.database_url, &self.register_url]
            .into_iter()
            .flatten()
        {
            crate::store::Backend::of_url(url)
                .map_err(|_| invalid("database_url", "must start with sqlite: or postgres:"))?;
        }
        if self.municipalities.is_empty() {
            return Err(invalid("municipalities", "at least one municipality"));
        }
        for code in &self.municipalities {
            audit::event::MunicipalityCode::parse(code)
                .map_err(|_| invalid("municipalities", "6-digit codes with a valid check digit"))?;
        }
        if self.max_concurrent_issuances == 0 {
            return Err(invalid("max_concurrent_issuances", "at least 1"));
        }
        if self.print_window_secs == 0 {
            return Err(invalid("print_window_secs", "at least 1"));
        }
        if self.rehearsal_clock_start().is_err() {
            return Err(invalid("rehearsal_clock_start", "an RFC 3339 instant"));
        }
        Ok(())
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

    /// The TLS handshake limit.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
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
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlisten_port = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), &FakeEnv(HashMap::new())),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn remote_issuers_are_refused_rather_than_ignored() {
        // `serve` cannot route to a separate issuer process yet (see the module docs).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        let toml = "[[remote_issuers]]\nmunicipality = \"131016\"\n\
                    endpoint = \"https://issuer:7444\"\nserver_name = \"issuer\"\n";
        std::fs::write(&path, toml).unwrap();
        assert!(matches!(
            Config::load(Some(&path), &FakeEnv(HashMap::new())),
            Err(ConfigError::Parse(_))
        ));
    }
}
