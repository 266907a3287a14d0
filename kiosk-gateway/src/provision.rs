//! The embedded development deployment (feature `embedded`), assembled: a development PKI, a
//! synthetic register per municipality with card files for its residents, the card bindings,
//! terminals and municipalities in the gateway's database, the deployment's secrets, and
//! in-process issuers.
//!
//! Everything is created on first start under the data directory and reused after, so
//! `serve` twice is the same deployment. Nothing here is for production: the PKI and card
//! keys are TEST ONLY (see `kiosk_devkit::testpki`). The server itself is built by the production
//! path (`crate::deployment::server_parts`) from the [`TrustFiles`] that
//! [`development_trust_files`] points into the PKI directory, so both deployments serve
//! through the same code.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use audit::event::{Actor, Event, Ident, UnixMillis};
use issuer::Issuer;
use issuer::bindings::CardBinding;
use issuer::document::render::Renderer;
use issuer::document::sign::DocumentSigner;
use issuer::register::Register;
use issuer::service::IssuerGrpc;
use kiosk_devkit::generator::{GeneratorConfig, generate};
use kiosk_devkit::testpki::{DevPki, files};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateRevocationListDer;

use crate::config::Config;
use crate::deployment::{self, IN_PROCESS, InternalTls, Route, TrustFiles, import_municipality};
use crate::flow::Clock;
use crate::revocation::ClientCrls;
use crate::route::{InProcess, IssuerDirectory};
use crate::server::ServerParts;
use crate::store::{self, Store, TerminalStatus};
use crate::trust::{SECRET_LEN, read_secret};

pub use crate::deployment::{check_signing_chain, page_markers, record_start};

/// How often the development client CRLs (valid a week) are minted again.
const DEVELOPMENT_REMINT: Duration = Duration::from_secs(24 * 3600);

/// The names of the municipalities the development PKI knows (a remote issuer's configured
/// `name` comes first).
pub fn municipality_name(code: &str) -> &'static str {
    match code {
        "131016" => "千代田区",
        "271004" => "大阪市",
        _ => "見本市",
    }
}

/// A resident with a card, for terminals and tests.
#[derive(Debug, Clone)]
pub struct ResidentCard {
    /// The card file.
    pub card_file: PathBuf,
    /// The resident reference the card is bound to.
    pub resident_ref: String,
    /// The municipality.
    pub municipality_code: String,
}

/// A prepared embedded deployment.
pub struct Embedded {
    /// The PKI directory.
    pub pki: DevPki,
    /// The gateway's database.
    pub store: Store,
    /// The register (all in-process municipalities share one database).
    pub register: Register,
    /// Residents with card files, per municipality in register order.
    pub cards: Vec<ResidentCard>,
    /// Requester examples of each blocking case, by case name (e.g. `NoSeal`).
    pub examples: HashMap<String, Vec<String>>,
    /// The gateway id.
    pub gateway_id: String,
    /// The in-process issuers.
    pub issuers: Arc<IssuerGrpc>,
    data_dir: PathBuf,
}

fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A secret of `len` random bytes kept in `path`, created on first use: the file with mode
/// 0600 and its directory with 0700, each by the call that creates it (a chmod after writing
/// would leave the key readable for a moment). The key is written to a private temporary
/// file and linked into place only when complete, so a crash never leaves a short key, and
/// of two processes starting at once the first one's key is the one both use. The
/// production deployment never creates one (`crate::trust`).
fn secret_file(path: &Path, len: usize) -> anyhow::Result<Vec<u8>> {
    if let Some(bytes) = read_secret(path, len)? {
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("random source failed"))?;
    let parent = path
        .parent()
        .with_context(|| format!("{} has no directory", path.display()))?;
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dir.mode(0o700);
        file.mode(0o600);
    }
    dir.create(parent)
        .with_context(|| format!("creating {}", parent.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let temp = parent.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = file.open(&temp).and_then(|mut f| {
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()
    });
    // hard_link refuses an existing name, where rename would replace another's key.
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path, len)?
            .with_context(|| format!("{} vanished while being created", path.display())),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

/// A CRL of the CA `<stem>` in the PKI revoking `revoked` serials, valid from `this_update`
/// to `next_update` (DER). TEST ONLY: it signs with the CA key on disk.
pub fn dev_crl(
    pki: &DevPki,
    stem: &str,
    revoked: &[u64],
    this_update: time::OffsetDateTime,
    next_update: time::OffsetDateTime,
) -> anyhow::Result<Vec<u8>> {
    let ca_pem = std::fs::read_to_string(pki.cert_path(stem))?;
    let key_pem = std::fs::read_to_string(pki.key_path(stem))?;
    let key = rcgen::KeyPair::from_pem(&key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, key)?;
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: rcgen::SerialNumber::from(this_update.unix_timestamp().unsigned_abs()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*serial),
                revocation_time: this_update,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&issuer)?.der().to_vec())
}

