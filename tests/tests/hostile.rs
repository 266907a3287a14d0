//! Hostile input against the real gateway (port 0, mutual TLS): the regressions of issue 10
//! (answers many times the request, unbounded filters, malformed protobuf answered INTERNAL
//! without a reason, unchecked locale and time values) and a table of bad requests across
//! every RPC of TerminalService, AuditService and VerifyService, each answered with an exact
//! code and reason. Raw bytes go through `raw`, which sends whatever it is given over HTTP/2.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

#[path = "hostile/audit_cases.rs"]
mod audit_cases;
#[path = "hostile/context.rs"]
mod context;
#[path = "hostile/order_cases.rs"]
mod order_cases;
#[path = "hostile/raw.rs"]
mod raw;
#[path = "hostile/table.rs"]
mod table;
#[path = "hostile/terminal_cases.rs"]
mod terminal_cases;
#[path = "hostile/wire_cases.rs"]
mod wire_cases;

use kiosk_proto::v1 as pb;
use kiosk_tests::{Db, TERMINAL_1, TestApp, spawn_app};
use prost::Message;
use raw::{Answer, frame, wire};
use tonic::Code;

const QUOTE: &str = "/kiosk.v1.TerminalService/Quote";
const ISSUE: &str = "/kiosk.v1.TerminalService/Issue";
const OPEN_SESSION: &str = "/kiosk.v1.TerminalService/OpenSession";
const LIST_EVENTS: &str = "/kiosk.v1.AuditService/ListEvents";
const GET_SETTLEMENT: &str = "/kiosk.v1.AuditService/GetSettlement";
const VERIFY: &str = "/kiosk.v1.VerifyService/VerifyDocument";
const ISSUER_MENU: &str = "/kiosk.v1.IssuerService/GetMenu";

