//! The checkpoint key on a PKCS#11 token (SoftHSM2, Ed25519 through CKM_EDDSA): checkpoints
//! signed on the token verify with a verifier built from nothing but the token's public key.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use audit::checkpoint::{CheckpointError, CheckpointSigner, CheckpointVerifier};
use audit::merkle::Hash;
use kiosk_devkit::softhsm::{KeyKind, with_token};
use kiosk_keys::{Algorithm, KeyError, Signer};

const ORIGIN: &str = "kiosk.example.lg.jp/audit/v1";

#[test]
fn checkpoints_signed_on_the_token_verify_with_its_public_key() {
    with_token(
        "checkpoints_signed_on_the_token_verify_with_its_public_key",
        |hsm| {
            hsm.generate("checkpoint", KeyKind::Ed25519);
            assert_eq!(hsm.private_value("checkpoint"), Ok(None), "not extractable");
            let key = Signer::open(&hsm.uri("checkpoint"), Algorithm::Ed25519).unwrap();
            let public_key: [u8; 32] = key.public_key().try_into().unwrap();
            let signer = CheckpointSigner::from_signer(ORIGIN, key).unwrap();

            let root = Hash::from_slice(&[7u8; 32]).unwrap();
            let signed = signer.sign(42, root).unwrap();
            // The auditor's side knows only the origin and the public key read from the token.
            let verifier = CheckpointVerifier::new(ORIGIN, public_key).unwrap();
            let checkpoint = verifier.verify(signed.note()).unwrap();
            assert_eq!(checkpoint.checkpoint().size(), 42);
            // A note altered after signing does not verify.
            let forged = signed.note().replacen("\n42\n", "\n43\n", 1);
            assert_eq!(verifier.verify(&forged), Err(CheckpointError::BadSignature));
            assert!(format!("{signer:?}").contains("pkcs11:token=kiosk-test;object=checkpoint"));

            // A P-256 key is not a checkpoint key.
            hsm.generate("doc", KeyKind::EcP256);
            assert_eq!(
                Signer::open(&hsm.uri("doc"), Algorithm::Ed25519).unwrap_err(),
                KeyError::WrongKind(
                    "pkcs11:token=kiosk-test;object=doc".into(),
                    Algorithm::Ed25519
                )
            );
        },
    );
}
