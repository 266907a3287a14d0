//! The report: one line per scenario and rule, or the same as JSON (`--json`), and the exit
//! code. Lines and JSON carry rule and scenario names, verdicts and what was observed: no
//! PIN, no resident data, no key.

use serde::Serialize;

use crate::judge::Verdict;
use crate::runner::{Exit, ScenarioResult};
use crate::scenario::{Rule, SCENARIOS};

/// The counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Rules passed.
    pub passed: usize,
    /// Rules failed.
    pub failed: usize,
    /// Rules the kit cannot observe.
    pub not_checked: usize,
}

impl Totals {
    /// Counts the verdicts of `results`.
    pub fn of(results: &[ScenarioResult]) -> Self {
        let mut totals = Totals::default();
        for finding in results.iter().flat_map(|r| &r.findings) {
            match finding.verdict {
                Verdict::Pass => totals.passed += 1,
                Verdict::Fail => totals.failed += 1,
                Verdict::NotChecked => totals.not_checked += 1,
            }
        }
        totals
    }
}

/// The report as text lines: `PASS  <scenario>  <rule>  <observed>`.
pub fn text(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for result in results {
        for finding in &result.findings {
            out.push_str(&format!(
                "{:<11} {:<23} {:<27} {}\n",
                finding.verdict.label(),
                result.scenario.name,
                finding.rule.name(),
                finding.observed
            ));
        }
    }
    let totals = Totals::of(results);
    out.push_str(&format!(
        "conformance: {} passed, {} failed, {} not checked\n",
        totals.passed, totals.failed, totals.not_checked
    ));
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenarios: Vec<JsonScenario<'a>>,
    totals: Totals,
}

#[derive(Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    summary: &'a str,
    terminal_exit: String,
    rules: Vec<JsonRule<'a>>,
}

#[derive(Serialize)]
struct JsonRule<'a> {
    rule: &'a str,
    verdict: &'a str,
    observed: &'a str,
}

/// The report as one JSON object.
pub fn json(results: &[ScenarioResult]) -> String {
    let scenarios = results
        .iter()
        .map(|result| JsonScenario {
            name: result.scenario.name,
            summary: result.scenario.summary,
            terminal_exit: match result.exit {
                Exit::Code(Some(code)) => code.to_string(),
                Exit::Code(None) => "signal".into(),
                Exit::TimedOut => "timed out".into(),
            },
            rules: result
                .findings
                .iter()
                .map(|f| JsonRule {
                    rule: f.rule.name(),
                    verdict: match f.verdict {
                        Verdict::Pass => "pass",
                        Verdict::Fail => "fail",
                        Verdict::NotChecked => "not-checked",
                    },
                    observed: &f.observed,
                })
                .collect(),
        })
        .collect();
    let report = JsonReport {
        scenarios,
        totals: Totals::of(results),
    };
    // Plain strings and numbers only: serialising cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

/// The scenarios and rules, for `kiosk-conformance list`.
pub fn list() -> String {
    let mut out = String::from("scenarios:\n");
    for scenario in SCENARIOS {
        let rules: Vec<&str> = scenario.rules.iter().map(|r| r.name()).collect();
        out.push_str(&format!(
            "  {:<23} {}\n  {:<23} rules: {}\n",
            scenario.name,
            scenario.summary,
            "",
            rules.join(", ")
        ));
    }
    out.push_str("rules:\n");
    for rule in Rule::ALL {
        out.push_str(&format!("  {}\n", rule.name()));
    }
    out
}
