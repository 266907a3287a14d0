//! The rules, judged on what the kit observed in one scenario. A rule the kit cannot observe
//! is reported NOT CHECKED, never passed; a rule whose evidence is missing (the terminal never
//! made the calls it is about) fails, saying what was missing.

use std::collections::{BTreeSet, HashSet};

use crate::card::{self, CardLog};
use crate::record::{Answer, Call, Delivery, Observation, Outcome, Recording};
use crate::scenario::{Fault, Printer, Rule, Scenario, WITHHELD_TYPE};

/// The judgement of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The terminal followed the rule.
    Pass,
    /// It did not.
    Fail,
    /// The kit cannot observe it.
    NotChecked,
}

impl Verdict {
    /// As printed in the report.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotChecked => "NOT CHECKED",
        }
    }
}

/// One rule's judgement with what was observed.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The verdict.
    pub verdict: Verdict,
    /// What the kit saw, for the vendor (no PIN, no personal data).
    pub observed: String,
}

/// What a scenario left behind.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The calls.
    pub recording: &'a Recording,
    /// Names of the files in the print directory after the terminal exited.
    pub printed: &'a [String],
    /// What the card in the kit's reader saw (`--pcsc`); `None` when the card was the
    /// terminal's own.
    pub card: Option<&'a CardLog>,
}

/// Judges every rule of the scenario.
pub fn judge(evidence: &Evidence<'_>) -> Vec<Finding> {
    evidence
        .scenario
        .rules
        .iter()
        .map(|&rule| {
            let (verdict, observed) = judge_rule(rule, evidence);
            Finding {
                rule,
                verdict,
                observed,
            }
        })
        .collect()
}

type Judgement = (Verdict, String);

fn pass(observed: impl Into<String>) -> Judgement {
    (Verdict::Pass, observed.into())
}

fn fail(observed: impl Into<String>) -> Judgement {
    (Verdict::Fail, observed.into())
}

fn judge_rule(rule: Rule, evidence: &Evidence<'_>) -> Judgement {
    let calls = &evidence.recording.calls;
    match rule {
        Rule::ClosedBeforeCard => closed_before_card(calls),
        Rule::IssueRetrySameId => issue_retry_same_id(calls),
        Rule::NoPrintWithoutTrailer | Rule::NoPrintOnDigestMismatch => {
            nothing_printed(calls, evidence.printed)
        }
        Rule::ReportBeforeDeadline => report_before_deadline(calls, evidence.scenario.printer),
        Rule::CloseSession => close_session(calls),
        Rule::PinNeverSent => pin_never_sent(calls, evidence.card),
        Rule::ReasonAction if evidence.scenario.fault == Fault::IneligibleItem => {
            withheld_not_ordered(calls)
        }
        Rule::ReasonAction if evidence.scenario.fault == Fault::PinBlocked => {
            pin_blocked(calls, evidence.card)
        }
        Rule::ReasonAction => reason_action(calls),
        Rule::CardReset => card_reset(calls, evidence.card),
    }
}

/// Judged from the card in the kit's reader: by one second after the last CloseSession (or
/// the end of the run), the card whose PIN was verified has been reset or powered off.
fn card_reset(calls: &[Observation], card: Option<&CardLog>) -> Judgement {
    let Some(card) = card else {
        return (
            Verdict::NotChecked,
            "the card is the terminal's: the kit cannot see it reset or powered off (run with --pcsc)".into(),
        );
    };
    let close_ms = calls
        .iter()
        .rfind(|o| matches!(o.call, Call::CloseSession { .. }))
        .map_or_else(|| card.ms(card.terminal_exited), |o| o.at_ms);
    match card::judge_reset(card, close_ms) {
        Ok(observed) => pass(observed),
        Err(observed) => fail(observed),
    }
}

/// Calls that move a session on after the card was read.
fn after_card(call: &Call) -> bool {
    matches!(
        call,
        Call::Authenticate { .. } | Call::GetMenu { .. } | Call::Quote { .. } | Call::Issue { .. }
    )
}

fn closed_before_card(calls: &[Observation]) -> Judgement {
    let Some(closed) = calls
        .iter()
        .position(|o| matches!(o.call, Call::OpenSession { closed: true, .. }))
    else {
        return fail("no OpenSession answered SERVICE_STATE_CLOSED was observed");
    };
    let later: Vec<&str> = calls[closed..]
        .iter()
        .filter(|o| after_card(&o.call))
        .map(|o| o.call.rpc())
        .collect();
    if later.is_empty() {
        pass("OpenSession answered CLOSED; no Authenticate, Quote or Issue followed")
    } else {
        fail(format!(
            "after OpenSession answered CLOSED the terminal sent {}",
            later.join(", ")
        ))
    }
}

