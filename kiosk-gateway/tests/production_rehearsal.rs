//! The production rehearsal: one deployment put together the way docs/deploy.md tells an
//! operator to, with nothing of this project's development material.
//!
//! - The whole PKI is made by the `openssl` command-line tool; the municipality's
//!   document-signing key and the audit checkpoint key are generated non-extractable in a
//!   SoftHSM2 token, the signing key certified from the CSR `issuer signing-csr` writes.
//! - The register and the gateway live in PostgreSQL. The municipality is onboarded by `issuer
//!   municipality apply` from docs/municipality.example.json, its register loaded by `issuer
//!   import` from docs/register-import.example.jsonl; the card binding comes from `kiosk-gateway
//!   card-key` and `admin card-binding import`, the terminal from `admin terminal enroll`, the
//!   gateway's route to the issuer from `admin municipality route` before its first start.
//! - `issuer serve` and `kiosk-gateway serve --config` run as separate processes; a terminal
//!   written in Python (tests/python/terminal_client.py) completes an issuance over mutual TLS.
//! - The PDF's signature is judged by poppler's `pdfsig` and by pyHanko with the openssl
//!   municipality CA as its only trust root; the auditor's checkpoint verifies with the
//!   token's public key.
//! - A 転出 imported (`issuer import --changes`) between Authenticate and Issue refuses the
//!   issuance with the rule's reason: the next decision reads what the import changed.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;
#[path = "common/openssl.rs"]
mod openssl_files;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Process, admin, auditor_checkpoint, gateway_command, issuer_binary};
use kiosk_devkit::softhsm::{KeyKind, SoftHsm, with_token};
use kiosk_devkit::testdb::TestDb;
use kiosk_keys::{Algorithm, Signer};
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalTls};
use kiosk_tests::item;
use openssl_files::OpensslPki;

/// The municipality of docs/municipality.example.json and docs/register-import.example.jsonl.
const CODE: &str = "131016";
/// The resident of the example register whose card is used: 山田太郎, head of H0001.
const RESIDENT: &str = "R0001";
const GATEWAY_ID: &str = "gw-rehearsal-01";
const TERMINAL: &str = "familymart/131016-0042/k2";
/// Who runs the onboarding commands, beside the operating-system account.
const OPERATOR: [&str; 2] = ["--on-behalf-of", "ops-rehearsal"];

fn docs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

/// The extension sections of every certificate of the rehearsal's PKI.
fn extensions() -> String {
    format!(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
         [ca]\nbasicConstraints = critical, CA:true\n\
         keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n\
         [server]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n\
         authorityKeyIdentifier = keyid\n\
         [issuer]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1, URI:urn:kiosk:issuer:{CODE}\n\
         authorityKeyIdentifier = keyid\n\
         [terminal]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = clientAuth\nsubjectAltName = URI:urn:kiosk:terminal:{TERMINAL}\n\
         authorityKeyIdentifier = keyid\n\
         [auditor]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = clientAuth\nsubjectAltName = URI:urn:kiosk:auditor:rehearsal\n\
         authorityKeyIdentifier = keyid\n\
         [gateway_internal]\nbasicConstraints = critical, CA:false\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n\
         subjectAltName = URI:urn:kiosk:gateway:{GATEWAY_ID}\nauthorityKeyIdentifier = keyid\n\
         [document_signing]\nbasicConstraints = critical, CA:false\n\
         keyUsage = critical, digitalSignature, nonRepudiation\n\
         extendedKeyUsage = 1.3.6.1.5.5.7.3.36\n\
         subjectAltName = URI:urn:kiosk:municipality:{CODE}\nauthorityKeyIdentifier = keyid\n\
         [card]\nbasicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n\
         authorityKeyIdentifier = keyid\ncertificatePolicies = 1.2.392.200149.8.5.1.3.30\n"
    )
}

