//! `kiosk-abuse`: the abusive callers of `scripts/bench-abuse.sh`, all at once for a bounded
//! time against a gateway on this machine (issue 10):
//!
//! - `--idle N`: anonymous TLS + HTTP/2 connections that make one call and then stay idle;
//! - `--half-open N`: TLS handshakes never followed by the HTTP/2 preface;
//! - `--unread N`: retries of a recorded ~50-document order whose answer is never read;
//! - `--session-flood N`: loops of OpenSession from one certificate, never closing;
//! - `--large N`: loops of whole ~50-document issuances, read in full.
//!
//! Anonymous connections come from `--sources` loopback addresses (127.0.0.2, ...), as from
//! several hosts, and start `--connections-after` seconds after the rest. Each kind keeps its N callers going, replacing what the gateway closes,
//! until `--seconds` have passed; then it prints one line per kind with what it achieved.
//! Only loopback addresses are ever contacted.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use card::pin::Pin;
use clap::Parser;
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_client::TerminalServiceClient;
use kiosk_terminal::client::{Terminal, TerminalTls, connect};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Abusive callers against a gateway on loopback.
#[derive(Debug, Parser, Clone)]
struct Args {
    /// The gateway, `https://127.0.0.1:PORT`.
    #[arg(long)]
    gateway: String,
    /// The development PKI (server CA, terminal certificates and keys).
    #[arg(long)]
    pki: PathBuf,
    /// Software card files.
    #[arg(long)]
    cards: PathBuf,
    /// A bindings file naming each card's resident (JSON Lines).
    #[arg(long)]
    bindings: PathBuf,
    /// The certificate stem the abusing terminal uses.
    #[arg(long, default_value = "terminal-seven-131016-0042-k2")]
    terminal: String,
    /// How long to keep abusing, seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Idle anonymous connections to keep.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Handshake-then-silence connections to keep.
    #[arg(long, default_value_t = 0)]
    half_open: usize,
    /// Unread retries of a large order to keep.
    #[arg(long, default_value_t = 0)]
    unread: usize,
    /// Concurrent OpenSession loops.
    #[arg(long, default_value_t = 0)]
    session_flood: usize,
    /// Concurrent loops of large issuances.
    #[arg(long, default_value_t = 0)]
    large: usize,
    /// Loopback source addresses for anonymous connections.
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Start the idle and half-open connections this many seconds after the rest, so that
    /// the unread streams are established before descriptors may run out.
    #[arg(long, default_value_t = 0)]
    connections_after: u64,
}

/// What one kind of abuse achieved.
#[derive(Default)]
struct Tally {
    /// Attempts made.
    tried: AtomicU64,
    /// Attempts the gateway served (a connection established, a call answered).
    served: AtomicU64,
    /// Attempts refused or closed by the gateway.
    refused: AtomicU64,
    /// Most held at once.
    peak_held: AtomicU64,
    held: AtomicU64,
}

impl Tally {
    fn hold(&self) {
        let now = self.held.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_held.fetch_max(now, Ordering::Relaxed);
    }

    fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }

    fn line(&self, kind: &str) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "abuse {kind}: tried {} served {} refused/closed {} peak held {}",
            get(&self.tried),
            get(&self.served),
            get(&self.refused),
            get(&self.peak_held)
        )
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let target: SocketAddr = args
        .gateway
        .trim_start_matches("https://")
        .parse()
        .context("--gateway must be https://127.0.0.1:PORT")?;
    anyhow::ensure!(target.ip().is_loopback(), "only loopback gateways");
    let anonymous = Arc::new(anonymous_tls(&args)?);
    let mut kinds: Vec<(&str, Arc<Tally>)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (kind, count) in [("idle", args.idle), ("half-open", args.half_open)] {
        let tally = Arc::new(Tally::default());
        kinds.push((kind, tally.clone()));
        for n in 0..count {
            let source = source_address(n, args.sources);
            let (tls, tally) = (anonymous.clone(), tally.clone());
            let preface = kind == "idle";
            let after = Duration::from_secs(args.connections_after);
            tasks.spawn(async move {
                tokio::time::sleep(after).await;
                keep_connection(target, source, tls, preface, tally, until).await
            });
        }
    }
    let abuser = Abuser::new(&args).await?;
    for (kind, count) in [
        ("unread", args.unread),
        ("session-flood", args.session_flood),
        ("large", args.large),
    ] {
        if count == 0 {
            continue;
        }
        let tally = Arc::new(Tally::default());
        kinds.push((kind, tally.clone()));
        let abuser = abuser.clone();
        tasks.spawn(async move { abuser.run(kind, count, tally, until).await });
    }
    while tasks.join_next().await.is_some() {}
    for (kind, tally) in kinds {
        println!("{}", tally.line(kind));
    }
    Ok(())
}

