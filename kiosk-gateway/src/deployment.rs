//! The production deployment, and the one path that builds a server from trust material.
//!
//! [`prepare`] is what `serve` runs in production: it reads the certificates, keys and CRLs
//! the configuration names (`crate::trust`), refusing to start with every problem named
//! before it opens a database or binds; opens the gateway's database; imports each remote
//! issuer's card bindings; routes each municipality to its `issuer serve` over mutual TLS;
//! and builds the server's parts. It creates no key, certificate or CRL, registers no
//! terminal (operators do, with `kiosk-gateway admin terminal register`) and issues nothing in
//! this process.
//!
//! [`server_parts`] is shared with the embedded development deployment (`crate::provision`,
//! feature `embedded`), which fills the same [`TrustFiles`] from its development PKI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use audit::checkpoint::CheckpointSigner;
use audit::event::{Event, Ident, MunicipalityCode, Pseudonymizer, UnixMillis};
use issuer::bindings::CardBinding;
use kiosk_document::qr::TrustedKeys;
use sqlx::AnyConnection;

pub use crate::admin_route::IN_PROCESS;
use crate::admin_route::endpoint_ident;
use crate::cardauth::{CardPolicies, CardVerifier};
use crate::config::Config;
use crate::flow::{Clock, DocumentChecks, Flow, FlowSettings};
use crate::identity::RoleAnchors;
use crate::revocation::ClientCrls;
use crate::route::IssuerDirectory;
use crate::server::ServerParts;
use crate::service::verify::{self, VerifyApi};
use crate::store::{self, Store};
use crate::tls::{ReloadableServerConfig, ServerTlsMaterial};
pub use crate::trust::{InternalTls, Refused, TrustFiles, TrustMaterial};

/// A production deployment, ready to start.
pub struct Production {
    /// The gateway's database.
    pub store: Store,
    /// The server's parts.
    pub parts: ServerParts,
    /// The files it serves with.
    pub files: TrustFiles,
}

/// Prepares the production deployment `config` describes, judging time by `clock`. A
/// [`Refused`] error (every problem of the trust and key files, the database setting and the
/// routes) comes before anything is opened, written or bound. The database is
/// `database_url`, which must be set: nothing defaults to a file under `data_dir`.
pub async fn prepare(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Production> {
    let (files, trust) = TrustFiles::read(config)?;
    let municipalities: Vec<(String, String)> = config
        .remote_issuers
        .iter()
        .map(|r| (r.municipality.clone(), r.name.clone().unwrap_or_default()))
        .collect();
    let store = Store::open(&config.database_url())
        .await
        .map_err(|e| anyhow::anyhow!("database_url (or KIOSK_DATABASE_URL): {e}"))?;
    import_remote_bindings(&store, config, &municipalities, clock.now()).await?;
    let mut directory = IssuerDirectory::new();
    add_remote_issuers(&mut directory, config, &trust.internal)?;
    let client_crls = ClientCrls::Files(trust.client_crl_files.clone());
    let parts = server_parts(
        config,
        clock,
        store.clone(),
        &trust,
        client_crls,
        directory,
        &municipalities,
    )?;
    Ok(Production {
        store,
        parts,
        files,
    })
}

/// Imports the card bindings of every `[[remote_issuers]]` entry and records its route,
/// named as `municipalities` (code, name) says, at `now`.
pub async fn import_remote_bindings(
    store: &Store,
    config: &Config,
    municipalities: &[(String, String)],
    now: UnixMillis,
) -> anyhow::Result<()> {
    for remote in &config.remote_issuers {
        let bindings: Vec<CardBinding> = issuer::bindings::read_file(&remote.bindings)
            .with_context(|| format!("card bindings of {}", remote.municipality))?;
        let name = municipalities
            .iter()
            .find(|(code, _)| *code == remote.municipality)
            .map_or(remote.municipality.as_str(), |(_, name)| name.as_str());
        let route = Route {
            code: &remote.municipality,
            name,
            endpoint: &remote.endpoint,
        };
        import_municipality(store, route, &bindings, now).await?;
    }
    Ok(())
}

/// Where the gateway sends one municipality's requests, as the configuration says.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The municipality's code.
    pub code: &'a str,
    /// Its name as kiosks and verifiers show it.
    pub name: &'a str,
    /// Its issuer: the `[[remote_issuers]]` endpoint, or [`IN_PROCESS`].
    pub endpoint: &'a str,
}

