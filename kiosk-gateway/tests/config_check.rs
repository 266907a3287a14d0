//! `kiosk-gateway config check` through the real binary: a good production configuration
//! passes (exit 0) and creates nothing, a bad one is refused with exit 64 naming every
//! problem, a database password never reaches the output, a `KIOSK_*` variable overrides the
//! file and is shown as the setting's source, and the dev profile is printed as TEST ONLY.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{production_config, snapshot};
use kiosk_devkit::testpki::DevPki;

/// `kiosk-gateway config check <args>` in `dir`, with no `KIOSK_*` variable but `vars`.
fn check(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command
        .current_dir(dir)
        .args(["config", "check"])
        .args(args);
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

/// Stdout and stderr of `output`, together.
fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `config` with the line starting `key =` replaced by `line`.
fn set(config: &Path, key: &str, line: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let prefix = format!("{key} = ");
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                replaced = true;
                line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(replaced, "{key} not in {text}");
    std::fs::write(config, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_good_production_configuration_passes_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    let before = snapshot(dir.path());

    let output = check(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let file = config.display().to_string();
    assert!(
        stdout.starts_with("profile = \"production\"  # default: a configuration file is given"),
        "{stdout}"
    );
    // Every setting, with its source: the file's, and the defaults.
    assert!(
        stdout.contains(&format!("gateway_id = \"gw-prod-test-01\"  # {file}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("max_concurrent_streams = 64  # default"),
        "{stdout}"
    );
    assert!(
        stdout.contains("crl_refresh_secs = 60  # default"),
        "{stdout}"
    );
    assert!(stdout.contains("# max_connections: not set"), "{stdout}");
    for key in kiosk_gateway::config::TRUST_KEYS {
        let field = key.split_once('.').unwrap().1;
        assert!(stdout.contains(&format!("\n{field} = ")), "{key}: {stdout}");
    }
    assert!(stdout.contains("\n[[remote_issuers]]\n"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ok: the production profile would start"),
        "{all}"
    );
    // No database, key or anything else was created or changed.
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_bad_configuration_is_refused_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    let missing = root.join("ca/terminal-ca.crt.pem");
    set(
        &config,
        "terminal_ca",
        &format!("terminal_ca = {missing:?}"),
    );
    set(&config, "database_url", "");
    set(&config, "municipalities", "municipalities = [\"131016\"]");
    std::fs::write(root.join("keys/checkpoint.seed"), [7u8; 16]).unwrap();
    let before = snapshot(dir.path());

    let output = check(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        stderr.contains(&format!(
            "profile production ({} and KIOSK_* variables): the configuration is not usable \
             (4 problems",
            config.display()
        )),
        "{stderr}"
    );
    for line in [
        format!("trust.terminal_ca: {}: No such file", missing.display()),
        "database_url: not set (or KIOSK_DATABASE_URL)".to_owned(),
        "municipalities: 131016 would be issued in this process".to_owned(),
        "keys.checkpoint_seed: ".to_owned(),
    ] {
        assert!(stderr.contains(&format!("\n  {line}")), "{line}:\n{stderr}");
    }
    assert!(stderr.contains("wrong length"), "{stderr}");
    // The effective configuration is printed all the same.
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("# database_url: not set"),
        "{}",
        text(&output)
    );
    assert_eq!(snapshot(dir.path()), before);
}

/// A CA bundle that is empty, or holds a certificate that is not a CA, is named with its key,
/// its file and which certificate, for the client CAs and the card CAs alike.
#[test]
fn an_empty_or_non_ca_bundle_is_refused_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    let empty = root.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    set(&config, "auditor_ca", &format!("auditor_ca = {empty:?}"));
    // The terminal CA followed by a terminal's own certificate, a leaf.
    let mixed = root.join("terminal-cas.pem");
    let pem = |name: &str| std::fs::read(root.join("pki").join(name)).unwrap();
    let bundle = [
        pem("terminal-ca.crt.pem"),
        pem("terminal-seven-131016-0042-k1.crt.pem"),
    ]
    .concat();
    std::fs::write(&mixed, bundle).unwrap();
    set(&config, "terminal_ca", &format!("terminal_ca = {mixed:?}"));
    let card_cas = root.join("card-cas.pem");
    std::fs::write(
        &card_cas,
        [pem("jpki-auth-ca.crt.pem"), pem("gateway.crt.pem")].concat(),
    )
    .unwrap();
    set(
        &config,
        "card_auth_ca",
        &format!("card_auth_ca = {card_cas:?}"),
    );

    let output = check(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    for line in [
        format!(
            "trust.auditor_ca: {}: empty, no CA certificate",
            empty.display()
        ),
        format!(
            "trust.terminal_ca: {}: certificate 2: not a CA certificate",
            mixed.display()
        ),
        format!(
            "trust.card_auth_ca: {}: certificate 2: not a CA certificate",
            card_cas.display()
        ),
    ] {
        assert!(stderr.contains(&format!("\n  {line}")), "{line}:\n{stderr}");
    }
}

#[test]
fn a_database_password_never_reaches_the_output_and_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deployment");
    let pki = DevPki::ensure(&root.join("pki")).unwrap();
    let config = production_config(&root, &pki);
    set(
        &config,
        "database_url",
        "database_url = \"postgres://gateway:file-s3cret@127.0.0.1:1/kiosk\"",
    );
    let path = config.to_str().unwrap();

    // From the file: shown redacted; PostgreSQL is not contacted (port 1 answers nothing).
    let output = check(dir.path(), &["--config", path], &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(!all.contains("file-s3cret"), "{all}");
    assert!(
        all.contains(&format!(
            "database_url = \"postgres://gateway:***@127.0.0.1:1/kiosk\"  # {}",
            config.display()
        )),
        "{all}"
    );

    // A variable overrides the file, and the output says which one set it.
    let output = check(
        dir.path(),
        &["--config", path],
        &[
            (
                "KIOSK_DATABASE_URL",
                "postgres://ops:env-s3cret@db.internal/kiosk?password=env-s3cret",
            ),
            ("KIOSK_MAX_CONCURRENT_STREAMS", "7"),
        ],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    assert!(
        all.contains(
            "database_url = \"postgres://ops:***@db.internal/kiosk?password=***\"  \
             # KIOSK_DATABASE_URL"
        ),
        "{all}"
    );
    assert!(
        all.contains("max_concurrent_streams = 7  # KIOSK_MAX_CONCURRENT_STREAMS"),
        "{all}"
    );

    // A problem with a setting a variable made names the variable too.
    let output = check(
        dir.path(),
        &["--config", path],
        &[("KIOSK_TRUST_AUDITOR_CA", "/nonexistent/auditor-ca.crt.pem")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "trust.auditor_ca (KIOSK_TRUST_AUDITOR_CA): /nonexistent/auditor-ca.crt.pem: No such file"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn the_dev_profile_is_printed_as_test_only_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No file: the dev profile.
    let output = check(dir.path(), &[], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stdout.starts_with("profile = \"dev\"  # default: no configuration file (TEST ONLY)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("database_url = \"sqlite://.kiosk-data/gateway.db\"  # default"),
        "{stdout}"
    );
    // A file saying so, and --dev over a file that does not.
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, "profile = \"dev\"\n").unwrap();
    let output = check(dir.path(), &["--config", "gateway.toml"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .starts_with("profile = \"dev\"  # gateway.toml (TEST ONLY)"),
        "{}",
        text(&output)
    );
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let output = check(dir.path(), &["--config", "gateway.toml", "--dev"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("profile = \"dev\"  # --dev"),
        "{}",
        text(&output)
    );
    // The dev profile reads no [trust]: refused rather than ignored.
    std::fs::write(&config, "profile = \"dev\"\n[trust]\n").unwrap();
    let output = check(dir.path(), &["--config", "gateway.toml"], &[]);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("\n  trust: set, but the dev profile"),
        "{}",
        text(&output)
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only gateway.toml: {entries:?}");
}

#[test]
fn every_value_of_the_wrong_type_is_named_at_once_file_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        "max_concurrent_streams = \"many\"\ngateway_id = 5\nlisten_port = 1\n\
         [keys]\npseudonym_key = 7\n",
    )
    .unwrap();
    let output = check(
        dir.path(),
        &["--config", "gateway.toml"],
        &[("KIOSK_FD_RESERVE", "lots")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        stderr.contains("invalid configuration (5 problems):"),
        "{stderr}"
    );
    for problem in [
        "\n  max_concurrent_streams: ",
        "\n  gateway_id: ",
        "listen_port",
        "\n  keys.pseudonym_key: ",
        "\n  fd_reserve (KIOSK_FD_RESERVE): ",
    ] {
        assert!(stderr.contains(problem), "{problem}: {stderr}");
    }
    assert!(
        output.stdout.is_empty(),
        "nothing printed before the refusal"
    );
}