fn source_address(n: usize, sources: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, 2 + (n % usize::from(sources.max(1))) as u8])
}

/// A TLS client configuration without a client certificate, offering h2.
fn anonymous_tls(args: &Args) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(args.pki.join("server-ca.crt.pem"))? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Keeps one anonymous connection open until `until`, opening a new one whenever the gateway
/// closes it: with `preface`, an HTTP/2 connection that made one call and idles; without, a
/// TLS connection that never sends a byte.
async fn keep_connection(
    target: SocketAddr,
    source: IpAddr,
    tls: Arc<tokio_rustls::TlsConnector>,
    preface: bool,
    tally: Arc<Tally>,
    until: Instant,
) {
    while Instant::now() < until {
        tally.tried.fetch_add(1, Ordering::Relaxed);
        let attempt =
            tokio::time::timeout_at(until, hold_one(target, source, &tls, preface, &tally));
        match attempt.await {
            Err(_) => break,
            Ok(()) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                // A closed connection is replaced, but not in a tight loop.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// One connection, held until the gateway closes it (or fails to serve it).
async fn hold_one(
    target: SocketAddr,
    source: IpAddr,
    tls: &tokio_rustls::TlsConnector,
    preface: bool,
    tally: &Tally,
) {
    let Ok(socket) = TcpSocket::new_v4() else {
        return;
    };
    if socket.bind(SocketAddr::new(source, 0)).is_err() {
        return;
    }
    let Ok(tcp) = socket.connect(target).await else {
        return;
    };
    let Ok(name) = ServerName::try_from("localhost") else {
        return;
    };
    let Ok(mut stream) = tls.connect(name, tcp).await else {
        return;
    };
    if !preface {
        tally.served.fetch_add(1, Ordering::Relaxed);
        tally.hold();
        // Whatever the gateway sends (its SETTINGS) is read; only the end of the
        // connection ends the hold.
        let mut buf = [0u8; 1024];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        tally.release();
        return;
    }
    let Ok((send, connection)) = h2::client::handshake(stream).await else {
        return;
    };
    let driver = tokio::spawn(connection);
    if health_check(&send).await.is_ok() {
        tally.served.fetch_add(1, Ordering::Relaxed);
        tally.hold();
        let _ = driver.await;
        tally.release();
    }
}

/// One `grpc.health.v1.Health/Check` over a raw HTTP/2 connection.
async fn health_check(send: &h2::client::SendRequest<Bytes>) -> anyhow::Result<()> {
    let request = http::Request::builder()
        .method("POST")
        .uri("https://localhost/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let mut send = send.clone().ready().await?;
    let (response, mut body) = send.send_request(request, false)?;
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
    let mut answer = response.await?.into_body();
    while let Some(data) = answer.data().await {
        let data = data?;
        let _ = answer.flow_control().release_capacity(data.len());
    }
    answer.trailers().await?;
    Ok(())
}

/// The abusing terminal: its certificate, a card, and the large order.
#[derive(Clone)]
struct Abuser {
    args: Args,
    tls: TerminalTls,
    terminal: Terminal,
    cards: Arc<Vec<SoftCard>>,
}

impl Abuser {
    async fn new(args: &Args) -> anyhow::Result<Self> {
        let tls = TerminalTls::from_pki_dir(&args.pki, &args.terminal, "localhost")?;
        let terminal = Terminal::new(connect(&args.gateway, &tls).await?);
        let text = std::fs::read_to_string(&args.bindings)?;
        let mut cards = Vec::new();
        for line in text.lines() {
            if let Some(file) = json_field(line, "card_file") {
                cards.push(SoftCard::load(&args.cards.join(file))?);
            }
            if cards.len() == 16 {
                break;
            }
        }
        anyhow::ensure!(!cards.is_empty(), "no cards in {}", args.bindings.display());
        Ok(Abuser {
            args: args.clone(),
            tls,
            terminal,
            cards: Arc::new(cards),
        })
    }

    async fn run(self, kind: &str, count: usize, tally: Arc<Tally>, until: Instant) {
        let mut loops = tokio::task::JoinSet::new();
        let recorded = if kind == "unread" {
            match self.large_issuance(0, "abuse-unread-order-1").await {
                Ok(request) => Some(request),
                Err(error) => {
                    eprintln!("abuse unread: the order to retry failed: {error:#}");
                    return;
                }
            }
        } else {
            None
        };
        for n in 0..count {
            let (this, tally, recorded) = (self.clone(), tally.clone(), recorded.clone());
            let kind = kind.to_owned();
            loops.spawn(async move {
                let mut round = 0usize;
                while Instant::now() < until {
                    tally.tried.fetch_add(1, Ordering::Relaxed);
                    let served = match (kind.as_str(), &recorded) {
                        ("unread", Some(request)) => this.unread(request, &tally, until).await,
                        ("session-flood", _) => this.terminal.open_session().await.is_ok(),
                        _ => {
                            let key = format!("abuse-large-{}-{n}-{round}", std::process::id());
                            this.large_issuance(n + round, &key).await.is_ok()
                        }
                    };
                    let counter = if served {
                        &tally.served
                    } else {
                        &tally.refused
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    round += 1;
                    if !served {
                        // Refused: try again, as a retrying kiosk would, but not in a tight
                        // loop (each unread retry is a new connection and handshake).
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
        }
        while loops.join_next().await.is_some() {}
    }

    /// One full issuance of ten items of five copies (50 documents), read in full; returns
    /// the request that retries it.
    async fn large_issuance(&self, n: usize, key: &str) -> anyhow::Result<pb::IssueRequest> {
        let card = self.cards[n % self.cards.len()].clone();
        let opened = self.terminal.open_session().await?;
        let (challenge, context) = (opened.challenge.clone(), opened.auth_context_bytes.clone());
        let pin = Pin::parse("1234")?;
        let proof = tokio::task::spawn_blocking(move || {
            kiosk_terminal::login::sign_login(SoftTransport::new(card), &pin, &challenge, &context)
        })
        .await??;
        let menu = self
            .terminal
            .authenticate(&opened.session_id, proof.certificate, proof.signature)
            .await?;
        let entry = menu
            .entries
            .iter()
            .find(|e| e.available && e.r#type == pb::CertificateType::ResidentRecordItems as i32)
            .context("the resident may not obtain RESIDENT_RECORD_ITEMS")?;
        let line = pb::RequestItem {
            r#type: entry.r#type,
            options: None,
            subject_refs: Vec::new(),
            copies: 5,
        };
        let items = vec![line; 10];
        let fee = entry.fee_yen * 50;
        let timeout = Duration::from_secs(120);
        let session = opened.session_id;
        self.terminal
            .issue(&session, key, items.clone(), fee, timeout)
            .await?;
        Ok(pb::IssueRequest {
            session_id: session,
            client_request_id: key.to_owned(),
            items,
            expected_total_fee_yen: fee,
        })
    }

    /// One retry of `request` on its own connection, whose answer is never read: held
    /// until the gateway ends it or `until`. True when the gateway started the stream.
    async fn unread(&self, request: &pb::IssueRequest, tally: &Tally, until: Instant) -> bool {
        let Ok(channel) = self.small_window_channel().await else {
            return false;
        };
        let mut client = TerminalServiceClient::new(channel);
        let Ok(response) = client.issue(request.clone()).await else {
            return false;
        };
        tally.hold();
        let stream = response.into_inner();
        tokio::time::sleep_until(until).await;
        drop(stream);
        tally.release();
        true
    }

    async fn small_window_channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.tls.server_ca_pem))
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .domain_name("localhost");
        Ok(Endpoint::from_shared(self.args.gateway.clone())?
            .tls_config(tls)?
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await?)
    }
}

/// A string field of a flat JSON object line (the bindings format).
fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":\"");
    let start = line.find(&needle)? + needle.len();
    let end = start + line[start..].find('"')?;
    Some(&line[start..end])
}