/// The operator's PKI, every file by openssl: CAs, the gateway's, issuer's, terminal's and
/// auditor's certificates, and one resident card (RSA 2048 under a JPKI-like CA). The
/// document-signing certificate comes later, from the token's request.
fn make_pki(dir: PathBuf) -> OpensslPki {
    let mut pki = OpensslPki::new(dir, &extensions());
    for (stem, subject) in [
        ("terminal-ca", "/C=JP/O=Store Chain Example/CN=Terminal CA"),
        ("auditor-ca", "/C=JP/O=Kiosk Operator Example/CN=Auditor CA"),
        ("server-ca", "/C=JP/O=Kiosk Operator Example/CN=Server CA"),
        (
            "internal-ca",
            "/C=JP/O=Kiosk Operator Example/CN=Internal CA",
        ),
        ("municipality-ca", "/C=JP/O=千代田区/CN=Document Signing CA"),
    ] {
        pki.ca(stem, subject, false);
    }
    pki.ca(
        "jpki-auth-ca",
        "/C=JP/O=JPKI/OU=JPKI for user authentication/\
         OU=Japan Agency for Local Authority Information Systems",
        true,
    );
    let operator = "/C=JP/O=Kiosk Operator Example";
    for (stem, ca, subject, section) in [
        (
            "gateway",
            "server-ca",
            format!("{operator}/CN=localhost"),
            "server",
        ),
        (
            "issuer",
            "internal-ca",
            format!("{operator}/CN=issuer {CODE}"),
            "issuer",
        ),
        (
            "gateway-internal",
            "internal-ca",
            format!("{operator}/CN=gateway {GATEWAY_ID}"),
            "gateway_internal",
        ),
        (
            "terminal",
            "terminal-ca",
            "/C=JP/O=familymart/OU=131016-0042/CN=k2".to_owned(),
            "terminal",
        ),
        (
            "auditor",
            "auditor-ca",
            format!("{operator}/CN=auditor"),
            "auditor",
        ),
    ] {
        pki.issue(stem, ca, &subject, section, false);
    }
    pki.issue(
        "card",
        "jpki-auth-ca",
        "/C=JP/CN=CARD0001REHEARSAL",
        "card",
        true,
    );
    pki
}

/// `issuer <args>` with no `KIOSK_*` variable of the test's environment; must succeed; its
/// stdout.
fn issuer(args: &[&str]) -> String {
    let mut command = std::process::Command::new(issuer_binary());
    command.args(args);
    clear_kiosk_variables(&mut command);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "issuer {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn clear_kiosk_variables(command: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
}

/// The document-signing certificate of the token's key: `issuer signing-csr` writes the
/// request (signed on the token), the municipality CA certifies it with openssl. Writes the
/// chain `issuer serve` presents, leaf first; its path.
fn certify_token_key(pki: &mut OpensslPki, key_uri: &str) -> PathBuf {
    let csr = pki.path("signing.csr.pem");
    let csr_arg = csr.to_str().unwrap();
    issuer(&[
        "signing-csr",
        "--key",
        key_uri,
        "--municipality",
        CODE,
        "--out",
        csr_arg,
    ]);
    pki.certify(csr_arg, "signing", "municipality-ca", "document_signing");
    let chain = [
        std::fs::read(pki.path("signing.crt.pem")).unwrap(),
        std::fs::read(pki.path("municipality-ca.crt.pem")).unwrap(),
    ]
    .concat();
    let path = pki.path("signing-chain.pem");
    std::fs::write(&path, chain).unwrap();
    path
}

/// Onboards the municipality into its register and loads the register from the documented
/// examples; a second `apply` of the same file writes nothing.
fn onboard_register(register_url: &str) {
    let file = docs("municipality.example.json");
    let apply = [
        "municipality",
        "apply",
        "--db",
        register_url,
        "--file",
        file.to_str().unwrap(),
        "--reason",
        "go-live of 千代田区",
    ];
    issuer(&apply);
    assert!(
        issuer(&apply).contains("unchanged"),
        "a re-run writes nothing"
    );
    let shown = issuer(&["municipality", "show", "--db", register_url, "--code", CODE]);
    assert!(shown.contains("千代田区"), "{shown}");
    let register = docs("register-import.example.jsonl");
    issuer(&["import", "--db", register_url, register.to_str().unwrap()]);
}

