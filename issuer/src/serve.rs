//! `issuer serve`: one municipality's issuer as its own process, serving
//! `kiosk.v1.IssuerService` to gateways over mutual TLS (the two-process topology of
//! design.md section 2; the gateway's `[[remote_issuers]]` points at it).
//!
//! Who may call: a client certificate from the internal CA whose URI names a gateway
//! (`urn:kiosk:gateway:<id>`). The internal CA also signs issuer certificates, and those can
//! authenticate as TLS clients, so the chain alone would let one issuer call another; the URI
//! check refuses that with `WRONG_CLIENT_ROLE`.
//!
//! Alongside it: the standard health service (`kiosk.v1.IssuerService` is NOT_SERVING while
//! the register does not answer and while draining) and a graceful drain: on shutdown the
//! listener closes, health turns NOT_SERVING, and renders in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kiosk_document::MunicipalityCode;
use kiosk_proto::v1::issuer_service_server::IssuerServiceServer;
use tokio::sync::watch;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::document::render::Renderer;
use crate::document::sign::DocumentSigner;
use crate::error::IssuerError;
use crate::service::IssuerGrpc;
use crate::{Issuer, Register};

/// The URI prefix a caller's certificate must carry.
pub const GATEWAY_URI_PREFIX: &str = "urn:kiosk:gateway:";

/// The largest request accepted (an order is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 64 << 10;
/// The largest response sent (a rendered order's PDFs).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The issuer's TLS side: its certificate, and who may connect.
pub struct IssuerTls {
    /// The server certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The server key, PEM.
    pub key_pem: Vec<u8>,
    /// The CA that signs the gateways' client certificates, PEM.
    pub client_ca_pem: Vec<u8>,
    /// The TLS handshake limit.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for IssuerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs and panics.
        f.debug_struct("IssuerTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Everything `issuer serve` needs, already read from files.
pub struct ServeOptions {
    /// The register's database URL.
    pub database_url: String,
    /// The municipality this process issues for.
    pub municipality: MunicipalityCode,
    /// Where to listen (port 0 picks one; the bound address is returned).
    pub listen: SocketAddr,
    /// The TLS side.
    pub tls: IssuerTls,
    /// The municipality's document-signing key, opened (a PKCS#8 file, or a token object).
    pub signing_key: kiosk_keys::Signer,
    /// The document-signing certificate chain, PEM.
    pub signing_chain_pem: String,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs and panics.
        f.debug_struct("ServeOptions")
            .field("municipality", &self.municipality.as_str())
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// A running issuer server. Dropping it stops accepting and lets requests in flight finish
/// in the background; [`RunningIssuer::shutdown`] waits for that.
pub struct RunningIssuer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    /// Closed on shutdown when this server opened it (not when it serves a shared register).
    owned_register: Option<Register>,
}

impl RunningIssuer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish (at most `grace`), closes the register
    /// it opened.
    pub async fn shutdown(mut self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let result = match self.task.take() {
            Some(task) => tokio::time::timeout(grace, task).await,
            None => Ok(Ok(Ok(()))),
        };
        if let Some(register) = self.owned_register.take() {
            register.close().await;
        }
        match result {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(anyhow::anyhow!("issuer server: {error}")),
            Ok(Err(join)) => Err(anyhow::anyhow!("issuer server task: {join}")),
            Err(_) => Err(anyhow::anyhow!(
                "requests still running after the grace period"
            )),
        }
    }
}

impl Drop for RunningIssuer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Refuses callers whose certificate does not name a gateway. The TLS layer has already
/// checked the chain to the internal CA; this checks the role inside it.
#[allow(
    clippy::result_large_err,
    reason = "tonic's interceptor signature returns Status by value"
)]
fn require_gateway(request: Request<()>) -> Result<Request<()>, Status> {
    let is_gateway = request.peer_certs().is_some_and(|chain| {
        chain
            .first()
            .is_some_and(|leaf| certificate_names_gateway(leaf.as_ref()))
    });
    if is_gateway {
        Ok(request)
    } else {
        Err(IssuerError::WrongClientRole.into())
    }
}

