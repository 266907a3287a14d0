//! Interoperation with a PKI this project did not mint: every certificate, key, CRL and secret
//! of a production deployment is made by the `openssl` command-line tool (Debian package
//! `openssl`; never a dependency: the tree stays ring-only), in the shapes a real deployment
//! has — ECDSA P-256 CAs for terminals (two generations in one PEM bundle), auditors, servers,
//! the internal links and the municipalities, and two generations of an RSA-2048 JPKI
//! user-authentication CA named like the real one over RSA-2048 resident cards, with a CRL per
//! generation in one file (the second revoking a card). `issuer serve` runs with the openssl signing key and TLS files
//! over a register `kiosk-devkit generate` wrote (register data, not PKI); `kiosk-gateway
//! serve --config` names only openssl files; an operator registers the terminal with `admin
//! terminal register`; and the terminal, with its openssl certificate, logs a resident in with
//! a card signature made by `openssl dgst`, gets the menu, quotes, issues, reports the print
//! and closes. The PDF's signature verifies under the openssl signing certificate with
//! `kiosk_document::signature::verify_pdf_signature`, through the gateway's verifier, and with
//! poppler's `pdfsig`.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;
#[path = "common/openssl.rs"]
mod openssl_files;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Process, admin, admin_output, devkit_binary, example_refs, gateway_command, issuer_binary,
    office_hours_rfc3339,
};
use issuer::bindings::CardBinding;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalTls};
use kiosk_tests::{fee, item, page_subjects};
use openssl_files::OpensslPki;

const GATEWAY_ID: &str = "gw-openssl-01";
const REMOTE: &str = "271004";
/// The terminal's identity: chain / store / terminal.
const TERMINAL: &str = "lawson/271004-0007/k1";
/// How many resident cards are minted (each bound to its own resident): a menu that blocks
/// one resident's 住民票 for a reason of the register does not fail the test.
const CARDS: u64 = 4;

/// The extension sections of every certificate, for `-extfile`/`-config`.
fn extensions() -> String {
    format!(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
         [ca]\nbasicConstraints = critical, CA:true\n\
         keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n\
         [server]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
         [issuer]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1, URI:urn:kiosk:issuer:{REMOTE}\n\
         authorityKeyIdentifier = keyid\n\
         [terminal]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = clientAuth\nsubjectAltName = URI:urn:kiosk:terminal:{TERMINAL}\n\
         authorityKeyIdentifier = keyid\n\
         [gateway_internal]\nbasicConstraints = critical, CA:false\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n\
         subjectAltName = URI:urn:kiosk:gateway:{GATEWAY_ID}\nauthorityKeyIdentifier = keyid\n\
         [document_signing]\nbasicConstraints = critical, CA:false\n\
         keyUsage = critical, digitalSignature, nonRepudiation\n\
         extendedKeyUsage = 1.3.6.1.5.5.7.3.36\n\
         subjectAltName = URI:urn:kiosk:municipality:{REMOTE}\nauthorityKeyIdentifier = keyid\n\
         [signing_without_eku]\nkeyUsage = critical, digitalSignature\n\
         [signing_email]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = emailProtection\n\
         [signing_any]\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = anyExtendedKeyUsage\n\
         [signing_tls_client]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n\
         [signing_tls_server]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
         [card]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         authorityKeyIdentifier = keyid\ncertificatePolicies = 1.2.392.200149.8.5.1.3.30\n\
         [test_card]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         authorityKeyIdentifier = keyid\ncertificatePolicies = 1.2.392.200149.8.5.1.0.20\n"
    )
}

/// The card certificates: stem and serial.
struct Pki {
    files: OpensslPki,
    cards: Vec<(String, u64)>,
    /// A J-LIS test card (test policy) under the same CA: a production gateway refuses it.
    test_card: String,
    /// A card of the second JPKI CA generation that its CRL lists as revoked.
    revoked_card: String,
}