/// The development CRLs of the client CAs (terminal, auditor), revoking nothing, valid a week
/// from now by the deployment's `clock`.
pub fn dev_client_crls(
    pki: &DevPki,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let now = clock.now_utc();
    let (from, to) = (
        now - time::Duration::minutes(5),
        now + time::Duration::days(7),
    );
    Ok(vec![
        CertificateRevocationListDer::from(dev_crl(pki, files::TERMINAL_CA, &[], from, to)?),
        CertificateRevocationListDer::from(dev_crl(pki, files::AUDITOR_CA, &[], from, to)?),
    ])
}

/// Prepares (or reopens) the embedded deployment described by `config`, dating what it
/// creates by the deployment's `clock`.
pub async fn prepare(config: &Config, clock: &dyn Clock) -> anyhow::Result<Embedded> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let pki = DevPki::ensure(&config.pki_dir()).context("development PKI")?;
    let store = Store::open(&config.database_url())
        .await
        .map_err(|e| anyhow::anyhow!("gateway database: {e}"))?;
    let register = Register::open(&config.register_url())
        .await
        .map_err(|e| anyhow::anyhow!("register database: {e}"))?;
    let mut residents = Residents::default();
    for code in &config.municipalities {
        let municipality = Synthetic {
            pki: &pki,
            register: &register,
            data_dir: &data_dir,
            code,
        };
        let bindings = municipality.ensure(config, clock).await?;
        let route = Route {
            code,
            name: municipality_name(code),
            endpoint: IN_PROCESS,
        };
        import_municipality(&store, route, &bindings, clock.now()).await?;
        residents.add(&municipality, &bindings)?;
    }
    deployment::import_remote_bindings(&store, config, &municipality_names(config), clock.now())
        .await?;
    register_dev_terminals(&store, clock).await?;
    let files = development_trust_files(&pki, config, &data_dir);
    let issuers = in_process_issuers(config, &register, &files)?;
    Ok(Embedded {
        pki,
        store,
        register,
        cards: residents.cards,
        examples: residents.examples,
        gateway_id: config.gateway_id.clone(),
        issuers: Arc::new(IssuerGrpc::new(issuers)),
        data_dir,
    })
}

/// A municipality with a synthetic register in the deployment's register database.
struct Synthetic<'a> {
    pki: &'a DevPki,
    register: &'a Register,
    data_dir: &'a Path,
    code: &'a str,
}

