//! The systemd units in deploy/systemd, as docs/deploy.md describes them: systemd itself
//! (`systemd-analyze verify`) finds no error and no unknown or misspelt directive in them, and
//! rates their hardening `OK` (`systemd-analyze security --offline=yes`, exposure at most 2.0
//! of 10). A unit that loses a hardening option fails here, not on a municipality's host.

use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd")
}

/// The unit's text with its program replaced by one that exists here: `verify` refuses a
/// unit whose ExecStart is not executable, and the binaries are not installed on this machine.
fn checkable_copy(unit: &str, program: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(units_dir().join(unit)).expect("read the unit");
    assert!(
        text.contains(&format!("ExecStart={program} ")),
        "{unit} starts {program}"
    );
    let path = dir.join(unit);
    std::fs::write(
        &path,
        text.replace(&format!("ExecStart={program} "), "ExecStart=/bin/true "),
    )
    .expect("write the copy");
    path
}

fn systemd_analyze(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/install-deps.sh installs it)")
}

/// `verify` exits 0 on an unknown directive (it only warns): any output on stderr fails too.
fn assert_verifies(unit_arg: &str, dir: &Path) {
    let out = systemd_analyze(&["verify", "--man=no", unit_arg], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {unit_arg}: {stderr}"
    );
}

fn assert_hardened(unit_arg: &str, dir: &Path) {
    let out = systemd_analyze(
        &[
            "security",
            "--offline=yes",
            "--threshold=20",
            "--no-pager",
            unit_arg,
        ],
        dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no overall exposure line");
    assert!(
        out.status.success() && overall.contains(" OK"),
        "systemd-analyze security {unit_arg}: {overall}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gateway_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = checkable_copy(
        "kiosk-gateway.service",
        "/usr/local/bin/kiosk-gateway",
        dir.path(),
    );
    let unit = unit.to_str().expect("utf-8 path");
    assert_verifies(unit, dir.path());
    assert_hardened(unit, dir.path());
}

#[test]
fn issuer_unit_verifies_and_is_hardened_per_municipality() {
    let dir = tempfile::tempdir().expect("temp dir");
    checkable_copy("kiosk-issuer@.service", "/usr/local/bin/issuer", dir.path());
    // The template instantiated for one municipality, as `systemctl enable` would.
    let instance = "./kiosk-issuer@271004.service";
    assert_verifies(instance, dir.path());
    assert_hardened(instance, dir.path());
}

#[test]
fn a_weakened_unit_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = checkable_copy(
        "kiosk-gateway.service",
        "/usr/local/bin/kiosk-gateway",
        dir.path(),
    );
    let text = std::fs::read_to_string(&unit).expect("read the copy");
    let weakened: String = text
        .lines()
        .filter(|l| {
            !["Protect", "Private", "Restrict", "SystemCall", "Capability"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&unit, weakened).expect("write");
    let out = systemd_analyze(
        &[
            "security",
            "--offline=yes",
            "--threshold=20",
            "--no-pager",
            unit.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(
        !out.status.success(),
        "the weakened unit passed the threshold"
    );
}
