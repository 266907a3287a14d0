//! The kit judged by two terminals: the reference terminal (`kiosk-terminal issue`) and a
//! Python terminal that breaks one rule at a time (`broken_terminal.py --break RULE`). Each
//! test runs the real `kiosk-conformance` binary against a real development gateway and reads
//! its `--json` report: the correct terminals pass every rule (card-reset, which the kit
//! cannot observe, stays NOT CHECKED), and each broken one fails exactly the rule it breaks.
//!
//! `kiosk-terminal` is another package's binary, which `cargo test -p kiosk-conformance` does
//! not build: build it first (`cargo build -p kiosk-terminal`); `cargo test --workspace`
//! (scripts/test.sh) builds every binary before any test runs. The test refuses to run
//! without it rather than skip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

const RULES: [&str; 8] = [
    "closed-before-card",
    "issue-retry-same-id",
    "no-print-without-trailer",
    "no-print-on-digest-mismatch",
    "report-before-deadline",
    "close-session",
    "pin-never-sent",
    "reason-action",
];

const SCENARIOS: [&str; 20] = [
    "baseline",
    "print-failed",
    "print-partial",
    "kill-switch",
    "out-of-hours",
    "revoked-card",
    "stream-cut",
    "digest-mismatch",
    "deadline-after-commit",
    "deadline-before-forward",
    "overloaded",
    "issuer-unavailable",
    "subject-mismatch",
    "fee-mismatch",
    "issuance-finished",
    "challenge-expired",
    "signature-invalid",
    "card-expired",
    "pin-blocked",
    "ineligible-item",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn reference_terminal() -> String {
    let kit = Path::new(env!("CARGO_BIN_EXE_kiosk-conformance"));
    let terminal = kit.with_file_name("kiosk-terminal");
    assert!(
        terminal.exists(),
        "{} is missing: run `cargo build -p kiosk-terminal` before these tests",
        terminal.display()
    );
    format!(
        "exec {} --gateway \"$KIOSK_CONFORMANCE_GATEWAY\" --pki \"$KIOSK_CONFORMANCE_PKI_DIR\" \
         --terminal \"$KIOSK_CONFORMANCE_TERMINAL_STEM\" \
         --server-name \"$KIOSK_CONFORMANCE_SERVER_NAME\" issue \
         --card \"$KIOSK_CONFORMANCE_CARD\" --pin-from-env KIOSK_CONFORMANCE_PIN \
         --type \"$KIOSK_CONFORMANCE_TYPES\" --out \"$KIOSK_CONFORMANCE_PRINT_DIR\" \
         --printer \"$KIOSK_CONFORMANCE_PRINTER\"",
        terminal.display()
    )
}

fn python_terminal(stubs: &Path, broken: Option<&str>) -> String {
    let script = workspace().join("conformance/tests/broken_terminal.py");
    let mut command = format!(
        "exec python3 {} --proto-root {} --stubs {}",
        script.display(),
        workspace().join("proto").display(),
        stubs.display()
    );
    if let Some(rule) = broken {
        command.push_str(&format!(" --break {rule}"));
    }
    command
}

fn run_kit(terminal_cmd: &str) -> (i32, Value) {
    common::run_kit(&[], terminal_cmd)
}

/// (scenario, rule, verdict) for every line of the report.
fn verdicts(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for scenario in report["scenarios"].as_array().expect("scenarios") {
        for rule in scenario["rules"].as_array().expect("rules") {
            out.push((
                scenario["name"].as_str().expect("name").to_owned(),
                rule["rule"].as_str().expect("rule").to_owned(),
                rule["verdict"].as_str().expect("verdict").to_owned(),
            ));
        }
    }
    out
}

fn not_checked_without_pcsc(scenario: &str, rule: &str) -> bool {
    rule == "card-reset" || (scenario, rule) == ("pin-blocked", "reason-action")
}

fn assert_conforms(code: i32, report: &Value) {
    let verdicts = verdicts(report);
    let scenarios: BTreeSet<&str> = verdicts.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(scenarios, SCENARIOS.into_iter().collect(), "{report:#}");
    for (scenario, rule, verdict) in &verdicts {
        // Without --pcsc the kit cannot see the card: it neither watches its reset nor makes
        // it answer PIN blocked.
        let want = if not_checked_without_pcsc(scenario, rule) {
            "not-checked"
        } else {
            "pass"
        };
        assert_eq!(verdict, want, "{scenario} {rule}: {report:#}");
    }
    // Every rule is judged somewhere.
    let judged: BTreeSet<&str> = verdicts.iter().map(|(_, r, _)| r.as_str()).collect();
    for rule in RULES {
        assert!(judged.contains(rule), "{rule} is judged in no scenario");
    }
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn the_reference_terminal_conforms() {
    let (code, report) = run_kit(&reference_terminal());
    assert_conforms(code, &report);
}

#[test]
fn the_python_terminal_conforms_when_it_breaks_nothing() {
    let stubs = tempfile::tempdir().expect("tempdir");
    let (code, report) = run_kit(&python_terminal(stubs.path(), None));
    assert_conforms(code, &report);
}

/// Each rule broken alone fails that rule, and only that rule.
#[test]
fn each_broken_rule_is_named_and_no_other() {
    let stubs = tempfile::tempdir().expect("tempdir");
    for rule in RULES {
        let (code, report) = run_kit(&python_terminal(stubs.path(), Some(rule)));
        let failed: BTreeSet<String> = verdicts(&report)
            .into_iter()
            .filter(|(_, _, verdict)| verdict == "fail")
            .map(|(_, rule, _)| rule)
            .collect();
        assert_eq!(
            failed,
            BTreeSet::from([rule.to_owned()]),
            "--break {rule}: {report:#}"
        );
        for (scenario, rule, verdict) in verdicts(&report) {
            if verdict == "not-checked" {
                assert!(
                    not_checked_without_pcsc(&scenario, &rule),
                    "{scenario} {rule}"
                );
            }
        }
        assert_eq!(code, 1, "--break {rule}: {report:#}");
        if rule == "reason-action" {
            // The broken terminal misreads each of these reasons: every one must be caught,
            // not just the first.
            let failing: BTreeSet<String> = verdicts(&report)
                .into_iter()
                .filter(|(_, _, verdict)| verdict == "fail")
                .map(|(scenario, _, _)| scenario)
                .collect();
            for scenario in [
                "revoked-card",
                "fee-mismatch",
                "issuance-finished",
                "challenge-expired",
                "signature-invalid",
                "card-expired",
                "ineligible-item",
            ] {
                assert!(failing.contains(scenario), "{scenario}: {report:#}");
            }
        }
    }
}
