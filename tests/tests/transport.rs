//! The gateway's transport: certificate revocation replaced while running, a stale CRL, a
//! client that never finishes its handshake, health and reflection, the issuer reached over
//! mutual TLS, and a terminal written in Python.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::time::Duration;

use kiosk_gateway::provision;
use kiosk_proto::v1 as pb;
use kiosk_tests::{AppOptions, Db, TERMINAL_1, TERMINAL_2, fee, item, spawn_app, spawn_app_with};
use rustls_pki_types::CertificateRevocationListDer;

fn crls(
    app: &kiosk_tests::TestApp,
    revoked_terminals: &[u64],
    valid: bool,
) -> Vec<CertificateRevocationListDer<'static>> {
    // Dated by the gateway's clock, which judges them (at a weekend night it runs days ahead
    // of the wall clock).
    let now = kiosk_gateway::clock::Clock::now_utc(app.clock.as_ref());
    let (from, to) = if valid {
        (
            now - time::Duration::minutes(1),
            now + time::Duration::days(1),
        )
    } else {
        (now - time::Duration::days(2), now - time::Duration::days(1))
    };
    let pki = &app.embedded.pki;
    vec![
        CertificateRevocationListDer::from(
            provision::dev_crl(pki, "terminal-ca", revoked_terminals, from, to).unwrap(),
        ),
        CertificateRevocationListDer::from(
            provision::dev_crl(pki, "auditor-ca", &[], from, to).unwrap(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_terminal_is_refused_in_the_handshake_once_the_crl_says_so() {
    let app = spawn_app(Db::Sqlite).await;
    let k2 = app.terminal(TERMINAL_2).await;
    k2.open_session().await.unwrap();
    // The development PKI numbers terminal certificates from 1000: k2 is 1001.
    app.tls.replace_crls(crls(&app, &[1001], true)).unwrap();
    let k2_again = app.terminal(TERMINAL_2).await;
    let error = k2_again.open_session().await.unwrap_err();
    assert!(
        matches!(&error, kiosk_terminal::client::TerminalError::Refused { reason, .. } if reason == "UNKNOWN"),
        "a revoked certificate fails the handshake, not with a contract reason: {error:?}"
    );
    // Other terminals go on.
    app.terminal(TERMINAL_1).await.open_session().await.unwrap();

    // A stale CRL refuses every client certificate rather than trusting old news.
    app.tls.replace_crls(crls(&app, &[], false)).unwrap();
    let error = app
        .terminal(TERMINAL_1)
        .await
        .open_session()
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_does_not_stall_the_others() {
    let app = spawn_app(Db::Sqlite).await;
    let addr = app.url.trim_start_matches("https://").to_owned();
    // Connects, never speaks TLS.
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let terminal = app.terminal(TERMINAL_1).await;
    tokio::time::timeout(Duration::from_secs(10), terminal.open_session())
        .await
        .expect("served while another connection hangs in its handshake")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    let mut app = spawn_app(Db::Sqlite).await;
    let channel = app.channel(None).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    };
    let serving = health
        .check(check("kiosk.v1.TerminalService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Reflection lists the contract's services (grpcurl works against the gateway).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "kiosk.v1.TerminalService",
        "kiosk.v1.AuditService",
        "kiosk.v1.VerifyService",
    ] {
        assert!(
            names.contains(&service.to_owned()),
            "{service} in {names:?}"
        );
    }

    app.server.as_ref().unwrap().set_not_serving().await;
    let draining = health
        .check(check("kiosk.v1.TerminalService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        draining.status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    app.stop().await;
}

/// grpcio-reflection's own client speaks `grpc.reflection.v1alpha`, as many tools still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_lists_and_resolves_the_contract() {
    let app = spawn_app(Db::Sqlite).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let output = tokio::process::Command::new("python3")
        .arg(format!("{root}/python/reflection_client.py"))
        .arg(app.url.trim_start_matches("https://"))
        .arg(app.pki_dir().join("server-ca.crt.pem"))
        .output()
        .await
        .expect("python3 (scripts/install-deps.sh installs grpcio-reflection)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python reflection client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let services = summary["services"].as_array().unwrap();
    for service in [
        "kiosk.v1.TerminalService",
        "kiosk.v1.AuditService",
        "kiosk.v1.VerifyService",
    ] {
        assert!(
            services.iter().any(|s| s == service),
            "{service} in {services:?}"
        );
    }
    let methods = summary["terminal_methods"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "OpenSession"), "{methods:?}");
    assert!(methods.iter().any(|m| m == "Issue"), "{methods:?}");
}

async fn remote(db: Db) {
    let app = spawn_app_with(AppOptions {
        remote_issuer: true,
        ..AppOptions::new(db)
    })
    .await;
    let terminal = app.terminal(TERMINAL_1).await;
    let (session, menu) = app
        .login(&terminal, &app.examples("Family")[0])
        .await
        .unwrap();
    let items = vec![item(pb::CertificateType::KosekiFull)];
    let issued = terminal
        .issue(
            &session,
            "remote-issuer-0001",
            items.clone(),
            fee(&menu, &items),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(issued.documents[0].page_count >= 1);
    // Eligibility refusals cross the issuer link with their reasons intact.
    let (session, _) = app
        .login(&terminal, &app.examples("SupportMeasure")[0])
        .await
        .unwrap();
    let items = vec![item(pb::CertificateType::ResidentRecord)];
    let error = terminal
        .issue(
            &session,
            "remote-issuer-0002",
            items.clone(),
            200,
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "SUPPORT_MEASURE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_over_mutual_tls_sqlite() {
    remote(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_over_mutual_tls_postgres() {
    remote(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_terminal_completes_an_issuance() {
    let app = spawn_app(Db::Sqlite).await;
    let resident = app.examples("Family")[0].clone();
    let card = app.embedded.card_of(&resident).unwrap().card_file.clone();
    let root = env!("CARGO_MANIFEST_DIR");
    let pki = app.pki_dir();
    let out = app.dir.path().join("pystubs");
    std::fs::create_dir_all(&out).unwrap();
    let output = tokio::process::Command::new("python3")
        .arg(format!("{root}/python/terminal_client.py"))
        .arg(format!("{root}/../proto"))
        .arg(&out)
        .arg(app.url.trim_start_matches("https://"))
        .arg(pki.join("server-ca.crt.pem"))
        .arg(pki.join(format!("{TERMINAL_1}.crt.pem")))
        .arg(pki.join(format!("{TERMINAL_1}.key.pem")))
        .arg(&card)
        .output()
        .await
        .expect("python3 (scripts/install-deps.sh installs grpcio-tools and cryptography)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python terminal failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["state"], "ISSUANCE_STATE_PRINTED");
    assert_eq!(summary["documents"], 1);
    assert_eq!(summary["municipality"], "131016");
}