/// The whole PKI of the deployment, made with openssl in `dir`.
fn make_pki(dir: PathBuf) -> Pki {
    let mut pki = OpensslPki::new(dir, &extensions());
    pki.ca(
        "terminal-ca",
        "/C=JP/O=Convenience Chain Example/CN=Example Terminal CA",
        false,
    );
    // A second generation of the terminal CA, trusted beside the first (one PEM bundle).
    pki.ca(
        "terminal-ca-2",
        "/C=JP/O=Convenience Chain Example/CN=Example Terminal CA G2",
        false,
    );
    let bundle = [
        std::fs::read(pki.path("terminal-ca.crt.pem")).unwrap(),
        std::fs::read(pki.path("terminal-ca-2.crt.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(pki.path("terminal-cas.pem"), bundle).unwrap();
    pki.ca(
        "auditor-ca",
        "/C=JP/O=Kiosk Operator Example/CN=Example Auditor CA",
        false,
    );
    pki.ca(
        "server-ca",
        "/C=JP/O=Kiosk Operator Example/CN=Example Server CA",
        false,
    );
    pki.ca(
        "internal-ca",
        "/C=JP/O=Kiosk Operator Example/CN=Example Internal CA",
        false,
    );
    pki.ca(
        "municipality-ca",
        "/C=JP/O=Municipality Example/CN=Example Document Signing CA",
        false,
    );
    // Named like the real JPKI user-authentication CA (two OUs), RSA 2048.
    pki.ca(
        "jpki-auth-ca",
        "/C=JP/O=JPKI/OU=JPKI for user authentication/\
         OU=Japan Agency for Local Authority Information Systems",
        true,
    );
    // Its next generation, trusted beside it: `trust.card_auth_ca` is the bundle of both.
    pki.ca(
        "jpki-auth-ca-2",
        "/C=JP/O=JPKI/OU=JPKI for user authentication G2/\
         OU=Japan Agency for Local Authority Information Systems",
        true,
    );
    let bundle = [
        std::fs::read(pki.path("jpki-auth-ca.crt.pem")).unwrap(),
        std::fs::read(pki.path("jpki-auth-ca-2.crt.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(pki.path("jpki-auth-cas.pem"), bundle).unwrap();
    pki.issue(
        "gateway",
        "server-ca",
        "/C=JP/O=Kiosk Operator Example/CN=localhost",
        "server",
        false,
    );
    pki.issue(
        "terminal",
        "terminal-ca",
        "/C=JP/O=lawson/OU=271004-0007/CN=k1",
        "terminal",
        false,
    );
    // The same terminal renewed under the second generation.
    pki.issue(
        "terminal-2",
        "terminal-ca-2",
        "/C=JP/O=lawson/OU=271004-0007/CN=k1",
        "terminal",
        false,
    );
    pki.issue(
        "gateway-internal",
        "internal-ca",
        &format!("/C=JP/O=Kiosk Operator Example/CN=gateway {GATEWAY_ID}"),
        "gateway_internal",
        false,
    );
    pki.issue(
        "issuer",
        "internal-ca",
        &format!("/C=JP/O=Kiosk Operator Example/CN=issuer {REMOTE}"),
        "issuer",
        false,
    );
    pki.issue(
        "signing",
        "municipality-ca",
        &format!("/C=JP/O=大阪市/CN={REMOTE} document signing"),
        "document_signing",
        false,
    );
    // The signer's chain for `issuer serve`: leaf first.
    let chain = [
        std::fs::read(pki.path("signing.crt.pem")).unwrap(),
        std::fs::read(pki.path("municipality-ca.crt.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(pki.path("signing-chain.pem"), chain).unwrap();
    // The cards: every one of the first generation, the last of the second.
    let cards = (1..=CARDS)
        .map(|i| {
            let stem = format!("card-{i}");
            let ca = if i == CARDS {
                "jpki-auth-ca-2"
            } else {
                "jpki-auth-ca"
            };
            let serial = pki.issue(
                &stem,
                ca,
                &format!("/C=JP/CN=CARD{i:04}OPENSSL"),
                "card",
                true,
            );
            (stem, serial)
        })
        .collect();
    let revoked_card = "revoked-card".to_owned();
    let revoked = pki.issue(
        &revoked_card,
        "jpki-auth-ca-2",
        "/C=JP/CN=REVOKED0001OPENSSL",
        "card",
        true,
    );
    // `card_crl_file`: one CRL per generation, concatenated in PEM.
    let crls = [
        std::fs::read(pki.empty_crl("jpki-auth-ca", false)).unwrap(),
        std::fs::read(pki.crl("jpki-auth-ca-2", &[revoked], false)).unwrap(),
    ]
    .concat();
    std::fs::write(pki.path("jpki-auth-cas.crl.pem"), crls).unwrap();
    let test_card = "test-card".to_owned();
    pki.issue(
        &test_card,
        "jpki-auth-ca",
        "/C=JP/CN=TESTCARD0001OPENSSL",
        "test_card",
        true,
    );
    Pki {
        files: pki,
        cards,
        test_card,
        revoked_card,
    }
}

/// Runs `kiosk-devkit generate` for the remote municipality's register (no PKI: the register
/// only); its printed example resident refs and the residents of its bindings, in order.
async fn generate_register(register_url: &str, root: &Path) -> (Vec<String>, Vec<String>) {
    let bindings = root.join("generated-bindings.jsonl");
    let generated = tokio::process::Command::new(devkit_binary())
        .args(["generate", "--seed", "12", "--residents", "40"])
        .args([
            "--municipality",
            REMOTE,
            "--name",
            "大阪市",
            "--prefecture",
            "大阪府",
        ])
        .args(["--db", register_url])
        .arg("--bindings-out")
        .arg(&bindings)
        .output()
        .await
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let examples = example_refs(&String::from_utf8(generated.stdout).unwrap());
    let residents = issuer::bindings::read_file(&bindings)
        .unwrap()
        .into_iter()
        .map(|b| b.resident_ref)
        .collect();
    (examples, residents)
}

/// The production configuration, naming only files of the openssl PKI.
fn gateway_config(root: &Path, pki: &OpensslPki, issuer_addr: &str, bindings: &Path) -> PathBuf {
    let data = root.join("gateway-data");
    // Production creates no directory: the database's must exist.
    std::fs::create_dir_all(&data).unwrap();
    let database = format!("sqlite://{}/gateway.db", data.display());
    let config = root.join("gateway.toml");
    let start = office_hours_rfc3339();
    let path = |name: &str| pki.path(name);
    let text = format!(
        "data_dir = {data:?}\ndatabase_url = {database:?}\nlisten = \"127.0.0.1:0\"\n\
         gateway_id = \"{GATEWAY_ID}\"\n\
         drain_ms = 0\nmunicipalities = []\nrehearsal_clock_start = \"{start}\"\n\
         client_crl_files = [{:?}, {:?}, {:?}]\ncard_crl_file = {:?}\n\
         [trust]\nserver_cert = {:?}\nterminal_ca = {:?}\nauditor_ca = {:?}\n\
         card_auth_ca = {:?}\nmunicipality_ca = {:?}\ninternal_ca = {:?}\n\
         internal_client_cert = {:?}\n\
         [keys]\nserver_key = {:?}\ninternal_client_key = {:?}\n\
         pseudonym_key = {:?}\ncheckpoint_seed = {:?}\n\
         [[remote_issuers]]\nmunicipality = \"{REMOTE}\"\n\
         endpoint = \"https://{issuer_addr}\"\nserver_name = \"localhost\"\n\
         bindings = {bindings:?}\nname = \"大阪市\"\nsigning_cert = {:?}\n",
        pki.empty_crl("terminal-ca", false),
        pki.empty_crl("terminal-ca-2", false),
        pki.empty_crl("auditor-ca", false),
        path("jpki-auth-cas.crl.pem"),
        path("gateway.crt.pem"),
        path("terminal-cas.pem"),
        path("auditor-ca.crt.pem"),
        path("jpki-auth-cas.pem"),
        path("municipality-ca.crt.pem"),
        path("internal-ca.crt.pem"),
        path("gateway-internal.crt.pem"),
        path("gateway.key.pem"),
        path("gateway-internal.key.pem"),
        pki.secret("pseudonym.key"),
        pki.secret("checkpoint.seed"),
        path("signing.crt.pem"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// Logs the card `stem` in (signed by openssl), and asks GetMenu; the session and menu.
async fn login(
    terminal: &Terminal,
    channel: &tonic::transport::Channel,
    pki: &OpensslPki,
    stem: &str,
) -> (String, pb::Menu) {
    let opened = terminal.open_session().await.unwrap();
    let message = card::login::signed_message(&opened.auth_context_bytes, &opened.challenge);
    let signature = pki.sign(stem, &message);
    assert_eq!(signature.len(), 256, "RSA 2048");
    let from_login = terminal
        .authenticate(&opened.session_id, pki.der(stem), signature)
        .await
        .unwrap();
    let menu = pb::terminal_service_client::TerminalServiceClient::new(channel.clone())
        .get_menu(pb::GetMenuRequest {
            session_id: opened.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .menu
        .unwrap();
    assert_eq!(menu, from_login, "GetMenu answers the login's menu");
    (opened.session_id, menu)
}

/// Issues a 住民票の写し to the first card whose resident's menu offers one, reports it
/// printed and closes; the resident and the PDF.
async fn issue_resident_record(
    terminal: &Terminal,
    channel: &tonic::transport::Channel,
    pki: &Pki,
    residents: &[String],
) -> (String, Vec<u8>) {
    for ((stem, _), resident) in pki.cards.iter().zip(residents) {
        let (session, menu) = login(terminal, channel, &pki.files, stem).await;
        assert_eq!(&menu.members[0].subject_ref, resident);
        assert_eq!(menu.municipality_code, REMOTE);
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
        let quoted = terminal.quote(&session, items.clone()).await.unwrap();
        assert_eq!(quoted.total_fee_yen, total);
        let key = format!("openssl-{}", &session[2..18]);
        let issued = terminal
            .issue(&session, &key, items, total, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(issued.documents.len(), 1);
        let pdf = issued.documents[0].pdf.clone();
        for (issuance, subjects) in page_subjects(&pdf) {
            assert_eq!(issuance, issued.header.issuance_id);
            assert_eq!(subjects, std::slice::from_ref(resident));
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
        return (resident.clone(), pdf);
    }
    panic!("no resident with an openssl card is offered a 住民票の写し");
}

/// The gateway's verifier (no client certificate) judges `pdf` valid for the municipality.
async fn gateway_verifies(addr: &str, server_ca_pem: &[u8], pdf: Vec<u8>) {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(server_ca_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let verdict = pb::verify_service_client::VerifyServiceClient::new(channel)
        .max_encoding_message_size(16 << 20)
        .verify_document(pb::VerifyDocumentRequest {
            document: Some(pb::verify_document_request::Document::Pdf(pdf)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict.validity, pb::Validity::Valid as i32, "{verdict:?}");
    assert!(verdict.pdf_signature_valid);
    assert_eq!(verdict.summary.unwrap().municipality_code, REMOTE);
}

/// poppler's `pdfsig` validates the signature too (the signer is not in its trust store, so
/// only the signature is judged).
fn pdfsig_validates(dir: &Path, pdf: &[u8]) {
    let path = dir.join("issued.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = Command::new("pdfsig")
        .arg(&path)
        .output()
        .expect("pdfsig (Debian poppler-utils; scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Signature Validation: Signature is Valid."),
        "pdfsig:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The binding of card `stem` to `resident`, its key read from openssl's own text (`openssl
/// x509 -noout -ext authorityKeyIdentifier -serial`): colons and case dropped, the serial's
/// leading zero byte too, as an operator would.
fn openssl_binding(files: &OpensslPki, stem: &str, resident: &str) -> CardBinding {
    let text = String::from_utf8(files.run(&[
        "x509",
        "-noout",
        "-in",
        &format!("{stem}.crt.pem"),
        "-ext",
        "authorityKeyIdentifier",
        "-serial",
    ]))
    .unwrap();
    let hex_of = |s: &str| {
        s.trim()
            .trim_start_matches("keyid:")
            .replace(':', "")
            .to_lowercase()
    };
    let mut lines = text.lines().map(str::trim);
    let key_id = lines
        .find(|l| {
            let h = hex_of(l);
            h.len() >= 40 && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(hex_of)
        .unwrap_or_else(|| panic!("no key identifier in openssl's output:\n{text}"));
    let serial = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial="))
        .unwrap()
        .to_lowercase();
    let serial = serial
        .strip_prefix("00")
        .filter(|s| !s.is_empty())
        .unwrap_or(&serial);
    let serial = if serial.len() % 2 == 1 {
        format!("0{serial}")
    } else {
        serial.to_owned()
    };
    CardBinding {
        issuer_key_id: key_id,
        card_serial_hex: serial,
        card_serial: None,
        municipality_code: REMOTE.to_owned(),
        resident_ref: resident.to_owned(),
        card_file: None,
    }
}

/// `kiosk-gateway card-key --cert <path>`'s output.
fn card_key(path: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .args(["card-key", "--cert"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A card of each JPKI CA generation logs in; the revoked card of the second generation is
/// refused by that generation's CRL.
async fn every_card_generation_authenticates(
    terminal: &Terminal,
    channel: &tonic::transport::Channel,
    pki: &Pki,
) {
    let (first, _) = &pki.cards[0];
    let (second, _) = pki.cards.last().unwrap();
    for stem in [first, second] {
        let (session, _) = login(terminal, channel, &pki.files, stem).await;
        terminal.close_session(&session).await.unwrap();
    }
    let opened = terminal.open_session().await.unwrap();
    let message = card::login::signed_message(&opened.auth_context_bytes, &opened.challenge);
    let signature = pki.files.sign(&pki.revoked_card, &message);
    let error = terminal
        .authenticate(
            &opened.session_id,
            pki.files.der(&pki.revoked_card),
            signature,
        )
        .await
        .unwrap_err();
    match error {
        kiosk_terminal::client::TerminalError::Refused { reason, .. } => {
            assert_eq!(reason, "CARD_REVOKED");
        }
        other => panic!("{other:?}"),
    }
}

/// The J-LIS test card, validly signed and bound, is refused by the production gateway for
/// its policy alone.
async fn test_card_refused(terminal: &Terminal, pki: &Pki) {
    let opened = terminal.open_session().await.unwrap();
    let message = card::login::signed_message(&opened.auth_context_bytes, &opened.challenge);
    let signature = pki.files.sign(&pki.test_card, &message);
    let error = terminal
        .authenticate(&opened.session_id, pki.files.der(&pki.test_card), signature)
        .await
        .unwrap_err();
    match error {
        kiosk_terminal::client::TerminalError::Refused {
            reason, code, ja, ..
        } => {
            assert_eq!(
                (reason.as_str(), code),
                ("CARD_TEST_POLICY", tonic::Code::PermissionDenied)
            );
            assert!(ja.contains("試験用"), "{ja}");
        }
        other => panic!("{other:?}"),
    }
}

/// The terminal renewed under the second terminal CA of the `trust.terminal_ca` bundle is
/// trusted by TLS and recognised as the same terminal: it opens a session.
async fn second_terminal_ca_accepted(addr: &str, first: &TerminalTls, files: &OpensslPki) {
    let tls = TerminalTls {
        cert_pem: std::fs::read(files.path("terminal-2.crt.pem")).unwrap(),
        key_pem: std::fs::read(files.path("terminal-2.key.pem")).unwrap(),
        ..first.clone()
    };
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .unwrap();
    let opened = Terminal::new(channel).open_session().await.unwrap();
    assert_eq!(opened.challenge.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_an_openssl_pki_issues_a_signed_document() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki = make_pki(root.join("pki"));
    let files = &pki.files;

    // The register (data, not PKI) and the bindings of the openssl cards to its residents.
    let register_url = format!("sqlite://{}", root.join("register.db").display());
    let (examples, residents) = generate_register(&register_url, root).await;
    let residents: Vec<String> = residents
        .into_iter()
        .filter(|r| !examples.contains(r))
        .rev()
        .take(pki.cards.len() + 1)
        .collect();
    // The bindings file an operator writes from openssl's view of each card (the test card
    // bound too, so that only its policy refuses it); the gateway starts with none and
    // imports it by command.
    let bindings = root.join(format!("bindings-{REMOTE}.jsonl"));
    std::fs::write(&bindings, "").unwrap();
    let import = root.join("import.jsonl");
    let mut out = Vec::new();
    let test_card = (pki.test_card.clone(), 0);
    for ((stem, _), resident) in pki.cards.iter().chain([&test_card]).zip(&residents) {
        let binding = openssl_binding(files, stem, resident);
        assert_eq!(
            card_key(&files.path(&format!("{stem}.crt.pem"))),
            format!(
                "{{\"issuer_key_id\":\"{0}\",\"card_serial_hex\":\"{1}\",\"key\":\"{0}:{1}\"}}\n",
                binding.issuer_key_id, binding.card_serial_hex
            ),
            "kiosk-gateway card-key agrees with openssl"
        );
        issuer::bindings::write_row(&mut out, &binding).unwrap();
    }
    std::fs::write(&import, out).unwrap();

    // The municipality's issuer, on the openssl TLS files and signing key.
    let mut command = tokio::process::Command::new(issuer_binary());
    command
        .args(["serve", "--db", &register_url, "--municipality", REMOTE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(files.path("issuer.crt.pem"))
        .arg("--tls-key")
        .arg(files.path("issuer.key.pem"))
        .arg("--client-ca")
        .arg(files.path("internal-ca.crt.pem"))
        .arg("--signing-cert")
        .arg(files.path("signing-chain.pem"))
        .arg("--signing-key")
        .arg(files.path("signing.key.pem"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    let (issuer, issuer_addr) = Process::spawn(command, root.join("issuer.log")).await;

    // The gateway's production path, and the operator's registration of the terminal.
    let config = gateway_config(root, files, &issuer_addr, &bindings);
    let (gateway, addr) = Process::spawn(gateway_command(&config), root.join("gateway.log")).await;
    let enroll = |cert: &str| {
        [
            "terminal",
            "enroll",
            "--cert",
            cert,
            "--on-behalf-of",
            "ops-openssl-01",
            "--reason",
            "kiosk installed",
        ]
        .map(str::to_owned)
    };
    // A certificate of another CA (the issuer's server certificate) is refused before the
    // database is touched, with what the handshake would say.
    let stray = files.path("issuer.crt.pem");
    let refused = admin_output(
        &config,
        &enroll(stray.to_str().unwrap())
            .each_ref()
            .map(String::as_str),
    )
    .await;
    assert_eq!(refused.status.code(), Some(64));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("--cert: the gateway would refuse it"), "{why}");
    let terminal_cert = files.path("terminal.crt.pem");
    let args = enroll(terminal_cert.to_str().unwrap());
    let registered = admin(&config, &args.each_ref().map(String::as_str)).await;
    assert!(
        registered.starts_with(&format!(
            "terminal {TERMINAL}: enrolled from certificate sha256:"
        )),
        "{registered}"
    );
    let again = admin(&config, &args.each_ref().map(String::as_str)).await;
    assert!(
        again.contains("already registered: nothing written"),
        "{again}"
    );
    let import = import.to_str().unwrap();
    let by = [
        "--on-behalf-of",
        "ops-openssl-01",
        "--reason",
        "cards of the pilot",
    ];
    let imported = admin(
        &config,
        &[&["card-binding", "import", import][..], &by].concat(),
    )
    .await;
    assert!(imported.contains("added"), "{imported}");
    let again = admin(
        &config,
        &[&["card-binding", "import", import][..], &by].concat(),
    )
    .await;
    assert!(again.contains("nothing written"), "{again}");

    // The terminal, with its openssl certificate.
    let read = |name: &str| std::fs::read(files.path(name)).unwrap();
    let tls = TerminalTls {
        server_ca_pem: read("server-ca.crt.pem"),
        cert_pem: read("terminal.crt.pem"),
        key_pem: read("terminal.key.pem"),
        server_name: "localhost".into(),
    };
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .unwrap();
    let terminal = Terminal::new(channel.clone());
    test_card_refused(&terminal, &pki).await;
    every_card_generation_authenticates(&terminal, &channel, &pki).await;
    second_terminal_ca_accepted(&addr, &tls, files).await;
    let (resident, pdf) = issue_resident_record(&terminal, &channel, &pki, &residents).await;
    assert!(!resident.is_empty());

    // The signature is the openssl signing key's, by our reader, the gateway's and poppler's.
    kiosk_document::signature::verify_pdf_signature(&pdf, &files.der("signing")).unwrap();
    gateway_verifies(&addr, &tls.server_ca_pem, pdf.clone()).await;
    pdfsig_validates(root, &pdf);

    gateway.terminate().await;
    issuer.terminate().await;
    eprintln!(
        "openssl PKI deployment: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The gateway accepts a municipality's document-signing certificate without an extended key
/// usage, or with one naming id-kp-documentSigning (RFC 9336; the deployment above),
/// emailProtection or anyExtendedKeyUsage, and refuses one naming only TLS purposes.
#[test]
fn document_signing_purposes_of_an_openssl_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut pki = OpensslPki::new(dir.path().to_owned(), &extensions());
    pki.ca(
        "municipality-ca",
        "/C=JP/O=Municipality Example/CN=Example Document Signing CA",
        false,
    );
    let ca = pki.der("municipality-ca");
    let clock = kiosk_gateway::clock::SystemClock;
    for (section, accepted) in [
        ("document_signing", true),
        ("signing_without_eku", true),
        ("signing_email", true),
        ("signing_any", true),
        ("signing_tls_client", false),
        ("signing_tls_server", false),
    ] {
        pki.issue(section, "municipality-ca", "/CN=signer", section, false);
        let checked =
            kiosk_gateway::deployment::check_signing_chain(&pki.der(section), &ca, &clock);
        assert_eq!(checked.is_ok(), accepted, "{section}: {checked:?}");
    }
}
