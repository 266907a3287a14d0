//! The rules on hand-made recordings: each judgement's edge, without a gateway.

use super::*;
use crate::scenario::{self, SCENARIOS};

fn at(at_ms: u64, call: Call, answer: Answer) -> Observation {
    Observation {
        at_ms,
        call,
        answer,
        pin_found: Vec::new(),
    }
}

fn open(session: &str, closed: bool) -> Observation {
    let call = Call::OpenSession {
        session_id: session.into(),
        closed,
    };
    at(0, call, Answer::Ok)
}

fn close(session: &str) -> Observation {
    let call = Call::CloseSession {
        session_id: session.into(),
    };
    at(0, call, Answer::Ok)
}

fn issue(id: &str, delivery: Option<Delivery>) -> Observation {
    let call = Call::Issue {
        session_id: "s".into(),
        request_id: id.into(),
        types: vec!["RESIDENT_RECORD".into()],
        delivery,
    };
    at(0, call, Answer::Ok)
}

fn whole_delivery(deadline: i64) -> Delivery {
    Delivery {
        issuance_id: "i-1".into(),
        print_deadline_ms: deadline,
        trailer: true,
        corrupted: false,
    }
}

fn report(outcome: Outcome, at_gateway_ms: i64) -> Observation {
    let call = Call::ReportPrint {
        session_id: "s".into(),
        issuance_id: "i-1".into(),
        outcome,
        at_gateway_ms,
    };
    at(0, call, Answer::Ok)
}

fn verdict(rule: Rule, name: &str, calls: Vec<Observation>, printed: &[String]) -> Verdict {
    let mut recording = Recording::new();
    recording.calls = calls;
    let scenario = scenario::find(name).expect("scenario");
    judge_rule(
        rule,
        &Evidence {
            scenario,
            recording: &recording,
            printed,
            card: None,
        },
    )
    .0
}

#[test]
fn a_session_closed_before_its_last_call_is_not_closed() {
    let calls = vec![open("s", false), close("s"), issue("r-1", None)];
    assert_eq!(
        verdict(Rule::CloseSession, "baseline", calls, &[]),
        Verdict::Fail
    );
    let calls = vec![open("s", false), issue("r-1", None), close("s")];
    assert_eq!(
        verdict(Rule::CloseSession, "baseline", calls, &[]),
        Verdict::Pass
    );
}

#[test]
fn a_report_at_or_after_the_deadline_fails() {
    let on_time = vec![
        issue("r", Some(whole_delivery(1000))),
        report(Outcome::Printed, 999),
    ];
    let late = vec![
        issue("r", Some(whole_delivery(1000))),
        report(Outcome::Printed, 1000),
    ];
    let rule = Rule::ReportBeforeDeadline;
    assert_eq!(verdict(rule, "baseline", on_time, &[]), Verdict::Pass);
    assert_eq!(verdict(rule, "baseline", late, &[]), Verdict::Fail);
}

#[test]
fn the_outcome_must_be_the_printers_only_for_a_whole_delivery() {
    let rule = Rule::ReportBeforeDeadline;
    let whole = vec![
        issue("r", Some(whole_delivery(1000))),
        report(Outcome::Printed, 1),
    ];
    assert_eq!(verdict(rule, "print-failed", whole, &[]), Verdict::Fail);
    let mut cut = whole_delivery(1000);
    cut.trailer = false;
    let calls = vec![issue("r", Some(cut)), report(Outcome::Failed, 1)];
    assert_eq!(verdict(rule, "stream-cut", calls, &[]), Verdict::Pass);
}

#[test]
fn no_retry_and_a_new_id_both_fail() {
    let rule = Rule::IssueRetrySameId;
    assert_eq!(
        verdict(rule, "overloaded", vec![issue("r-1", None)], &[]),
        Verdict::Fail
    );
    let new_id = vec![issue("r-1", None), issue("r-2", None)];
    assert_eq!(verdict(rule, "overloaded", new_id, &[]), Verdict::Fail);
    let same = vec![issue("r-1", None), issue("r-1", None)];
    assert_eq!(verdict(rule, "overloaded", same, &[]), Verdict::Pass);
}

#[test]
fn a_file_or_a_printed_report_is_a_print() {
    let rule = Rule::NoPrintWithoutTrailer;
    let file = ["a.pdf".to_owned()];
    assert_eq!(verdict(rule, "stream-cut", vec![], &file), Verdict::Fail);
    let said = vec![report(Outcome::PartlyPrinted, 1)];
    assert_eq!(verdict(rule, "stream-cut", said, &[]), Verdict::Fail);
    let failed = vec![report(Outcome::Failed, 1)];
    assert_eq!(verdict(rule, "stream-cut", failed, &[]), Verdict::Pass);
}

#[test]
fn without_a_closed_open_session_closed_before_card_is_not_a_pass() {
    let rule = Rule::ClosedBeforeCard;
    let calls = vec![open("s", false), close("s")];
    assert_eq!(verdict(rule, "kill-switch", calls, &[]), Verdict::Fail);
}

