//! The development gateway the terminal under test reaches through the kit: the embedded
//! deployment (development PKI, a synthetic register with card files, SQLite, in-process
//! issuers) started through the same library calls as `kiosk-gateway demo` and the test
//! harness, on port 0 with real mutual TLS. Nothing here is a copy of the gateway: only which
//! deployment to prepare and where its clock starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use audit::event::UnixMillis;
use kiosk_devkit::clock::office_hours_at;
use kiosk_gateway::admin::{self, Attribution};
use kiosk_gateway::clock::{Clock, OffsetClock};
use kiosk_gateway::config::Config;
use kiosk_gateway::provision::{self, Embedded};
use kiosk_gateway::server::{self, RunningServer};

use crate::error::ConformanceError;

/// The development terminal whose certificate the terminal under test presents to the kit,
/// and the kit presents to the gateway.
pub const TERMINAL_STEM: &str = "terminal-seven-131016-0042-k1";

/// A running development gateway.
pub struct DevGateway {
    // Holds the deployment's files; removed when the gateway is dropped.
    _dir: tempfile::TempDir,
    embedded: Embedded,
    server: Option<RunningServer>,
    clock: Arc<OffsetClock>,
    url: String,
}

impl DevGateway {
    /// Prepares a fresh embedded deployment with `residents` synthetic residents and starts
    /// the gateway on 127.0.0.1, port 0. Its clock starts within weekday office hours, so the
    /// service and every certificate type are open whatever the real time.
    pub async fn start(residents: u32) -> Result<Self, ConformanceError> {
        let gateway = |e: &dyn std::fmt::Display| ConformanceError::Gateway(format!("{e:#}"));
        let dir = tempfile::tempdir().map_err(|e| gateway(&e))?;
        let config = Config {
            data_dir: dir.path().to_owned(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            synthetic_residents: residents,
            ..Config::default()
        };
        let clock = Arc::new(OffsetClock::starting_with(office_hours_at));
        let embedded = provision::prepare(&config, clock.as_ref())
            .await
            .map_err(|e| gateway(&e))?;
        let directory = embedded.in_process_directory(&config);
        let parts = embedded
            .server_parts(&config, clock.clone(), directory)
            .map_err(|e| gateway(&e))?;
        let server = server::start(parts, config.listen)
            .await
            .map_err(|e| gateway(&e))?;
        let url = format!("https://{}", server.local_addr());
        Ok(DevGateway {
            _dir: dir,
            embedded,
            server: Some(server),
            clock,
            url,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The development PKI directory (server CA, gateway and terminal certificates, cards).
    pub fn pki_dir(&self) -> &Path {
        self.embedded.pki.dir()
    }

    /// The gateway's clock, which print deadlines are given in.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The card file of a resident who may obtain the everyday certificates (a generator
    /// `Family` case: 住民票の写し and 住民票記載事項証明書 are available).
    pub fn resident_card(&self) -> Result<PathBuf, ConformanceError> {
        self.embedded
            .examples
            .get("Family")
            .and_then(|refs| refs.first())
            .and_then(|resident| self.embedded.card_of(resident))
            .map(|card| card.card_file.clone())
            .ok_or_else(|| ConformanceError::Gateway("the register has no Family resident".into()))
    }

    /// The development PKI's revoked card (its serial is on the card CRL).
    pub fn revoked_card(&self) -> PathBuf {
        self.pki_dir().join("cards/revoked-0003.toml")
    }

    /// Turns the global kill switch on or off, as an operator would (with its audit event).
    pub async fn set_kill_switch(&self, on: bool) -> Result<(), ConformanceError> {
        let by = Attribution::parse("conformance-kit", "conformance scenario kill-switch")
            .map_err(|e| ConformanceError::Gateway(e.to_string()))?;
        admin::set_kill_switch(
            &self.embedded.store,
            None,
            on,
            &by,
            UnixMillis(self.clock.now_ms()),
        )
        .await
        .map_err(|e| ConformanceError::Gateway(e.to_string()))?;
        Ok(())
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server
                .shutdown(Duration::ZERO, Duration::from_secs(5))
                .await;
        }
    }
}
