//! The embedded default, assembled: a development PKI, a synthetic register per municipality
//! with card files for its residents, the card bindings, terminals and municipalities in the
//! gateway's database, the deployment keys, and every part the server needs.
//!
//! Everything is created on first start under the data directory and reused after, so
//! `serve` twice is the same deployment. Nothing here is for production: the PKI and card
//! keys are TEST ONLY (see `kiosk_devkit::testpki`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use audit::checkpoint::CheckpointSigner;
use audit::event::{Actor, Event, Ident, Pseudonymizer, UnixMillis};
use issuer::Issuer;
use issuer::bindings::CardBinding;
use issuer::document::render::Renderer;
use issuer::document::sign::DocumentSigner;
use issuer::register::Register;
use issuer::service::IssuerGrpc;
use kiosk_devkit::generator::{GeneratorConfig, generate};
use kiosk_devkit::testpki::{DevPki, files};
use kiosk_document::qr::TrustedKeys;
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateRevocationListDer;

use crate::cardauth::CardVerifier;
use crate::config::Config;
use crate::flow::{Clock, DocumentChecks, Flow, FlowSettings};
use crate::identity::RoleAnchors;
use crate::route::{InProcess, IssuerDirectory};
use crate::server::ServerParts;
use crate::service::verify::{self, VerifyApi};
use crate::store::{self, Store, TerminalStatus};
use crate::tls::{ReloadableServerConfig, ServerTlsMaterial};

/// The names of the municipalities the development PKI knows.
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

fn pem_to_der(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    Ok(rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?
        .to_vec())
}

/// A secret of `len` random bytes kept in `path`, created on first use: the file with mode
/// 0600 and its directory with 0700, each by the call that creates it (a chmod after writing
/// would leave the key readable for a moment). The key is written to a private temporary
/// file and linked into place only when complete, so a crash never leaves a short key, and
/// of two processes starting at once the first one's key is the one both use.
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