impl Synthetic<'_> {
    fn bindings_path(&self) -> PathBuf {
        self.data_dir.join(format!("bindings-{}.jsonl", self.code))
    }

    fn examples_path(&self) -> PathBuf {
        self.data_dir.join(format!("examples-{}.txt", self.code))
    }

    fn cards_dir(&self) -> PathBuf {
        self.data_dir.join("cards")
    }

    /// The municipality's card bindings: generated with its register, card files and
    /// examples on first start, read back after.
    async fn ensure(&self, config: &Config, clock: &dyn Clock) -> anyhow::Result<Vec<CardBinding>> {
        let bindings_path = self.bindings_path();
        if !bindings_path.exists() {
            self.generate(config, clock).await?;
        }
        issuer::bindings::read_file(&bindings_path).with_context(|| {
            format!(
                "{}: card bindings (a data directory made before bindings were keyed by \
                 the authority key identifier must be deleted to be provisioned again)",
                bindings_path.display()
            )
        })
    }

    async fn generate(&self, config: &Config, clock: &dyn Clock) -> anyhow::Result<()> {
        let mut cfg = GeneratorConfig::new(
            1,
            u64::from(config.synthetic_residents),
            self.code,
            municipality_name(self.code),
            clock.now_utc().date(),
        );
        cfg.card_issuer_key_id = kiosk_devkit::cards::card_issuer_key_id(self.pki)?;
        let bar = indicatif::ProgressBar::hidden();
        let mut out = Vec::new();
        let report = generate(self.register, &cfg, &bar, &mut out)
            .await
            .map_err(|e| anyhow::anyhow!("synthetic register: {e}"))?;
        let mut bindings = issuer::bindings::read_jsonl(out.as_slice())?;
        kiosk_devkit::cards::mint_cards(self.pki, &self.cards_dir(), &mut bindings)?;
        let mut text = Vec::new();
        for b in &bindings {
            issuer::bindings::write_row(&mut text, b)?;
        }
        let mut lines = String::new();
        for (case, refs) in &report.examples {
            for r in refs {
                lines.push_str(&format!("{case:?} {}\n", r.as_str()));
            }
        }
        std::fs::write(self.examples_path(), lines)?;
        // Written last: its presence says the municipality is fully provisioned.
        std::fs::write(self.bindings_path(), text)?;
        Ok(())
    }
}

/// Residents with card files, and the register's examples of each blocking case.
#[derive(Default)]
struct Residents {
    cards: Vec<ResidentCard>,
    examples: HashMap<String, Vec<String>>,
}

impl Residents {
    fn add(
        &mut self,
        municipality: &Synthetic<'_>,
        bindings: &[CardBinding],
    ) -> anyhow::Result<()> {
        let cards_dir = municipality.cards_dir();
        for b in bindings {
            if let Some(file) = &b.card_file {
                self.cards.push(ResidentCard {
                    card_file: cards_dir.join(file),
                    resident_ref: b.resident_ref.clone(),
                    municipality_code: b.municipality_code.clone(),
                });
            }
        }
        for line in std::fs::read_to_string(municipality.examples_path())?.lines() {
            if let Some((case, r)) = line.split_once(' ') {
                self.examples
                    .entry(case.to_owned())
                    .or_default()
                    .push(r.to_owned());
            }
        }
        Ok(())
    }
}

