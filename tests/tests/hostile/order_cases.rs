//! Hostile orders (Quote and Issue): item counts, enum and integer values, subject references,
//! options, idempotency keys, fees and session states; and print reports.

use bytes::Bytes;
use kiosk_proto::v1 as pb;
use prost::Message;
use tonic::Code;

use super::context::{CLOSED_KEY, Ctx, PARTLY_KEY, PRINTED_KEY, VOIDED_KEY};
use super::raw::wire;
use super::table::{Caller, Case, bytes, issue_stream, msg, one};
use super::terminal_cases::{ISSUE, QUOTE, REPORT_PRINT};

type Items = fn(&Ctx) -> Vec<pb::RequestItem>;

fn item(t: pb::CertificateType) -> pb::RequestItem {
    kiosk_tests::item(t)
}

fn rr() -> pb::RequestItem {
    item(pb::CertificateType::ResidentRecord)
}

fn with_subjects(subjects: &[&str]) -> pb::RequestItem {
    pb::RequestItem {
        subject_refs: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..rr()
    }
}

fn with_options(t: pb::CertificateType, options: pb::CertificateOptions) -> pb::RequestItem {
    pb::RequestItem {
        options: Some(options),
        ..item(t)
    }
}

/// An order shape: its name, its items and the answer (code, reason, first field) it gets;
/// `None` for success.
type Shape = (&'static str, Items, Expected);
type Expected = Option<(Code, &'static str, &'static str)>;

fn shape(name: &'static str, items: Items, expected: Expected) -> Shape {
    (name, items, expected)
}

/// Order shapes sent to both Quote and Issue, with the answer both must give.
fn shapes() -> Vec<Shape> {
    let invalid = |field| Some((Code::InvalidArgument, "INVALID_FIELD", field));
    vec![
        shape("no items", |_| vec![], invalid("items")),
        shape("11 items", |_| vec![rr(); 11], invalid("items")),
        shape(
            "100,000 empty items",
            |_| vec![pb::RequestItem::default(); 100_000],
            invalid("items"),
        ),
        shape(
            "10 empty items",
            |_| vec![pb::RequestItem::default(); 10],
            invalid("items[0].type"),
        ),
        shape(
            "type UNSPECIFIED",
            |_| vec![pb::RequestItem { r#type: 0, ..rr() }],
            invalid("items[0].type"),
        ),
        shape(
            "type 99",
            |_| vec![pb::RequestItem { r#type: 99, ..rr() }],
            invalid("items[0].type"),
        ),
        shape(
            "type -1",
            |_| vec![pb::RequestItem { r#type: -1, ..rr() }],
            invalid("items[0].type"),
        ),
        shape(
            "type i32::MAX",
            |_| {
                vec![pb::RequestItem {
                    r#type: i32::MAX,
                    ..rr()
                }]
            },
            invalid("items[0].type"),
        ),
        shape(
            "second item's type unknown",
            |_| vec![rr(), pb::RequestItem { r#type: 8, ..rr() }],
            invalid("items[1].type"),
        ),
        shape(
            "copies 0",
            |_| vec![pb::RequestItem { copies: 0, ..rr() }],
            invalid("items[0].copies"),
        ),
        shape(
            "copies u32::MAX",
            |_| {
                vec![pb::RequestItem {
                    copies: u32::MAX,
                    ..rr()
                }]
            },
            Some((Code::InvalidArgument, "TOO_MANY_COPIES", "")),
        ),
        shape(
            "copies one over the menu's maximum",
            |c| {
                vec![pb::RequestItem {
                    copies: c.max_copies() + 1,
                    ..rr()
                }]
            },
            Some((Code::InvalidArgument, "TOO_MANY_COPIES", "")),
        ),
        shape(
            "33 subject refs",
            |_| {
                vec![pb::RequestItem {
                    subject_refs: vec!["r-1".into(); 33],
                    ..rr()
                }]
            },
            invalid("items[0].subject_refs"),
        ),
        shape(
            "subject ref empty",
            |_| vec![with_subjects(&[""])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref NUL",
            |_| vec![with_subjects(&["r-\0"])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref with /",
            |_| vec![with_subjects(&["r/1"])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref of 65 characters",
            |_| vec![with_subjects(&[&"r".repeat(65)])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref with an RTL override",
            |_| vec![with_subjects(&["r-\u{202E}1"])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref SQL quote",
            |_| vec![with_subjects(&["r' OR 1=1"])],
            invalid("items[0].subject_refs[0]"),
        ),
        shape(
            "subject ref outside the menu",
            |c| vec![with_subjects(&[&c.stranger])],
            Some((Code::FailedPrecondition, "NOT_PERMITTED_SUBJECT", "")),
        ),
        shape(
            "subject ref well-formed but unknown",
            |_| vec![with_subjects(&["r-0000000000000000"])],
            Some((Code::FailedPrecondition, "NOT_PERMITTED_SUBJECT", "")),
        ),
        // Options a type does not accept, and a missing fiscal year, are named by the
        // gateway's own check before the issuer is asked.
        shape(
            "SEAL_REGISTRATION with include_honseki",
            |_| {
                vec![with_options(
                    pb::CertificateType::SealRegistration,
                    pb::CertificateOptions {
                        include_honseki: true,
                        ..Default::default()
                    },
                )]
            },
            invalid("items[0].options.include_honseki"),
        ),
        shape(
            "RESIDENT_RECORD with a fiscal_year",
            |_| {
                vec![with_options(
                    pb::CertificateType::ResidentRecord,
                    pb::CertificateOptions {
                        fiscal_year: 2026,
                        ..Default::default()
                    },
                )]
            },
            invalid("items[0].options.fiscal_year"),
        ),
        shape(
            "INCOME_TAX fiscal_year 0",
            |_| vec![item(pb::CertificateType::IncomeTax)],
            invalid("items[0].options.fiscal_year"),
        ),
        shape(
            "INCOME_TAX fiscal_year u32::MAX",
            |_| {
                vec![with_options(
                    pb::CertificateType::IncomeTax,
                    pb::CertificateOptions {
                        fiscal_year: u32::MAX,
                        ..Default::default()
                    },
                )]
            },
            Some((Code::FailedPrecondition, "NO_TAX_DATA", "")),
        ),
    ]
}

/// Quote with each shape, and shapes only Quote prices without issuing.
pub fn quote_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, items, expected) in shapes() {
        let case = Case::new(
            format!("Quote: {name}"),
            QUOTE,
            Caller::T1,
            msg(move |c| pb::QuoteRequest {
                session_id: c.authed.clone(),
                items: items(c),
            }),
        );
        cases.push(expect(case, expected));
    }
    let quote = |name: &str, caller, session: fn(&Ctx) -> String, items: Items| {
        Case::new(
            format!("Quote: {name}"),
            QUOTE,
            caller,
            msg(move |c| pb::QuoteRequest {
                session_id: session(c),
                items: items(c),
            }),
        )
    };
    let lines = |n: usize| move |m: &[Bytes]| one(m, |r: pb::QuoteResponse| r.lines.len() == n);
    cases.extend([
        quote(
            "10 items (the limit)",
            Caller::T1,
            |c| c.authed.clone(),
            |_| vec![rr(); 10],
        )
        .answers(lines(10)),
        quote(
            "the same item twice",
            Caller::T1,
            |c| c.authed.clone(),
            |_| vec![rr(), rr()],
        )
        .answers(lines(2)),
        quote(
            "session never authenticated",
            Caller::T1,
            |c| c.open.clone(),
            |_| vec![rr()],
        )
        .refused(Code::FailedPrecondition, "SESSION_STATE"),
        quote(
            "closed session",
            Caller::T1,
            |c| c.closed.clone(),
            |_| vec![rr()],
        )
        .refused(Code::FailedPrecondition, "SESSION_STATE"),
        quote(
            "another terminal's session",
            Caller::T2,
            |c| c.authed.clone(),
            |_| vec![rr()],
        )
        .refused(Code::NotFound, "SESSION_NOT_FOUND"),
        Case::new(
            "Quote: unknown field inside an item",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                let item = [rr().encode_to_vec(), wire::int(42, 7)].concat();
                [wire::len(1, c.authed.as_bytes()), wire::len(2, &item)].concat()
            }),
        )
        .answers(lines(1)),
        Case::new(
            "Quote: item type as length-delimited",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                [
                    wire::len(1, c.authed.as_bytes()),
                    wire::len(2, &wire::len(1, b"\x01")),
                ]
                .concat()
            }),
        )
        .invalid("items.type"),
        Case::new(
            "Quote: item options as a varint",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                let item = [wire::int(1, 1), wire::int(2, 1), wire::int(4, 1)].concat();
                [wire::len(1, c.authed.as_bytes()), wire::len(2, &item)].concat()
            }),
        )
        .invalid("items.options"),
        Case::new(
            "Quote: subject ref not UTF-8",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                let item = [wire::int(1, 1), wire::len(3, &[0xff]), wire::int(4, 1)].concat();
                [wire::len(1, c.authed.as_bytes()), wire::len(2, &item)].concat()
            }),
        )
        .invalid("items.subject_refs"),
        Case::new(
            "Quote: item length past the end",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                [
                    wire::len(1, c.authed.as_bytes()),
                    wire::key(2, 2),
                    wire::varint(50),
                    vec![8, 1],
                ]
                .concat()
            }),
        )
        .invalid("items"),
        Case::new(
            "Quote: type -1 as a 10-byte varint",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                let item = [wire::int(1, u64::MAX), wire::int(4, 1)].concat();
                [wire::len(1, c.authed.as_bytes()), wire::len(2, &item)].concat()
            }),
        )
        .invalid("items[0].type"),
        Case::new(
            "Quote: copies 2^32 (truncated to 0)",
            QUOTE,
            Caller::T1,
            bytes(|c| {
                let item = [wire::int(1, 1), wire::int(4, 1 << 32)].concat();
                [wire::len(1, c.authed.as_bytes()), wire::len(2, &item)].concat()
            }),
        )
        .invalid("items[0].copies"),
    ]);
    cases
}

