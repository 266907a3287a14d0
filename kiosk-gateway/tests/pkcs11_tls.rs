//! `keys.server_key = "pkcs11:…"`: the gateway's TLS server key on a PKCS#11 token (SoftHSM2,
//! P-256, non-extractable). `config check` refuses a certificate that does not belong to the
//! token key, naming the setting; a production `serve` completes real TLS 1.3 handshakes whose
//! CertificateVerify the token signed.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::Path;

use common::{Process, gateway_command, production_config};
use kiosk_devkit::softhsm::{KeyKind, with_token};
use kiosk_devkit::testpki::{DevPki, files};
use kiosk_keys::{Algorithm, Signer};

/// DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A server certificate for `localhost` over the token key's public half, issued by the
/// development PKI's server CA (the CA the clients trust), as PEM.
fn certificate_for_token_key(pki: &DevPki, token_key: &Signer) -> String {
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(token_key.public_key());
    let public = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.key_path(files::SERVER_CA)).unwrap())
            .unwrap();
    let ca_pem = std::fs::read_to_string(pki.cert_path(files::SERVER_CA)).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.signed_by(&public, &issuer).unwrap().pem()
}

/// Replaces the line of `config` that starts with `key = ` by `key = <value>`.
fn set(config: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let prefix = format!("{key} = ");
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value:?}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&prefix)),
        "{key} in {text}"
    );
    std::fs::write(config, lines.join("\n") + "\n").unwrap();
}

fn config_check(config: &Path) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command.args(["config", "check", "--config"]).arg(config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

#[test]
fn a_production_gateway_serves_tls_with_its_key_on_the_token() {
    with_token(
        "a_production_gateway_serves_tls_with_its_key_on_the_token",
        |hsm| {
            hsm.generate("tls", KeyKind::EcP256);
            assert_eq!(hsm.private_value("tls"), Ok(None), "not extractable");
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("deployment");
            let pki_dir = root.join("pki");
            let pki = DevPki::ensure(&pki_dir).unwrap();
            let config = production_config(&root, &pki);
            set(&config, "server_key", &hsm.uri("tls"));

            // The development gateway certificate belongs to another key: refused by name.
            let refused = config_check(&config);
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(64), "{stderr}");
            assert!(stderr.contains("keys.server_key: "), "{stderr}");
            assert!(stderr.contains("(trust.server_cert)"), "{stderr}");

            let token_key = Signer::open(&hsm.uri("tls"), Algorithm::EcdsaP256Sha256).unwrap();
            let cert = root.join("gateway-token.crt.pem");
            std::fs::write(&cert, certificate_for_token_key(&pki, &token_key)).unwrap();
            set(&config, "server_cert", cert.to_str().unwrap());
            let ok = config_check(&config);
            assert_eq!(
                ok.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );

            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let (gateway, addr) =
                    Process::spawn(gateway_command(&config), dir.path().join("gateway.log")).await;
                // A call over a handshake whose signature the token made.
                let note = common::auditor_checkpoint(&addr, &pki_dir).await;
                assert!(!note.is_empty());
                gateway.terminate().await;
            });
        },
    );
}
