//! What both test files of the kit do: run `kiosk-conformance run --json` and read its report.

use std::process::Command;

use serde_json::Value;

/// Runs the kit with `args` (after `run --json --timeout-secs 90`) on `terminal_cmd`; its exit
/// code and JSON report.
pub fn run_kit(args: &[&str], terminal_cmd: &str) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_kiosk-conformance"))
        .args(["run", "--json", "--timeout-secs", "90"])
        .args(args)
        .arg("--terminal-cmd")
        .arg(terminal_cmd)
        .output()
        .expect("kiosk-conformance runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("exit code"), report)
}