fn expect(case: Case, expected: Expected) -> Case {
    match expected {
        Some((Code::InvalidArgument, "INVALID_FIELD", field)) => case.invalid(field),
        Some((code, reason, _)) => case.refused(code, reason),
        None => case,
    }
}

/// Issue with each shape (each under its own key), keys, fees, retries and session states.
pub fn issue_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (n, (name, items, expected)) in shapes().into_iter().enumerate() {
        let case = Case::new(
            format!("Issue: {name}"),
            ISSUE,
            Caller::T1,
            msg(move |c| pb::IssueRequest {
                session_id: c.authed.clone(),
                client_request_id: format!("hostile-shape-{n:04}"),
                items: items(c),
                expected_total_fee_yen: c.fee,
            }),
        );
        cases.push(expect(case, expected));
    }
    cases.extend(key_cases());
    cases.extend(retry_cases());
    cases
}

fn issue(session: &str, key: &str, items: Vec<pb::RequestItem>, total: u32) -> pb::IssueRequest {
    pb::IssueRequest {
        session_id: session.into(),
        client_request_id: key.into(),
        items,
        expected_total_fee_yen: total,
    }
}

fn key_cases() -> Vec<Case> {
    let key = |name: &str, key: String| {
        Case::new(
            format!("Issue client_request_id: {name}"),
            ISSUE,
            Caller::T1,
            msg(move |c| issue(&c.authed, &key, vec![rr()], c.fee)),
        )
    };
    vec![
        key("empty", String::new()).invalid("client_request_id"),
        key("15 characters", "hostile-key-015".into()).invalid("client_request_id"),
        key("65 characters", "k".repeat(65)).invalid("client_request_id"),
        key("with /", "hostile/key/0000001".into()).invalid("client_request_id"),
        key("with a space", "hostile key 0000001".into()).invalid("client_request_id"),
        key("NUL", "hostile-key-000001\0".into()).invalid("client_request_id"),
        key("full-width", "ｈｏｓｔｉｌｅ－ｋｅｙ－０１".into()).invalid("client_request_id"),
        key("RTL override", "hostile-key-\u{202E}000001".into()).invalid("client_request_id"),
        key("16 characters (the minimum)", "hostile-key-0016".into()).answers(issue_stream),
        key(
            "64 characters (the maximum)",
            format!("hostile-key-{}", "6".repeat(52)),
        )
        .answers(issue_stream),
        Case::new(
            "Issue client_request_id: not UTF-8",
            ISSUE,
            Caller::T1,
            bytes(|c| {
                [
                    issue(&c.authed, "hostile-key-utf8-001", vec![rr()], c.fee).encode_to_vec(),
                    wire::len(2, &[0xe3, 0x81]),
                ]
                .concat()
            }),
        )
        .invalid("client_request_id"),
    ]
}

