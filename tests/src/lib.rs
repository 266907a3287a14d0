//! The harness of the end-to-end tests: one [`spawn_app`] that prepares a fresh embedded
//! deployment (development PKI, synthetic register with card files, SQLite or PostgreSQL),
//! starts the real gateway on port 0 with real TLS, and hands out terminals, auditors,
//! verifiers and software cards. Each app has its own databases; PostgreSQL ones are created
//! on 127.0.0.1:5432 (`KIOSK_TEST_POSTGRES_URL`) and dropped when the app is dropped.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use card::pin::Pin;
use kiosk_devkit::clock::office_hours_at;
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_gateway::config::Config;
use kiosk_gateway::flow::{Clock, Flow, SystemClock};
use kiosk_gateway::provision::{self, Embedded};
use kiosk_gateway::route::IssuerDirectory;
use kiosk_gateway::server::{self, RunningServer};
use kiosk_gateway::tls::ReloadableServerConfig;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalError, TerminalTls, connect};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Which database the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// SQLite files in the app's temporary directory.
    Sqlite,
    /// Fresh databases on the PostgreSQL server of the machine.
    Postgres,
}

/// A clock at real speed from weekday office hours, which tests can move forward.
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    /// Starts within weekday office hours (JST), so every certificate type is in its window.
    pub fn office_hours() -> Self {
        let real = SystemClock.now_ms();
        TestClock {
            offset_ms: AtomicI64::new(office_hours_at(real) - real),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// The base URL of the PostgreSQL server for tests.
pub fn postgres_base_url() -> String {
    std::env::var("KIOSK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL database that exists while this value lives.
pub struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates a uniquely named database. Fails (never skips) when PostgreSQL is unreachable.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let base = postgres_base_url();
        let mut admin = sqlx::AnyConnection::connect(&base).await.map_err(|e| {
            anyhow::anyhow!(
                "PostgreSQL is required at {base} (set KIOSK_TEST_POSTGRES_URL; \
                 scripts/ensure-postgres.sh starts it): {e}"
            )
        })?;
        let mut random = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| anyhow::anyhow!("random source failed"))?;
        let name = format!("{prefix}_{}", hex::encode(random));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => anyhow::bail!("KIOSK_TEST_POSTGRES_URL has no database part"),
        };
        Ok(PgDatabase { name, url })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code: psql does the cleanup synchronously.
        let _ = std::process::Command::new("psql")
            .arg(postgres_base_url())
            .arg("-qc")
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Builds the issuer routing of an app from its deployment.
pub type DirectoryFactory = Box<dyn FnOnce(&Embedded) -> IssuerDirectory + Send>;

/// How to build an app.
pub struct AppOptions {
    /// The database.
    pub db: Db,
    /// Residents in the synthetic register.
    pub residents: u32,
    /// Routes issuances; `None` routes to the in-process issuers.
    pub directory: Option<DirectoryFactory>,
    /// Most issuances rendered at once.
    pub max_concurrent_issuances: usize,
    /// Serve the issuers as a separate `IssuerService` over mutual TLS and route to it.
    pub remote_issuer: bool,
    /// Changes the configuration before the app is prepared (limits, timeouts).
    pub configure: Option<ConfigChange>,
}

/// A change to an app's configuration.
pub type ConfigChange = Box<dyn FnOnce(&mut Config) + Send>;

impl AppOptions {
    /// Defaults for `db`.
    pub fn new(db: Db) -> Self {
        AppOptions {
            db,
            residents: 60,
            directory: None,
            max_concurrent_issuances: 64,
            remote_issuer: false,
            configure: None,
        }
    }
}

/// A running gateway with everything a test needs.
pub struct TestApp {
    /// Where the app's files live.
    pub dir: tempfile::TempDir,
    /// The configuration it runs with.
    pub config: Config,
    /// The deployment.
    pub embedded: Embedded,
    /// The server.
    pub server: Option<RunningServer>,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The flow's clock.
    pub clock: Arc<TestClock>,
    /// The server's TLS configuration (CRLs can be replaced).
    pub tls: Arc<ReloadableServerConfig>,
    /// The flow, for sweeps and direct checks.
    pub flow: Arc<Flow>,
    /// The separate issuer server when routing remotely (stops when dropped).
    _issuer_server: Option<issuer::serve::RunningIssuer>,
    _databases: Vec<PgDatabase>,
}

/// Spawns an app with default options on `db`.
pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(AppOptions::new(db)).await
}

/// Spawns an app.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    match try_spawn(options).await {
        Ok(app) => app,
        Err(error) => panic!("spawning the app failed: {error:#}"),
    }
}

