//! Revocation lists replaced while `kiosk-gateway serve` runs, through the real binary: the
//! CRL files an operator's fetcher writes are installed on SIGHUP, a revoked terminal's new
//! connections — new and already open — are refused while others go on, a revoked card is
//! refused at login, an unreadable file changes nothing, and a stale list refuses everyone.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::Path;

use common::{Process, gateway_command, login, office_hours_start, rfc3339};
use kiosk_devkit::softcard::SoftCard;
use kiosk_devkit::testpki::{DevPki, files};
use kiosk_gateway::provision::dev_crl;
use kiosk_terminal::client::{Terminal, TerminalTls};
use kiosk_tests::{TERMINAL_1, TERMINAL_2};
use time::{Duration as Span, OffsetDateTime};

/// The serial number of a certificate file of the PKI.
fn serial_of(pki: &DevPki, stem: &str) -> u64 {
    let der = pki.cert_der(stem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.tbs_certificate
        .raw_serial()
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// A CRL of `ca` revoking `serials`, current at `now` (the gateway's clock), or stale
/// (expired the day before). Dated by the real clock instead, a list would be stale to a
/// gateway whose rehearsal clock runs days ahead (every weekend night).
fn crl(pki: &DevPki, ca: &str, serials: &[u64], now: OffsetDateTime, stale: bool) -> Vec<u8> {
    let (this, next) = if stale {
        (now - Span::days(2), now - Span::days(1))
    } else {
        (now - Span::minutes(5), now + Span::days(1))
    };
    dev_crl(pki, ca, serials, this, next).unwrap()
}

/// Opens a session over a new connection (revocation is decided at the handshake).
async fn open_session(addr: &str, pki: &Path, stem: &str) -> Result<(Terminal, String), String> {
    let tls = TerminalTls::from_pki_dir(pki, stem, "localhost").unwrap();
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .map_err(|e| e.to_string())?;
    let terminal = Terminal::new(channel);
    match terminal.open_session().await {
        Ok(opened) => Ok((terminal, opened.session_id)),
        Err(error) => Err(error.to_string()),
    }
}

async fn accepted(addr: &str, pki: &Path, stem: &str) -> bool {
    match open_session(addr, pki, stem).await {
        Ok((terminal, session)) => {
            terminal.close_session(&session).await.unwrap();
            true
        }
        Err(_) => false,
    }
}

/// Logs a card in at terminal 2 (never revoked here); the refusal reason if refused.
async fn login_reason(addr: &str, pki: &Path, card: SoftCard) -> Option<String> {
    let tls = TerminalTls::from_pki_dir(pki, TERMINAL_2, "localhost").unwrap();
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .unwrap();
    login(&Terminal::new(channel), card).await.err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_lists_are_replaced_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki_dir = root.join("pki");
    let pki = DevPki::ensure(&pki_dir).unwrap();
    // The gateway's clock starts here; every CRL below is dated by it.
    let start = office_hours_start();
    let crl_dir = root.join("crl");
    std::fs::create_dir_all(&crl_dir).unwrap();
    let terminal_crl = crl_dir.join("terminal-ca.crl");
    let auditor_crl = crl_dir.join("auditor-ca.crl");
    let card_crl = crl_dir.join("jpki-auth-ca.crl");
    std::fs::write(
        &terminal_crl,
        crl(&pki, files::TERMINAL_CA, &[], start, false),
    )
    .unwrap();
    std::fs::write(
        &auditor_crl,
        crl(&pki, files::AUDITOR_CA, &[], start, false),
    )
    .unwrap();
    // The card CRL as the PKI ships it, PEM: either form is read.
    std::fs::copy(pki_dir.join(files::JPKI_AUTH_CRL_PEM), &card_crl).unwrap();

    let data = root.join("gateway");
    let config = root.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"dev\"\ndata_dir = {data:?}\npki_dir = {pki_dir:?}\n\
             listen = \"127.0.0.1:0\"\n\
             synthetic_residents = 12\nrehearsal_clock_start = \"{}\"\ndrain_ms = 0\n\
             client_crl_files = [{terminal_crl:?}, {auditor_crl:?}]\n\
             card_crl_file = {card_crl:?}\n\
             # Only SIGHUP replaces the lists during this test.\n\
             crl_refresh_secs = 3600\n",
            rfc3339(start)
        ),
    )
    .unwrap();
    let (mut gateway, addr) = Process::spawn(gateway_command(&config), root.join("gw.log")).await;
    assert!(accepted(&addr, &pki_dir, TERMINAL_1).await);
    assert!(accepted(&addr, &pki_dir, TERMINAL_2).await);

    // A resident whose card the next card CRL revokes; they can log in until then.
    let bindings = issuer::bindings::read_file(&data.join("bindings-131016.jsonl")).unwrap();
    let examples = std::fs::read_to_string(data.join("examples-131016.txt")).unwrap();
    let resident = bindings
        .iter()
        .find(|b| b.card_file.is_some() && !examples.contains(&b.resident_ref))
        .unwrap();
    let card = || {
        SoftCard::load(
            &data
                .join("cards")
                .join(resident.card_file.as_ref().unwrap()),
        )
    };
    assert_eq!(login_reason(&addr, &pki_dir, card().unwrap()).await, None);

    // Connections made before the change, kept open as a kiosk keeps its connection.
    let (connected_1, _) = open_session(&addr, &pki_dir, TERMINAL_1).await.unwrap();
    let (connected_2, _) = open_session(&addr, &pki_dir, TERMINAL_2).await.unwrap();

    // The fetcher revokes terminal 1 and the resident's card.
    let terminal_1 = serial_of(&pki, TERMINAL_1);
    std::fs::write(
        &terminal_crl,
        crl(&pki, files::TERMINAL_CA, &[terminal_1], start, false),
    )
    .unwrap();
    std::fs::write(
        &card_crl,
        crl(
            &pki,
            files::JPKI_AUTH_CA,
            &[resident.card_serial.unwrap()],
            start,
            false,
        ),
    )
    .unwrap();
    gateway.signal("-HUP");
    let line = gateway.wait_for_log("revocation lists replaced").await;
    assert!(
        line.contains("\"client\":true") && line.contains("\"card\":true"),
        "{line}"
    );
    assert!(
        !accepted(&addr, &pki_dir, TERMINAL_1).await,
        "revoked terminal"
    );
    assert!(accepted(&addr, &pki_dir, TERMINAL_2).await);
    // Terminal 1's open connection is refused on its next request, terminal 2's is not.
    assert_eq!(
        connected_1.open_session().await.unwrap_err().reason(),
        "TERMINAL_UNKNOWN"
    );
    connected_2.open_session().await.unwrap();
    assert_eq!(
        login_reason(&addr, &pki_dir, card().unwrap())
            .await
            .as_deref(),
        Some("CARD_REVOKED")
    );

    // A broken fetch: nothing changes, and the log says so.
    std::fs::write(&terminal_crl, b"not a CRL").unwrap();
    gateway.signal("-HUP");
    gateway.wait_for_log("revocation list not replaced").await;
    assert!(!accepted(&addr, &pki_dir, TERMINAL_1).await);
    assert!(accepted(&addr, &pki_dir, TERMINAL_2).await);

    // A stale list (nextUpdate passed) is installed and refuses every terminal: fail closed.
    std::fs::write(
        &terminal_crl,
        crl(&pki, files::TERMINAL_CA, &[], start, true),
    )
    .unwrap();
    gateway.signal("-HUP");
    gateway.wait_for_log("revocation lists replaced").await;
    assert!(!accepted(&addr, &pki_dir, TERMINAL_2).await, "stale CRL");
    assert_eq!(
        connected_2.open_session().await.unwrap_err().reason(),
        "REVOCATION_UNAVAILABLE"
    );

    gateway.terminate().await;
}
