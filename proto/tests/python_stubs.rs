//! Another language can use the contract: Python stubs generated with grpcio-tools import and
//! describe the services, and Python recomputes the card-login test vector.
//!
//! Needs `python3` with `grpcio-tools` (scripts/install-deps.sh installs it). Without them the
//! test fails and says so: it never passes by skipping.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::process::Command;

#[test]
fn python_stubs_generate_and_import() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("kiosk-pystubs-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let output = Command::new("python3")
        .arg(format!("{root}/tests/python/check_stubs.py"))
        .arg(root)
        .arg(&out)
        .output()
        .expect("python3 must be installed (run scripts/install-deps.sh)");
    let _ = std::fs::remove_dir_all(&out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python stub check failed (is grpcio-tools installed? run scripts/install-deps.sh)\n\
         stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("python stubs ok"), "{stdout}");
}
