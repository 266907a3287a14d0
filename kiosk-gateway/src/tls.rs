//! TLS 1.3 with client certificates and a certificate revocation list that can be replaced
//! while the server runs.
//!
//! tonic's built-in `ServerTlsConfig` has no CRL hook, so a revoked terminal certificate would
//! be accepted (../shared/docs/stack.md, pitfall 1). Instead the gateway builds its own rustls
//! `ServerConfig` with a webpki client verifier that checks the CRLs and refuses a stale one
//! (`enforce_revocation_expiration`), and hands tonic already-established TLS streams. Each
//! handshake runs in its own task under a timeout, so a slow or hostile client cannot stall
//! the accept loop, and a failed handshake never ends the stream of connections. Before and
//! after the handshake a connection takes its places in the connection counts
//! (`limits::Admission`: the total, handshakes per address, anonymous ones in total and per
//! address), and the HTTP/2 preface must follow the handshake within its own timeout
//! (`conn`): tonic only ever sees connections that are within the limits and speak HTTP/2.
//!
//! Client certificates are optional at the TLS layer (`VerifyService` needs none); every
//! service that needs one checks the caller's role itself (see `identity`).
//!
//! The handshake is not the only check: an HTTP/2 connection lives for hours, so a terminal
//! revoked after it connected would keep issuing. [`ClientRevocation`] holds the same lists
//! as a lookup that `identity::RoleAnchors` consults on every request.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::clock::{Clock, TlsTime};
use crate::conn::{Conn, read_preface};
use crate::limits::{Admission, ConnectionPermit};
use crate::tls_key::ServerKey;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CRL could not be used.
    #[error("tls material: {0}")]
    Material(String),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The gateway's server identity and what it trusts of its clients.
#[derive(Debug)]
pub struct ServerTlsMaterial {
    /// The server certificate chain, leaf first, with the key that signs for it (a file's,
    /// or a token's: `tls_key`).
    pub certified: Arc<CertifiedKey>,
    /// The CAs whose certificates may call (terminal CA, auditor CA), DER.
    pub client_roots: Vec<CertificateDer<'static>>,
}

impl ServerTlsMaterial {
    /// Reads the material from PEM: server chain, server key, client CA certificates.
    pub fn from_pem(chain: &[u8], key: &[u8], client_roots: &[&[u8]]) -> Result<Self, TlsError> {
        Self::new(chain, &ServerKey::Pem(key.to_vec()), client_roots)
    }

