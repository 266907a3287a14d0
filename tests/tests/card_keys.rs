//! Issue 10: inside one development deployment every software card has its own key pair.
//! The login checks the signature against the public key of the certificate the terminal
//! presents, so two cards with one key are the same person to the gateway: card A's
//! signature under card B's certificate logged in as B while the development PKI handed out
//! eight committed keys to every card. These tests mint a deployment through the real
//! harness and attack it over the real gateway.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiosk_devkit::softcard::CardFile;
use kiosk_tests::{Db, TERMINAL_1, sign, spawn_app};

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    parsed.contents
}

/// The DER of the user-authentication certificate in a card file.
fn auth_certificate(card_file: &Path) -> Vec<u8> {
    let file = CardFile::load(card_file).unwrap();
    pem_der(&file.auth.unwrap().certificate.unwrap())
}

/// The SubjectPublicKeyInfo of a certificate: what the gateway verifies a login against.
fn public_key(certificate_der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der).unwrap();
    cert.public_key().raw.to_vec()
}

/// Every card file of a deployment: the PKI's own cards and the residents' cards.
fn card_files(app: &kiosk_tests::TestApp) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = app
        .embedded
        .cards
        .iter()
        .map(|c| c.card_file.clone())
        .collect();
    for entry in std::fs::read_dir(app.pki_dir().join("cards")).unwrap() {
        files.push(entry.unwrap().path());
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_card_of_a_deployment_has_its_own_keys() {
    let app = spawn_app(Db::Sqlite).await;
    let files = card_files(&app);
    assert!(files.len() > 50, "a deployment of {} cards", files.len());
    // Both sides of every card: a signature key shared with another card's authentication
    // key would let one card's signature pass for the other's too.
    let mut owner: HashMap<Vec<u8>, String> = HashMap::new();
    for path in &files {
        let file = CardFile::load(path).unwrap();
        let sides = [file.auth.as_ref(), Some(&file.sign)];
        for (side, certificate) in sides
            .into_iter()
            .flatten()
            .filter_map(|s| s.certificate.as_deref())
            .enumerate()
        {
            let name = format!("{} side {side}", path.display());
            if let Some(first) = owner.insert(public_key(&pem_der(certificate)), name.clone()) {
                panic!("{name} has the key of {first}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_signature_under_another_cards_certificate_is_refused() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let residents = app.residents();
    let attacker = residents[0].clone();
    // Every other resident: with a shared pool, some of them held the attacker's key.
    for victim in residents.iter().filter(|r| **r != attacker) {
        let victim_certificate = auth_certificate(&app.embedded.card_of(victim).unwrap().card_file);
        let opened = terminal.open_session().await.unwrap();
        let proof = sign(app.card(&attacker), &opened).unwrap();
        let outcome = terminal
            .authenticate(&opened.session_id, victim_certificate, proof.signature)
            .await;
        match outcome {
            Err(error) => assert_eq!(
                error.reason(),
                "SIGNATURE_INVALID",
                "{attacker} as {victim}: {error}"
            ),
            Ok(menu) => panic!(
                "{attacker}'s card logged in as {} with {victim}'s certificate",
                menu.members[0].subject_ref
            ),
        }
    }
    // The control: the attacker's signature with its own certificate logs the attacker in,
    // so the refusals above are about the key, not the signing.
    let (_, menu) = app.login(&terminal, &attacker).await.unwrap();
    assert_eq!(menu.members[0].subject_ref, attacker);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The files of `dir` whose names end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_keys_and_cards_are_its_owners_alone() {
    let app = spawn_app(Db::Sqlite).await;
    let pki = app.pki_dir();
    let data = app.dir.path();
    // The CA and TLS keys, the card files, the audit log's checkpoint seed and the pseudonym
    // key: each written with mode 0600 into a directory of mode 0700.
    let dirs = [
        pki.clone(),
        pki.join("cards"),
        data.join("cards"),
        data.join("keys"),
    ];
    for dir in &dirs {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    let mut private = files_ending(&pki, ".key.pem");
    private.extend(files_ending(&pki.join("cards"), ".toml"));
    private.extend(files_ending(&data.join("cards"), ".toml"));
    private.push(data.join("keys/checkpoint.seed"));
    private.push(data.join("keys/pseudonym.key"));
    assert!(private.len() > 60, "{} private files", private.len());
    for file in &private {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // Nothing else sits in the keys directory (no temporary file survives).
    assert_eq!(std::fs::read_dir(data.join("keys")).unwrap().count(), 2);
}
