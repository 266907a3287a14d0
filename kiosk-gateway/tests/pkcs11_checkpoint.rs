//! `keys.checkpoint_key`: the audit checkpoints' Ed25519 key on a PKCS#11 token (SoftHSM2).
//! `kiosk-gateway config check` opens it (from the file or `KIOSK_KEYS_CHECKPOINT_KEY`), and
//! refuses a wrong PIN, a missing object or a key set together with `checkpoint_seed`,
//! naming the setting; the PIN never appears. A production `serve` signs its checkpoints on
//! the token, and an auditor verifies them with the token's public key.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{GATEWAY_ID, Process, gateway_command, production_config};
use kiosk_devkit::softhsm::{KeyKind, MODULE, TOKEN, USER_PIN, with_token};
use kiosk_devkit::testpki::DevPki;
use kiosk_keys::{Algorithm, Signer};

/// `kiosk-gateway config check --config <config>`, with no `KIOSK_*` variable but `vars`.
fn check(config: &Path, vars: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command.args(["config", "check", "--config"]).arg(config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    command.envs(vars.iter().copied());
    command.output().unwrap()
}

/// The configuration with its checkpoint line (`checkpoint_seed` or `checkpoint_key`)
/// replaced by `line`; an empty `line` leaves neither.
fn with_checkpoint_line(config: &Path, line: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut replaced = 0;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with("checkpoint_seed = ") || l.starts_with("checkpoint_key = ") {
                replaced += 1;
                line
            } else {
                l
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one checkpoint line in {text}");
    std::fs::write(config, lines.join("\n") + "\n").unwrap();
}

#[test]
fn the_checkpoint_key_on_a_token_is_opened_or_refused_by_name() {
    with_token(
        "the_checkpoint_key_on_a_token_is_opened_or_refused_by_name",
        |hsm| {
            hsm.generate("checkpoint", KeyKind::Ed25519);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("deployment");
            let pki = DevPki::ensure(&root.join("pki")).unwrap();
            let config = production_config(&root, &pki);
            let seed_line = std::fs::read_to_string(&config)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("checkpoint_seed = "))
                .unwrap()
                .to_owned();

            // The token key instead of the seed: the configuration is usable.
            with_checkpoint_line(
                &config,
                &format!("checkpoint_key = {:?}", hsm.uri("checkpoint")),
            );
            let ok = check(&config, &[]);
            let stderr = String::from_utf8_lossy(&ok.stderr);
            assert_eq!(ok.status.code(), Some(0), "{stderr}");
            // The effective configuration shows the key reference (it holds no PIN).
            let stdout = String::from_utf8_lossy(&ok.stdout);
            let line = format!("\ncheckpoint_key = {:?}  # ", hsm.uri("checkpoint"));
            assert!(stdout.contains(&line), "{stdout}");
            assert!(stdout.contains("# checkpoint_seed: not set"), "{stdout}");

            // A wrong PIN, named by its setting, the PIN itself nowhere.
            let wrong = dir.path().join("wrong.pin");
            std::fs::write(&wrong, "123123\n").unwrap();
            let uri = format!(
                "pkcs11:token={TOKEN};object=checkpoint?module-path={MODULE}&pin-source=file:{}",
                wrong.display()
            );
            with_checkpoint_line(&config, &format!("checkpoint_key = {uri:?}"));
            let refused = check(&config, &[]);
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(64), "{stderr}");
            assert!(
                stderr.contains("keys.checkpoint_key: the token refused the PIN"),
                "{stderr}"
            );
            assert!(
                !stderr.contains("123123") && !stderr.contains(USER_PIN),
                "{stderr}"
            );

            // From the variable, with no key in the file: a missing object.
            with_checkpoint_line(&config, "");
            let missing = hsm.uri("nothing-here");
            let refused = check(&config, &[("KIOSK_KEYS_CHECKPOINT_KEY", &missing)]);
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(64), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "keys.checkpoint_key (KIOSK_KEYS_CHECKPOINT_KEY): no private key object \
                 pkcs11:token={TOKEN};object=nothing-here"
                )),
                "{stderr}"
            );
            let ok = check(
                &config,
                &[("KIOSK_KEYS_CHECKPOINT_KEY", &hsm.uri("checkpoint"))],
            );
            assert_eq!(
                ok.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );

            // Both the seed and the key: one of them must go.
            let text = std::fs::read_to_string(&config).unwrap();
            let both = text.replace("[keys]\n", &format!("[keys]\n{seed_line}\n"));
            std::fs::write(&config, both).unwrap();
            let refused = check(
                &config,
                &[("KIOSK_KEYS_CHECKPOINT_KEY", &hsm.uri("checkpoint"))],
            );
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(64), "{stderr}");
            assert!(
                stderr.contains(
                    "keys.checkpoint_key (KIOSK_KEYS_CHECKPOINT_KEY): set together with \
                     keys.checkpoint_seed"
                ),
                "{stderr}"
            );
        },
    );
}

#[test]
fn a_production_gateway_signs_checkpoints_on_the_token() {
    with_token(
        "a_production_gateway_signs_checkpoints_on_the_token",
        |hsm| {
            hsm.generate("checkpoint", KeyKind::Ed25519);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("deployment");
            let pki_dir = root.join("pki");
            let pki = DevPki::ensure(&pki_dir).unwrap();
            let config = production_config(&root, &pki);
            with_checkpoint_line(
                &config,
                &format!("checkpoint_key = {:?}", hsm.uri("checkpoint")),
            );
            // What an operator hands the auditors: the token's public key.
            let public_key: [u8; 32] = Signer::open(&hsm.uri("checkpoint"), Algorithm::Ed25519)
                .unwrap()
                .public_key()
                .try_into()
                .unwrap();
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let (gateway, addr) =
                    Process::spawn(gateway_command(&config), dir.path().join("gateway.log")).await;
                let note = common::auditor_checkpoint(&addr, &pki_dir).await;
                let verifier = audit::checkpoint::CheckpointVerifier::new(
                    &format!("{GATEWAY_ID}/audit"),
                    public_key,
                )
                .unwrap();
                let signed = verifier.verify(&note).unwrap();
                assert!(signed.checkpoint().size() >= 1, "at least STARTED");
                gateway.terminate().await;
            });
        },
    );
}
