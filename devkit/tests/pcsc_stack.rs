//! The JPKI client and OpenSC against the software card through the real PC/SC stack:
//! our own pcscd (private reader config on a free loopback port), vsmartcard's vpcd driver,
//! and the `card-emulator` binary. Needs pcscd, vsmartcard-vpcd and opensc installed
//! (scripts/install-deps.sh); run with `cargo test -p kiosk-devkit --features pcsc`.
// Helpers outside #[test] functions panic on purpose: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "pcsc")]

use std::path::{Path, PathBuf};
use std::process::Command;

use card::apdu::{Command as Apdu, StatusWord};
use card::jpki::{JpkiCard, JpkiError};
use card::pcsc::PcscContext;
use card::transport::{TransportError, exchange};
use card::{Pin, login};
use kiosk_devkit::softcard::CardFile;
use kiosk_devkit::testing::{EmulatorProcess, PcscStack};
use rustls_pki_types::{CertificateDer, UnixTime};

const EMULATOR: &str = env!("CARGO_BIN_EXE_card-emulator");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pki")
}

/// Copies a fixture card into a temp dir (the emulator writes counters back to it).
fn card_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::copy(
        fixture_dir().join("cards").join(format!("{name}.toml")),
        &path,
    )
    .unwrap();
    (dir, path)
}

fn insert(stack: &PcscStack, card: &Path) -> EmulatorProcess {
    stack.insert_card(Path::new(EMULATOR), card, 0).unwrap()
}

fn pin(s: &str) -> Pin {
    Pin::parse(s).unwrap()
}

fn connect(stack: &PcscStack) -> card::pcsc::PcscTransport {
    let ctx = PcscContext::establish().unwrap();
    let reader = ctx
        .wait_for_card(Some(&stack.reader(0)), std::time::Duration::from_secs(10))
        .unwrap();
    ctx.connect(&reader).unwrap()
}

fn pem_der(pem_text: &str) -> Vec<u8> {
    kiosk_document::pem::certificate_der(pem_text.as_bytes()).unwrap()
}

/// Full chain + revocation check of the card certificate with webpki, as the gateway does.
fn verify_chain(cert: &[u8]) -> Result<(), webpki::Error> {
    let ca = pem_der(&std::fs::read_to_string(fixture_dir().join("jpki-auth-ca.crt.pem")).unwrap());
    let ca = CertificateDer::from(ca);
    let anchors = [webpki::anchor_from_trusted_cert(&ca).unwrap().to_owned()];
    let crl = std::fs::read(fixture_dir().join("jpki-auth-ca.crl.der")).unwrap();
    let crl =
        webpki::CertRevocationList::Owned(webpki::OwnedCertRevocationList::from_der(&crl).unwrap());
    let crls = [&crl];
    let revocation = webpki::RevocationOptionsBuilder::new(&crls)
        .unwrap()
        .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
        .build();
    let der = CertificateDer::from(cert.to_vec());
    let ee = webpki::EndEntityCert::try_from(&der).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        Some(revocation),
        None,
    )
    .map(|_| ())
}

#[test]
fn login_through_pcscd_wrong_pin_then_right_pin_and_sign() {
    let stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0001");
    let _emulator = insert(&stack, &file);
    let transport = connect(&stack);
    assert_eq!(transport.atr().unwrap(), kiosk_devkit::softcard::ATR);
    let mut card = JpkiCard::open(transport).unwrap();
    let cert = card.read_auth_certificate().unwrap();
    let on_file = CardFile::load(&file).unwrap();
    assert_eq!(
        cert,
        pem_der(on_file.auth.as_ref().unwrap().certificate.as_ref().unwrap())
    );
    verify_chain(&cert).unwrap();
    assert_eq!(card.pin_tries_left().unwrap(), 3);
    let failed = card.verify_pin(&pin("9876")).unwrap_err();
    assert_eq!(failed.error(), &JpkiError::WrongPin { tries_left: 2 });
    let mut card = failed.into_card();
    assert_eq!(card.pin_tries_left().unwrap(), 2);
    let mut verified = card.verify_pin(&pin("1234")).unwrap();
    let context = login::context_bytes("gw-dev-01", "seven/131016-0042/k1", "s-42").unwrap();
    let challenge = [0x5Au8; 32];
    let proof = login::authenticate(&mut verified, &challenge, &context).unwrap();
    assert_eq!(proof.certificate, cert);
    login::verify_signature(&proof.certificate, &context, &challenge, &proof.signature).unwrap();
    // And with ring directly, against the certificate's key, over the contract's message.
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        parsed
            .tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .as_ref(),
    )
    .verify(
        &login::signed_message(&context, &challenge),
        &proof.signature,
    )
    .unwrap();
    verified.into_transport().disconnect_with_reset().unwrap();
    // The correct PIN reset the counter, and the card file says so too.
    let mut card = JpkiCard::open(connect(&stack)).unwrap();
    assert_eq!(card.pin_tries_left().unwrap(), 3);
}