fn issue_ids(calls: &[Observation]) -> Vec<&str> {
    calls
        .iter()
        .filter_map(|o| match &o.call {
            Call::Issue { request_id, .. } => Some(request_id.as_str()),
            _ => None,
        })
        .collect()
}

fn issue_retry_same_id(calls: &[Observation]) -> Judgement {
    let ids = issue_ids(calls);
    let Some(first) = ids.first() else {
        return fail("no Issue was observed");
    };
    if ids.len() < 2 {
        return fail("the failed Issue was not retried");
    }
    let others = ids.iter().filter(|id| *id != first).count();
    if others == 0 {
        pass(format!(
            "{} Issue calls, every retry with the first call's client_request_id",
            ids.len()
        ))
    } else {
        fail(format!(
            "{} Issue calls, {others} of them with a client_request_id other than the first's",
            ids.len()
        ))
    }
}

fn reports(calls: &[Observation]) -> impl Iterator<Item = (&str, Outcome, i64, &Answer)> {
    calls.iter().filter_map(|o| match &o.call {
        Call::ReportPrint {
            issuance_id,
            outcome,
            at_gateway_ms,
            ..
        } => Some((issuance_id.as_str(), *outcome, *at_gateway_ms, &o.answer)),
        _ => None,
    })
}

fn nothing_printed(calls: &[Observation], printed: &[String]) -> Judgement {
    let claimed: Vec<&str> = reports(calls)
        .filter(|(_, outcome, _, _)| matches!(outcome, Outcome::Printed | Outcome::PartlyPrinted))
        .map(|(_, outcome, _, _)| outcome.name())
        .collect();
    match (printed.len(), claimed.is_empty()) {
        (0, true) => pass("no file in the print directory; no report of a print"),
        (0, false) => fail(format!("ReportPrint said {}", claimed.join(", "))),
        (n, _) => fail(format!("{n} file(s) in the print directory")),
    }
}

/// What the terminal received, per issuance: whether any stream of it arrived whole.
fn delivered(calls: &[Observation]) -> Vec<(String, i64, bool)> {
    let mut out: Vec<(String, i64, bool)> = Vec::new();
    for observation in calls {
        let Call::Issue {
            delivery: Some(d), ..
        } = &observation.call
        else {
            continue;
        };
        if d.issuance_id.is_empty() {
            continue;
        }
        let whole = whole(d);
        match out.iter_mut().find(|(id, _, _)| *id == d.issuance_id) {
            Some(entry) => entry.2 |= whole,
            None => out.push((d.issuance_id.clone(), d.print_deadline_ms, whole)),
        }
    }
    out
}

fn whole(delivery: &Delivery) -> bool {
    delivery.trailer && !delivery.corrupted
}

fn expected(printer: Printer) -> Outcome {
    match printer {
        Printer::Ok => Outcome::Printed,
        Printer::Fail => Outcome::Failed,
        Printer::Partial => Outcome::PartlyPrinted,
    }
}

fn report_before_deadline(calls: &[Observation], printer: Printer) -> Judgement {
    let issuances = delivered(calls);
    if issuances.is_empty() {
        return fail("no issuance reached the terminal, so none could be reported");
    }
    let mut notes = Vec::new();
    for (id, deadline, whole) in &issuances {
        let mine: Vec<_> = reports(calls).filter(|(i, ..)| i == id).collect();
        let Some((_, outcome, at, answer)) = mine.first() else {
            return fail("an issuance whose header reached the terminal was never reported");
        };
        if *at >= *deadline {
            return fail(format!(
                "reported {} ms after its print deadline",
                at - deadline
            ));
        }
        if **answer != Answer::Ok {
            return fail(format!("the report was refused: {answer:?}"));
        }
        // Only an issuance the terminal received whole could be printed; the no-print rules
        // judge what is said about the others.
        let want = expected(printer);
        if *whole && *outcome != want {
            return fail(format!(
                "reported {}, the printer was set to `{}` ({} expected)",
                outcome.name(),
                printer.as_str(),
                want.name()
            ));
        }
        notes.push(outcome.name());
    }
    pass(format!(
        "{} issuance(s) reported before the deadline: {}",
        issuances.len(),
        notes.join(", ")
    ))
}

