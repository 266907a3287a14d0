//! Keys on a real SoftHSM2 token: generated non-extractable, used to sign, and every way of
//! naming one wrongly refused with a message naming what is wrong.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use kiosk_devkit::softhsm::{KeyKind, MODULE, TOKEN, with_token};
use kiosk_keys::{Algorithm, KeyError, Signer};
use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};

#[test]
fn token_keys_sign_and_never_leave_the_token() {
    with_token("token_keys_sign_and_never_leave_the_token", |hsm| {
        hsm.generate("doc", KeyKind::EcP256);
        hsm.generate("checkpoint", KeyKind::Ed25519);
        // The token refuses to hand out either private value.
        assert_eq!(hsm.private_value("doc"), Ok(None));
        assert_eq!(hsm.private_value("checkpoint"), Ok(None));

        let doc = Signer::open(&hsm.uri("doc"), Algorithm::EcdsaP256Sha256).unwrap();
        assert!(doc.is_token());
        assert_eq!(doc.public_key().len(), 65);
        assert_eq!(doc.description(), "pkcs11:token=kiosk-test;object=doc");
        let fixed = doc.sign(b"message").unwrap();
        let der = kiosk_keys::ecdsa_fixed_to_der(&fixed);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, doc.public_key())
            .verify(b"message", &der)
            .unwrap();

        let cp = Signer::open(&hsm.uri("checkpoint"), Algorithm::Ed25519).unwrap();
        let sig = cp.sign(b"note").unwrap();
        UnparsedPublicKey::new(&ED25519, cp.public_key())
            .verify(b"note", &sig)
            .unwrap();
        // Debug shows no key material.
        assert!(!format!("{cp:?}").contains(&format!("{:?}", cp.public_key())));
    });
}

fn open_error(reference: &str, algorithm: Algorithm) -> KeyError {
    Signer::open(reference, algorithm).unwrap_err()
}

#[test]
fn wrong_references_are_refused_precisely() {
    with_token("wrong_references_are_refused_precisely", |hsm| {
        hsm.generate("doc", KeyKind::EcP256);
        let pin = hsm.pin_file().display().to_string();

        let wrong_pin = hsm.dir().join("wrong.pin");
        std::fs::write(&wrong_pin, "000000\n").unwrap();
        let uri = format!(
            "pkcs11:token={TOKEN};object=doc?module-path={MODULE}&pin-source=file:{}",
            wrong_pin.display()
        );
        let e = open_error(&uri, Algorithm::EcdsaP256Sha256);
        assert_eq!(e, KeyError::WrongPin);
        assert!(!e.to_string().contains("000000"));

        let uri =
            format!("pkcs11:token={TOKEN};object=nope?module-path={MODULE}&pin-source=file:{pin}");
        assert_eq!(
            open_error(&uri, Algorithm::EcdsaP256Sha256),
            KeyError::ObjectNotFound(format!("pkcs11:token={TOKEN};object=nope"))
        );

        let uri =
            format!("pkcs11:token=other;object=doc?module-path={MODULE}&pin-source=file:{pin}");
        assert_eq!(
            open_error(&uri, Algorithm::EcdsaP256Sha256),
            KeyError::TokenNotFound("other".into())
        );

        let uri = format!(
            "pkcs11:token={TOKEN};object=doc?module-path=/nonexistent/libpkcs11.so&pin-source=file:{pin}"
        );
        let e = open_error(&uri, Algorithm::EcdsaP256Sha256);
        assert!(
            matches!(&e, KeyError::Module(path, _) if path == "/nonexistent/libpkcs11.so"),
            "{e}"
        );

        let uri = format!(
            "pkcs11:token={TOKEN};object=doc?module-path={MODULE}&pin-source=env:KIOSK_TEST_NO_SUCH_PIN"
        );
        let e = open_error(&uri, Algorithm::EcdsaP256Sha256);
        assert!(e.to_string().contains("KIOSK_TEST_NO_SUCH_PIN"), "{e}");

        let uri = format!(
            "pkcs11:token={TOKEN};object=doc?module-path={MODULE}&pin-source=file:{}/absent.pin",
            hsm.dir().display()
        );
        let e = open_error(&uri, Algorithm::EcdsaP256Sha256);
        assert!(e.to_string().contains("absent.pin"), "{e}");

        // A P-256 key asked for as an Ed25519 key.
        assert_eq!(
            open_error(&hsm.uri("doc"), Algorithm::Ed25519),
            KeyError::WrongKind(
                format!("pkcs11:token={TOKEN};object=doc"),
                Algorithm::Ed25519
            )
        );

        let e = open_error("pkcs11:token=t;object=o?pin-value=1234", Algorithm::Ed25519);
        assert!(matches!(e, KeyError::Uri(_)), "{e}");
    });
}