/// The secret in `path`, or `None` if there is none yet.
fn read_secret(path: &Path, len: usize) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == len => Ok(Some(bytes)),
        Ok(_) => anyhow::bail!("{} has the wrong length", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
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
    let card_issuer = kiosk_devkit::cards::card_issuer_name(&pki)?;
    let cards_dir = data_dir.join("cards");
    let mut cards = Vec::new();
    let mut examples: HashMap<String, Vec<String>> = HashMap::new();
    let today = clock.now_utc().date();

    for code in &config.municipalities {
        let bindings_path = data_dir.join(format!("bindings-{code}.jsonl"));
        let examples_path = data_dir.join(format!("examples-{code}.txt"));
        if !bindings_path.exists() {
            let mut cfg = GeneratorConfig::new(
                1,
                u64::from(config.synthetic_residents),
                code,
                municipality_name(code),
                today,
            );
            cfg.card_issuer = card_issuer.clone();
            let bar = indicatif::ProgressBar::hidden();
            let mut out = Vec::new();
            let report = generate(&register, &cfg, &bar, &mut out)
                .await
                .map_err(|e| anyhow::anyhow!("synthetic register: {e}"))?;
            let mut bindings = issuer::bindings::read_jsonl(out.as_slice())?;
            kiosk_devkit::cards::mint_cards(&pki, &cards_dir, &mut bindings)?;
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
            std::fs::write(&examples_path, lines)?;
            // Written last: its presence says the municipality is fully provisioned.
            std::fs::write(&bindings_path, text)?;
        }
        let bindings: Vec<CardBinding> = issuer::bindings::read_file(&bindings_path)?;
        import_municipality(&store, code, municipality_name(code), &bindings).await?;
        for b in &bindings {
            if let Some(file) = &b.card_file {
                cards.push(ResidentCard {
                    card_file: cards_dir.join(file),
                    resident_ref: b.resident_ref.clone(),
                    municipality_code: b.municipality_code.clone(),
                });
            }
        }
        for line in std::fs::read_to_string(&examples_path)?.lines() {
            if let Some((case, r)) = line.split_once(' ') {
                examples
                    .entry(case.to_owned())
                    .or_default()
                    .push(r.to_owned());
            }
        }
    }

    for remote in &config.remote_issuers {
        let bindings: Vec<CardBinding> = issuer::bindings::read_file(&remote.bindings)
            .with_context(|| format!("card bindings of {}", remote.municipality))?;
        let name = remote
            .name
            .clone()
            .unwrap_or_else(|| municipality_name(&remote.municipality).to_owned());
        import_municipality(&store, &remote.municipality, &name, &bindings).await?;
    }

    let mut tx = store
        .begin_write()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for terminal in kiosk_devkit::testpki::DevPkiSpec::fixture().terminals {
        // Registered once: a restart must not undo an operator's suspension or retirement
        // (`kiosk-gateway admin terminal`).
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

    let mut issuers = Vec::new();
    for code in &config.municipalities {
        let stem = format!("municipality-{code}");
        let key = std::fs::read_to_string(pki.key_path(&stem))?;
        let chain = std::fs::read_to_string(pki.cert_path(&stem))?;
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

    Ok(Embedded {
        pki,
        store,
        register,
        cards,
        examples,
        gateway_id: config.gateway_id.clone(),
        issuers: Arc::new(IssuerGrpc::new(issuers)),
        data_dir,
    })
}

/// Binds a municipality's cards to its residents and records the municipality, in one
/// transaction, keeping an operator's kill switch across restarts. Every binding must name
/// this municipality: a card routed to the wrong issuer would be refused there at best.
async fn import_municipality(
    store: &Store,
    code: &str,
    name: &str,
    bindings: &[CardBinding],
) -> anyhow::Result<()> {
    if let Some(stray) = bindings.iter().find(|b| b.municipality_code != code) {
        anyhow::bail!(
            "the card bindings of {code} hold a card of municipality {}",
            stray.municipality_code
        );
    }
    let mut tx = store
        .begin_write()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for b in bindings {
        store::bind_card(
            &mut tx,
            &b.card_issuer,
            &b.card_serial_hex,
            &store::CardBinding {
                municipality_code: b.municipality_code.clone(),
                resident_ref: b.resident_ref.clone(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // A restart keeps an operator's kill switch (`kiosk-gateway admin kill-switch`).
    let suspended = store::municipality(&mut tx, code)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_some_and(|m| m.suspended);
    store::upsert_municipality(
        &mut tx,
        &store::Municipality {
            code: code.to_owned(),
            name: name.to_owned(),
            suspended,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(())
}

impl Embedded {
    /// The configured routes: the in-process municipalities to the issuers in this process,
    /// each `[[remote_issuers]]` entry to its issuer process over mutual TLS. Remote links
    /// connect lazily, so the gateway starts while an issuer is down and that municipality's
    /// requests answer ISSUER_UNAVAILABLE until it is back.
    pub fn issuer_directory(&self, config: &Config) -> anyhow::Result<IssuerDirectory> {
        let mut directory = self.in_process_directory(config);
        for remote in &config.remote_issuers {
            let link = remote_issuer_endpoint(&self.pki, &remote.endpoint, &remote.server_name())
                .with_context(|| format!("remote issuer of {}", remote.municipality))?;
            directory.insert(
                &remote.municipality,
                Arc::new(crate::route::Remote::new(link.connect_lazy())),
            );
        }
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
    /// current by `clock`).
    pub fn client_crls(
        &self,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> crate::revocation::ClientCrls {
        if config.client_crl_files.is_empty() {
            crate::revocation::ClientCrls::Development(self.pki.clone(), clock)
        } else {
            crate::revocation::ClientCrls::Files(config.client_crl_files.clone())
        }
    }

    /// The card file of a resident, if one was minted.
    pub fn card_of(&self, resident_ref: &str) -> Option<&ResidentCard> {
        self.cards.iter().find(|c| c.resident_ref == resident_ref)
    }

    /// The server's parts over this deployment, routing issuances through `directory`.
    pub fn server_parts(
        &self,
        config: &Config,
        clock: Arc<dyn Clock>,
        directory: IssuerDirectory,
    ) -> anyhow::Result<ServerParts> {
        let pki = &self.pki;
        let auth_ca = pki.cert_der(files::JPKI_AUTH_CA)?;
        let card_crl = crate::revocation::read_crl(&config.card_crl_file())?;
        let cards =
            Arc::new(CardVerifier::new(auth_ca, &card_crl).map_err(|e| anyhow::anyhow!("{e}"))?);
        let pseudonyms =
            Pseudonymizer::new(&secret_file(&self.data_dir.join("keys/pseudonym.key"), 32)?)
                .map_err(|e| anyhow::anyhow!("pseudonym key: {e}"))?;
        let seed: [u8; 32] = secret_file(&self.data_dir.join("keys/checkpoint.seed"), 32)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("checkpoint seed length"))?;
        let signer = CheckpointSigner::from_seed(&format!("{}/audit", self.gateway_id), &seed)
            .map_err(|e| anyhow::anyhow!("checkpoint key: {e}"))?;
        let settings = FlowSettings {
            gateway_id: self.gateway_id.clone(),
            max_concurrent_issuances: config.max_concurrent_issuances,
            max_open_sessions_per_terminal: config.max_open_sessions_per_terminal,
            print_window: Duration::from_secs(config.print_window_secs),
            ..FlowSettings::default()
        };
        let mut signing_certs = HashMap::new();
        for (code, _) in config.all_municipalities() {
            let cert = pki
                .cert_der(&format!("municipality-{code}"))
                .with_context(|| format!("the document-signing certificate of {code}"))?;
            signing_certs.insert(code, cert);
        }
        let checks = DocumentChecks {
            page_markers,
            pdf_signature: |pdf, cert| {
                kiosk_document::signature::verify_pdf_signature(pdf, cert).is_ok()
            },
            signing_certs,
        };
        let flow = Arc::new(Flow::new(
            checks,
            self.store.clone(),
            cards.clone(),
            directory,
            pseudonyms,
            settings,
            clock.clone(),
        ));

        let terminal_ca = read_pem(&pki.cert_path(files::TERMINAL_CA))?;
        let auditor_ca = read_pem(&pki.cert_path(files::AUDITOR_CA))?;

        let material = ServerTlsMaterial::from_pem(
            &read_pem(&pki.cert_path(files::GATEWAY))?,
            &read_pem(&pki.key_path(files::GATEWAY))?,
            &[&terminal_ca, &auditor_ca],
        )?;
        let client_crls = self.client_crls(config, clock.clone());
        let installed_client = client_crls.load()?;
        let tls = Arc::new(ReloadableServerConfig::new(
            material,
            installed_client.clone(),
            clock.clone(),
        )?);
        let revocation = crate::revocation::Refresher::new(
            client_crls,
            config.card_crl_file(),
            tls.clone(),
            cards.clone(),
            &installed_client,
            card_crl,
        );
        let anchors = Arc::new(
            RoleAnchors::new(&pem_to_der(&terminal_ca)?, &pem_to_der(&auditor_ca)?)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_revocation(tls.revocation()),
        );

        let mut trusted = TrustedKeys::new();
        let mut municipalities = HashMap::new();
        let municipality_ca = pki.cert_der(files::MUNICIPALITY_CA)?;
        for (code, name) in config.all_municipalities() {
            let der = pki.cert_der(&format!("municipality-{code}"))?;
            // TrustedKeys only extracts the key: the chain is checked here, once, at start.
            check_signing_chain(&der, &municipality_ca, clock.as_ref())
                .with_context(|| format!("municipality {code} signing certificate"))?;
            trusted
                .add_certificate_der(&der, None)
                .map_err(|e| anyhow::anyhow!("municipality {code} key: {e}"))?;
            municipalities.insert(
                code,
                verify::Municipality {
                    name,
                    signer_cert_der: der,
                },
            );
        }
        let verify = VerifyApi::new(self.store.clone(), Arc::new(trusted), municipalities);
        Ok(ServerParts {
            flow,
            revocation,
            revocation_refresh: None,
            anchors,
            tls,
            handshake_timeout: config.handshake_timeout(),
            limits: config.limits(),
            sweep_interval: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(config.reconcile_interval_secs),
            checkpoint_signer: Arc::new(signer),
            verify,
        })
    }
}

/// Checks that a document-signing certificate chains to the municipality CA now, by the
/// deployment's `clock`.
pub fn check_signing_chain(
    cert_der: &[u8],
    ca_der: &[u8],
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let ca = rustls_pki_types::CertificateDer::from(ca_der);
    let anchor = webpki::anchor_from_trusted_cert(&ca)?;
    let cert = rustls_pki_types::CertificateDer::from(cert_der);
    let end_entity = webpki::EndEntityCert::try_from(&cert)?;
    let secs = u64::try_from(clock.now_ms().div_euclid(1000)).unwrap_or(0);
    let now = rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(secs));
    end_entity.verify_for_usage(
        &[webpki::ring::ECDSA_P256_SHA256],
        &[anchor],
        &[],
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )?;
    Ok(())
}

/// Reads each page's `(issuance id, subjects)` marker from a PDF.
pub fn page_markers(pdf: &[u8]) -> Result<Vec<(String, Vec<String>)>, String> {
    let markers = kiosk_document::markers::read_page_markers(pdf).map_err(|e| e.to_string())?;
    Ok(markers
        .into_iter()
        .map(|m| {
            (
                m.issuance_id.as_str().to_owned(),
                m.subjects.iter().map(|s| s.as_str().to_owned()).collect(),
            )
        })
        .collect())
}

/// Records the STARTED audit event with this binary's build identity, at the deployment's
/// `clock`.
pub async fn record_start(store: &Store, clock: &dyn Clock) -> anyhow::Result<()> {
    let (version, commit) = crate::server::build_identity();
    let event = Event::started(
        clock.now(),
        Ident::parse("kiosk-gateway")?,
        Ident::parse(version)?,
        Ident::parse(commit)?,
    );
    let mut tx = store
        .begin_write()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    audit::store::append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(())
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
/// gateway's internal client certificate, expecting `server_name` in the issuer's certificate
/// under the internal CA.
pub fn remote_issuer_endpoint(
    pki: &DevPki,
    url: &str,
    server_name: &str,
) -> anyhow::Result<tonic::transport::Endpoint> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read_pem(
            &pki.cert_path(files::INTERNAL_CA),
        )?))
        .identity(Identity::from_pem(
            read_pem(&pki.cert_path(files::GATEWAY_INTERNAL))?,
            read_pem(&pki.key_path(files::GATEWAY_INTERNAL))?,
        ))
        .domain_name(server_name);
    Ok(Endpoint::from_shared(url.to_owned())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
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
