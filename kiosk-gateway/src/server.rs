//! Start-up as a library function: bind (port 0 allowed), report the bound address, serve until
//! told to stop, then drain.
//!
//! Order on shutdown (tonic waits for every connection to close with no deadline of its own):
//! health goes NOT_SERVING so load balancers stop sending, a drain period lets in-flight
//! issuances finish, the server stops accepting and closes connections, and the whole stop is
//! bounded by a grace period.
//!
//! Every health answer carries the build identity in its response headers
//! ([`WithBuildIdentity`]), so a probe shows which build serves at an address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use audit::checkpoint::CheckpointSigner;
use kiosk_proto::refusals::ContractErrors;
use kiosk_proto::v1::audit_service_server::AuditServiceServer;
use kiosk_proto::v1::terminal_service_server::TerminalServiceServer;
use kiosk_proto::v1::verify_service_server::VerifyServiceServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codegen::http::{self, HeaderValue};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;

use crate::flow::Flow;
use crate::identity::RoleAnchors;
use crate::limits::{Admission, ConnectionStats, Limits, StreamBudget};
use crate::service::audit::AuditApi;
use crate::service::terminal::TerminalApi;
use crate::service::verify::{self, VerifyApi};
use crate::shed::Shed;
use crate::tls::{self, ReloadableServerConfig};

/// Largest request a terminal may send (a card certificate and signature are a few KiB).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Everything the server needs, already built and checked.
pub struct ServerParts {
    /// The issuance flow.
    pub flow: Arc<Flow>,
    /// Re-reads the CRL sources and installs what changed (`crate::revocation`).
    pub revocation: crate::revocation::Refresher,
    /// How often to run `revocation` (and on SIGHUP); `None` leaves the lists as built.
    /// `serve` sets it; the demo and tests replace lists themselves when they mean to.
    pub revocation_refresh: Option<Duration>,
    /// The CAs that grant caller roles.
    pub anchors: Arc<RoleAnchors>,
    /// TLS with a replaceable CRL.
    pub tls: Arc<ReloadableServerConfig>,
    /// Handshake time limit per connection.
    pub handshake_timeout: Duration,
    /// Connection counts, timeouts and the Issue stream budget.
    pub limits: Limits,
    /// How often released issuances past their print deadline, and long-expired sessions,
    /// are swept.
    pub sweep_interval: Duration,
    /// How often documents pending at the issuers are reconciled with the gateway's records
    /// (`Flow::reconcile`); also once at start, before health reports SERVING.
    pub reconcile_interval: Duration,
    /// Signs the audit log's checkpoints.
    pub checkpoint_signer: Arc<CheckpointSigner>,
    /// Public verification of printed documents.
    pub verify: VerifyApi,
}

/// A running gateway.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    sweeper: JoinHandle<()>,
    refresher: Option<JoinHandle<()>>,
    health: tonic_health::server::HealthReporter,
    admission: Arc<Admission>,
    budget: Arc<StreamBudget>,
}

/// Build identity: the package version and the commit the binary was built from (`unknown`
/// when built outside a git checkout without `KIOSK_BUILD_COMMIT`; see build.rs).
pub fn build_identity() -> (&'static str, &'static str) {
    (env!("CARGO_PKG_VERSION"), env!("KIOSK_BUILD_COMMIT"))
}

/// The response header of every `grpc.health.v1.Health` answer naming the package version.
pub const BUILD_VERSION_HEADER: &str = "kiosk-build-version";
/// The response header of every `grpc.health.v1.Health` answer naming the build commit.
pub const BUILD_COMMIT_HEADER: &str = "kiosk-build-commit";

/// A gRPC service whose every response carries the build identity as response metadata.
///
/// It wraps the health service: that is what load balancers and operators already poll, so
/// "which build answers at this address" needs no new RPC and no client certificate. The
/// other services' responses stay as the contract describes them.
#[derive(Clone)]
pub struct WithBuildIdentity<S> {
    inner: S,
    version: HeaderValue,
    commit: HeaderValue,
}

impl<S> WithBuildIdentity<S> {
    /// Wraps `inner` with this binary's [`build_identity`].
    pub fn new(inner: S) -> std::io::Result<Self> {
        let (version, commit) = build_identity();
        let value = |text: &str| {
            HeaderValue::from_str(text)
                .map_err(|_| std::io::Error::other("build identity is not a header value"))
        };
        Ok(WithBuildIdentity {
            inner,
            version: value(version)?,
            commit: value(commit)?,
        })
    }
}