fn retry_cases() -> Vec<Case> {
    let order = |name: &str, caller, build: fn(&Ctx) -> pb::IssueRequest| {
        Case::new(format!("Issue: {name}"), ISSUE, caller, msg(build))
    };
    let replayed = |m: &[Bytes]| {
        issue_stream(m)
            && pb::IssueResponse::decode(m[0].as_ref()).is_ok_and(
                |r| matches!(r.event, Some(pb::issue_response::Event::Header(h)) if h.replayed),
            )
    };
    vec![
        order("expected total 0", Caller::T1, |c| {
            issue(&c.authed, "hostile-fee-zero-0001", vec![rr()], 0)
        })
        .refused(Code::FailedPrecondition, "FEE_MISMATCH"),
        order("expected total u32::MAX", Caller::T1, |c| {
            issue(&c.authed, "hostile-fee-max-00001", vec![rr()], u32::MAX)
        })
        .refused(Code::FailedPrecondition, "FEE_MISMATCH"),
        order("the same item twice", Caller::T1, |c| {
            issue(
                &c.authed,
                "hostile-twice-000001",
                vec![rr(), rr()],
                2 * c.fee,
            )
        })
        .answers(issue_stream),
        order("a retry of a released order", Caller::T1, |c| {
            issue(&c.authed, &c.released_key, vec![rr()], c.fee)
        })
        .answers(replayed),
        order("a key reused for another order", Caller::T1, |c| {
            issue(
                &c.authed,
                &c.released_key,
                vec![pb::RequestItem { copies: 2, ..rr() }],
                2 * c.fee,
            )
        })
        .refused(Code::AlreadyExists, "IDEMPOTENCY_KEY_REUSED"),
        order("a key reused from another session", Caller::T1, |c| {
            issue(&c.open, &c.released_key, vec![rr()], c.fee)
        })
        .refused(Code::AlreadyExists, "IDEMPOTENCY_KEY_REUSED"),
        order("a retry of a printed order", Caller::T1, |c| {
            issue(&c.authed, PRINTED_KEY, vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_FINISHED"),
        order("a retry of a print-failed order", Caller::T1, |c| {
            issue(&c.authed, VOIDED_KEY, vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_FINISHED"),
        order("a retry of a partly printed order", Caller::T1, |c| {
            issue(&c.authed, PARTLY_KEY, vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_FINISHED"),
        order("a retry after its session closed", Caller::T1, |c| {
            issue(&c.closed_after_issue, CLOSED_KEY, vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_FINISHED"),
        order("a printed order's key for another order", Caller::T1, |c| {
            issue(
                &c.authed,
                PRINTED_KEY,
                vec![pb::RequestItem { copies: 2, ..rr() }],
                2 * c.fee,
            )
        })
        .refused(Code::AlreadyExists, "IDEMPOTENCY_KEY_REUSED"),
        order("session never authenticated", Caller::T1, |c| {
            issue(&c.open, "hostile-open-session-1", vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "SESSION_STATE"),
        order("closed session", Caller::T1, |c| {
            issue(&c.closed, "hostile-closed-session", vec![rr()], c.fee)
        })
        .refused(Code::FailedPrecondition, "SESSION_STATE"),
        order("another terminal's session", Caller::T2, |c| {
            issue(&c.authed, "hostile-other-term-01", vec![rr()], c.fee)
        })
        .refused(Code::NotFound, "SESSION_NOT_FOUND"),
        order("auditor certificate", Caller::Auditor, |c| {
            issue(&c.authed, "hostile-auditor-00001", vec![rr()], c.fee)
        })
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
    ]
}

/// A print report; outcomes by number (1 PRINTED, 2 FAILED, 3 PARTLY_PRINTED), so that
/// numbers outside the enum can be sent too.
fn on(session: &str, issuance: &str, outcome: i32, detail: &str) -> pb::ReportPrintRequest {
    pb::ReportPrintRequest {
        session_id: session.into(),
        issuance_id: issuance.into(),
        outcome,
        failure_detail: detail.into(),
        collected_yen: 0,
    }
}

/// ReportPrint: outcomes, failure texts, states and owners.
pub fn report_cases() -> Vec<Case> {
    let report = |name: &str, caller, build: fn(&Ctx) -> pb::ReportPrintRequest| {
        Case::new(
            format!("ReportPrint: {name}"),
            REPORT_PRINT,
            caller,
            msg(build),
        )
    };
    let state = |s: pb::IssuanceState| {
        move |m: &[Bytes]| one(m, |r: pb::ReportPrintResponse| r.state == s as i32)
    };
    vec![
        report("outcome UNSPECIFIED", Caller::T1, |c| {
            on(&c.authed, &c.released, 0, "")
        })
        .invalid("outcome"),
        report("outcome 99", Caller::T1, |c| {
            on(&c.authed, &c.released, 99, "")
        })
        .invalid("outcome"),
        report("outcome -1", Caller::T1, |c| {
            on(&c.authed, &c.released, -1, "")
        })
        .invalid("outcome"),
        report("failure_detail of 201 characters", Caller::T1, |c| {
            on(&c.authed, &c.released, 2, &"紙".repeat(201))
        })
        .invalid("failure_detail"),
        report("failure_detail with NUL", Caller::T1, |c| {
            on(&c.authed, &c.released, 2, "jam\0")
        })
        .invalid("failure_detail"),
        report("failure_detail with an RTL override", Caller::T1, |c| {
            on(&c.authed, &c.released, 2, "E\u{202E}01")
        })
        .invalid("failure_detail"),
        report("failure_detail with a newline", Caller::T1, |c| {
            on(&c.authed, &c.released, 2, "E01\nE02")
        })
        .invalid("failure_detail"),
        report("failure_detail with a zero-width space", Caller::T1, |c| {
            on(&c.authed, &c.released, 2, "E\u{200B}01")
        })
        .invalid("failure_detail"),
        report(
            "failure_detail of 200 characters (the limit)",
            Caller::T1,
            |c| on(&c.authed, &c.printed, 1, &"紙".repeat(200)),
        )
        .answers(state(pb::IssuanceState::Printed)),
        report("PRINTED again (idempotent)", Caller::T1, |c| {
            on(&c.authed, &c.printed, 1, "")
        })
        .answers(state(pb::IssuanceState::Printed)),
        report("FAILED after PRINTED", Caller::T1, |c| {
            on(&c.authed, &c.printed, 2, "")
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_ALREADY_REPORTED"),
        report("PARTLY_PRINTED after PRINTED", Caller::T1, |c| {
            on(&c.authed, &c.printed, 3, "")
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_ALREADY_REPORTED"),
        report("PRINTED after FAILED", Caller::T1, |c| {
            on(&c.authed, &c.voided, 1, "")
        })
        .refused(Code::FailedPrecondition, "ISSUANCE_ALREADY_REPORTED"),
        report("FAILED again (idempotent)", Caller::T1, |c| {
            on(&c.authed, &c.voided, 2, "")
        })
        .answers(state(pb::IssuanceState::Voided)),
        report("an issuance of another session", Caller::T1, |c| {
            on(&c.open, &c.printed, 1, "")
        })
        .refused(Code::NotFound, "ISSUANCE_NOT_FOUND"),
        report("another terminal's issuance", Caller::T2, |c| {
            on(&c.authed, &c.released, 2, "")
        })
        .refused(Code::NotFound, "ISSUANCE_NOT_FOUND"),
        report(
            "collected_yen u32::MAX on a printed issuance",
            Caller::T1,
            |c| pb::ReportPrintRequest {
                collected_yen: u32::MAX,
                ..on(&c.authed, &c.printed, 1, "")
            },
        )
        .answers(state(pb::IssuanceState::Printed)),
        report("auditor certificate", Caller::Auditor, |c| {
            on(&c.authed, &c.printed, 1, "")
        })
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        Case::new(
            "ReportPrint: unknown fields",
            REPORT_PRINT,
            Caller::T1,
            bytes(|c| {
                [
                    on(&c.authed, &c.printed, 1, "").encode_to_vec(),
                    wire::int(77, 1),
                    wire::len(78, &[0xff]),
                ]
                .concat()
            }),
        )
        .answers(state(pb::IssuanceState::Printed)),
    ]
}
