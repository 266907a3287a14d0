//! The gateway built without its default feature `embedded`, as a production gateway is: it
//! has no `demo` and no dev profile (`profile = "dev"`, `KIOSK_PROFILE=dev` and `--dev` are
//! refused), and `serve` without configured trust and key files refuses to start with exit
//! code 64 before it binds or writes anything, naming every missing key (and every configured
//! file it cannot read).
//!
//! Cargo builds an integration test's binaries with the test's features (here always with
//! `embedded`: the dev-dependency on kiosk-tests turns it on), so this test builds the
//! production binary itself with `cargo build -p kiosk-gateway --no-default-features` into the
//! same target directory (after `.ci/run` has built it, that is only a check), copies it away,
//! and puts the featured binary back under its name for the tests that run after it. It is
//! the only test in this file, so nothing runs beside it while the name is swapped.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Puts the featured binary back under its name when dropped (a rename: the name is a hard
/// link into cargo's deps directory, which must not be written through).
struct Restore {
    saved: PathBuf,
    name: PathBuf,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let temporary = self.name.with_extension("restoring");
        if std::fs::copy(&self.saved, &temporary).is_ok() {
            let _ = std::fs::rename(&temporary, &self.name);
        }
    }
}

/// Builds the gateway without default features and returns a copy of it in `dir`.
fn production_binary(dir: &Path) -> PathBuf {
    let featured = PathBuf::from(env!("CARGO_BIN_EXE_kiosk-gateway"));
    let profile_dir = featured.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let restore = Restore {
        saved: dir.join("kiosk-gateway-featured"),
        name: featured.clone(),
    };
    std::fs::copy(&featured, &restore.saved).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // What cargo set for this test process is not the build's environment: a build script
    // that watches one of these (ring's watches CARGO_MANIFEST_DIR) would otherwise be rerun,
    // and everything after it rebuilt, here and again in the next ordinary build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "OUT_DIR"
        {
            build.env_remove(name.as_ref());
        }
    }
    let built = build
        .args(["build", "-p", "kiosk-gateway", "--bin", "kiosk-gateway"])
        .args([
            "--no-default-features",
            "--message-format=json",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "cargo build --no-default-features:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let stdout = String::from_utf8(built.stdout).unwrap();
    let executable = stdout
        .lines()
        .filter(|line| line.contains("\"name\":\"kiosk-gateway\""))
        .find_map(|line| line.split_once("\"executable\":\"")?.1.split_once('"'))
        .map(|(path, _)| PathBuf::from(path))
        .unwrap_or_else(|| panic!("no executable in cargo's messages:\n{stdout}"));
    let production = dir.join("kiosk-gateway-production");
    std::fs::copy(&executable, &production).unwrap();
    drop(restore);
    production
}

/// Runs `binary` with `args` in `dir`, with no `KIOSK_*` variable but `vars`.
fn run(binary: &Path, dir: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(binary);
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn without_the_embedded_feature_serve_needs_trust_files_and_demo_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let binary = production_binary(root);

    // No configuration at all: every key is named, nothing is created.
    let data = root.join("data");
    let refused = run(&binary, root, &["serve"], &[("KIOSK_DATA_DIR", &data)]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(64), "{stdout}\n{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    for key in kiosk_gateway::config::TRUST_KEYS {
        let line = format!(
            "{key}: not set (or {})",
            kiosk_gateway::config::env_var(key)
        );
        assert!(stderr.contains(&line), "{line}:\n{stderr}");
    }
    for line in [
        "client_crl_files: not set",
        "card_crl_file: not set",
        "municipalities: 131016 would be issued in this process",
        "remote_issuers: none",
    ] {
        assert!(stderr.contains(line), "{line}:\n{stderr}");
    }
    assert!(!data.exists(), "the data directory was created");
    assert!(
        !root.join(".kiosk-data").exists(),
        "a development PKI was made"
    );

    // A configured file that is missing is named with its key.
    let missing = root.join("ca/auditor-ca.crt.pem");
    let config = root.join("gateway.toml");
    std::fs::write(&config, format!("[trust]\nauditor_ca = {missing:?}\n")).unwrap();
    let refused = run(&binary, root, &["serve", "--config", "gateway.toml"], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(64), "{stderr}");
    let line = format!("trust.auditor_ca: {}: No such file", missing.display());
    assert!(stderr.contains(&line), "{line}:\n{stderr}");

    // The dev profile, asked for by the file, the variable or --dev, is refused: this build
    // has none.
    std::fs::write(&config, "profile = \"dev\"\n").unwrap();
    let asked = [
        run(&binary, root, &["serve", "--config", "gateway.toml"], &[]),
        run(&binary, root, &["serve", "--dev"], &[]),
        run(&binary, root, &["config", "check", "--dev"], &[]),
        run(
            &binary,
            root,
            &["serve"],
            &[("KIOSK_PROFILE", Path::new("dev"))],
        ),
    ];
    for refused in asked {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(64), "{stderr}");
        assert!(
            stderr.contains("dev: this build has no development deployment"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&refused.stdout).contains("listening"));
    }
    assert!(
        !root.join(".kiosk-data").exists(),
        "a development PKI was made"
    );

    // There is no demo in a production build.
    let demo = run(&binary, root, &["demo"], &[]);
    assert_eq!(demo.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&demo.stderr).contains("unrecognized subcommand 'demo'"),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let help = String::from_utf8(run(&binary, root, &["--help"], &[]).stdout).unwrap();
    assert!(help.contains("serve") && !help.contains("demo"), "{help}");
}