impl<S, B, R> Service<http::Request<B>> for WithBuildIdentity<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        let (version, commit) = (self.version.clone(), self.commit.clone());
        Box::pin(async move {
            let mut response = answer.await?;
            // Headers, not trailers: they reach the client with the response head, also for a
            // Watch stream and for a refusal sent as trailers-only.
            let headers = response.headers_mut();
            headers.insert(BUILD_VERSION_HEADER, version);
            headers.insert(BUILD_COMMIT_HEADER, commit);
            Ok(response)
        })
    }
}

impl<S: NamedService> NamedService for WithBuildIdentity<S> {
    const NAME: &'static str = S::NAME;
}

/// Binds `listen` and starts serving.
pub async fn start(parts: ServerParts, listen: SocketAddr) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let health_service = WithBuildIdentity::new(health_service)?;
    // Documents a previous run left pending are settled before any terminal is served: a
    // load balancer waits for SERVING, and the issuers see no new work from this gateway
    // until then. An issuer that does not answer is settled on the interval.
    match parts.flow.reconcile().await {
        Ok(done) if !done.unreachable.is_empty() => {
            tracing::warn!(unreachable = ?done.unreachable, "start-up reconciliation incomplete")
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "start-up reconciliation failed"),
    }
    health
        .set_serving::<TerminalServiceServer<TerminalApi>>()
        .await;
    let (reflection, reflection_v1alpha) = reflection()?;

    let limits = parts.limits;
    let budget = StreamBudget::new(
        limits.stream_budget_bytes,
        limits.stream_budget_per_terminal_bytes,
        limits.stream_timeout,
    );
    let (terminal, audit, verify) = services(
        &parts.flow,
        &parts.anchors,
        parts.verify,
        &budget,
        &limits,
        &parts.checkpoint_signer,
    );
    health.set_serving::<AuditServiceServer<AuditApi>>().await;
    health.set_serving::<VerifyServiceServer<VerifyApi>>().await;

    let (keepalive, keepalive_timeout) = (limits.keepalive_interval, limits.keepalive_timeout);
    let streams = limits.max_concurrent_streams;
    let admission = Admission::new(limits);
    tracing::info!(
        connections = admission.cap(),
        anonymous = admission.anonymous_cap(),
        "connection limits"
    );
    let incoming = tls::incoming(
        listener,
        parts.tls,
        parts.handshake_timeout,
        admission.clone(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // The gateway pings every connection itself: a peer that stops answering (gone, or
        // no longer reading) is closed instead of holding its descriptor and buffers.
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(keepalive_timeout))
            .max_concurrent_streams(streams)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(terminal)
            .add_service(audit)
            .add_service(verify)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await
    });

    let refresher = parts
        .revocation_refresh
        .map(|every| parts.revocation.spawn(every));
    let sweeper = spawn_sweeper(
        parts.flow,
        parts.sweep_interval,
        parts.reconcile_interval,
        health.clone(),
    );

    let (version, commit) = build_identity();
    tracing::info!(%local_addr, version, commit, "gateway serving");
    Ok(RunningServer {
        local_addr,
        stop: Some(stop),
        task,
        sweeper,
        refresher,
        health,
        admission,
        budget,
    })
}

/// TerminalService behind its call bounds and the contract's decode errors.
type TerminalLayer = Shed<ContractErrors<TerminalServiceServer<TerminalApi>>>;
/// AuditService behind the contract's decode errors.
type AuditLayer = ContractErrors<AuditServiceServer<AuditApi>>;
/// VerifyService behind its call bounds and the contract's decode errors.
type VerifyLayer = Shed<ContractErrors<VerifyServiceServer<VerifyApi>>>;

/// The kiosk.v1 services, each with its request size limit, the two busy ones behind their
/// call bounds (`shed`).
/// Server reflection in both versions: `v1` for current tools, `v1alpha` for grpcio-reflection's
/// client and the many tools that still speak only it (without it they get UNIMPLEMENTED).
fn reflection() -> std::io::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kiosk_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let error = |e| std::io::Error::other(format!("reflection: {e}"));
    Ok((
        builder().build_v1().map_err(error)?,
        builder().build_v1alpha().map_err(error)?,
    ))
}