fn close_session(calls: &[Observation]) -> Judgement {
    let opened: BTreeSet<&str> = calls
        .iter()
        .filter(|o| o.answer == Answer::Ok)
        .filter_map(|o| match &o.call {
            Call::OpenSession { session_id, .. } if !session_id.is_empty() => {
                Some(session_id.as_str())
            }
            _ => None,
        })
        .collect();
    if opened.is_empty() {
        return fail("no session was opened");
    }
    let unclosed = opened
        .iter()
        .filter(|session| {
            let last_close = calls.iter().rposition(
                |o| matches!(&o.call, Call::CloseSession { session_id } if session_id == *session),
            );
            let last_other = calls.iter().rposition(|o| {
                o.call.session_id() == **session && !matches!(o.call, Call::CloseSession { .. })
            });
            match (last_close, last_other) {
                (Some(close), Some(other)) => close < other,
                (Some(_), None) => false,
                (None, _) => true,
            }
        })
        .count();
    if unclosed == 0 {
        pass(format!(
            "{} session(s) opened, each closed last",
            opened.len()
        ))
    } else {
        fail(format!(
            "{unclosed} of {} session(s) not closed with CloseSession",
            opened.len()
        ))
    }
}

fn pin_never_sent(calls: &[Observation], card: Option<&CardLog>) -> Judgement {
    let places: HashSet<String> = calls
        .iter()
        .flat_map(|o| {
            o.pin_found
                .iter()
                .map(move |f| format!("{} {f}", o.call.rpc()))
        })
        .chain(card.map(CardLog::pin_outside_verify).unwrap_or_default())
        .collect();
    if places.is_empty() {
        let card_note = if card.is_some() {
            "; no card command other than VERIFY carried its digits"
        } else {
            ""
        };
        pass(format!(
            "the PIN appeared in none of {} request(s){card_note}",
            calls.len()
        ))
    } else {
        let mut places: Vec<String> = places.into_iter().collect();
        places.sort();
        fail(format!("the PIN appeared in {}", places.join("; ")))
    }
}

/// The documented action of the scenario's reason (terminal-integration.md sections 4 and 5):
/// CARD_REVOKED sends the resident to the municipal office, so nothing is tried again;
/// SUBJECT_MISMATCH charges nothing and calls the staff (a retry gets the same refusal);
/// OVERLOADED is retried after one to two seconds.
fn reason_action(calls: &[Observation]) -> Judgement {
    use kiosk_proto::reasons::{
        CARD_EXPIRED, CARD_REVOKED, CHALLENGE_EXPIRED, FEE_MISMATCH, ISSUANCE_FINISHED, OVERLOADED,
        SIGNATURE_INVALID, SUBJECT_MISMATCH,
    };
    let refused_with = |reason: &str| {
        calls
            .iter()
            .position(|o| matches!(&o.answer, Answer::Refused { reason: r, .. } if r == reason))
    };
    if let Some(at) = refused_with(CARD_REVOKED.name) {
        return stopped_after(calls, at, CARD_REVOKED.name);
    }
    if let Some(at) = refused_with(SUBJECT_MISMATCH.name) {
        return stopped_after(calls, at, SUBJECT_MISMATCH.name);
    }
    if let Some(at) = refused_with(OVERLOADED.name) {
        return waited_after(calls, at);
    }
    if let Some(at) = refused_with(FEE_MISMATCH.name) {
        return quoted_before_reissue(calls, at);
    }
    if let Some(at) = refused_with(ISSUANCE_FINISHED.name) {
        return finished_not_retried(calls, at);
    }
    if let Some(at) = refused_with(CHALLENGE_EXPIRED.name) {
        return new_session_after_expiry(calls, at);
    }
    if let Some(at) = refused_with(SIGNATURE_INVALID.name) {
        return new_session_after_expiry(calls, at);
    }
    if let Some(at) = refused_with(CARD_EXPIRED.name) {
        return stopped_after(calls, at, CARD_EXPIRED.name);
    }
    fail("the scenario's refusal was never answered")
}

/// After FEE_MISMATCH at `at`, any later Issue comes after a new Quote: the fee changed, so
/// the resident sees the new total before paying it. Giving up is also right.
fn quoted_before_reissue(calls: &[Observation], at: usize) -> Judgement {
    let later = &calls[at + 1..];
    let Some(reissue) = later
        .iter()
        .position(|o| matches!(o.call, Call::Issue { .. }))
    else {
        return pass("after FEE_MISMATCH the terminal did not send Issue again");
    };
    if later[..reissue]
        .iter()
        .any(|o| matches!(o.call, Call::Quote { .. }))
    {
        pass("after FEE_MISMATCH the terminal quoted again before the next Issue")
    } else {
        fail(
            "after FEE_MISMATCH the terminal sent Issue again without a new Quote (the same fee gets the same refusal; the resident must see the new total)",
        )
    }
}