async fn try_spawn(options: AppOptions) -> anyhow::Result<TestApp> {
    kiosk_gateway::logging::init();
    let dir = tempfile::tempdir()?;
    let mut databases = Vec::new();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse()?,
        synthetic_residents: options.residents,
        max_concurrent_issuances: options.max_concurrent_issuances,
        ..Config::default()
    };
    if let Some(configure) = options.configure {
        configure(&mut config);
    }
    if options.db == Db::Postgres {
        let gateway = PgDatabase::create("kiosk_gw").await?;
        let register = PgDatabase::create("kiosk_reg").await?;
        config.database_url = Some(gateway.url().to_owned());
        config.register_url = Some(register.url().to_owned());
        databases.push(gateway);
        databases.push(register);
    }
    let clock = Arc::new(TestClock::office_hours());
    let embedded = provision::prepare(&config, clock.as_ref()).await?;
    let mut issuer_server = None;
    let directory = match (options.directory, options.remote_issuer) {
        (Some(make), _) => make(&embedded),
        (None, true) => {
            let server = provision::start_issuer_server(&embedded).await?;
            let addr = server.local_addr();
            issuer_server = Some(server);
            let link = Arc::new(provision::remote_issuer_link(&embedded.pki, addr).await?);
            let mut directory = IssuerDirectory::new();
            for code in &config.municipalities {
                directory.insert(code, link.clone());
            }
            directory
        }
        (None, false) => embedded.in_process_directory(&config),
    };
    let mut parts = embedded.server_parts(&config, clock.clone(), directory)?;
    // Tests sweep deadlines themselves, when they choose.
    parts.sweep_interval = Duration::from_secs(3600);
    let tls = parts.tls.clone();
    let flow = parts.flow.clone();
    let server = server::start(parts, config.listen).await?;
    let url = format!("https://{}", server.local_addr());
    Ok(TestApp {
        dir,
        config,
        embedded,
        server: Some(server),
        url,
        clock,
        tls,
        flow,
        _issuer_server: issuer_server,
        _databases: databases,
    })
}

/// The stem of the first development terminal.
pub const TERMINAL_1: &str = "terminal-seven-131016-0042-k1";
/// The stem of the second development terminal.
pub const TERMINAL_2: &str = "terminal-seven-131016-0042-k2";
/// The stem of the third development terminal (another chain).
pub const TERMINAL_3: &str = "terminal-lawson-271004-0007-k1";

