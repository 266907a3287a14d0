//! Operating the gateway: the build identity on every health answer, and the operator
//! commands (`kiosk-gateway admin`: suspend, resume and retire a terminal; the global and
//! per-municipality kill switch) against the real server, on SQLite and on PostgreSQL. Each
//! change must take effect on the next call, leave exactly one audit event, and keep the log
//! verifiable; a no-op or refused change must write nothing.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::time::Duration;

use audit::event::{ActorKind, Event, EventType, Fact, UnixMillis};
use kiosk_gateway::admin::{self, AdminError, Attribution, Change, TerminalAction};
use kiosk_gateway::server::{BUILD_COMMIT_HEADER, BUILD_VERSION_HEADER, build_identity};
use kiosk_gateway::store::TerminalStatus;
use kiosk_proto::v1 as pb;
use kiosk_tests::{Db, TERMINAL_1, TERMINAL_2, TestApp, fee, item, on_both_databases, spawn_app};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The second development terminal's id (certificate stem [`TERMINAL_2`]).
const KIOSK_2: &str = "seven/131016-0042/k2";
/// The municipality the development register serves.
const CHIYODA: &str = "131016";

fn metadata<'a>(map: &'a tonic::metadata::MetadataMap, key: &str) -> Option<&'a str> {
    map.get(key).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_health_answer_names_the_build_and_nothing_else_does() {
    let app = spawn_app(Db::Sqlite).await;
    let (version, commit) = build_identity();
    assert!(!commit.is_empty(), "the build commit is empty");
    // What the STARTED audit event records must be what health shows.
    audit::event::Ident::parse(commit).unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let channel = app.channel(None).await;
    let mut health = HealthClient::new(channel.clone());
    let request = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = health
        .check(request("kiosk.v1.TerminalService"))
        .await
        .unwrap();
    assert_eq!(
        metadata(answer.metadata(), BUILD_VERSION_HEADER),
        Some(version)
    );
    assert_eq!(
        metadata(answer.metadata(), BUILD_COMMIT_HEADER),
        Some(commit)
    );
    assert_eq!(
        answer.get_ref().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The overall server, a refusal (unknown service) and a Watch stream carry it too.
    let overall = health.check(request("")).await.unwrap();
    assert_eq!(
        metadata(overall.metadata(), BUILD_COMMIT_HEADER),
        Some(commit)
    );
    let unknown = health.check(request("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(
        metadata(unknown.metadata(), BUILD_COMMIT_HEADER),
        Some(commit)
    );
    let watch = health
        .watch(request("kiosk.v1.TerminalService"))
        .await
        .unwrap();
    assert_eq!(
        metadata(watch.metadata(), BUILD_VERSION_HEADER),
        Some(version)
    );

    // Other services answer as the contract says, without it.
    let mut verifier = app.verifier().await;
    let refused = verifier
        .verify_document(pb::VerifyDocumentRequest {
            document: Some(pb::verify_document_request::Document::Pdf(
                b"not a pdf".to_vec(),
            )),
        })
        .await;
    let metadata_of_verify = match &refused {
        Ok(answer) => answer.metadata(),
        Err(status) => status.metadata(),
    };
    assert_eq!(metadata(metadata_of_verify, BUILD_COMMIT_HEADER), None);
    let opened = app.terminal(TERMINAL_1).await.open_session().await.unwrap();
    assert!(!opened.session_id.is_empty());
}

fn operator(reason: &str) -> Attribution {
    Attribution::parse("ops-chiyoda-01", reason).unwrap()
}

fn now() -> UnixMillis {
    UnixMillis::now()
}

fn reason(error: &kiosk_terminal::client::TerminalError) -> String {
    error.reason().to_owned()
}

/// The audit events of type `ty`, every row re-checked against its leaf hash.
async fn events(app: &TestApp, ty: EventType) -> Vec<Event> {
    let mut conn = app.flow.store().pool().acquire().await.unwrap();
    let filter = audit::store::EventFilter {
        types: vec![ty],
        ..Default::default()
    };
    audit::store::list_events(&mut conn, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| stored.event)
        .collect()
}

/// The TERMINAL_CHANGED events an operator caused (start-up registration is the system's).
async fn operator_terminal_changes(app: &TestApp) -> Vec<Event> {
    events(app, EventType::TerminalChanged)
        .await
        .into_iter()
        .filter(|e| e.actor().kind() == ActorKind::Operator)
        .collect()
}

async fn log_size(app: &TestApp) -> u64 {
    let mut conn = app.flow.store().pool().acquire().await.unwrap();
    audit::store::tree_size(&mut conn).await.unwrap()
}

async fn checkpoint(app: &TestApp) -> pb::GetCheckpointResponse {
    app.auditor()
        .await
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// The log grew append-only since `before` (signed checkpoints, consistency proof), and the
/// whole stored log re-hashes to the new checkpoint with nothing out of place.
async fn assert_log_verifies(app: &TestApp, before: &pb::GetCheckpointResponse) {
    let after = checkpoint(app).await;
    let verifier = audit::checkpoint::CheckpointVerifier::new(
        &after.origin,
        after.public_key.clone().try_into().unwrap(),
    )
    .unwrap();
    let old = verifier.verify(&before.signed_note).unwrap();
    let new = verifier.verify(&after.signed_note).unwrap();
    assert!(new.checkpoint().size() > old.checkpoint().size());
    let proof = app
        .auditor()
        .await
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
    assert!(findings.is_empty(), "the log does not verify: {findings:?}");
}

/// Checks an operator's event: its type, actor, reason text and (for terminals) terminal.
fn assert_by_operator(event: &Event, why: &str) {
    assert_eq!(event.actor().kind(), ActorKind::Operator);
    assert_eq!(event.actor().id(), "ops-chiyoda-01");
    match event.fact("resolution") {
        Some(Fact::Resolution(note)) => assert_eq!(note.as_str(), why),
        other => panic!("no reason recorded: {other:?}"),
    }
}

async fn status_of(app: &TestApp, terminal_id: &str) -> TerminalStatus {
    admin::terminals(app.flow.store())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.terminal_id == terminal_id)
        .unwrap()
        .status
}

on_both_databases!(
    a_suspended_terminal_is_refused_until_resumed,
    |db| async move {
        let app = spawn_app(db).await;
        let store = app.flow.store();
        let terminal = app.terminal(TERMINAL_2).await;
        terminal.open_session().await.unwrap();
        let before = checkpoint(&app).await;

        let suspend = "cash box jammed, vendor called";
        let change = admin::change_terminal(
            store,
            KIOSK_2,
            TerminalAction::Suspend,
            &operator(suspend),
            now(),
        )
        .await
        .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        let error = terminal.open_session().await.unwrap_err();
        assert_eq!(reason(&error), "TERMINAL_SUSPENDED");
        // The other terminal of the same store is not affected.
        app.terminal(TERMINAL_1).await.open_session().await.unwrap();

        // Suspending again changes nothing and writes nothing.
        let size = log_size(&app).await;
        let again = admin::change_terminal(
            store,
            KIOSK_2,
            TerminalAction::Suspend,
            &operator(suspend),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(again, Change::Unchanged);
        assert_eq!(log_size(&app).await, size);

        let resume = "cash box repaired";
        let change = admin::change_terminal(
            store,
            KIOSK_2,
            TerminalAction::Resume,
            &operator(resume),
            now(),
        )
        .await
        .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        terminal.open_session().await.unwrap();
        assert_eq!(status_of(&app, KIOSK_2).await, TerminalStatus::Active);

        // Exactly one event per change, naming the terminal, the operator and the reason.
        let changes = operator_terminal_changes(&app).await;
        assert_eq!(changes.len(), 2, "{changes:?}");
        for (event, why) in changes.iter().zip([suspend, resume]) {
            assert_eq!(event.terminal().unwrap().as_str(), KIOSK_2);
            assert_by_operator(event, why);
        }
        assert_eq!(
            changes[0].reason().map(|r| r.as_str()),
            Some("TERMINAL_SUSPENDED")
        );
        assert_eq!(changes[1].reason(), None);
        assert_log_verifies(&app, &before).await;
    }
);

on_both_databases!(retirement_is_final, |db| async move {
    let app = spawn_app(db).await;
    let store = app.flow.store();
    let terminal = app.terminal(TERMINAL_2).await;
    let before = checkpoint(&app).await;
    let why = "store closed for good";

    let change = admin::change_terminal(
        store,
        KIOSK_2,
        TerminalAction::Retire,
        &operator(why),
        now(),
    )
    .await
    .unwrap();
    assert!(matches!(change, Change::Applied { .. }));
    let error = terminal.open_session().await.unwrap_err();
    assert_eq!(reason(&error), "TERMINAL_RETIRED");

    // Neither resume nor suspend brings it back, and neither writes anything.
    let size = log_size(&app).await;
    for action in [TerminalAction::Resume, TerminalAction::Suspend] {
        let refused = admin::change_terminal(store, KIOSK_2, action, &operator("mistake"), now())
            .await
            .unwrap_err();
        assert!(matches!(refused, AdminError::Retired(_)), "{refused}");
        assert!(refused.to_string().contains("final"), "{refused}");
    }
    let again = admin::change_terminal(
        store,
        KIOSK_2,
        TerminalAction::Retire,
        &operator(why),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(again, Change::Unchanged);
    // An unknown terminal is refused with its name, and nothing is written either.
    let unknown = admin::change_terminal(
        store,
        "seven/131016-0042/k9",
        TerminalAction::Suspend,
        &operator("typo test"),
        now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(unknown, AdminError::UnknownTerminal(_)),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("seven/131016-0042/k9"));
    assert_eq!(log_size(&app).await, size);
    assert_eq!(status_of(&app, KIOSK_2).await, TerminalStatus::Retired);
    let error = terminal.open_session().await.unwrap_err();
    assert_eq!(reason(&error), "TERMINAL_RETIRED");

    // Starting the gateway again over the same databases keeps it retired, and registers
    // nothing again.
    let registered = events(&app, EventType::TerminalChanged).await.len();
    kiosk_gateway::provision::prepare(&app.config, app.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(status_of(&app, KIOSK_2).await, TerminalStatus::Retired);
    assert_eq!(
        events(&app, EventType::TerminalChanged).await.len(),
        registered,
        "a restart wrote terminal events"
    );

    let changes = operator_terminal_changes(&app).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].terminal().unwrap().as_str(), KIOSK_2);
    assert_eq!(
        changes[0].reason().map(|r| r.as_str()),
        Some("TERMINAL_RETIRED")
    );
    assert_by_operator(&changes[0], why);
    assert_log_verifies(&app, &before).await;
});

on_both_databases!(
    registering_the_terminals_at_start_is_in_the_log,
    |db| async move {
        let app = spawn_app(db).await;
        let registered = events(&app, EventType::TerminalChanged).await;
        let expected: Vec<String> = kiosk_devkit::testpki::DevPkiSpec::fixture()
            .terminals
            .iter()
            .map(|t| t.id())
            .collect();
        let named: Vec<String> = registered
            .iter()
            .map(|e| e.terminal().unwrap().as_str().to_owned())
            .collect();
        assert_eq!(named, expected, "one registration event per terminal");
        for event in &registered {
            assert_eq!(event.actor().kind(), ActorKind::System);
            assert!(event.reason().is_none(), "a new terminal is active");
        }
    }
);

/// Issues one document in `session`, reporting it printed; returns the refusal reason if any.
async fn try_issue(
    terminal: &kiosk_terminal::client::Terminal,
    session: &str,
    menu: &pb::Menu,
    key: &str,
) -> Result<(), String> {
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];
    let total = fee(menu, &items);
    let issued = terminal
        .issue(session, key, items, total, Duration::from_secs(60))
        .await
        .map_err(|e| reason(&e))?;
    terminal
        .report_print(
            session,
            &issued.header.issuance_id,
            pb::PrintOutcome::Printed,
            issued.header.total_fee_yen,
            "",
        )
        .await
        .unwrap();
    Ok(())
}

on_both_databases!(
    the_kill_switches_stop_issuing_and_off_restores_it,
    |db| async move {
        let app = spawn_app(db).await;
        let store = app.flow.store();
        let terminal = app.terminal(TERMINAL_1).await;
        let resident = app.examples("Family")[0].clone();
        let (session, menu) = app.login(&terminal, &resident).await.unwrap();
        try_issue(&terminal, &session, &menu, "kill-switch-000001")
            .await
            .unwrap();
        let before = checkpoint(&app).await;

        // Global: new sessions see the service closed, and issuing is refused.
        let change = admin::set_kill_switch(store, None, true, &operator("incident drill"), now())
            .await
            .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        let opened = terminal.open_session().await.unwrap();
        let status = opened.service_status.unwrap();
        assert_eq!(status.state, pb::ServiceState::Closed as i32);
        assert_eq!(status.reason, "SERVICE_SUSPENDED");
        assert_eq!(
            try_issue(&terminal, &session, &menu, "kill-switch-000002").await,
            Err("SERVICE_SUSPENDED".to_owned())
        );
        let global = admin::kill_switch_status(store, &app.config.municipalities)
            .await
            .unwrap();
        assert!(global.global);
        let change = admin::set_kill_switch(store, None, false, &operator("drill over"), now())
            .await
            .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        let opened = terminal.open_session().await.unwrap();
        assert_eq!(
            opened.service_status.unwrap().state,
            pb::ServiceState::Open as i32
        );
        try_issue(&terminal, &session, &menu, "kill-switch-000003")
            .await
            .unwrap();

        // One municipality: its residents are refused; a restart keeps the switch.
        let change = admin::set_kill_switch(
            store,
            Some(CHIYODA),
            true,
            &operator("register migration tonight"),
            now(),
        )
        .await
        .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        assert_eq!(
            try_issue(&terminal, &session, &menu, "kill-switch-000004").await,
            Err("SERVICE_SUSPENDED".to_owned())
        );
        kiosk_gateway::provision::prepare(&app.config, app.clock.as_ref())
            .await
            .unwrap();
        let status = admin::kill_switch_status(store, &app.config.municipalities)
            .await
            .unwrap();
        assert!(!status.global);
        assert!(status.municipalities[0].1.as_ref().unwrap().suspended);
        assert_eq!(
            try_issue(&terminal, &session, &menu, "kill-switch-000005").await,
            Err("SERVICE_SUSPENDED".to_owned())
        );

        // No-ops and unknown or malformed municipalities write nothing.
        let size = log_size(&app).await;
        let again = admin::set_kill_switch(store, Some(CHIYODA), true, &operator("again"), now())
            .await
            .unwrap();
        assert_eq!(again, Change::Unchanged);
        let global_off = admin::set_kill_switch(store, None, false, &operator("again"), now())
            .await
            .unwrap();
        assert_eq!(global_off, Change::Unchanged);
        // 271004 (Osaka) is a valid code this gateway does not serve.
        let unknown = admin::set_kill_switch(store, Some("271004"), true, &operator("x"), now())
            .await
            .unwrap_err();
        assert!(
            matches!(unknown, AdminError::UnknownMunicipality(_)),
            "{unknown}"
        );
        let malformed = admin::set_kill_switch(store, Some("131017"), true, &operator("x"), now())
            .await
            .unwrap_err();
        assert!(malformed.is_usage(), "{malformed}");
        assert_eq!(log_size(&app).await, size);

        let change = admin::set_kill_switch(
            store,
            Some(CHIYODA),
            false,
            &operator("migration done"),
            now(),
        )
        .await
        .unwrap();
        assert!(matches!(change, Change::Applied { .. }));
        try_issue(&terminal, &session, &menu, "kill-switch-000006")
            .await
            .unwrap();

        // One event per change: on, off (global); on, off (Chiyoda).
        let switches = events(&app, EventType::KillSwitchChanged).await;
        let seen: Vec<(Option<&str>, Option<&Fact>)> = switches
            .iter()
            .map(|e| (e.municipality().map(|m| m.as_str()), e.fact("kill_switch")))
            .collect();
        assert_eq!(
            seen,
            vec![
                (None, Some(&Fact::KillSwitch(true))),
                (None, Some(&Fact::KillSwitch(false))),
                (Some(CHIYODA), Some(&Fact::KillSwitch(true))),
                (Some(CHIYODA), Some(&Fact::KillSwitch(false))),
            ]
        );
        for (event, why) in switches.iter().zip([
            "incident drill",
            "drill over",
            "register migration tonight",
            "migration done",
        ]) {
            assert_by_operator(event, why);
        }
        assert_log_verifies(&app, &before).await;
    }
);

#[test]
fn changes_need_an_operator_id_and_a_reason_without_personal_data() {
    assert!(Attribution::parse("ops-chiyoda-01", "cash box jammed").is_ok());
    for (who, why) in [
        ("", "cash box jammed"),
        ("山田 太郎", "cash box jammed"),
        ("ops-chiyoda-01", ""),
        ("ops-chiyoda-01", "resident 123456789012 complained"),
        ("ops-chiyoda-01", "two\nlines"),
    ] {
        let refused = Attribution::parse(who, why).unwrap_err();
        assert!(refused.is_usage(), "{who:?} {why:?}: {refused}");
    }
}