#[test]
fn three_wrong_pins_block_across_reconnects_and_emulator_restarts() {
    let stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0002");
    let emulator = insert(&stack, &file);
    let mut card = JpkiCard::open(connect(&stack)).unwrap();
    for expected in [
        JpkiError::WrongPin { tries_left: 2 },
        JpkiError::WrongPin { tries_left: 1 },
        JpkiError::PinBlocked,
    ] {
        let failed = card.verify_pin(&pin("0000")).unwrap_err();
        assert_eq!(failed.error(), &expected);
        card = failed.into_card();
    }
    card.into_transport().disconnect_with_reset().unwrap();
    let mut card = JpkiCard::open(connect(&stack)).unwrap();
    assert_eq!(
        card.pin_tries_left().unwrap(),
        0,
        "a reset does not unblock"
    );
    drop(card);
    assert!(
        emulator.terminate().unwrap().success(),
        "clean exit on SIGTERM"
    );
    assert_eq!(CardFile::load(&file).unwrap().auth.unwrap().tries_left, 0);
    let _emulator = insert(&stack, &file);
    let card = JpkiCard::open(connect(&stack)).unwrap();
    let failed = card.verify_pin(&pin("1234")).unwrap_err();
    assert_eq!(failed.error(), &JpkiError::PinBlocked);
}

#[test]
fn reset_clears_the_verified_state() {
    let stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0001");
    let _emulator = insert(&stack, &file);
    let verified = JpkiCard::open(connect(&stack))
        .unwrap()
        .verify_pin(&pin("1234"))
        .unwrap();
    verified.into_transport().disconnect_with_reset().unwrap();
    // A new session that skips VERIFY: the card refuses to sign.
    let mut t = connect(&stack);
    let send = |t: &mut card::pcsc::PcscTransport, c: Apdu| exchange(t, &c).unwrap().sw();
    let aid = card::jpki::JPKI_AID.to_vec();
    assert_eq!(
        send(&mut t, Apdu::new(0, 0xA4, 4, 0x0C, aid, None).unwrap()),
        StatusWord::OK
    );
    assert_eq!(
        send(
            &mut t,
            Apdu::new(0, 0xA4, 2, 0x0C, vec![0, 0x17], None).unwrap()
        ),
        StatusWord::OK
    );
    let sign = Apdu::new(0x80, 0x2A, 0, 0x80, vec![0x30; 51], Some(256)).unwrap();
    assert_eq!(send(&mut t, sign), StatusWord::SECURITY_NOT_SATISFIED);
}

#[test]
fn a_reset_by_another_application_ends_the_verified_session() {
    let stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0001");
    let _emulator = insert(&stack, &file);
    let mut verified = JpkiCard::open(connect(&stack))
        .unwrap()
        .verify_pin(&pin("1234"))
        .unwrap();
    // A second application connects (shared mode) and leaves with a reset.
    connect(&stack).disconnect_with_reset().unwrap();
    assert_eq!(
        verified.sign_digest_info(&[0x30; 51]),
        Err(JpkiError::Transport(TransportError::CardReset))
    );
}

