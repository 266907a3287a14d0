//! The two-process topology through the real binaries: `issuer serve` runs one
//! municipality's issuer as its own process with its own register (SQLite or PostgreSQL,
//! written by `kiosk-devkit generate`),
//! and `kiosk-gateway serve` routes that municipality to it over mutual TLS
//! (`[[remote_issuers]]`) while serving another municipality in process. A terminal issues
//! from both, a verifier checks the remote municipality's document, a certificate that is not
//! a gateway's is refused by the issuer, and when the issuer process stops its municipality
//! answers ISSUER_UNAVAILABLE while the other keeps issuing, until it is back.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use kiosk_devkit::softcard::SoftCard;
use kiosk_proto::reasons;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalTls};
use kiosk_tests::{PgDatabase, TERMINAL_1, fee, item, page_subjects, pdf_text};

use common::{
    Process, devkit_binary, example_refs, gateway_command, issuer_binary, login,
    office_hours_rfc3339,
};

const REMOTE: &str = "271004";
const LOCAL: &str = "131016";

/// The residents with a card file who are not printed examples of a blocking case, in
/// bindings order, with their cards.
fn cards_of(bindings: &Path, cards_dir: &Path, excluded: &[String]) -> Vec<(String, SoftCard)> {
    issuer::bindings::read_file(bindings)
        .unwrap()
        .into_iter()
        .filter(|b| !excluded.contains(&b.resident_ref))
        .filter_map(|b| {
            let file = b.card_file.as_ref()?;
            Some((
                b.resident_ref.clone(),
                SoftCard::load(&cards_dir.join(file)).unwrap(),
            ))
        })
        .collect()
}