/// Binds a municipality's cards to its residents and records its route, in one transaction,
/// keeping an operator's kill switch across restarts. Every binding must name this
/// municipality: a card routed to the wrong issuer would be refused there at best.
pub async fn import_municipality(
    store: &Store,
    route: Route<'_>,
    bindings: &[CardBinding],
    now: UnixMillis,
) -> anyhow::Result<()> {
    let code = route.code;
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
        let key = crate::cardauth::CardKey {
            issuer_key_id: b.issuer_key_id.clone(),
            serial: b.card_serial_hex.clone(),
        };
        store::bind_card(
            &mut tx,
            &key,
            &store::CardBinding {
                municipality_code: b.municipality_code.clone(),
                resident_ref: b.resident_ref.clone(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    record_route(&mut tx, route, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Records `route` in the municipalities table when it is new, with its MUNICIPALITY_ROUTED
/// audit event (actor SYSTEM) in the same transaction. A recorded route is never changed here:
/// a configuration that routes the municipality to another issuer or names it otherwise stops
/// the start, naming the command that records the change with its operator and reason
/// (`admin_route`). A restart keeps an operator's kill switch (`kiosk-gateway admin
/// kill-switch`). Two replicas starting at once may both record one new route: the log then
/// holds it twice, never not.
async fn record_route(
    tx: &mut AnyConnection,
    route: Route<'_>,
    now: UnixMillis,
) -> anyhow::Result<()> {
    let current = store::municipality(tx, route.code)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(current) = current {
        if current.name == route.name && current.issuer_endpoint == route.endpoint {
            return Ok(());
        }
        anyhow::bail!(
            "municipality {code}: the configuration routes it to {endpoint} as {name:?}, but its \
             recorded route is {recorded} as {recorded_name:?}; a route changes only by \
             `kiosk-gateway admin municipality route --code {code} --name '{name}' --endpoint \
             {endpoint} --reason '…'` (audited, with who and why), then start again",
            code = route.code,
            endpoint = route.endpoint,
            name = route.name,
            recorded = current.issuer_endpoint,
            recorded_name = current.name,
        );
    }
    let code = MunicipalityCode::parse(route.code)
        .map_err(|_| anyhow::anyhow!("municipality code {}: not a valid code", route.code))?;
    let event = Event::municipality_routed(now, code, endpoint_ident(route.endpoint));
    audit::store::append(tx, &event).await?;
    let new = store::Municipality {
        code: route.code.to_owned(),
        name: route.name.to_owned(),
        suspended: false,
        issuer_endpoint: route.endpoint.to_owned(),
    };
    store::upsert_municipality(tx, &new)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Routes each `[[remote_issuers]]` entry to its issuer process over mutual TLS. Links
/// connect lazily, so the gateway starts while an issuer is down and that municipality's
/// requests answer ISSUER_UNAVAILABLE until it is back.
pub fn add_remote_issuers(
    directory: &mut IssuerDirectory,
    config: &Config,
    internal: &InternalTls,
) -> anyhow::Result<()> {
    for remote in &config.remote_issuers {
        let link = issuer_endpoint(internal, &remote.endpoint, &remote.server_name())
            .with_context(|| format!("remote issuer of {}", remote.municipality))?;
        directory.insert(
            &remote.municipality,
            Arc::new(crate::route::Remote::new(link.connect_lazy())),
        );
    }
    Ok(())
}

/// The endpoint of an issuer process at `url` (`https://host:port`), over mutual TLS with the
/// gateway's internal client certificate, expecting `server_name` in the issuer's certificate
/// under the internal CA.
pub fn issuer_endpoint(
    internal: &InternalTls,
    url: &str,
    server_name: &str,
) -> anyhow::Result<tonic::transport::Endpoint> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&internal.ca_pem))
        .identity(Identity::from_pem(
            &internal.client_cert_pem,
            &internal.client_key_pem,
        ))
        .domain_name(server_name);
    Ok(Endpoint::from_shared(url.to_owned())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
}

/// The server's parts over `store` and the loaded `trust`, routing issuances through
/// `directory`, with `client_crls` as the source of the client CRLs and `municipalities`
/// (code, display name) as every municipality routed.
pub fn server_parts(
    config: &Config,
    clock: Arc<dyn Clock>,
    store: Store,
    trust: &TrustMaterial,
    client_crls: ClientCrls,
    directory: IssuerDirectory,
    municipalities: &[(String, String)],
) -> anyhow::Result<ServerParts> {
    let cards = Arc::new(
        CardVerifier::new(
            trust.card_auth_cas_der.clone(),
            &trust.card_crls,
            card_policies(config)?,
        )
        .map_err(|e| anyhow::anyhow!("trust.card_auth_ca, card_crl_file: {e}"))?,
    );
    let origin = format!("{}/audit", config.gateway_id);
    let signer = match &trust.checkpoint_key {
        Some(key) => CheckpointSigner::from_signer(&origin, key.clone())
            .map_err(|e| anyhow::anyhow!("keys.checkpoint_key: {e}"))?,
        None => CheckpointSigner::from_seed(&origin, &trust.checkpoint_seed)
            .map_err(|e| anyhow::anyhow!("keys.checkpoint_seed: {e}"))?,
    };
    let routes = Routes {
        directory,
        municipalities,
    };
    let flow = flow(config, clock.clone(), store.clone(), trust, &cards, routes)?;
    let (tls, revocation, anchors) = tls(clock.clone(), trust, client_crls, cards)?;
    let verify = verify_api(store, trust, municipalities, clock.as_ref())?;
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

/// The card certificate policies `config` accepts: `trust.card_policies`, else the
/// production JPKI policy alone; the development profile, whose cards come from its own
/// PKI, the J-LIS test policy.
pub fn card_policies(config: &Config) -> anyhow::Result<CardPolicies> {
    if !config.production() {
        return Ok(CardPolicies::development());
    }
    match config.trust.as_ref().and_then(|t| t.card_policies.as_ref()) {
        Some(list) => {
            CardPolicies::from_list(list).map_err(|e| anyhow::anyhow!("trust.card_policies: {e}"))
        }
        None => Ok(CardPolicies::production()),
    }
}

/// Where issuances go: the links, and every municipality routed (code, display name).
struct Routes<'a> {
    directory: IssuerDirectory,
    municipalities: &'a [(String, String)],
}

/// The issuance flow, checking each routed municipality's documents with its certificate.
fn flow(
    config: &Config,
    clock: Arc<dyn Clock>,
    store: Store,
    trust: &TrustMaterial,
    cards: &Arc<CardVerifier>,
    routes: Routes<'_>,
) -> anyhow::Result<Arc<Flow>> {
    let pseudonyms = Pseudonymizer::new(&trust.pseudonym_key)
        .map_err(|e| anyhow::anyhow!("keys.pseudonym_key: {e}"))?;
    let settings = FlowSettings {
        gateway_id: config.gateway_id.clone(),
        max_concurrent_issuances: config.max_concurrent_issuances,
        max_open_sessions_per_terminal: config.max_open_sessions_per_terminal,
        print_window: Duration::from_secs(config.print_window_secs),
        ..FlowSettings::default()
    };
    let mut signing_certs = HashMap::new();
    for (code, _) in routes.municipalities {
        let cert = trust
            .signing_certs
            .get(code)
            .with_context(|| format!("the document-signing certificate of {code}"))?;
        signing_certs.insert(code.clone(), cert.clone());
    }
    let checks = DocumentChecks {
        page_markers,
        pdf_signature: |pdf, cert| {
            kiosk_document::signature::verify_pdf_signature(pdf, cert).is_ok()
        },
        signing_certs,
    };
    Ok(Arc::new(Flow::new(
        checks,
        store,
        cards.clone(),
        routes.directory,
        pseudonyms,
        settings,
        clock,
    )))
}

/// The TLS server configuration with the client CRLs in force, the refresher that keeps
/// them and the card CRL current, and the CAs that grant caller roles.
fn tls(
    clock: Arc<dyn Clock>,
    trust: &TrustMaterial,
    client_crls: ClientCrls,
    cards: Arc<CardVerifier>,
) -> anyhow::Result<(
    Arc<ReloadableServerConfig>,
    crate::revocation::Refresher,
    Arc<RoleAnchors>,
)> {
    let material = ServerTlsMaterial::new(
        &trust.server_cert_pem,
        &trust.server_key,
        &[&trust.terminal_ca_pem, &trust.auditor_ca_pem],
    )
    .context("trust.server_cert, keys.server_key, trust.terminal_ca, trust.auditor_ca")?;
    let installed_client = client_crls.load().context("client_crl_files")?;
    let tls = Arc::new(ReloadableServerConfig::new(
        material,
        installed_client.clone(),
        clock,
    )?);
    let revocation = crate::revocation::Refresher::new(
        client_crls,
        trust.card_crl_file.clone(),
        tls.clone(),
        cards,
        &installed_client,
        trust.card_crls.clone(),
    );
    let anchors = Arc::new(
        RoleAnchors::new(
            &pem_to_ders(&trust.terminal_ca_pem)?,
            &pem_to_ders(&trust.auditor_ca_pem)?,
        )
        .map_err(|e| anyhow::anyhow!("trust.terminal_ca, trust.auditor_ca: {e}"))?
        .with_revocation(tls.revocation()),
    );
    Ok((tls, revocation, anchors))
}

/// Public verification: every routed municipality's signing key, each certificate checked
/// to chain to the municipality CA now.
fn verify_api(
    store: Store,
    trust: &TrustMaterial,
    municipalities: &[(String, String)],
    clock: &dyn Clock,
) -> anyhow::Result<VerifyApi> {
    let mut trusted = TrustedKeys::new();
    let mut known = HashMap::new();
    for (code, name) in municipalities {
        let der = trust
            .signing_certs
            .get(code)
            .with_context(|| format!("the document-signing certificate of {code}"))?;
        // TrustedKeys only extracts the key: the chain is checked here, once, at start.
        check_signing_chain(der, &trust.municipality_ca_der, clock)
            .with_context(|| format!("municipality {code} signing certificate"))?;
        trusted
            .add_certificate_der(der, None)
            .map_err(|e| anyhow::anyhow!("municipality {code} key: {e}"))?;
        known.insert(
            code.clone(),
            verify::Municipality {
                name: name.clone(),
                signer_cert_der: der.clone(),
            },
        );
    }
    Ok(VerifyApi::new(store, Arc::new(trusted), known))
}

/// Every certificate of a PEM bundle, as DER: a role may have several CAs side by side.
fn pem_to_ders(pem: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs = kiosk_document::pem::certificates(pem)
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
    Ok(certs.into_iter().map(|der| der.to_vec()).collect())
}

/// The purposes a document-signing certificate's extended key usage may name, as webpki
/// takes them (the OID's content octets): id-kp-documentSigning (RFC 9336, 1.3.6.1.5.5.7.3.36),
/// id-kp-emailProtection (1.3.6.1.5.5.7.3.4, which PDF signers have long carried) and
/// anyExtendedKeyUsage (2.5.29.37.0). A certificate without the extension may sign too
/// (RFC 5280 4.2.1.12); one whose EKU names only other purposes — a TLS client or server
/// certificate — may not.
const DOCUMENT_SIGNING_PURPOSES: [&[u8]; 3] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
    &[0x55, 0x1d, 0x25, 0x00],
];

/// Checks that a document-signing certificate chains to the municipality CA now, by the
/// deployment's `clock`, and that its extended key usage, if any, names a document-signing
/// purpose (`DOCUMENT_SIGNING_PURPOSES`).
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
    let mut present = Vec::new();
    for purpose in DOCUMENT_SIGNING_PURPOSES {
        match end_entity.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            std::slice::from_ref(&anchor),
            &[],
            now,
            webpki::KeyUsage::required_if_present(purpose),
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(webpki::Error::RequiredEkuNotFoundContext(context)) => present = context.present,
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!(
        "its extended key usage {present:?} names no document-signing purpose \
         (id-kp-documentSigning, emailProtection, anyExtendedKeyUsage, or no extension)"
    )
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