fn services(
    flow: &Arc<Flow>,
    anchors: &Arc<RoleAnchors>,
    verify_api: VerifyApi,
    budget: &Arc<StreamBudget>,
    limits: &Limits,
    checkpoint_signer: &Arc<CheckpointSigner>,
) -> (TerminalLayer, AuditLayer, VerifyLayer) {
    // ContractErrors: requests tonic cannot decode, or over the size limit, are refused in
    // the contract's shape (INVALID_FIELD, REQUEST_TOO_LARGE) rather than a bare INTERNAL.
    // Shed is outside it: a call past the bounds is refused before anything is decoded.
    let terminal = Shed::new(
        ContractErrors::new(
            TerminalServiceServer::new(TerminalApi::new(
                flow.clone(),
                anchors.clone(),
                budget.clone(),
            ))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        ),
        limits.max_terminal_calls,
        limits.max_calls_per_caller,
    );
    let audit = ContractErrors::new(
        AuditServiceServer::new(AuditApi::new(
            flow.store().clone(),
            anchors.clone(),
            checkpoint_signer.clone(),
            flow.clock(),
        ))
        .max_decoding_message_size(MAX_REQUEST_BYTES),
    );
    let verify = Shed::new(
        ContractErrors::new(
            VerifyServiceServer::new(verify_api)
                .max_decoding_message_size(verify::MAX_PDF_BYTES + 4096),
        ),
        limits.max_verify_calls,
        limits.max_calls_per_caller,
    );
    (terminal, audit, verify)
}

/// Every `interval`: health follows the database, released issuances past their print
/// deadline and long-expired sessions are swept; every `reconcile_every`, documents pending
/// at the issuers are reconciled.
fn spawn_sweeper(
    flow: Arc<Flow>,
    interval: Duration,
    reconcile_every: Duration,
    watcher: tonic_health::server::HealthReporter,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        let mut serving = true;
        let mut reconciled_at = tokio::time::Instant::now();
        loop {
            ticker.tick().await;
            // Health follows the database: a gateway that cannot commit must not be sent
            // terminals.
            let up = flow.store().ping().await;
            if up != serving {
                serving = up;
                if up {
                    tracing::info!("database reachable again: serving");
                    watcher
                        .set_serving::<TerminalServiceServer<TerminalApi>>()
                        .await;
                } else {
                    tracing::error!("database unreachable: NOT_SERVING");
                    watcher
                        .set_not_serving::<TerminalServiceServer<TerminalApi>>()
                        .await;
                }
            }
            if !up {
                continue;
            }
            match flow.sweep_deadlines().await {
                Ok(0) => {}
                Ok(moved) => tracing::warn!(moved, "issuances passed their print deadline"),
                Err(error) => tracing::error!(%error, "deadline sweep failed"),
            }
            if let Err(error) = flow.sweep_sessions().await {
                tracing::error!(%error, "session sweep failed");
            }
            if reconciled_at.elapsed() >= reconcile_every {
                reconciled_at = tokio::time::Instant::now();
                if let Err(error) = flow.reconcile().await {
                    tracing::error!(%error, "reconciliation failed");
                }
            }
        }
    })
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connection counters now.
    pub fn connections(&self) -> ConnectionStats {
        self.admission.stats()
    }

    /// Bytes of released documents that Issue streams hold now, not yet sent.
    pub fn stream_bytes_reserved(&self) -> u64 {
        self.budget.reserved_bytes()
    }

    /// Marks the terminal service NOT_SERVING (draining or database down).
    pub async fn set_not_serving(&self) {
        self.health
            .set_not_serving::<TerminalServiceServer<TerminalApi>>()
            .await;
        self.health
            .set_not_serving::<AuditServiceServer<AuditApi>>()
            .await;
        self.health
            .set_not_serving::<VerifyServiceServer<VerifyApi>>()
            .await;
    }

    /// Drains and stops: NOT_SERVING, wait `drain`, stop accepting, then give connections up
    /// to `grace` to close.
    pub async fn shutdown(mut self, drain: Duration, grace: Duration) {
        self.set_not_serving().await;
        tokio::time::sleep(drain).await;
        self.sweeper.abort();
        if let Some(refresher) = &self.refresher {
            refresher.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!("gateway stopped"),
            Ok(Ok(Err(error))) => tracing::error!(%error, "gateway stopped with an error"),
            Ok(Err(error)) => tracing::error!(%error, "gateway task failed"),
            Err(_) => {
                tracing::warn!("connections still open after the grace period: closing");
                self.task.abort();
            }
        }
    }
}
