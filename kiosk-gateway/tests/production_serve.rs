//! The production path of `kiosk-gateway serve` through the real binary: configured with the
//! files of a PKI (`[trust]`, `[keys]`, CRL files, a remote issuer), it starts, serves a
//! terminal an operator registered with `admin terminal register`, an auditor and a verifier,
//! signs checkpoints with the configured seed, and writes no key, certificate or CRL file;
//! configured with missing files it refuses to start, naming every problem, before it binds or
//! opens anything; it never prints its database URL's password. (A build without the
//! `embedded` feature: `tests/without_embedded.rs`.)
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::{Path, PathBuf};

use common::{
    GATEWAY_ID, Process, admin, admin_output, gateway_command, production_config, snapshot,
};
use kiosk_devkit::testpki::DevPki;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalTls};
use kiosk_tests::{TERMINAL_1, TERMINAL_2};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn channel(addr: &str, pki: &Path, client: Option<&str>) -> Channel {
    let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("server-ca.crt.pem")))
        .domain_name("localhost");
    if let Some(stem) = client {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{stem}.crt.pem")),
            read(&format!("{stem}.key.pem")),
        ));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn open_session(addr: &str, pki: &Path, stem: &str) -> Result<String, String> {
    let tls = TerminalTls::from_pki_dir(pki, stem, "localhost").unwrap();
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .unwrap();
    match Terminal::new(channel).open_session().await {
        Ok(opened) => Ok(opened.session_id),
        Err(error) => Err(error.reason().to_owned()),
    }
}