impl TestApp {
    /// The PKI directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.embedded.pki.dir().to_owned()
    }

    /// A terminal connected with the certificate `<stem>.crt.pem`.
    pub async fn terminal(&self, stem: &str) -> Terminal {
        let tls = TerminalTls::from_pki_dir(&self.pki_dir(), stem, "localhost")
            .expect("terminal TLS material");
        Terminal::new(connect(&self.url, &tls).await.expect("connect"))
    }

    /// A channel with the client certificate `<stem>` (or none).
    pub async fn channel(&self, stem: Option<&str>) -> Channel {
        let pki = self.pki_dir();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(
                std::fs::read(pki.join("server-ca.crt.pem")).expect("server CA"),
            ))
            .domain_name("localhost");
        if let Some(stem) = stem {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(pki.join(format!("{stem}.crt.pem"))).expect("cert"),
                std::fs::read(pki.join(format!("{stem}.key.pem"))).expect("key"),
            ));
        }
        Endpoint::from_shared(self.url.clone())
            .expect("url")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect")
    }

    /// An AuditService client with the auditor certificate.
    pub async fn auditor(&self) -> pb::audit_service_client::AuditServiceClient<Channel> {
        pb::audit_service_client::AuditServiceClient::new(self.channel(Some("auditor")).await)
            .max_decoding_message_size(64 << 20)
    }

    /// A VerifyService client without a client certificate.
    pub async fn verifier(&self) -> pb::verify_service_client::VerifyServiceClient<Channel> {
        pb::verify_service_client::VerifyServiceClient::new(self.channel(None).await)
            .max_decoding_message_size(64 << 20)
    }

    /// Requester examples of a generator case (e.g. `Family`, `NoSeal`).
    pub fn examples(&self, case: &str) -> Vec<String> {
        self.embedded
            .examples
            .get(case)
            .cloned()
            .unwrap_or_default()
    }

    /// Every resident with a card, as (resident ref, card).
    pub fn residents(&self) -> Vec<String> {
        self.embedded
            .cards
            .iter()
            .map(|c| c.resident_ref.clone())
            .collect()
    }

    /// The software card of a resident.
    pub fn card(&self, resident_ref: &str) -> SoftCard {
        let card = self.embedded.card_of(resident_ref).expect("card file");
        SoftCard::load(&card.card_file).expect("card loads")
    }

    /// Opens a session and logs `resident_ref` in with PIN 1234. Returns session and menu.
    pub async fn login(
        &self,
        terminal: &Terminal,
        resident_ref: &str,
    ) -> Result<(String, pb::Menu), TerminalError> {
        let opened = terminal.open_session().await?;
        let card = self.card(resident_ref);
        let for_card = opened.clone();
        // RSA on the software card is CPU work: keep it off the runtime the server shares.
        let proof = tokio::task::spawn_blocking(move || sign(card, &for_card))
            .await
            .map_err(|e| TerminalError::Connection(format!("signing task: {e}")))??;
        let menu = terminal
            .authenticate(&opened.session_id, proof.certificate, proof.signature)
            .await?;
        Ok((opened.session_id, menu))
    }

    /// Stops the server (health goes NOT_SERVING first).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server
                .shutdown(Duration::ZERO, Duration::from_secs(5))
                .await;
        }
    }
}

/// Signs the login of `opened` with `card` and PIN 1234, on the card.
pub fn sign(
    card: SoftCard,
    opened: &pb::OpenSessionResponse,
) -> Result<card::login::LoginProof, TerminalError> {
    let pin = Pin::parse("1234").expect("valid PIN");
    kiosk_terminal::login::sign_login(
        SoftTransport::new(card),
        &pin,
        &opened.challenge,
        &opened.auth_context_bytes,
    )
}

/// One item of `t` with default options, one copy, about the requester.
pub fn item(t: pb::CertificateType) -> pb::RequestItem {
    pb::RequestItem {
        r#type: t as i32,
        options: None,
        subject_refs: Vec::new(),
        copies: 1,
    }
}

/// The fee of `items` per `menu`.
pub fn fee(menu: &pb::Menu, items: &[pb::RequestItem]) -> u32 {
    items
        .iter()
        .map(|i| {
            menu.entries
                .iter()
                .find(|e| e.r#type == i.r#type)
                .map(|e| e.fee_yen * i.copies)
                .unwrap_or(0)
        })
        .sum()
}

/// The text pdftotext extracts (poppler-utils, installed by scripts/install-deps.sh).
pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext must be installed (scripts/install-deps.sh)");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subjects marked on each page of a PDF and its issuance id, read from the bytes.
pub fn page_subjects(pdf: &[u8]) -> Vec<(String, Vec<String>)> {
    provision::page_markers(pdf).expect("markers readable")
}

/// Defines one test per database from an async body taking `db: Db`: a module named `$name`
/// with the tests `sqlite` and `postgres`. The calling file needs `Db` in scope.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(Db::Postgres).await
            }
        }
    };
}