    /// The material from a PEM chain, the server key (a file's or a token's) and the client
    /// CA certificates (PEM); the key is checked to match the chain's leaf.
    pub fn new(chain: &[u8], key: &ServerKey, client_roots: &[&[u8]]) -> Result<Self, TlsError> {
        use kiosk_document::pem;
        let chain = pem::certificates(chain)
            .map_err(|e| TlsError::Material(format!("server certificate: {e}")))?;
        let certified = Arc::new(
            key.certify(chain)
                .map_err(|e| TlsError::Material(e.to_string()))?,
        );
        let mut roots = Vec::new();
        for client_root in client_roots {
            roots.extend(
                pem::certificates(client_root)
                    .map_err(|e| TlsError::Material(format!("client CA: {e}")))?,
            );
        }
        Ok(ServerTlsMaterial {
            certified,
            client_roots: roots,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One client CA's CRL, as a lookup.
#[derive(Debug)]
struct RevocationList {
    /// The CRL issuer's name (DER), compared with a certificate's issuer name.
    issuer: Vec<u8>,
    /// nextUpdate, unix seconds; a CRL without one is stale at once (as webpki treats it).
    next_update: Option<i64>,
    /// Revoked serial numbers, as their DER INTEGER content bytes.
    revoked: HashSet<Vec<u8>>,
}

/// What the current client CRLs say of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Listed by a current CRL of its issuer as not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// Its issuer's CRL is past nextUpdate, or there is none: status unknown, refused.
    Unknown,
}

/// The client CRLs currently in force, for the per-request check.
pub struct ClientRevocation {
    lists: RwLock<Arc<Vec<RevocationList>>>,
    /// The deployment clock: the per-request check judges freshness as the handshake does.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ClientRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRevocation")
            .field("lists", &self.lists)
            .finish_non_exhaustive()
    }
}

impl ClientRevocation {
    fn parse(crls: &[CertificateRevocationListDer<'_>]) -> Result<Vec<RevocationList>, TlsError> {
        crls.iter()
            .map(|der| {
                use x509_parser::prelude::FromDer;
                let (_, crl) =
                    x509_parser::revocation_list::CertificateRevocationList::from_der(der)
                        .map_err(|e| TlsError::Material(format!("client CRL: {e}")))?;
                Ok(RevocationList {
                    issuer: crl.issuer().as_raw().to_vec(),
                    next_update: crl.next_update().map(|t| t.timestamp()),
                    revoked: crl
                        .iter_revoked_certificates()
                        .map(|r| r.raw_serial().to_vec())
                        .collect(),
                })
            })
            .collect()
    }

    fn replace(&self, lists: Vec<RevocationList>) {
        let lists = Arc::new(lists);
        match self.lists.write() {
            Ok(mut current) => *current = lists,
            Err(poisoned) => *poisoned.into_inner() = lists,
        }
    }

    /// The status of the certificate with `issuer` name and `serial` (DER content bytes) now,
    /// by the deployment clock.
    pub fn status_now(&self, issuer: &[u8], serial: &[u8]) -> RevocationStatus {
        self.status(issuer, serial, self.clock.now_ms().div_euclid(1000))
    }

    /// The status of the certificate with `issuer` name and `serial` (DER content bytes) at
    /// `now` (unix seconds).
    pub fn status(&self, issuer: &[u8], serial: &[u8], now: i64) -> RevocationStatus {
        let lists = match self.lists.read() {
            Ok(lists) => lists.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(list) = lists.iter().find(|l| l.issuer == issuer) else {
            return RevocationStatus::Unknown;
        };
        if list.revoked.contains(serial) {
            RevocationStatus::Revoked
        } else if list.next_update.is_none_or(|next| now >= next) {
            RevocationStatus::Unknown
        } else {
            RevocationStatus::Good
        }
    }
}

/// A server configuration whose CRLs can be replaced while connections keep being accepted.
/// A connection uses the configuration current at its handshake; [`ClientRevocation`]
/// carries the same lists to every request.
pub struct ReloadableServerConfig {
    material: ServerTlsMaterial,
    time: TlsTime,
    current: RwLock<Arc<rustls::ServerConfig>>,
    revocation: Arc<ClientRevocation>,
}

impl ReloadableServerConfig {
    /// Builds the configuration with these CRLs (one per client CA; DER), judging
    /// certificates and CRLs by `clock`.
    pub fn new(
        material: ServerTlsMaterial,
        crls: Vec<CertificateRevocationListDer<'static>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TlsError> {
        let lists = ClientRevocation::parse(&crls)?;
        let time = TlsTime(clock.clone());
        let config = build_config(&material, crls, &time)?;
        Ok(ReloadableServerConfig {
            material,
            time,
            current: RwLock::new(Arc::new(config)),
            revocation: Arc::new(ClientRevocation {
                lists: RwLock::new(Arc::new(lists)),
                clock,
            }),
        })
    }

    /// The lists in force, for the per-request check.
    pub fn revocation(&self) -> Arc<ClientRevocation> {
        self.revocation.clone()
    }

    /// Replaces the CRLs. On error the previous configuration stays in force.
    pub fn replace_crls(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<(), TlsError> {
        let lists = ClientRevocation::parse(&crls)?;
        let config = Arc::new(build_config(&self.material, crls, &self.time)?);
        match self.current.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        self.revocation.replace(lists);
        Ok(())
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn build_config(
    material: &ServerTlsMaterial,
    crls: Vec<CertificateRevocationListDer<'static>>,
    time: &TlsTime,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for root in &material.client_roots {
        roots
            .add(root.clone())
            .map_err(|e| TlsError::Material(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        // Both rustls and webpki ignore nextUpdate by default: a stale CRL would pass.
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Material(format!("client verifier: {e}")))?;
    // The handshake reads the deployment clock, not the system's: a client CRL is fresh or
    // stale by the same clock that judges it on every later request (`ClientRevocation`).
    let mut config = rustls::ServerConfig::builder_with_details(provider(), Arc::new(time.clone()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(material.certified.clone())));
    // tonic's own TLS path sets ALPN; on this path we must, or HTTP/2 clients refuse.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `listener` and yields established connections. Handshakes run
/// concurrently, each bounded by the handshake timeout and followed by the HTTP/2 preface
/// within its own timeout; a connection over a limit of `admission` is closed at once.
/// Failures are logged and dropped: they never end the stream of connections.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ReloadableServerConfig>,
    handshake_timeout: Duration,
    admission: Arc<Admission>,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(permit) = admission.accept(peer.ip()) else {
                tracing::debug!(%peer, "connection over the limits: closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.current());
            let connection_sender = sender.clone();
            let admission = admission.clone();
            tokio::spawn(async move {
                let accepted = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await;
                let tls = match accepted {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return tracing::info!(%peer, %error, "tls handshake refused"),
                    Err(_) => return tracing::info!(%peer, "tls handshake timed out"),
                };
                if let Some(conn) = establish(tls, peer.ip(), permit, &admission).await {
                    let _ = connection_sender.send(Ok(conn)).await;
                }
            });
            if sender.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// After the handshake: the anonymous counts for a connection without a client certificate,
/// then the HTTP/2 preface within its timeout. `None`: the connection is dropped (closed).
async fn establish(
    mut tls: TlsStream<TcpStream>,
    ip: std::net::IpAddr,
    permit: ConnectionPermit,
    admission: &Admission,
) -> Option<Conn> {
    let anonymous = tls.get_ref().1.peer_certificates().is_none();
    let Some(permit) = admission.established(permit, ip, anonymous) else {
        tracing::info!(%ip, "anonymous connection over the limits: closed");
        return None;
    };
    let limits = admission.limits();
    if read_preface(&mut tls, limits.preface_timeout)
        .await
        .is_none()
    {
        admission.refuse();
        tracing::info!(%ip, "no HTTP/2 preface in time: closed");
        return None;
    }
    let idle = anonymous.then_some(limits.anonymous_idle_timeout);
    Some(Conn::new(tls, permit, idle))
}
