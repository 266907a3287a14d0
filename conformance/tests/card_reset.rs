//! `card-reset` judged for real (`run --pcsc`, feature `pcsc`): the kit presents the card in a
//! vpcd reader of devkit's private pcscd and watches it. The reference terminal, which resets
//! the card when it lets go of it, passes; a terminal that leaves the card powered with its PIN
//! verified after its session fails the rule by name.
//!
//! The terminal must be a `kiosk-terminal` built with `pcsc` (it reads the card through
//! `--reader`): `cargo test --workspace --all-features` (scripts/test.sh) builds it so; alone,
//! run `cargo build -p kiosk-terminal --features pcsc` first. The test refuses to run with a
//! terminal built without it rather than skip.
//!
//! The misbehaving terminal is the reference terminal followed by this package's fixture
//! binary `kiosk-conformance-card-holder` (fixtures/card_holder.rs, feature `pcsc`): it
//! verifies the PIN on the card and keeps it that way for five seconds. No switch in
//! `kiosk-terminal` can make it misbehave.
#![cfg(feature = "pcsc")]

use std::path::Path;

mod common;

fn reference_terminal_with_reader() -> String {
    let kit = Path::new(env!("CARGO_BIN_EXE_kiosk-conformance"));
    let terminal = kit.with_file_name("kiosk-terminal");
    let binary = std::fs::read(&terminal).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `cargo build -p kiosk-terminal --features pcsc` before these tests",
            terminal.display()
        )
    });
    // A terminal built with `pcsc` links libpcsclite; without it, `--reader` cannot work.
    assert!(
        binary.windows(14).any(|w| w == b"libpcsclite.so"),
        "{} was built without the pcsc feature: run `cargo build -p kiosk-terminal --features pcsc`",
        terminal.display()
    );
    format!(
        "{} --gateway \"$KIOSK_CONFORMANCE_GATEWAY\" --pki \"$KIOSK_CONFORMANCE_PKI_DIR\" \
         --terminal \"$KIOSK_CONFORMANCE_TERMINAL_STEM\" \
         --server-name \"$KIOSK_CONFORMANCE_SERVER_NAME\" issue \
         --reader \"$KIOSK_CONFORMANCE_READER\" --pin-from-env KIOSK_CONFORMANCE_PIN \
         --type \"$KIOSK_CONFORMANCE_TYPES\" --out \"$KIOSK_CONFORMANCE_PRINT_DIR\" \
         --printer \"$KIOSK_CONFORMANCE_PRINTER\"",
        terminal.display()
    )
}

/// Runs the kit with `--pcsc` on the baseline scenario; returns its exit code and the
/// baseline's rules as (rule, verdict, observed).
fn run_kit(terminal_cmd: &str) -> (i32, Vec<(String, String, String)>) {
    run_scenario(terminal_cmd, "baseline")
}

/// Runs the kit with `--pcsc` on one scenario; its exit code and rules.
fn run_scenario(terminal_cmd: &str, scenario: &str) -> (i32, Vec<(String, String, String)>) {
    let (code, report) = common::run_kit(&["--pcsc", "--scenario", scenario], terminal_cmd);
    let rules = report["scenarios"][0]["rules"]
        .as_array()
        .expect("the scenario's rules")
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect(name).to_owned();
            (field("rule"), field("verdict"), field("observed"))
        })
        .collect();
    (code, rules)
}

fn verdict<'a>(rules: &'a [(String, String, String)], rule: &str) -> (&'a str, &'a str) {
    let (_, verdict, observed) = rules
        .iter()
        .find(|(name, ..)| name == rule)
        .unwrap_or_else(|| panic!("{rule} not judged: {rules:?}"));
    (verdict, observed)
}

#[test]
fn the_reference_terminal_resets_the_card_it_read_through_pcsc() {
    let (code, rules) = run_kit(&format!("exec {}", reference_terminal_with_reader()));
    for (rule, verdict, observed) in &rules {
        assert_eq!(verdict, "pass", "{rule}: {observed}");
    }
    let (_, observed) = verdict(&rules, "card-reset");
    assert!(observed.contains("reset"), "{observed}");
    let (_, observed) = verdict(&rules, "pin-never-sent");
    assert!(observed.contains("other than VERIFY"), "{observed}");
    assert_eq!(code, 0, "{rules:?}");
}

#[test]
fn a_terminal_that_leaves_the_card_verified_fails_card_reset() {
    let holder = Path::new(env!("CARGO_BIN_EXE_kiosk-conformance-card-holder"));
    let command = format!(
        "{} && exec {}",
        reference_terminal_with_reader(),
        holder.display()
    );
    let (code, rules) = run_kit(&command);
    let (card_reset, observed) = verdict(&rules, "card-reset");
    assert_eq!(card_reset, "fail", "{rules:?}");
    assert!(observed.contains("still powered"), "{observed}");
    // Only card-reset: the session itself was run by the reference terminal.
    for (rule, verdict, observed) in &rules {
        if rule != "card-reset" {
            assert_eq!(verdict, "pass", "{rule}: {observed}");
        }
    }
    assert_eq!(code, 1, "{rules:?}");
}

#[test]
fn the_reference_terminal_stops_at_a_blocked_pin() {
    let command = format!("exec {}", reference_terminal_with_reader());
    let (code, rules) = run_scenario(&command, "pin-blocked");
    for (rule, verdict, observed) in &rules {
        assert_eq!(verdict, "pass", "{rule}: {observed}");
    }
    let (_, observed) = verdict(&rules, "reason-action");
    assert!(observed.contains("69 83"), "{observed}");
    assert_eq!(code, 0, "{rules:?}");
}