/// Asserts the code, the contract reason with both kiosk texts, and (when given) exactly the
/// fields the BadRequest names.
fn assert_refused(answer: &Answer, code: Code, reason: &str, fields: Option<&[&str]>, what: &str) {
    assert_eq!(answer.code(), code, "{what}: {:?}", answer.status);
    assert_eq!(
        answer.reason().map(|r| r.name),
        Some(reason),
        "{what}: {:?}",
        answer.status
    );
    assert!(answer.has_kiosk_texts(), "{what}: kiosk texts missing");
    if let Some(fields) = fields {
        assert_eq!(answer.fields(), fields, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_6_a_hundred_thousand_empty_items_get_a_small_answer() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let family = app.examples("Family")[0].clone();
    let (session, _) = app.login(&terminal, &family).await.unwrap();
    let channel = app.channel(Some(TERMINAL_1)).await;
    let items = vec![pb::RequestItem::default(); 100_000];
    let quote = pb::QuoteRequest {
        session_id: session.clone(),
        items: items.clone(),
    };
    let issue = pb::IssueRequest {
        session_id: session,
        client_request_id: "hostile-many-items-0001".into(),
        items,
        expected_total_fee_yen: 0,
    };
    for (path, body) in [
        (QUOTE, quote.encode_to_vec()),
        (ISSUE, issue.encode_to_vec()),
    ] {
        let answer = raw::call(&channel, path, frame(&body), &[]).await;
        assert_refused(
            &answer,
            Code::InvalidArgument,
            "INVALID_FIELD",
            Some(&["items"]),
            path,
        );
        assert!(
            answer.status.details().len() < 4096,
            "{path}: {} bytes of details for a {} byte request",
            answer.status.details().len(),
            body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_7_forty_thousand_event_types_are_refused_as_a_field() {
    let app = spawn_app(Db::Sqlite).await;
    let channel = app.channel(Some("auditor")).await;
    let request = pb::ListEventsRequest {
        types: vec![pb::AuditEventType::SessionOpened as i32; 40_000],
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let answer = raw::call(&channel, LIST_EVENTS, frame(&request.encode_to_vec()), &[]).await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        Some(&["types"]),
        "ListEvents",
    );
    // Refused from the request's shape, before any statement runs.
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_8_malformed_protobuf_gets_invalid_field_on_every_service() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.channel(Some(TERMINAL_1)).await;
    let auditor = app.channel(Some("auditor")).await;
    let anyone = app.channel(None).await;
    let not_utf8 = wire::len(1, &[0x6a, 0x61, 0xff, 0xfe]);
    // OpenSessionRequest.locale (field 1) that is not UTF-8.
    let answer = raw::call(&terminal, OPEN_SESSION, frame(&not_utf8), &[]).await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        Some(&["locale"]),
        "OpenSession, locale not UTF-8",
    );
    // ListEventsRequest.start_index (field 6) whose varint never ends.
    let truncated = [wire::key(6, 0), vec![0xff, 0xff]].concat();
    let answer = raw::call(&auditor, LIST_EVENTS, frame(&truncated), &[]).await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        None,
        "ListEvents, truncated varint",
    );
    // VerifyDocumentRequest.qr_payload (field 1) that is not UTF-8; prost names the oneof.
    let answer = raw::call(&anyone, VERIFY, frame(&not_utf8), &[]).await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        Some(&["document"]),
        "VerifyDocument, qr_payload not UTF-8",
    );
    // IssuerService, served by `issuer serve`, to the gateway's internal certificate:
    // IssuerMenuRequest.municipality_code (field 1) that is not UTF-8.
    let issuer = kiosk_gateway::provision::start_issuer_server(&app.embedded)
        .await
        .unwrap();
    let url = format!("https://{}", issuer.local_addr());
    let gateway =
        kiosk_gateway::provision::remote_issuer_endpoint(&app.embedded.pki, &url, "localhost")
            .unwrap()
            .connect()
            .await
            .unwrap();
    let answer = raw::call(&gateway, ISSUER_MENU, frame(&not_utf8), &[]).await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        Some(&["municipality_code"]),
        "IssuerService GetMenu, municipality_code not UTF-8",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_8_oversized_messages_get_request_too_large() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.channel(Some(TERMINAL_1)).await;
    let anyone = app.channel(None).await;
    // 1 MiB of locale: past TerminalService's 1 MiB limit.
    let request = pb::OpenSessionRequest {
        locale: "a".repeat(1 << 20),
    };
    let answer = raw::call(
        &terminal,
        OPEN_SESSION,
        frame(&request.encode_to_vec()),
        &[],
    )
    .await;
    assert_refused(
        &answer,
        Code::ResourceExhausted,
        "REQUEST_TOO_LARGE",
        None,
        "OpenSession over 1 MiB",
    );
    // A frame header that declares 4 GiB, with nothing behind it.
    let answer = raw::call(&anyone, VERIFY, raw::frame_with(0, u32::MAX, &[]), &[]).await;
    assert_refused(
        &answer,
        Code::ResourceExhausted,
        "REQUEST_TOO_LARGE",
        None,
        "VerifyDocument declaring 4 GiB",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_locale_is_a_bounded_language_tag() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.channel(Some(TERMINAL_1)).await;
    for (locale, accepted) in [
        ("", true),
        ("ja-JP", true),
        ("en-US", true),
        ("fr-CA", true),
        ("zh-Hant-TW", true),
        ("x", false),
        ("ja_JP", false),
        ("ja-JP\u{0}", false),
        ("ｊａ-ＪＰ", false),
        (&"ja-".repeat(20), false),
        (&"a".repeat(1_000_000), false),
    ] {
        let request = pb::OpenSessionRequest {
            locale: locale.to_owned(),
        };
        let answer = raw::call(
            &terminal,
            OPEN_SESSION,
            frame(&request.encode_to_vec()),
            &[],
        )
        .await;
        let what = format!("locale {:?}", &locale[..locale.len().min(24)]);
        if accepted {
            assert_eq!(answer.code(), Code::Ok, "{what}: {:?}", answer.status);
        } else {
            assert_refused(
                &answer,
                Code::InvalidArgument,
                "INVALID_FIELD",
                Some(&["locale"]),
                &what,
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_audit_times_that_overflow_milliseconds_are_refused() {
    let app = spawn_app(Db::Sqlite).await;
    let auditor = app.channel(Some("auditor")).await;
    let at = |seconds: i64, nanos: i32| Some(prost_types::Timestamp { seconds, nanos });
    let list = |from, to| pb::ListEventsRequest {
        from,
        to,
        ..Default::default()
    };
    for (request, field) in [
        (list(at(i64::MAX, 0), None), "from"),
        (list(None, at(i64::MIN, 0)), "to"),
        (list(at(0, -1), None), "from"),
        (list(at(0, 1_000_000_000), None), "from"),
    ] {
        let answer = raw::call(&auditor, LIST_EVENTS, frame(&request.encode_to_vec()), &[]).await;
        assert_refused(
            &answer,
            Code::InvalidArgument,
            "INVALID_FIELD",
            Some(&[field]),
            &format!("ListEvents {field}"),
        );
    }
    let settlement = pb::GetSettlementRequest {
        from: at(0, 0),
        to: at(i64::MAX / 999, 0),
        period: pb::SettlementPeriod::Day as i32,
        grouping: pb::SettlementGrouping::Terminal as i32,
    };
    let answer = raw::call(
        &auditor,
        GET_SETTLEMENT,
        frame(&settlement.encode_to_vec()),
        &[],
    )
    .await;
    assert_refused(
        &answer,
        Code::InvalidArgument,
        "INVALID_FIELD",
        Some(&["to"]),
        "GetSettlement to",
    );
}

/// Every case of the table, TerminalService first.
fn every_case(app: &TestApp) -> Vec<table::Case> {
    let mut cases = terminal_cases::open_session_cases();
    cases.extend(terminal_cases::authenticate_cases(app));
    cases.extend(terminal_cases::session_state_cases());
    cases.extend(terminal_cases::suspension_cases());
    cases.extend(terminal_cases::identifier_cases());
    cases.extend(order_cases::quote_cases());
    cases.extend(order_cases::issue_cases());
    cases.extend(order_cases::report_cases());
    cases.extend(db_touching_audit_cases());
    cases.extend(wire_cases::framing_cases());
    cases.extend(wire_cases::protobuf_cases());
    cases.extend(wire_cases::verify_cases());
    cases
}

/// The AuditService cases: every one reads or writes the log through SQL.
fn db_touching_audit_cases() -> Vec<table::Case> {
    let mut cases = audit_cases::list_events_cases();
    cases.extend(audit_cases::proof_cases());
    cases.extend(audit_cases::settlement_cases());
    cases.extend(audit_cases::anomaly_cases());
    cases
}

/// The latest checkpoint, as an auditor sees it.
async fn checkpoint(app: &TestApp) -> pb::GetCheckpointResponse {
    let mut auditor = app.auditor().await;
    auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// After a hostile run: every service reports SERVING, and the audit log is intact: the new
/// checkpoint verifies, is consistent with `before`, and re-hashing the stored events gives
/// its root with no finding.
async fn assert_still_sound(app: &TestApp, before: &pb::GetCheckpointResponse) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel(None).await);
    for service in [
        "",
        "kiosk.v1.TerminalService",
        "kiosk.v1.AuditService",
        "kiosk.v1.VerifyService",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }
    let after = checkpoint(app).await;
    assert!(after.tree_size > before.tree_size);
    let verifier = audit::checkpoint::CheckpointVerifier::new(
        &after.origin,
        after.public_key.clone().try_into().unwrap(),
    )
    .unwrap();
    let old = verifier.verify(&before.signed_note).unwrap();
    let new = verifier.verify(&after.signed_note).unwrap();
    let mut auditor = app.auditor().await;
    let proof = auditor
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first_tree_size: before.tree_size,
            second_tree_size: after.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let hashes: Vec<audit::merkle::Hash> = proof
        .hashes
        .iter()
        .map(|h| audit::merkle::Hash::from_slice(h).unwrap())
        .collect();
    audit::verify::check_consistency(old.checkpoint(), new.checkpoint(), &hashes).unwrap();
    let mut conn = app.flow.store().pool().acquire().await.unwrap();
    let (_, findings) = audit::verify::verify_store(&mut conn, new.checkpoint())
        .await
        .unwrap();
    assert!(
        findings.is_empty(),
        "the audit log has findings: {findings:?}"
    );
}

/// Runs `cases` against `app` and fails with every mismatch at once.
async fn run_table(app: &TestApp, cases: &[table::Case]) {
    let before = checkpoint(app).await;
    let mut ctx = context::prepare(app).await;
    let failures = table::run(app, &mut ctx, cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases got another answer:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_still_sound(app, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_input_gets_its_exact_answer_on_sqlite() {
    let app = spawn_app(Db::Sqlite).await;
    let cases = every_case(&app);
    assert!(
        cases.len() >= 200,
        "only {} kinds of hostile input",
        cases.len()
    );
    run_table(&app, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_and_audit_filters_on_postgres() {
    let app = spawn_app(Db::Postgres).await;
    let mut cases = terminal_cases::identifier_cases();
    cases.extend(db_touching_audit_cases());
    run_table(&app, &cases).await;
}
