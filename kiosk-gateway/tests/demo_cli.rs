//! The README's main command, `kiosk-gateway demo`, through the real binary: it must finish
//! with exit code 0 and a report that tells what was issued, voided and refused, and leave
//! readable PDFs of the municipality behind.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::process::Command;

#[test]
fn demo_issues_voids_refuses_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo-out");
    let run = Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .current_dir(dir.path())
        .args(["demo", "--out"])
        .arg(&out)
        .env("RUST_LOG", "warn")
        .env_remove("KIOSK_CONFIG")
        .output()
        .unwrap();
    let report = String::from_utf8(run.stdout).unwrap();
    assert!(
        run.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for kind in [
        "RESIDENT_RECORD ",
        "RESIDENT_RECORD_ITEMS",
        "SEAL_REGISTRATION",
        "INCOME_TAX",
        "KOSEKI_FULL",
        "KOSEKI_INDIVIDUAL",
        "KOSEKI_FUHYO",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with(kind) && l.contains("[ISSUANCE_STATE_PRINTED]")),
            "{kind} printed:\n{report}"
        );
    }
    for expected in [
        "profile: dev: the embedded development deployment, TEST ONLY",
        "PIN_WRONG",
        "[ISSUANCE_STATE_VOIDED]",
        "refund due: 200 yen",
        "Issue refused: SUPPORT_MEASURE",
        ": VALIDITY_VALID (PDF signature valid)",
        ": VALIDITY_VOIDED",
        "signed checkpoint:",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }

    // Every PDF the report names is in the folder and reads as the municipality's document.
    let named: Vec<&str> = report
        .lines()
        .filter_map(|l| l.split_once("-> ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(named.len(), 8, "{report}");
    for name in named {
        let pdf = std::fs::read(out.join(name)).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "{name}");
        assert!(kiosk_tests::pdf_text(&pdf).contains("千代田区"), "{name}");
    }
}
