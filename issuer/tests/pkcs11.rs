//! The document-signing key on a PKCS#11 token (SoftHSM2): generated non-extractable on the
//! token, its certificate request written by `issuer signing-csr` and certified by a CA the
//! `openssl` tool makes, documents signed through the token and accepted by
//! kiosk_document's verifier and poppler's `pdfsig`; bad key references refused by
//! `issuer serve` naming `--signing-key`.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use issuer::document::render::Renderer;
use issuer::document::samples;
use issuer::document::sign::DocumentSigner;
use kiosk_devkit::softhsm::{KeyKind, MODULE, SoftHsm, TOKEN, with_token};
use kiosk_document::CertificateType;
use kiosk_document::pem::pem_blocks;
use kiosk_document::qr::{TrustedKeys, verify_qr_payload};
use kiosk_document::signature::verify_pdf_signature;
use kiosk_keys::{Algorithm, Signer};

use common::{CODE, OPEN, TestDb, generated};
use issuer::service::item_to_wire;
use issuer::{CertificateOptions, RequestItem};
use kiosk_devkit::generator::Case;
use kiosk_proto::v1 as pb;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../devkit/testdata/pki");

fn run(program: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/install-deps.sh): {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = run("openssl", dir, args);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

/// An operator's CA made by openssl, which certifies the token key's request: returns the
/// signer certificate and the CA certificate (DER).
fn certify_token_key(hsm: &SoftHsm, dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (ok, text) = run(
        env!("CARGO_BIN_EXE_issuer"),
        dir,
        &[
            "signing-csr",
            "--key",
            &hsm.uri("doc"),
            "--municipality",
            CODE,
        ],
    );
    assert!(!ok && text.contains("--out"), "--out is required: {text}");
    let (ok, text) = run(
        env!("CARGO_BIN_EXE_issuer"),
        dir,
        &[
            "signing-csr",
            "--key",
            &hsm.uri("doc"),
            "--municipality",
            CODE,
            "--out",
            "doc.csr",
        ],
    );
    assert!(ok, "issuer signing-csr: {text}");
    // openssl checks the request's signature (made on the token) before certifying it.
    let verified = openssl(dir, &["req", "-in", "doc.csr", "-verify", "-noout"]);
    assert!(
        verified.contains("verify OK") || verified.is_empty(),
        "{verified}"
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/O=Operator/CN=Operator document-signing CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "doc.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-copy_extensions",
            "copy",
            "-out",
            "doc.pem",
        ],
    );
    let verified = openssl(dir, &["verify", "-CAfile", "ca.pem", "doc.pem"]);
    assert!(verified.contains("doc.pem: OK"), "{verified}");
    let der = |name: &str| {
        let pem = std::fs::read_to_string(dir.join(name)).unwrap();
        pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0)
    };
    (der("doc.pem"), der("ca.pem"))
}

#[test]
fn a_token_key_signs_documents_that_verify() {
    with_token("a_token_key_signs_documents_that_verify", |hsm| {
        hsm.generate("doc", KeyKind::EcP256);
        assert_eq!(
            hsm.private_value("doc"),
            Ok(None),
            "the key is not extractable"
        );
        let dir = tempfile::tempdir().unwrap();
        let (leaf, ca) = certify_token_key(hsm, dir.path());

        let key = Signer::open(&hsm.uri("doc"), Algorithm::EcdsaP256Sha256).unwrap();
        assert!(key.is_token());
        let signer = DocumentSigner::new(key, vec![leaf.clone(), ca]).unwrap();
        assert_eq!(signer.municipality().map(|c| c.as_str()), Some(CODE));
        let renderer = Renderer::new(signer);
        let doc = renderer
            .render(&samples::sample(CertificateType::ALL[0]).unwrap())
            .unwrap();

        verify_pdf_signature(&doc.pdf, &leaf).unwrap();
        let mut trusted = TrustedKeys::new();
        trusted.add_certificate_der(&leaf, None).unwrap();
        verify_qr_payload(&doc.qr_payload, &trusted).unwrap();

        let path = dir.path().join("issued.pdf");
        std::fs::write(&path, &doc.pdf).unwrap();
        let (_, out) = run("pdfsig", dir.path(), &[path.to_str().unwrap()]);
        assert!(
            out.contains("Signature Validation: Signature is Valid."),
            "{out}"
        );
        assert!(out.contains("Total document signed"), "{out}");
        assert!(!out.contains("Not total document signed"), "{out}");
    });
}