/// The auditor's checkpoint verifies under the key of the configured seed, and a verifier
/// without a client certificate is answered.
async fn auditor_and_verifier_are_answered(addr: &str, pki_dir: &Path, root: &Path) {
    // The auditor's checkpoint is signed with the key of the configured seed.
    let mut auditor = pb::audit_service_client::AuditServiceClient::new(
        channel(addr, pki_dir, Some("auditor")).await,
    );
    let note = auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .signed_note;
    let seed: [u8; 32] = std::fs::read(root.join("keys/checkpoint.seed"))
        .unwrap()
        .try_into()
        .unwrap();
    let signer =
        audit::checkpoint::CheckpointSigner::from_seed(&format!("{GATEWAY_ID}/audit"), &seed)
            .unwrap();
    let signed = signer.verifier().verify(&note).unwrap();
    assert!(
        signed.checkpoint().size() >= 2,
        "STARTED and the registration"
    );

    // A verifier without a client certificate is answered.
    let mut verifier =
        pb::verify_service_client::VerifyServiceClient::new(channel(addr, pki_dir, None).await);
    let refused = verifier
        .verify_document(pb::VerifyDocumentRequest {
            document: Some(pb::verify_document_request::Document::Pdf(
                b"%PDF-1.7 not a kiosk document".to_vec(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(
        kiosk_proto::reasons::reason_of(&refused).map(|r| r.name),
        Some("DOCUMENT_UNREADABLE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serve_starts_with_configured_files_and_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki_dir = root.join("pki");
    let pki = DevPki::ensure(&pki_dir).unwrap();
    let config = production_config(&root, &pki);
    let before = snapshot(&root);

    let (gateway, addr) =
        Process::spawn(gateway_command(&config), dir.path().join("gateway.log")).await;

    // Health answers for every service the moment it listens.
    let mut health = HealthClient::new(channel(&addr, &pki_dir, None).await);
    for service in ["kiosk.v1.TerminalService", "kiosk.v1.AuditService", ""] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }

    // No terminal is known until an operator registers it.
    assert_eq!(
        open_session(&addr, &pki_dir, TERMINAL_1).await.unwrap_err(),
        "TERMINAL_UNKNOWN"
    );
    let registered = admin(
        &config,
        &[
            "terminal",
            "register",
            "seven/131016-0042/k1",
            "--operator",
            "ops-test-01",
            "--reason",
            "kiosk installed",
        ],
    )
    .await;
    assert!(registered.contains("registered"), "{registered}");
    open_session(&addr, &pki_dir, TERMINAL_1).await.unwrap();
    assert_eq!(
        open_session(&addr, &pki_dir, TERMINAL_2).await.unwrap_err(),
        "TERMINAL_UNKNOWN"
    );
    let listed = admin(&config, &["terminal", "list"]).await;
    assert!(listed.contains("seven/131016-0042/k1"), "{listed}");
    assert!(!listed.contains("k2"), "{listed}");

    auditor_and_verifier_are_answered(&addr, &pki_dir, &root).await;
    gateway.terminate().await;

    // Nothing it trusts or signs with was created or changed: the only new files are the
    // gateway database's.
    let after = snapshot(&root);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    let created: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(!created.is_empty(), "no database written");
    for path in created {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            path.parent() == Some(root.join("data").as_path()) && name.starts_with("gateway.db"),
            "serve created {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serve_refuses_to_start_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let missing = root.join("ca/terminal-ca.crt.pem");
    let data = root.join("data");
    let config = root.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\n\
             [trust]\nterminal_ca = {missing:?}\n"
        ),
    )
    .unwrap();
    let output = gateway_command(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(64), "{stdout}\n{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "trust.terminal_ca: {}: No such file",
            missing.display()
        )),
        "{stderr}"
    );
    for key in [
        "trust.server_cert",
        "keys.server_key",
        "trust.auditor_ca",
        "trust.card_auth_ca",
        "trust.municipality_ca",
        "trust.internal_ca",
        "trust.internal_client_cert",
        "keys.internal_client_key",
        "keys.pseudonym_key",
        "keys.checkpoint_seed",
    ] {
        let variable = format!(
            "{key}: not set (or KIOSK_{})",
            key.replace('.', "_").to_uppercase()
        );
        assert!(stderr.contains(&variable), "{variable}:\n{stderr}");
    }
    for key in [
        "client_crl_files: not set",
        "card_crl_file: not set",
        "municipalities: 131016",
        "remote_issuers: none",
    ] {
        assert!(stderr.contains(key), "{key}:\n{stderr}");
    }
    assert!(!data.exists(), "the data directory was created");
}

/// `url` with a password in its user information (one is added if it has none: the test
/// server trusts local connections, so it is not checked), and that password.
fn with_password(url: &str) -> (String, String) {
    let password = "never-printed-7f3a".to_owned();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, location) = rest.split_once('@').unwrap();
    match userinfo.split_once(':') {
        Some((_, existing)) => (url.to_owned(), existing.to_owned()),
        None => (
            format!("{scheme}://{userinfo}:{password}@{location}"),
            password,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serve_never_prints_the_database_password() {
    use std::io::BufRead;
    let database = kiosk_tests::PgDatabase::create("prod_redact")
        .await
        .unwrap();
    let (url, password) = with_password(database.url());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    let text = std::fs::read_to_string(&config).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("database_url = ") {
                format!("database_url = {url:?}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&config, text.join("\n") + "\n").unwrap();

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command.arg("serve").arg("--config").arg(&config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The summary ends with the terminals line; read up to it (or to the end, if it failed).
    let mut stdout = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.trim_start().starts_with("terminals:") {
            break;
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("listening on https://"),
        "{stdout}\n{stderr}"
    );
    let (server, _) = database.url().split_once('@').unwrap();
    let user = server
        .split_once("://")
        .unwrap()
        .1
        .split(':')
        .next()
        .unwrap();
    assert!(
        stdout.contains("gateway database: ") && stdout.contains(&format!("://{user}:***@")),
        "{stdout}"
    );
    assert!(!stdout.contains(&password), "{stdout}");
    assert!(!stderr.contains(&password), "{stderr}");
}

/// The MUNICIPALITY_ROUTED events in the gateway database of `root`'s production
/// configuration: (municipality, issuer endpoint, actor) in log order.
async fn routed_events(root: &Path) -> Vec<(String, String, String)> {
    let url = format!("sqlite://{}/gateway.db", root.join("data").display());
    let store = kiosk_gateway::store::Store::open(&url).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let filter = audit::store::EventFilter {
        types: vec![audit::event::EventType::MunicipalityRouted],
        ..Default::default()
    };
    let events = audit::store::list_events(&mut conn, &filter).await.unwrap();
    events
        .into_iter()
        .map(|stored| {
            let event = stored.event;
            let actor = match event.actor() {
                audit::event::Actor::System => "SYSTEM".to_owned(),
                audit::event::Actor::Operator(id) => id.as_str().to_owned(),
                other => panic!("a route by {other:?}"),
            };
            let endpoint = event.fact("issuer_endpoint").unwrap().value();
            (
                event.municipality().unwrap().as_str().to_owned(),
                endpoint,
                actor,
            )
        })
        .collect()
}

/// A start records a municipality it has never routed (actor SYSTEM); it never changes a
/// recorded route: a configuration that routes it elsewhere stops `serve` before binding,
/// naming the command, and `admin municipality route` records the change with the operator
/// and the reason. Re-runs write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serve_audits_each_route_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    let start = || async {
        let (gateway, _) =
            Process::spawn(gateway_command(&config), dir.path().join("gateway.log")).await;
        gateway.terminate().await;
    };
    let system = |endpoint: &str| {
        (
            "271004".to_owned(),
            endpoint.to_owned(),
            "SYSTEM".to_owned(),
        )
    };
    start().await;
    assert_eq!(routed_events(&root).await, [system("https://127.0.0.1:9")]);
    start().await;
    assert_eq!(
        routed_events(&root).await,
        [system("https://127.0.0.1:9")],
        "nothing changed"
    );

    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text.replace("https://127.0.0.1:9\"", "https://127.0.0.1:10\"");
    assert_ne!(text, moved);
    std::fs::write(&config, moved).unwrap();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        gateway_command(&config).output(),
    )
    .await
    .expect("a start with a changed route stops by itself")
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("admin municipality route --code 271004")
            && stderr.contains("https://127.0.0.1:10"),
        "{stderr}"
    );
    assert_eq!(
        routed_events(&root).await.len(),
        1,
        "the start wrote nothing"
    );

    let route = [
        "municipality",
        "route",
        "--code",
        "271004",
        "--endpoint",
        "https://127.0.0.1:10",
        "--reason",
        "Osaka's issuer moved to its new host",
    ];
    let said = admin(&config, &route).await;
    assert!(said.contains("routed to https://127.0.0.1:10"), "{said}");
    let events = routed_events(&root).await;
    assert_eq!(events.len(), 2);
    let (code, endpoint, actor) = &events[1];
    assert_eq!(
        (code.as_str(), endpoint.as_str()),
        ("271004", "https://127.0.0.1:10")
    );
    assert_eq!(actor, audit::operator::os_account().as_str());
    let again = admin(&config, &route).await;
    assert!(again.contains("nothing written"), "{again}");
    start().await;
    assert_eq!(
        routed_events(&root).await.len(),
        2,
        "the start agrees: nothing new"
    );

    // Refused before the database is touched: a bad check digit, a new municipality without
    // its name, an endpoint that is not https.
    for args in [
        ["--code", "271005", "--endpoint", "https://127.0.0.1:10"],
        ["--code", "131016", "--endpoint", "https://127.0.0.1:11"],
        ["--code", "271004", "--endpoint", "http://127.0.0.1:10"],
    ] {
        let mut full = vec!["municipality", "route"];
        full.extend(args);
        full.extend(["--reason", "a drill"]);
        let output = admin_output(&config, &full).await;
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("nothing written") || stderr.contains("municipality code"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(routed_events(&root).await.len(), 2);
}