#[test]
fn overloaded_retried_within_a_second_fails() {
    let refused = Answer::Refused {
        code: "ResourceExhausted".into(),
        reason: "OVERLOADED".into(),
    };
    let first = Call::Issue {
        session_id: "s".into(),
        request_id: "r".into(),
        types: vec!["RESIDENT_RECORD".into()],
        delivery: None,
    };
    let early = vec![
        at(10, first.clone(), refused.clone()),
        at(900, first.clone(), Answer::Ok),
    ];
    let late = vec![at(10, first.clone(), refused), at(1010, first, Answer::Ok)];
    assert_eq!(
        verdict(Rule::ReasonAction, "overloaded", early, &[]),
        Verdict::Fail
    );
    assert_eq!(
        verdict(Rule::ReasonAction, "overloaded", late, &[]),
        Verdict::Pass
    );
}

#[test]
fn the_card_reset_is_never_passed_and_every_rule_is_judged_somewhere() {
    assert_eq!(
        verdict(Rule::CardReset, "baseline", vec![], &[]),
        Verdict::NotChecked
    );
    for rule in Rule::ALL {
        assert!(
            SCENARIOS.iter().any(|s| s.rules.contains(&rule)),
            "{} is judged nowhere",
            rule.name()
        );
    }
}

fn refused(call: Call, reason: &str) -> Observation {
    let answer = Answer::Refused {
        code: "FailedPrecondition".into(),
        reason: reason.into(),
    };
    at(0, call, answer)
}

fn issue_call(id: &str) -> Call {
    Call::Issue {
        session_id: "s".into(),
        request_id: id.into(),
        types: vec!["RESIDENT_RECORD".into()],
        delivery: None,
    }
}

fn quote() -> Observation {
    let call = Call::Quote {
        session_id: "s".into(),
        types: vec!["RESIDENT_RECORD".into()],
    };
    at(0, call, Answer::Ok)
}

#[test]
fn a_fee_mismatch_is_quoted_again_before_the_next_issue() {
    let mismatch = || refused(issue_call("r"), "FEE_MISMATCH");
    let judged = |calls| verdict(Rule::ReasonAction, "fee-mismatch", calls, &[]);
    assert_eq!(judged(vec![mismatch(), issue("r", None)]), Verdict::Fail);
    assert_eq!(judged(vec![mismatch(), issue("r-2", None)]), Verdict::Fail);
    assert_eq!(
        judged(vec![mismatch(), quote(), issue("r", None)]),
        Verdict::Pass
    );
    assert_eq!(judged(vec![mismatch(), close("s")]), Verdict::Pass);
}

#[test]
fn a_finished_issuance_is_not_retried_with_its_id() {
    let finished = || refused(issue_call("r"), "ISSUANCE_FINISHED");
    let judged = |calls| verdict(Rule::ReasonAction, "issuance-finished", calls, &[]);
    assert_eq!(judged(vec![finished(), issue("r", None)]), Verdict::Fail);
    assert_eq!(judged(vec![finished(), issue("r-2", None)]), Verdict::Pass);
    assert_eq!(judged(vec![finished(), close("s")]), Verdict::Pass);
}

#[test]
fn an_expired_challenge_is_not_used_again() {
    let authenticate = |session: &str| Call::Authenticate {
        session_id: session.into(),
    };
    let expired = || refused(authenticate("s"), "CHALLENGE_EXPIRED");
    let again = |session: &str| at(0, authenticate(session), Answer::Ok);
    let judged = |calls| verdict(Rule::ReasonAction, "challenge-expired", calls, &[]);
    assert_eq!(judged(vec![expired(), again("s")]), Verdict::Fail);
    assert_eq!(
        judged(vec![expired(), open("s-2", false), again("s-2")]),
        Verdict::Pass
    );
    assert_eq!(judged(vec![expired(), close("s")]), Verdict::Pass);
}

#[test]
fn an_entry_the_menu_withheld_is_not_ordered() {
    let judged = |calls| verdict(Rule::ReasonAction, "ineligible-item", calls, &[]);
    let quote_of = |types: &[&str]| {
        let call = Call::Quote {
            session_id: "s".into(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
        };
        at(0, call, Answer::Ok)
    };
    assert_eq!(judged(vec![quote_of(&["RESIDENT_RECORD"])]), Verdict::Pass);
    assert_eq!(
        judged(vec![quote_of(&["RESIDENT_RECORD", WITHHELD_TYPE])]),
        Verdict::Fail
    );
    assert_eq!(judged(vec![close("s")]), Verdict::Pass);
}

#[test]
fn a_refused_login_is_not_retried_on_its_session() {
    let authenticate = || Call::Authenticate {
        session_id: "s".into(),
    };
    let refused_login = |reason: &str| {
        let answer = Answer::Refused {
            code: "Unauthenticated".into(),
            reason: reason.into(),
        };
        at(0, authenticate(), answer)
    };
    let again = at(0, authenticate(), Answer::Ok);
    let judged = |scenario, calls| verdict(Rule::ReasonAction, scenario, calls, &[]);
    let invalid = || refused_login("SIGNATURE_INVALID");
    assert_eq!(
        judged("signature-invalid", vec![invalid(), again.clone()]),
        Verdict::Fail
    );
    assert_eq!(
        judged("signature-invalid", vec![invalid(), close("s")]),
        Verdict::Pass
    );
    let expired = || refused_login("CARD_EXPIRED");
    assert_eq!(
        judged(
            "card-expired",
            vec![expired(), open("s-2", false), again.clone()]
        ),
        Verdict::Fail
    );
    assert_eq!(
        judged("card-expired", vec![expired(), close("s")]),
        Verdict::Pass
    );
}