/// Logs in the first resident of `cards` whose menu offers a 住民票の写し (a printed example
/// list does not name every blocked resident), issues one, checks that every page names the
/// resident, reports it printed; returns the resident and the PDF.
async fn issue_resident_record(
    terminal: &Terminal,
    cards: Vec<(String, SoftCard)>,
) -> (String, Vec<u8>) {
    for (resident, card) in cards {
        let (session, menu) = login(terminal, card).await.unwrap();
        assert_eq!(menu.members[0].subject_ref, resident);
        let offered = menu
            .entries
            .iter()
            .any(|e| e.available && e.r#type == pb::CertificateType::ResidentRecord as i32);
        if !offered {
            terminal.close_session(&session).await.unwrap();
            continue;
        }
        let items = vec![item(pb::CertificateType::ResidentRecord)];
        let total = fee(&menu, &items);
        let key = format!("two-process-{}", &session[2..18]);
        let issued = terminal
            .issue(&session, &key, items, total, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(issued.documents.len(), 1);
        let pdf = issued.documents[0].pdf.clone();
        for (issuance, subjects) in page_subjects(&pdf) {
            assert_eq!(issuance, issued.header.issuance_id);
            assert_eq!(subjects, std::slice::from_ref(&resident));
        }
        let printed = terminal
            .report_print(
                &session,
                &issued.header.issuance_id,
                pb::PrintOutcome::Printed,
                total,
                "",
            )
            .await
            .unwrap();
        assert_eq!(printed.refund_due_yen, 0);
        terminal.close_session(&session).await.unwrap();
        return (resident, pdf);
    }
    panic!("no resident with a card is offered a 住民票の写し");
}

async fn remote_issuer_through_the_binaries(register_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki = root.join("pki");
    let bindings = root.join(format!("bindings-{REMOTE}.jsonl"));
    let cards = root.join("remote-cards");

    // The remote municipality's register, bindings and cards, as its operator would make them.
    let generated = tokio::process::Command::new(devkit_binary())
        .args(["generate", "--seed", "11", "--residents", "40"])
        .args([
            "--municipality",
            REMOTE,
            "--name",
            "大阪市",
            "--prefecture",
            "大阪府",
        ])
        .args(["--db", register_url, "--cards", "40"])
        .arg("--bindings-out")
        .arg(&bindings)
        .arg("--pki")
        .arg(&pki)
        .arg("--cards-out")
        .arg(&cards)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(generated.stdout).unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let mut command = tokio::process::Command::new(issuer_binary());
    command
        .args(["serve", "--db", register_url, "--municipality", REMOTE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--pki")
        .arg(&pki);
    let (issuer, issuer_addr) = Process::spawn(command, root.join("issuer.log")).await;

    let start = office_hours_rfc3339();
    let data = root.join("gateway");
    let config = root.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"dev\"\ndata_dir = {data:?}\npki_dir = {pki:?}\n\
             listen = \"127.0.0.1:0\"\nmunicipalities = [\"{LOCAL}\"]\nsynthetic_residents = 12\n\
             rehearsal_clock_start = \"{start}\"\ndrain_ms = 0\n\
             [[remote_issuers]]\nmunicipality = \"{REMOTE}\"\n\
             endpoint = \"https://{issuer_addr}\"\nserver_name = \"localhost\"\n\
             bindings = {bindings:?}\nname = \"大阪市\"\n"
        ),
    )
    .unwrap();
    let command = gateway_command(&config);
    let (gateway, gateway_addr) = Process::spawn(command, root.join("gateway.log")).await;

    let tls = TerminalTls::from_pki_dir(&pki, TERMINAL_1, "localhost").unwrap();
    let channel = kiosk_terminal::client::connect(&format!("https://{gateway_addr}"), &tls)
        .await
        .unwrap();
    let terminal = Terminal::new(channel.clone());

    // A resident of the remote municipality: routed to the issuer process.
    let excluded = example_refs(&stdout);
    let (resident, pdf) =
        issue_resident_record(&terminal, cards_of(&bindings, &cards, &excluded)).await;
    assert!(
        pdf_text(&pdf).contains("大阪市"),
        "the remote issuer rendered it"
    );

    // The gateway's verifier knows the remote municipality's signing key.
    let mut verifier = pb::verify_service_client::VerifyServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("https://{gateway_addr}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&tls.server_ca_pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .max_encoding_message_size(16 << 20);
    let verdict = verifier
        .verify_document(pb::VerifyDocumentRequest {
            document: Some(pb::verify_document_request::Document::Pdf(pdf)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict.validity, pb::Validity::Valid as i32, "{verdict:?}");
    assert!(verdict.pdf_signature_valid);
    let summary = verdict.summary.unwrap();
    assert_eq!(summary.municipality_code, REMOTE);
    assert_eq!(summary.municipality_name, "大阪市");

    // A resident of the in-process municipality, through the same gateway.
    let local_examples: Vec<String> =
        std::fs::read_to_string(data.join(format!("examples-{LOCAL}.txt")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, r)| r.to_owned()))
            .collect();
    let local_bindings = data.join(format!("bindings-{LOCAL}.jsonl"));
    let local_cards = || cards_of(&local_bindings, &data.join("cards"), &local_examples);
    let (_, local_pdf) = issue_resident_record(&terminal, local_cards()).await;
    assert!(pdf_text(&local_pdf).contains("千代田区"));

    // Only gateways may call the issuer: the issuer's own certificate (same internal CA,
    // client-auth capable) is refused by role.
    let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
    let impostor = tonic::transport::Endpoint::from_shared(format!("https://{issuer_addr}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(
                    "internal-ca.crt.pem",
                )))
                .identity(tonic::transport::Identity::from_pem(
                    read("issuer.crt.pem"),
                    read("issuer.key.pem"),
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = pb::issuer_service_client::IssuerServiceClient::new(impostor)
        .get_menu(pb::IssuerMenuRequest {
            municipality_code: REMOTE.into(),
            resident_ref: resident.clone(),
            as_of: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        reasons::reason_of(&refused).map(|r| r.name),
        Some("WRONG_CLIENT_ROLE")
    );

    // The issuer process stops (a graceful drain exits 0): its municipality is unavailable,
    // the other one is not.
    issuer.terminate().await;
    let (_, card) = cards_of(&bindings, &cards, &excluded).remove(0);
    assert_eq!(
        login(&terminal, card).await.unwrap_err(),
        "ISSUER_UNAVAILABLE"
    );
    let (_, local_card) = local_cards().remove(0);
    let (session, _) = login(&terminal, local_card).await.unwrap();
    terminal.close_session(&session).await.unwrap();

    // The issuer comes back on its address: the gateway reconnects by itself, no restart.
    let mut command = tokio::process::Command::new(issuer_binary());
    command
        .args(["serve", "--db", register_url, "--municipality", REMOTE])
        .args(["--listen", &issuer_addr])
        .arg("--pki")
        .arg(&pki);
    let (issuer, _) = Process::spawn(command, root.join("issuer-again.log")).await;
    let (again, _) = issue_resident_record(&terminal, cards_of(&bindings, &cards, &excluded)).await;
    assert_eq!(again, resident);
    issuer.terminate().await;

    drop(terminal);
    drop(verifier);
    drop(channel);
    gateway.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_issuer_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("register.db").display());
    remote_issuer_through_the_binaries(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_issuer_on_postgres() {
    let db = PgDatabase::create("two_process").await.unwrap();
    remote_issuer_through_the_binaries(db.url()).await;
}