/// After ISSUANCE_FINISHED at `at`, Issue is not sent again with the same request id: that
/// order is over and nothing more will come of it.
fn finished_not_retried(calls: &[Observation], at: usize) -> Judgement {
    let Call::Issue { request_id, .. } = &calls[at].call else {
        return fail("ISSUANCE_FINISHED answered a call that was not Issue");
    };
    let retries = calls[at + 1..]
        .iter()
        .filter(|o| matches!(&o.call, Call::Issue { request_id: id, .. } if id == request_id))
        .count();
    if retries == 0 {
        pass("after ISSUANCE_FINISHED the terminal did not retry that order")
    } else {
        fail(format!(
            "after ISSUANCE_FINISHED the terminal retried the same request id {retries} time(s); a finished issuance is never handed out again"
        ))
    }
}

/// After CHALLENGE_EXPIRED or SIGNATURE_INVALID at `at`, Authenticate is not sent again on
/// that session: its challenge is spent, and a new login starts with a new OpenSession.
fn new_session_after_expiry(calls: &[Observation], at: usize) -> Judgement {
    let Call::Authenticate { session_id } = &calls[at].call else {
        return fail("the login refusal answered a call that was not Authenticate");
    };
    let again = calls[at + 1..]
        .iter()
        .any(|o| matches!(&o.call, Call::Authenticate { session_id: s } if s == session_id));
    if again {
        fail(
            "after the login was refused the terminal sent Authenticate again on the same session; start again from OpenSession",
        )
    } else {
        pass("after the login was refused the terminal did not reuse the session's challenge")
    }
}

/// After the card said PIN blocked (`--pcsc` only): no further VERIFY and no Authenticate,
/// since no signature can follow. Without the kit's reader the card is the terminal's.
fn pin_blocked(calls: &[Observation], card: Option<&CardLog>) -> Judgement {
    let Some(card) = card else {
        return (
            Verdict::NotChecked,
            "the card is the terminal's: the kit can make it answer PIN blocked only in its own reader (run with --pcsc)".into(),
        );
    };
    if calls
        .iter()
        .any(|o| matches!(o.call, Call::Authenticate { .. }))
    {
        return fail("the PIN was blocked, yet the terminal sent Authenticate");
    }
    match card::judge_blocked(card) {
        Ok(observed) => pass(observed),
        Err(observed) => fail(observed),
    }
}

/// An entry the menu showed unavailable is not ordered: no Quote or Issue holds
/// [`WITHHELD_TYPE`] (the rest of the menu stays usable, so ordering the others passes).
fn withheld_not_ordered(calls: &[Observation]) -> Judgement {
    let ordered: Vec<&str> = calls
        .iter()
        .filter(|o| match &o.call {
            Call::Quote { types, .. } | Call::Issue { types, .. } => {
                types.iter().any(|t| t == WITHHELD_TYPE)
            }
            _ => false,
        })
        .map(|o| o.call.rpc())
        .collect();
    if ordered.is_empty() {
        pass(format!(
            "{WITHHELD_TYPE}, unavailable on the menu (PENDING_CHANGE), was not ordered"
        ))
    } else {
        fail(format!(
            "{WITHHELD_TYPE} was unavailable on the menu (PENDING_CHANGE) but the terminal ordered it in {}",
            ordered.join(", ")
        ))
    }
}

/// Nothing after the card moved a session on after the refusal at `at`.
fn stopped_after(calls: &[Observation], at: usize, reason: &str) -> Judgement {
    let again: Vec<&str> = calls[at + 1..]
        .iter()
        .filter(|o| after_card(&o.call))
        .map(|o| o.call.rpc())
        .collect();
    if again.is_empty() {
        pass(format!(
            "after {reason} the terminal stopped (no new Authenticate, Quote or Issue)"
        ))
    } else {
        fail(format!(
            "after {reason} the terminal sent {}",
            again.join(", ")
        ))
    }
}

/// The next Issue after the OVERLOADED refusal at `at` came a second or more later.
fn waited_after(calls: &[Observation], at: usize) -> Judgement {
    let refused_at = calls[at].at_ms;
    let Some(retry) = calls[at + 1..]
        .iter()
        .find(|o| matches!(o.call, Call::Issue { .. }))
    else {
        return fail("OVERLOADED was not retried");
    };
    let waited = retry.at_ms.saturating_sub(refused_at);
    if waited >= 1000 {
        pass(format!("OVERLOADED retried after {waited} ms"))
    } else {
        fail(format!(
            "OVERLOADED retried after {waited} ms; the table says wait one to two seconds"
        ))
    }
}

#[cfg(test)]
mod tests;