#[test]
fn removed_card_and_stopped_service_are_typed_errors() {
    let mut stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0001");
    let emulator = insert(&stack, &file);
    let mut card = JpkiCard::open(connect(&stack)).unwrap();
    emulator.kill().unwrap();
    assert_eq!(card.read_auth_certificate(), Err(JpkiError::CardRemoved));
    let ctx = PcscContext::establish().unwrap();
    // pcscd notices the removal on its next presence poll.
    let gone =
        kiosk_devkit::testing::poll_until(std::time::Duration::from_secs(10), "removal", || {
            Ok(ctx.connect(&stack.reader(0)).err())
        })
        .unwrap();
    assert_eq!(gone, TransportError::NoCard);
    assert_eq!(
        ctx.wait_for_card(
            Some(&stack.reader(0)),
            std::time::Duration::from_millis(300)
        ),
        Err(TransportError::Timeout)
    );
    assert_eq!(
        ctx.connect("No Such Reader 00 00").unwrap_err(),
        TransportError::NoReader
    );
    drop(card);
    stack.stop_pcscd().unwrap();
    assert_eq!(
        PcscContext::establish().unwrap_err(),
        TransportError::NoService
    );
}

#[test]
fn emulator_reconnects_after_pcscd_restarts() {
    let mut stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("resident-0001");
    let mut emulator = insert(&stack, &file);
    stack.restart_pcscd().unwrap();
    emulator.wait_present(&stack.reader(0)).unwrap();
    let mut card = JpkiCard::open(connect(&stack)).unwrap();
    assert!(card.read_auth_certificate().is_ok());
    drop(card);
    assert!(emulator.terminate().unwrap().success());
}

#[test]
fn juki_card_over_pcsc_is_refused() {
    let stack = PcscStack::start().unwrap();
    let (_dir, file) = card_copy("juki-0004");
    let _emulator = insert(&stack, &file);
    assert_eq!(
        JpkiCard::open(connect(&stack)).unwrap_err(),
        JpkiError::JukiCard
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is opensc installed?)"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn opensc_pkcs11_module() -> PathBuf {
    let candidates = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("opensc-pkcs11.so"))
        .chain([PathBuf::from("/usr/lib/opensc-pkcs11.so")]);
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("opensc-pkcs11.so (install opensc)")
}

#[test]
fn opensc_recognises_the_card_and_its_pkcs11_signature_verifies() {
    let stack = PcscStack::start().unwrap();
    let (dir, file) = card_copy("resident-0001");
    let _emulator = insert(&stack, &file);
    let reader = stack.reader(0);
    let name = run(Command::new("opensc-tool").args(["-r", &reader, "-n"]));
    assert_eq!(name.trim(), "jpki");
    let certs = run(Command::new("pkcs15-tool").args(["-r", &reader, "--list-certificates"]));
    for label in [
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ] {
        assert!(
            certs.contains(&format!("[{label}]")),
            "{label} missing:\n{certs}"
        );
    }
    let pins = run(Command::new("pkcs15-tool").args(["-r", &reader, "--list-pins"]));
    assert!(pins.contains("Tries left     : 3"), "{pins}");
    let data = dir.path().join("data.bin");
    let sig = dir.path().join("sig.bin");
    std::fs::write(&data, b"signed through OpenSC's PKCS#11 module").unwrap();
    run(Command::new("pkcs11-tool")
        .arg("--module")
        .arg(opensc_pkcs11_module())
        .args([
            "--token-label",
            "JPKI (User Authentication PIN)",
            "--login",
            "--pin",
            "1234",
        ])
        .args(["--sign", "--id", "01", "-m", "SHA256-RSA-PKCS", "-i"])
        .arg(&data)
        .arg("-o")
        .arg(&sig));
    let signature = std::fs::read(&sig).unwrap();
    let cert = pem_der(
        CardFile::load(&file)
            .unwrap()
            .auth
            .unwrap()
            .certificate
            .as_ref()
            .unwrap(),
    );
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        parsed
            .tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .as_ref(),
    )
    .verify(&std::fs::read(&data).unwrap(), &signature)
    .unwrap();
}
