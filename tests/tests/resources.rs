//! No caller can exhaust the gateway (issue 10): unread Issue streams stay within the byte
//! budget, a connection that never sends the HTTP/2 preface or that stays idle without a
//! client certificate is closed, anonymous connections are capped per address while terminals
//! still connect, an idle terminal is kept, and a peer that stops answering PINGs is closed.
//!
//! Real sockets against the real server on port 0; the limits are configured small so that
//! each test waits for a timeout of a few hundred milliseconds, then checks that the
//! connection was closed.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kiosk_gateway::config::Config;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_client::TerminalServiceClient;
use kiosk_tests::{AppOptions, Db, TERMINAL_1, TERMINAL_2, TestApp, fee, item};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

async fn app_with(configure: impl FnOnce(&mut Config) + Send + 'static) -> TestApp {
    kiosk_tests::spawn_app_with(AppOptions {
        configure: Some(Box::new(configure)),
        ..AppOptions::new(Db::Sqlite)
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("https://").to_owned()
}

/// A TLS connection to the gateway, with the client certificate `<stem>` or none, offering h2.
async fn tls_connect(app: &TestApp, stem: Option<&str>) -> TlsStream<TcpStream> {
    let pki = app.pki_dir();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.join("server-ca.crt.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match stem {
        None => builder.with_no_client_auth(),
        Some(stem) => {
            let chain = CertificateDer::pem_file_iter(pki.join(format!("{stem}.crt.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(pki.join(format!("{stem}.key.pem"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr(app)).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// An HTTP/2 connection without a client certificate; its driver runs in a task whose end
/// means the connection ended.
async fn anonymous_h2(
    app: &TestApp,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tls = tls_connect(app, None).await;
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    (send, tokio::spawn(connection))
}

/// One `grpc.health.v1.Health/Check` over a raw HTTP/2 connection.
async fn health_check(send: &h2::client::SendRequest<Bytes>) -> Result<(), h2::Error> {
    let request = http::Request::builder()
        .method("POST")
        .uri("https://localhost/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await?;
    let (response, mut body) = send.send_request(request, false)?;
    // An empty HealthCheckRequest: uncompressed, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
    let mut answer = response.await?.into_body();
    while let Some(data) = answer.data().await {
        let data = data?;
        let _ = answer.flow_control().release_capacity(data.len());
    }
    answer.trailers().await?;
    Ok(())
}

/// Waits until `connection` ends, at most `within`; true when it ended.
async fn ends_within(
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, connection).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_preface_is_closed() {
    let app = app_with(|c| c.preface_timeout_ms = 300).await;
    for stem in [None, Some(TERMINAL_1)] {
        let mut tls = tls_connect(&app, stem).await;
        // Whatever the server sends is read; only the end of the connection ends the loop.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 1024];
            while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
        assert!(
            closed.is_ok(),
            "{stem:?}: a silent connection must be closed after the preface timeout"
        );
    }
    assert!(app.server.as_ref().unwrap().connections().refused >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_anonymous_connection_is_closed_and_pings_do_not_keep_it() {
    let app = app_with(|c| {
        c.anonymous_idle_timeout_ms = 500;
        // PINGs go back and forth meanwhile (the h2 client answers them): not activity.
        c.http2_keepalive_interval_ms = 100;
    })
    .await;
    let (send, connection) = anonymous_h2(&app).await;
    health_check(&send).await.unwrap();
    assert_eq!(app.server.as_ref().unwrap().connections().anonymous, 1);
    assert!(
        ends_within(connection, Duration::from_secs(5)).await,
        "an idle anonymous connection must be closed"
    );
    assert!(health_check(&send).await.is_err());
    assert_eq!(app.server.as_ref().unwrap().connections().anonymous, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_connections_over_the_per_address_cap_are_refused_while_a_terminal_connects() {
    let app = app_with(|c| c.max_anonymous_connections_per_ip = 2).await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        let (send, connection) = anonymous_h2(&app).await;
        health_check(&send).await.unwrap();
        kept.push((send, connection));
    }
    let (send, connection) = anonymous_h2(&app).await;
    assert!(
        health_check(&send).await.is_err(),
        "a third anonymous connection from the same address must be refused"
    );
    assert!(ends_within(connection, Duration::from_secs(5)).await);
    // Terminals come from the same address and are not counted among the anonymous.
    let terminal = app.terminal(TERMINAL_1).await;
    terminal.open_session().await.unwrap();
    for (send, _) in &kept {
        health_check(send).await.unwrap();
    }
    let stats = app.server.as_ref().unwrap().connections();
    assert_eq!(stats.anonymous, 2);
    assert!(stats.refused >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_idle_longer_than_the_anonymous_limit_keeps_its_connection() {
    let app = app_with(|c| c.anonymous_idle_timeout_ms = 200).await;
    let terminal = app.terminal(TERMINAL_1).await;
    terminal.open_session().await.unwrap();
    let server = app.server.as_ref().unwrap();
    let accepted = server.connections().accepted;
    // Idle for five times the anonymous limit.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    terminal.open_session().await.unwrap();
    assert_eq!(
        server.connections().accepted,
        accepted,
        "the terminal's connection was closed and made again"
    );
}

/// Forwards one connection to the gateway until `freeze`, then passes nothing on in either
/// direction while still reading what the gateway sends; ends when the gateway closes.
async fn freezing_proxy(
    app: &TestApp,
) -> (
    String,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let upstream = addr(app);
    let (freeze, frozen) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let mut frozen_up = frozen.clone();
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    _ = async { let _ = frozen_up.wait_for(|f| *f).await; } => {
                        // Frozen: keep the write half (dropping it would send the gateway
                        // a FIN, which closes the connection for another reason).
                        std::future::pending::<()>().await;
                    }
                    n = client_read.read(&mut buf) => match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if server_write.write_all(&buf[..n]).await.is_err() { return },
                    },
                }
            }
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if !*frozen.borrow() => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
        up.abort();
    });
    (url, freeze, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_stops_answering_pings_is_closed() {
    let app = app_with(|c| {
        c.http2_keepalive_interval_ms = 200;
        c.http2_keepalive_timeout_ms = 300;
    })
    .await;
    let (url, freeze, proxy) = freezing_proxy(&app).await;
    let tls =
        kiosk_terminal::client::TerminalTls::from_pki_dir(&app.pki_dir(), TERMINAL_1, "localhost")
            .unwrap();
    let terminal = kiosk_terminal::client::Terminal::new(
        kiosk_terminal::client::connect(&url, &tls).await.unwrap(),
    );
    terminal.open_session().await.unwrap();
    // Answered PINGs keep it: still open well past interval + timeout.
    let open = app.server.as_ref().unwrap().connections().open;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(app.server.as_ref().unwrap().connections().open, open);
    freeze.send(true).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), proxy)
            .await
            .is_ok(),
        "the gateway must close a connection whose PINGs go unanswered"
    );
}

/// Issue without reading the answer: the call returns once the header is sent, and the
/// stream is then held with a 64 KiB window that is never opened further.
async fn unread_issue(
    app: &TestApp,
    stem: &str,
    request: &pb::IssueRequest,
) -> Result<(Channel, tonic::Streaming<pb::IssueResponse>), tonic::Status> {
    let pki = app.pki_dir();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(pki.join("server-ca.crt.pem")).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(pki.join(format!("{stem}.crt.pem"))).unwrap(),
            std::fs::read(pki.join(format!("{stem}.key.pem"))).unwrap(),
        ))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(app.url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut client = TerminalServiceClient::new(channel.clone());
    let stream = client.issue(request.clone()).await?.into_inner();
    Ok((channel, stream))
}

/// A large order (two items of five copies) issued and read once; returns the retry request
/// and the issuance's size in bytes.
async fn large_issuance(
    app: &TestApp,
    stem: &str,
    resident: &str,
    key: &str,
) -> (pb::IssueRequest, u64, String) {
    let terminal = app.terminal(stem).await;
    let (session, menu) = app.login(&terminal, resident).await.unwrap();
    let mut items = vec![item(pb::CertificateType::ResidentRecord); 2];
    for item in &mut items {
        item.copies = 5;
    }
    let total = fee(&menu, &items);
    let issued = terminal
        .issue(
            &session,
            key,
            items.clone(),
            total,
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    let size = issued.documents.iter().map(|d| d.pdf.len() as u64).sum();
    let request = pb::IssueRequest {
        session_id: session,
        client_request_id: key.to_owned(),
        items,
        expected_total_fee_yen: total,
    };
    (request, size, issued.header.issuance_id)
}

/// Holds unread retries of `request` until one is refused; returns the streams held.
async fn hold_until_refused(
    app: &TestApp,
    stem: &str,
    request: &pb::IssueRequest,
) -> Vec<(Channel, tonic::Streaming<pb::IssueResponse>)> {
    let mut held = Vec::new();
    for _ in 0..20 {
        match unread_issue(app, stem, request).await {
            Ok(stream) => held.push(stream),
            Err(status) => {
                let reason = kiosk_proto::reasons::reason_of(&status).map(|r| r.name);
                assert_eq!(reason, Some("OVERLOADED"), "{status:?}");
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                return held;
            }
        }
    }
    panic!("20 unread Issue streams were all accepted: no budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_issue_streams_stay_within_the_budget_and_stay_retryable() {
    const PER_TERMINAL: u64 = 4 << 20;
    const TOTAL: u64 = 5 << 20;
    let app = app_with(|c| {
        c.issue_stream_budget_per_terminal_bytes = PER_TERMINAL;
        c.issue_stream_budget_bytes = TOTAL;
    })
    .await;
    let server = app.server.as_ref().unwrap();
    let family = app.examples("Family")[0].clone();
    let (request, size, issuance_id) =
        large_issuance(&app, TERMINAL_1, &family, "big-order-00000001").await;
    assert!(
        size > 1 << 20 && size < PER_TERMINAL / 2,
        "order size {size}"
    );

    // One terminal's unread retries are refused past its own budget...
    let held = hold_until_refused(&app, TERMINAL_1, &request).await;
    assert!(!held.is_empty());
    assert!(held.len() as u64 * size <= PER_TERMINAL);
    // Refused when the next would not fit (KiB rounding), or less than 1 MiB was left.
    let next = held.len() as u64 + 1;
    assert!(next * (size + 1024) > PER_TERMINAL || PER_TERMINAL - (next - 1) * size < 1 << 20);
    // ...while another terminal is served in full.
    let other = app.examples("FormerSurname")[0].clone();
    let (more, more_size, _) = large_issuance(&app, TERMINAL_2, &other, "big-order-00000002").await;

    // A second abuser meets the total before its own budget.
    let also_held = hold_until_refused(&app, TERMINAL_2, &more).await;
    assert!(held.len() as u64 * size + also_held.len() as u64 * more_size <= TOTAL);
    assert!(
        (also_held.len() as u64 + 1) * more_size <= PER_TERMINAL,
        "size {size}, held {}, also held {}",
        held.len(),
        also_held.len()
    );
    assert!(server.stream_bytes_reserved() <= TOTAL);

    // Once the unread streams are gone, the refused retry gets its documents.
    drop(held);
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while server.stream_bytes_reserved() > also_held.len() as u64 * (more_size + 1024) {
            tick.tick().await;
        }
    })
    .await;
    assert!(
        released.is_ok(),
        "dropped streams must give their bytes back"
    );
    let terminal = app.terminal(TERMINAL_1).await;
    let retried = terminal
        .issue(
            &request.session_id,
            &request.client_request_id,
            request.items.clone(),
            request.expected_total_fee_yen,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(retried.header.replayed);
    assert_eq!(retried.header.issuance_id, issuance_id);
    assert_eq!(
        retried
            .documents
            .iter()
            .map(|d| d.pdf.len() as u64)
            .sum::<u64>(),
        size
    );
}