/// The municipality's issuer process on the openssl TLS files and the token's signing key.
async fn spawn_issuer(
    root: &Path,
    pki: &OpensslPki,
    register_url: &str,
    chain: &Path,
    key_uri: &str,
) -> (Process, String) {
    let mut command = std::process::Command::new(issuer_binary());
    command
        .args(["serve", "--db", register_url, "--municipality", CODE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(pki.path("issuer.crt.pem"))
        .arg("--tls-key")
        .arg(pki.path("issuer.key.pem"))
        .arg("--client-ca")
        .arg(pki.path("internal-ca.crt.pem"))
        .arg("--signing-cert")
        .arg(chain)
        .args(["--signing-key", key_uri]);
    clear_kiosk_variables(&mut command);
    Process::spawn(command.into(), root.join("issuer.log")).await
}

/// The gateway's production configuration: PostgreSQL, openssl files, the checkpoint key on
/// the token, one remote issuer whose bindings file starts empty.
fn gateway_config(
    root: &Path,
    pki: &OpensslPki,
    database_url: &str,
    links: (&str, &str),
) -> PathBuf {
    let (issuer_addr, checkpoint_key) = links;
    let data = root.join("gateway-data");
    std::fs::create_dir_all(&data).unwrap();
    let bindings = root.join("bindings-empty.jsonl");
    std::fs::write(&bindings, "").unwrap();
    let path = |name: &str| pki.path(name);
    let text = format!(
        "data_dir = {data:?}\ndatabase_url = {database_url:?}\nlisten = \"127.0.0.1:0\"\n\
         gateway_id = \"{GATEWAY_ID}\"\ndrain_ms = 0\nmunicipalities = []\n\
         rehearsal_clock_start = \"{}\"\n\
         client_crl_files = [{:?}, {:?}]\ncard_crl_file = {:?}\n\
         [trust]\nserver_cert = {:?}\nterminal_ca = {:?}\nauditor_ca = {:?}\n\
         card_auth_ca = {:?}\nmunicipality_ca = {:?}\ninternal_ca = {:?}\n\
         internal_client_cert = {:?}\n\
         [keys]\nserver_key = {:?}\ninternal_client_key = {:?}\n\
         pseudonym_key = {:?}\ncheckpoint_key = {checkpoint_key:?}\n\
         [[remote_issuers]]\nmunicipality = \"{CODE}\"\n\
         endpoint = \"https://{issuer_addr}\"\nserver_name = \"localhost\"\n\
         bindings = {bindings:?}\nname = \"千代田区\"\nsigning_cert = {:?}\n",
        common::office_hours_rfc3339(),
        pki.empty_crl("terminal-ca", false),
        pki.empty_crl("auditor-ca", false),
        pki.empty_crl("jpki-auth-ca", false),
        path("gateway.crt.pem"),
        path("terminal-ca.crt.pem"),
        path("auditor-ca.crt.pem"),
        path("jpki-auth-ca.crt.pem"),
        path("municipality-ca.crt.pem"),
        path("internal-ca.crt.pem"),
        path("gateway-internal.crt.pem"),
        path("gateway.key.pem"),
        path("gateway-internal.key.pem"),
        pki.secret("pseudonym.key"),
        path("signing.crt.pem"),
    );
    let config = root.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Adds the municipality to the gateway's routing by the operator command, before the first
/// start: the start then finds its route recorded and adds nothing of its own.
async fn route_municipality(config: &Path, issuer_addr: &str) {
    let endpoint = format!("https://{issuer_addr}");
    let route = [
        &[
            "municipality",
            "route",
            "--code",
            CODE,
            "--name",
            "千代田区",
        ][..],
        &["--endpoint", &endpoint],
        &OPERATOR,
        &["--reason", "千代田区 joins the service"],
    ]
    .concat();
    let said = admin(config, &route).await;
    assert!(said.contains(&format!("routed to {endpoint}")), "{said}");
    assert!(admin(config, &route).await.contains("nothing written"));
}

/// Enrolls the terminal from its certificate and binds the card to the resident, by the
/// operator commands, each idempotent.
async fn onboard_gateway(config: &Path, pki: &OpensslPki, root: &Path) {
    let cert = pki.path("terminal.crt.pem");
    let enroll = [
        &["terminal", "enroll", "--cert", cert.to_str().unwrap()][..],
        &OPERATOR,
        &["--reason", "kiosk installed at store 0042"],
    ]
    .concat();
    let enrolled = admin(config, &enroll).await;
    assert!(
        enrolled.starts_with(&format!("terminal {TERMINAL}: enrolled from certificate")),
        "{enrolled}"
    );
    let key = card_key(&pki.path("card.crt.pem"));
    let binding = format!(
        "{{\"issuer_key_id\":{},\"card_serial_hex\":{},\"municipality_code\":\"{CODE}\",\
         \"resident_ref\":\"{RESIDENT}\"}}\n",
        key["issuer_key_id"], key["card_serial_hex"]
    );
    let file = root.join("bindings-131016.jsonl");
    std::fs::write(&file, binding).unwrap();
    let import = [
        &["card-binding", "import", file.to_str().unwrap()][..],
        &OPERATOR,
        &["--reason", "cards of 千代田区"],
    ]
    .concat();
    assert!(admin(config, &import).await.contains("added"));
    assert!(admin(config, &import).await.contains("nothing written"));
}

/// `kiosk-gateway card-key --cert <path>` as JSON.
fn card_key(path: &Path) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .args(["card-key", "--cert"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The Python terminal completes one issuance with the openssl card; the PDF it received.
async fn python_issuance(root: &Path, pki: &OpensslPki, addr: &str) -> Vec<u8> {
    let read = |name: &str| std::fs::read_to_string(pki.path(name)).unwrap();
    let card = root.join("card.toml");
    std::fs::write(
        &card,
        format!(
            "[auth]\nkey = \"\"\"\n{}\"\"\"\ncertificate = \"\"\"\n{}\"\"\"\n",
            read("card.key.pem"),
            read("card.crt.pem")
        ),
    )
    .unwrap();
    let stubs = root.join("pystubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let pdf = root.join("issued.pdf");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let output = tokio::process::Command::new("python3")
        .arg(tests.join("python/terminal_client.py"))
        .arg(tests.join("../proto"))
        .arg(&stubs)
        .arg(addr)
        .arg(pki.path("server-ca.crt.pem"))
        .arg(pki.path("terminal.crt.pem"))
        .arg(pki.path("terminal.key.pem"))
        .arg(&card)
        .arg(&pdf)
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
    assert_eq!(summary["municipality"], CODE);
    std::fs::read(pdf).unwrap()
}

/// pyHanko validates the signature with the municipality CA as its only trust root: intact,
/// valid, trusted, covering the whole file.
const PYHANKO_VALIDATE: &str = r#"
import sys
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.general import load_cert_from_pemder
from pyhanko_certvalidator import ValidationContext
vc = ValidationContext(trust_roots=[load_cert_from_pemder(sys.argv[1])])
with open(sys.argv[2], 'rb') as f:
    sigs = PdfFileReader(f).embedded_signatures
    assert len(sigs) == 1, len(sigs)
    st = validate_pdf_signature(sigs[0], vc)
    print(st.pretty_print_details())
    ok = st.intact and st.valid and st.trusted and st.coverage.name == 'ENTIRE_FILE'
    sys.exit(0 if ok else 1)
"#;

/// poppler's `pdfsig` and pyHanko judge the issued PDF's signature.
fn outside_judges_accept(root: &Path, pki: &OpensslPki, pdf: &[u8]) {
    let path = root.join("judged.pdf");
    std::fs::write(&path, pdf).unwrap();
    let pdfsig = std::process::Command::new("pdfsig")
        .arg(&path)
        .output()
        .expect("pdfsig (Debian poppler-utils; scripts/install-deps.sh)");
    let text = String::from_utf8_lossy(&pdfsig.stdout);
    assert!(
        text.contains("Signature Validation: Signature is Valid."),
        "pdfsig:\n{text}"
    );
    let pyhanko = std::process::Command::new("python3")
        .args(["-c", PYHANKO_VALIDATE])
        .arg(pki.path("municipality-ca.crt.pem"))
        .arg(&path)
        .output()
        .expect("python3 with pyHanko (scripts/install-deps.sh)");
    assert!(
        pyhanko.status.success(),
        "pyHanko:\n{}\n{}",
        String::from_utf8_lossy(&pyhanko.stdout),
        String::from_utf8_lossy(&pyhanko.stderr)
    );
}

/// The Rust reference terminal with the openssl files.
async fn rust_terminal(pki: &OpensslPki, addr: &str) -> Terminal {
    let read = |name: &str| std::fs::read(pki.path(name)).unwrap();
    let tls = TerminalTls {
        server_ca_pem: read("server-ca.crt.pem"),
        cert_pem: read("terminal.crt.pem"),
        key_pem: read("terminal.key.pem"),
        server_name: "localhost".into(),
    };
    let channel = kiosk_terminal::client::connect(&format!("https://{addr}"), &tls)
        .await
        .unwrap();
    Terminal::new(channel)
}

/// Yesterday in Japan: a change file's effective date that is in force whatever the hour.
fn yesterday_in_japan() -> String {
    let japan = time::UtcOffset::from_hms(9, 0, 0).unwrap();
    let day = time::OffsetDateTime::now_utc().to_offset(japan).date() - time::Duration::days(1);
    day.to_string()
}

/// The resident logs in and is offered a 住民票の写し; the municipality records the 転出 (an
/// `issuer import --changes` file); the Issue that follows is refused with MOVED_OUT and
/// nothing is issued.
async fn a_move_out_between_login_and_issue_is_honoured(
    terminal: &Terminal,
    pki: &OpensslPki,
    root: &Path,
    register_url: &str,
) {
    let opened = terminal.open_session().await.unwrap();
    let message = card::login::signed_message(&opened.auth_context_bytes, &opened.challenge);
    let signature = pki.sign("card", &message);
    let menu = terminal
        .authenticate(&opened.session_id, pki.der("card"), signature)
        .await
        .unwrap();
    let offered = |t: pb::CertificateType| {
        menu.entries
            .iter()
            .any(|e| e.available && e.r#type == t as i32)
    };
    assert!(offered(pb::CertificateType::ResidentRecord), "{menu:?}");
    let items = vec![item(pb::CertificateType::ResidentRecord)];
    let quoted = terminal
        .quote(&opened.session_id, items.clone())
        .await
        .unwrap();

    let day = yesterday_in_japan();
    let changes = root.join("changes-tenshutsu.jsonl");
    std::fs::write(
        &changes,
        format!(
            "{{\"kind\": \"move_out_filed\", \"change_id\": \"C-REHEARSAL-0001\", \
             \"resident_id\": \"{RESIDENT}\", \"effective_on\": \"{day}\"}}\n\
             {{\"kind\": \"move_out\", \"change_id\": \"C-REHEARSAL-0002\", \
             \"resident_id\": \"{RESIDENT}\", \"effective_on\": \"{day}\"}}\n"
        ),
    )
    .unwrap();
    issuer(&[
        "import",
        "--db",
        register_url,
        "--changes",
        changes.to_str().unwrap(),
    ]);

    let refused = terminal
        .issue(
            &opened.session_id,
            "rehearsal-after-tenshutsu",
            items,
            quoted.total_fee_yen,
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "MOVED_OUT", "{refused:?}");
}

/// Everything between the token's keys and the auditor's verified checkpoint.
async fn rehearse(hsm: &SoftHsm, root: &Path) {
    let started = Instant::now();
    let mut pki = make_pki(root.join("pki"));
    let signing_key = hsm.uri("signing");
    let checkpoint_key = hsm.uri("checkpoint");
    let chain = certify_token_key(&mut pki, &signing_key);

    let register = TestDb::postgres("rehearsal_register").await;
    let gateway_db = TestDb::postgres("rehearsal_gateway").await;
    onboard_register(&register.url);
    let (issuer_process, issuer_addr) =
        spawn_issuer(root, &pki, &register.url, &chain, &signing_key).await;
    let config = gateway_config(root, &pki, &gateway_db.url, (&issuer_addr, &checkpoint_key));
    route_municipality(&config, &issuer_addr).await;
    let (gateway, addr) = Process::spawn(gateway_command(&config), root.join("gateway.log")).await;
    onboard_gateway(&config, &pki, root).await;

    let pdf = python_issuance(root, &pki, &addr).await;
    kiosk_document::signature::verify_pdf_signature(&pdf, &pki.der("signing")).unwrap();
    outside_judges_accept(root, &pki, &pdf);

    let terminal = rust_terminal(&pki, &addr).await;
    a_move_out_between_login_and_issue_is_honoured(&terminal, &pki, root, &register.url).await;

    // What the operator hands the auditors: the token's public key.
    let public_key: [u8; 32] = Signer::open(&checkpoint_key, Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .try_into()
        .unwrap();
    let note = auditor_checkpoint(&addr, &pki.path("")).await;
    let verifier =
        audit::checkpoint::CheckpointVerifier::new(&format!("{GATEWAY_ID}/audit"), public_key)
            .unwrap();
    let signed = verifier.verify(&note).unwrap();
    assert!(signed.checkpoint().size() >= 5, "the issuance's events");

    gateway.terminate().await;
    issuer_process.terminate().await;
    register.cleanup().await;
    gateway_db.cleanup().await;
    eprintln!(
        "production rehearsal: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_production_deployment_rehearsed_from_openssl_pki_to_audited_issuance() {
    with_token(
        "a_production_deployment_rehearsed_from_openssl_pki_to_audited_issuance",
        |hsm| {
            hsm.generate("signing", KeyKind::EcP256);
            hsm.generate("checkpoint", KeyKind::Ed25519);
            for object in ["signing", "checkpoint"] {
                assert_eq!(
                    hsm.private_value(object),
                    Ok(None),
                    "the {object} key leaves the token"
                );
            }
            let dir = tempfile::tempdir().unwrap();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(rehearse(hsm, dir.path()));
        },
    );
}