/// `issuer serve` with a key reference it cannot use exits before binding, naming the flag.
fn serve_refusal(dir: &Path, key: &str) -> String {
    let pki = PKI;
    let db = format!("sqlite://{}/register.db", dir.display());
    let output = Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args([
            "serve",
            "--db",
            &db,
            "--municipality",
            CODE,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--pki", pki, "--signing-key", key])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    stderr
}

#[test]
fn serve_names_the_signing_key_setting_when_the_token_refuses() {
    with_token(
        "serve_names_the_signing_key_setting_when_the_token_refuses",
        |hsm| {
            hsm.generate("doc", KeyKind::EcP256);
            let dir = tempfile::tempdir().unwrap();
            let wrong_pin = dir.path().join("wrong.pin");
            std::fs::write(&wrong_pin, "999999\n").unwrap();
            let pin = hsm.pin_file().display().to_string();
            let uri = |token: &str, object: &str, module: &str, pin: &str| {
                format!(
                    "pkcs11:token={token};object={object}?module-path={module}&pin-source=file:{pin}"
                )
            };
            let cases = [
                (
                    uri(TOKEN, "doc", MODULE, &wrong_pin.display().to_string()),
                    "incorrect PIN",
                ),
                (
                    uri(TOKEN, "missing", MODULE, &pin),
                    "no private key object pkcs11:token=kiosk-test;object=missing",
                ),
                (
                    uri("absent", "doc", MODULE, &pin),
                    "no token labelled `absent`",
                ),
                (
                    uri(TOKEN, "doc", "/nonexistent/module.so", &pin),
                    "PKCS#11 module /nonexistent/module.so",
                ),
                (
                    "pkcs11:token=t;object=o?pin-value=1".to_owned(),
                    "pin-value is refused",
                ),
                (
                    "pkcs11:token=t;object=o".to_owned(),
                    "`module-path` is required",
                ),
            ];
            for (key, want) in cases {
                let stderr = serve_refusal(dir.path(), &key);
                assert!(stderr.contains("--signing-key: "), "{key}: {stderr}");
                assert!(stderr.contains(want), "{key}: want {want}: {stderr}");
                assert!(
                    !stderr.contains("999999") && !stderr.contains(kiosk_devkit::softhsm::USER_PIN)
                );
            }
        },
    );
}

/// The end to end: `issuer serve --signing-key pkcs11:...` as a process renders a resident's
/// document over mutual TLS, signed on the token, valid against the openssl CA's certificate.
#[test]
fn issuer_serve_renders_with_the_token_key() {
    with_token("issuer_serve_renders_with_the_token_key", |hsm| {
        hsm.generate("doc", KeyKind::EcP256);
        let dir = tempfile::tempdir().unwrap();
        let (leaf, _) = certify_token_key(hsm, dir.path());
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(dir.path().join("doc.pem")).unwrap(),
            std::fs::read_to_string(dir.path().join("ca.pem")).unwrap()
        );
        std::fs::write(dir.path().join("chain.pem"), chain).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(render_through_serve(hsm, dir.path(), &leaf));
    });
}

async fn render_through_serve(hsm: &SoftHsm, dir: &Path, leaf: &[u8]) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::sqlite().await;
    let (_, report) = generated(&db, 20).await;
    let resident = report.example(Case::Family).unwrap().clone();
    let mut child = Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args([
            "serve",
            "--db",
            &db.url,
            "--municipality",
            CODE,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--pki", PKI, "--signing-key", &hsm.uri("doc")])
        .arg("--signing-cert")
        .arg(dir.join("chain.pem"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("issuer.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit_once("https://")
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.join("issuer.log")).unwrap_or_default();
            panic!("issuer serve did not start: {line:?}\n{log}")
        })
        .1
        .to_owned();

    let read = |name: &str| std::fs::read(format!("{PKI}/{name}")).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("internal-ca.crt.pem")))
        .identity(Identity::from_pem(
            read("gateway-internal.crt.pem"),
            read("gateway-internal.key.pem"),
        ))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let order = RequestItem {
        ty: CertificateType::ResidentRecordItems,
        options: CertificateOptions::default(),
        subject_refs: vec![],
        copies: 1,
    };
    let rendered = pb::issuer_service_client::IssuerServiceClient::new(channel)
        .render(pb::RenderRequest {
            issuance_id: "iss-pkcs11-1".into(),
            municipality_code: CODE.into(),
            requester_ref: resident.as_str().into(),
            items: vec![item_to_wire(&order)],
            issued_at: Some(prost_types::Timestamp {
                seconds: OPEN.unix_timestamp(),
                nanos: 0,
            }),
        })
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let documents = rendered.unwrap().into_inner().documents;
    assert_eq!(documents.len(), 1);
    verify_pdf_signature(&documents[0].pdf, leaf).unwrap();
    db.cleanup().await;
}