/// Whether a DER certificate carries a `urn:kiosk:gateway:` URI in its subject alternative
/// names.
pub fn certificate_names_gateway(der: &[u8]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return false;
    };
    sans.value.general_names.iter().any(|name| {
        matches!(name, GeneralName::URI(uri)
            if uri.strip_prefix(GATEWAY_URI_PREFIX).is_some_and(|id| !id.is_empty()))
    })
}

/// Opens the register, checks the signing key, binds and starts serving one municipality.
pub async fn start(options: ServeOptions) -> anyhow::Result<RunningIssuer> {
    let chain = kiosk_document::pem::pem_blocks(&options.signing_chain_pem, "CERTIFICATE")
        .map_err(|e| anyhow::anyhow!("document-signing certificate: {e}"))?;
    let signer = DocumentSigner::new(options.signing_key, chain)
        .map_err(|e| anyhow::anyhow!("document-signing key: {e}"))?;
    let register = Register::open(&options.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("--db (KIOSK_ISSUER_DB): {e}"))?;
    let issuer = Issuer::new(
        register.clone(),
        options.municipality.clone(),
        Arc::new(Renderer::new(signer)),
    );
    let mut running = serve(
        Arc::new(IssuerGrpc::new([issuer])),
        register.clone(),
        &options.tls,
        options.listen,
    )
    .await?;
    running.owned_register = Some(register);
    Ok(running)
}

/// Serves `service` (whose issuers keep their register in `register`, probed for health) on
/// `listen` with mutual TLS, gateways only.
pub async fn serve(
    service: Arc<IssuerGrpc>,
    register: Register,
    tls: &IssuerTls,
    listen: SocketAddr,
) -> anyhow::Result<RunningIssuer> {
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.client_ca_pem))
        .timeout(tls.handshake_timeout);

    let (health, health_service) = tonic_health::server::health_reporter();
    let service_name = <IssuerServiceServer<IssuerGrpc> as tonic::server::NamedService>::NAME;
    health
        .set_serving::<IssuerServiceServer<IssuerGrpc>>()
        .await;
    // ContractErrors: requests tonic cannot decode, or over the size limit, are refused in the
    // contract's shape (INVALID_FIELD, REQUEST_TOO_LARGE) rather than a bare INTERNAL. Inside
    // the role check, which runs first and answers in the contract's shape already.
    let service = kiosk_proto::refusals::ContractErrors::new(
        IssuerServiceServer::from_arc(service)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES),
    );
    let service = tonic::service::interceptor::InterceptedService::new(service, require_gateway);

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (stop, mut stopped) = watch::channel(false);

    // The register's health, probed while running: a gateway's health check then tells an
    // operator that this municipality cannot issue before a resident finds out.
    let probe_register = register;
    let probe_health = health.clone();
    let mut probe_stopped = stop.subscribe();
    tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::select! {
                _ = probe_stopped.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let ok = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("SELECT 1").execute(probe_register.pool()),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if ok != serving {
                serving = ok;
                tracing::warn!(serving, "register health changed");
                let status = if ok {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                probe_health.set_service_status(service_name, status).await;
            }
        }
    });

    let router = tonic::transport::Server::builder()
        .tls_config(tls_config)?
        .add_service(health_service)
        .add_service(service);
    let drain_health = health.clone();
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.changed().await;
                drain_health
                    .set_not_serving::<IssuerServiceServer<IssuerGrpc>>()
                    .await;
            })
            .await
    });
    Ok(RunningIssuer {
        local_addr,
        stop,
        task: Some(task),
        owned_register: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_uri(uri: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn only_gateway_uris_pass() {
        assert!(certificate_names_gateway(&cert_with_uri(
            "urn:kiosk:gateway:gw-dev-01"
        )));
        assert!(!certificate_names_gateway(&cert_with_uri(
            "urn:kiosk:issuer:dev"
        )));
        assert!(!certificate_names_gateway(&cert_with_uri(
            "urn:kiosk:gateway:"
        )));
        assert!(!certificate_names_gateway(b"not a certificate"));
    }
}