/// Registers the development PKI's terminals, each once: a restart must not undo an
/// operator's suspension or retirement (`kiosk-gateway admin terminal`).
async fn register_dev_terminals(store: &Store, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut tx = store
        .begin_write()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for terminal in kiosk_devkit::testpki::DevPkiSpec::fixture().terminals {
        let known = store::terminal_status(&mut tx, &terminal.id())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if known.is_some() {
            continue;
        }
        let now_ms = clock.now_ms();
        store::upsert_terminal(
            &mut tx,
            &terminal.id(),
            terminal.chain(),
            terminal.store(),
            TerminalStatus::Active,
            now_ms,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        // A registration is a change of the terminal registry like an operator's: it commits
        // with its event, here by the system (the deployment registered it, no person did).
        let event = Event::terminal_registry_changed(
            UnixMillis(now_ms),
            Actor::System,
            Ident::parse(&terminal.id())?,
            Ident::parse(terminal.store())?,
            Ident::parse(terminal.chain())?,
        );
        audit::store::append(&mut tx, &event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An issuer in this process for each of `config.municipalities`, signing with the key and
/// certificate `files` names for it.
fn in_process_issuers(
    config: &Config,
    register: &Register,
    files: &TrustFiles,
) -> anyhow::Result<Vec<Issuer>> {
    let mut issuers = Vec::new();
    for code in &config.municipalities {
        let (key, chain) = match (files.signing_keys.get(code), files.signing_certs.get(code)) {
            (Some(key), Some(chain)) => (key, chain),
            _ => anyhow::bail!("no signing key and certificate for {code}"),
        };
        let key = std::fs::read_to_string(key)?;
        let chain = std::fs::read_to_string(chain)?;
        let signer = DocumentSigner::from_pem(&key, &chain)
            .map_err(|e| anyhow::anyhow!("document signer {code}: {e}"))?;
        let municipality = kiosk_document::MunicipalityCode::parse(code)
            .map_err(|e| anyhow::anyhow!("municipality {code}: {e}"))?;
        issuers.push(Issuer::new(
            register.clone(),
            municipality,
            Arc::new(Renderer::new(signer)),
        ));
    }
    Ok(issuers)
}

/// The development PKI's terminal CA certificate, which `admin terminal enroll` checks
/// against in the development profile.
pub fn development_terminal_ca(config: &Config) -> PathBuf {
    config
        .pki_dir()
        .join(format!("{}.crt.pem", files::TERMINAL_CA))
}

/// The files of the embedded deployment: the development PKI's certificates and keys, the
/// configured CRL files (by default the PKI's card CRL, and no client CRL files: those are
/// minted), and the secrets under `<data_dir>/keys/`.
pub fn development_trust_files(pki: &DevPki, config: &Config, data_dir: &Path) -> TrustFiles {
    let stem = |code: &str| format!("municipality-{code}");
    let mut signing_certs = BTreeMap::new();
    let mut signing_keys = BTreeMap::new();
    for (code, _) in config.all_municipalities() {
        signing_certs.insert(code.clone(), pki.cert_path(&stem(&code)));
    }
    for code in &config.municipalities {
        signing_keys.insert(code.clone(), pki.key_path(&stem(code)));
    }
    TrustFiles {
        server_cert: pki.cert_path(files::GATEWAY),
        server_key: pki.key_path(files::GATEWAY),
        terminal_ca: pki.cert_path(files::TERMINAL_CA),
        auditor_ca: pki.cert_path(files::AUDITOR_CA),
        card_auth_ca: pki.cert_path(files::JPKI_AUTH_CA),
        card_crl: card_crl_file(config),
        client_crls: config.client_crl_files.clone(),
        internal_ca: pki.cert_path(files::INTERNAL_CA),
        internal_client_cert: pki.cert_path(files::GATEWAY_INTERNAL),
        internal_client_key: pki.key_path(files::GATEWAY_INTERNAL),
        municipality_ca: pki.cert_path(files::MUNICIPALITY_CA),
        signing_certs,
        signing_keys,
        pseudonym_key: data_dir.join("keys/pseudonym.key"),
        checkpoint_seed: data_dir.join("keys/checkpoint.seed"),
        checkpoint_key: None,
    }
}

/// The card CRL file of the embedded deployment: `card_crl_file`, else the development PKI's.
pub fn card_crl_file(config: &Config) -> PathBuf {
    config
        .card_crl_file
        .clone()
        .unwrap_or_else(|| config.pki_dir().join(files::JPKI_AUTH_CRL_DER))
}

/// Every routed municipality with its display name: a remote issuer's configured `name`, else
/// the development PKI's name for the code.
pub fn municipality_names(config: &Config) -> Vec<(String, String)> {
    config
        .all_municipalities()
        .into_iter()
        .map(|(code, name)| {
            let name = name.unwrap_or_else(|| municipality_name(&code).to_owned());
            (code, name)
        })
        .collect()
}

impl Embedded {
    /// The configured routes: the in-process municipalities to the issuers in this process,
    /// each `[[remote_issuers]]` entry to its issuer process over mutual TLS
    /// (`deployment::add_remote_issuers`).
    pub fn issuer_directory(&self, config: &Config) -> anyhow::Result<IssuerDirectory> {
        let mut directory = self.in_process_directory(config);
        let internal = self.trust_files(config).internal_tls()?;
        deployment::add_remote_issuers(&mut directory, config, &internal)?;
        Ok(directory)
    }

    /// Every configured municipality routed to the in-process issuers.
    pub fn in_process_directory(&self, config: &Config) -> IssuerDirectory {
        let mut directory = IssuerDirectory::new();
        for code in &config.municipalities {
            directory.insert(code, Arc::new(InProcess(self.issuers.clone())));
        }
        directory
    }

    /// Where the client CRLs come from: the configured files, or the development PKI (minted
    /// current by `clock`, again every day).
    pub fn client_crls(&self, config: &Config, clock: Arc<dyn Clock>) -> ClientCrls {
        if config.client_crl_files.is_empty() {
            let pki = self.pki.clone();
            ClientCrls::Minted {
                mint: Box::new(move || dev_client_crls(&pki, clock.as_ref())),
                every: DEVELOPMENT_REMINT,
            }
        } else {
            ClientCrls::Files(config.client_crl_files.clone())
        }
    }

    /// The card file of a resident, if one was minted.
    pub fn card_of(&self, resident_ref: &str) -> Option<&ResidentCard> {
        self.cards.iter().find(|c| c.resident_ref == resident_ref)
    }

    /// The files this deployment serves with ([`development_trust_files`]).
    pub fn trust_files(&self, config: &Config) -> TrustFiles {
        development_trust_files(&self.pki, config, &self.data_dir)
    }

    /// The server's parts over this deployment, routing issuances through `directory`: the
    /// production path (`deployment::server_parts`) over the development PKI, with the
    /// pseudonym key and the checkpoint seed created on first use.
    pub fn server_parts(
        &self,
        config: &Config,
        clock: Arc<dyn Clock>,
        directory: IssuerDirectory,
    ) -> anyhow::Result<ServerParts> {
        let files = self.trust_files(config);
        secret_file(&files.pseudonym_key, SECRET_LEN)?;
        secret_file(&files.checkpoint_seed, SECRET_LEN)?;
        let trust = files.load()?;
        deployment::server_parts(
            config,
            clock.clone(),
            self.store.clone(),
            &trust,
            self.client_crls(config, clock),
            directory,
            &municipality_names(config),
        )
    }
}

/// Serves the in-process issuers as a separate `IssuerService` on loopback with mutual TLS
/// (the issuer certificate, gateway clients from the internal CA), with the same server as
/// `issuer serve`: the two-process topology in one process. It stops when dropped.
pub async fn start_issuer_server(
    embedded: &Embedded,
) -> anyhow::Result<issuer::serve::RunningIssuer> {
    let pki = &embedded.pki;
    let tls = issuer::serve::IssuerTls {
        cert_pem: read_pem(&pki.cert_path(files::ISSUER))?,
        key_pem: read_pem(&pki.key_path(files::ISSUER))?,
        client_ca_pem: read_pem(&pki.cert_path(files::INTERNAL_CA))?,
        handshake_timeout: Duration::from_secs(5),
    };
    issuer::serve::serve(
        embedded.issuers.clone(),
        embedded.register.clone(),
        &tls,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
}

/// The endpoint of an issuer process at `url` (`https://host:port`), over mutual TLS with the
/// development PKI's internal client certificate, expecting `server_name` in the issuer's
/// certificate under the internal CA (`deployment::issuer_endpoint`).
pub fn remote_issuer_endpoint(
    pki: &DevPki,
    url: &str,
    server_name: &str,
) -> anyhow::Result<tonic::transport::Endpoint> {
    let internal = InternalTls {
        ca_pem: read_pem(&pki.cert_path(files::INTERNAL_CA))?,
        client_cert_pem: read_pem(&pki.cert_path(files::GATEWAY_INTERNAL))?,
        client_key_pem: read_pem(&pki.key_path(files::GATEWAY_INTERNAL))?,
    };
    deployment::issuer_endpoint(&internal, url, server_name)
}

/// A link to an issuer process at `addr` over mutual TLS with the gateway's internal client
/// certificate, connected now.
pub async fn remote_issuer_link(
    pki: &DevPki,
    addr: std::net::SocketAddr,
) -> anyhow::Result<crate::route::Remote> {
    let channel = remote_issuer_endpoint(pki, &format!("https://{addr}"), "localhost")?
        .connect()
        .await?;
    Ok(crate::route::Remote::new(channel))
}
