//! Hardening (issue 10): a suspended terminal stops work in progress, a finished issuance is
//! never handed out again, a terminal cannot open sessions without bound, and no signed
//! document stays valid unless the gateway recorded its issuance. On SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use audit::event::{EventType, UnixMillis};
use kiosk_gateway::admin::{self, Attribution, TerminalAction};
use kiosk_gateway::route::{IssuerDirectory, IssuerLink};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::issuer_service_server::IssuerService;
use kiosk_terminal::client::Terminal;
use kiosk_tests::{
    AppOptions, Db, TERMINAL_1, TestApp, fee, item, on_both_databases, spawn_app, spawn_app_with,
};
use tonic_types::StatusExt;

const KIOSK_1: &str = "seven/131016-0042/k1";

fn operator() -> Attribution {
    Attribution::parse("ops-test-01", "hardening test").unwrap()
}

/// Logs a resident with a seal registration in and returns the session and a one-item order.
async fn logged_in(app: &TestApp, terminal: &Terminal) -> (String, Vec<pb::RequestItem>, u32) {
    let resident = app.residents()[0].clone();
    let (session, menu) = app.login(terminal, &resident).await.unwrap();
    let items = vec![item(pb::CertificateType::ResidentRecord)];
    let total = fee(&menu, &items);
    (session, items, total)
}

/// The raw TerminalService client of `stem`, for statuses with all their details.
async fn raw(
    app: &TestApp,
    stem: &str,
) -> pb::terminal_service_client::TerminalServiceClient<tonic::transport::Channel> {
    pb::terminal_service_client::TerminalServiceClient::new(app.channel(Some(stem)).await)
        .max_decoding_message_size(64 << 20)
}

/// Issue with the raw client: the header's `replayed` flag and the document count, or the
/// status.
async fn raw_issue(
    app: &TestApp,
    session: &str,
    key: &str,
    items: &[pb::RequestItem],
    total: u32,
) -> Result<(bool, usize), tonic::Status> {
    let mut client = raw(app, TERMINAL_1).await;
    let mut stream = client
        .issue(pb::IssueRequest {
            session_id: session.to_owned(),
            client_request_id: key.to_owned(),
            items: items.to_vec(),
            expected_total_fee_yen: total,
        })
        .await?
        .into_inner();
    let mut replayed = false;
    let mut documents = 0;
    while let Some(message) = stream.message().await? {
        match message.event {
            Some(pb::issue_response::Event::Header(header)) => replayed = header.replayed,
            Some(pb::issue_response::Event::Chunk(chunk)) if chunk.last => documents += 1,
            _ => {}
        }
    }
    Ok((replayed, documents))
}

fn reason(status: &tonic::Status) -> &'static str {
    kiosk_proto::reasons::reason_of(status).map_or("NONE", |r| r.name)
}

fn metadata(status: &tonic::Status) -> HashMap<String, String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.metadata.clone())
        .unwrap_or_default()
}

on_both_databases!(a_suspension_stops_sessions_already_open, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let (session, items, total) = logged_in(&app, &terminal).await;
    let waiting = terminal.open_session().await.unwrap();
    let issued = terminal
        .issue(
            &session,
            "suspend-before-0001",
            items.clone(),
            total,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let store = app.flow.store();
    admin::change_terminal(
        store,
        KIOSK_1,
        TerminalAction::Suspend,
        &operator(),
        UnixMillis(app.flow.now_ms()),
    )
    .await
    .unwrap();

    // Every call that moves a session on is refused, on sessions opened before.
    let card = app.card(&app.residents()[1]);
    let proof = kiosk_tests::sign(card, &waiting).unwrap();
    let refused = terminal
        .authenticate(&waiting.session_id, proof.certificate, proof.signature)
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "TERMINAL_SUSPENDED");
    let mut client = raw(&app, TERMINAL_1).await;
    let menu = client
        .get_menu(pb::GetMenuRequest {
            session_id: session.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&menu), "TERMINAL_SUSPENDED");
    assert_eq!(menu.code(), tonic::Code::PermissionDenied);
    let quote = terminal.quote(&session, items.clone()).await.unwrap_err();
    assert_eq!(quote.reason(), "TERMINAL_SUSPENDED");
    let issue = raw_issue(&app, &session, "suspend-after-00001", &items, total)
        .await
        .unwrap_err();
    assert_eq!(reason(&issue), "TERMINAL_SUSPENDED");
    // A retry of what was issued before is refused too: nothing leaves a suspended terminal.
    let retry = raw_issue(&app, &session, "suspend-before-0001", &items, total)
        .await
        .unwrap_err();
    assert_eq!(reason(&retry), "TERMINAL_SUSPENDED");

    // Winding down is allowed: the print report (a refund may be due) and closing.
    let report = terminal
        .report_print(
            &session,
            &issued.header.issuance_id,
            pb::PrintOutcome::Failed,
            0,
            "jam",
        )
        .await
        .unwrap();
    assert_eq!(report.state, pb::IssuanceState::Voided as i32);
    terminal.close_session(&session).await.unwrap();

    // Resumed, the terminal works again.
    admin::change_terminal(
        store,
        KIOSK_1,
        TerminalAction::Resume,
        &operator(),
        UnixMillis(app.flow.now_ms()),
    )
    .await
    .unwrap();
    let (session, items, total) = logged_in(&app, &terminal).await;
    terminal
        .issue(
            &session,
            "suspend-resumed-001",
            items,
            total,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
});

on_both_databases!(
    a_finished_issuance_is_never_handed_out_again,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;

        // Awaiting its print report in an open session: a retry gets the documents again.
        let (session, items, total) = logged_in(&app, &terminal).await;
        let first = raw_issue(&app, &session, "finished-printed-01", &items, total)
            .await
            .unwrap();
        assert_eq!(first, (false, 1));
        let again = raw_issue(&app, &session, "finished-printed-01", &items, total)
            .await
            .unwrap();
        assert_eq!(again, (true, 1));
        let issued = terminal
            .issue(
                &session,
                "finished-printed-01",
                items.clone(),
                total,
                Duration::from_secs(60),
            )
            .await
            .unwrap();

        // Printed: refused, with the recorded state and fee, and nothing sent.
        terminal
            .report_print(
                &session,
                &issued.header.issuance_id,
                pb::PrintOutcome::Printed,
                total,
                "",
            )
            .await
            .unwrap();
        let refused = raw_issue(&app, &session, "finished-printed-01", &items, total)
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "ISSUANCE_FINISHED");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        let facts = metadata(&refused);
        assert_eq!(facts["issuance_state"], "ISSUANCE_STATE_PRINTED");
        assert_eq!(facts["why"], "printed");
        assert_eq!(facts["total_fee_yen"], total.to_string());
        assert_eq!(facts["issuance_id"], issued.header.issuance_id);
        // Closed, the same.
        terminal.close_session(&session).await.unwrap();
        let closed = raw_issue(&app, &session, "finished-printed-01", &items, total)
            .await
            .unwrap_err();
        assert_eq!(metadata(&closed)["why"], "printed");

        // Print failed (voided, refund due): the voided PDFs are not sent again.
        let (session, items, total) = logged_in(&app, &terminal).await;
        let voided = terminal
            .issue(
                &session,
                "finished-voided-001",
                items.clone(),
                total,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        terminal
            .report_print(
                &session,
                &voided.header.issuance_id,
                pb::PrintOutcome::Failed,
                total,
                "jam",
            )
            .await
            .unwrap();
        let refused = raw_issue(&app, &session, "finished-voided-001", &items, total)
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "ISSUANCE_FINISHED");
        assert_eq!(
            metadata(&refused)["issuance_state"],
            "ISSUANCE_STATE_VOIDED"
        );

        // No report yet, but the session closed: nothing is sent.
        let (session, items, total) = logged_in(&app, &terminal).await;
        raw_issue(&app, &session, "finished-closed-001", &items, total)
            .await
            .unwrap();
        terminal.close_session(&session).await.unwrap();
        let refused = raw_issue(&app, &session, "finished-closed-001", &items, total)
            .await
            .unwrap_err();
        assert_eq!(metadata(&refused)["why"], "session_closed");
        assert_eq!(
            metadata(&refused)["issuance_state"],
            "ISSUANCE_STATE_RELEASED"
        );

        // No report and the print deadline passed (the sweep has not run yet): nothing is sent.
        let (session, items, total) = logged_in(&app, &terminal).await;
        raw_issue(&app, &session, "finished-late-00001", &items, total)
            .await
            .unwrap();
        app.clock.advance(Duration::from_secs(301));
        let refused = raw_issue(&app, &session, "finished-late-00001", &items, total)
            .await
            .unwrap_err();
        assert_eq!(metadata(&refused)["why"], "print_deadline_passed");

        // Each refused retry is on the record for auditors.
        let refusals = events_of(&app, EventType::IssuanceRefused).await;
        let finished = refusals
            .iter()
            .filter(|e| {
                e.reason()
                    .is_some_and(|r| r.as_str() == "ISSUANCE_FINISHED")
            })
            .count();
        assert_eq!(finished, 5);
    }
);

async fn events_of(app: &TestApp, kind: EventType) -> Vec<audit::event::Event> {
    let mut conn = app.flow.store().pool().acquire().await.unwrap();
    let filter = audit::store::EventFilter {
        types: vec![kind],
        ..Default::default()
    };
    audit::store::list_events(&mut conn, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| stored.event)
        .collect()
}

on_both_databases!(open_sessions_per_terminal_are_bounded, |db| async move {
    let mut options = AppOptions::new(db);
    options.configure = Some(Box::new(|config| config.max_open_sessions_per_terminal = 5));
    let app = spawn_app_with(options).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let log_before = events_of(&app, EventType::SessionOpened).await.len();

    // Twenty at once (on PostgreSQL through separate connections and transactions): the
    // limit holds exactly.
    let opens = (0..20).map(|_| {
        let terminal = terminal.clone();
        async move { terminal.open_session().await }
    });
    let results = futures::future::join_all(opens).await;
    let opened: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(opened.len(), 5);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.reason(), "OVERLOADED");
        assert!(matches!(
            refused,
            kiosk_terminal::client::TerminalError::Refused {
                code: tonic::Code::ResourceExhausted,
                ..
            }
        ));
    }
    // Refusals write nothing: a flood does not grow the log.
    assert_eq!(
        events_of(&app, EventType::SessionOpened).await.len(),
        log_before + 5
    );

    // Another terminal is not affected.
    app.terminal(kiosk_tests::TERMINAL_2)
        .await
        .open_session()
        .await
        .unwrap();
    // Closing one makes room for one.
    terminal.close_session(&opened[0].session_id).await.unwrap();
    terminal.open_session().await.unwrap();
    assert_eq!(
        terminal.open_session().await.unwrap_err().reason(),
        "OVERLOADED"
    );

    // Expired sessions do not count, and their rows are removed after the retention.
    app.clock.advance(Duration::from_secs(601));
    terminal.open_session().await.unwrap();
    app.clock.advance(Duration::from_secs(3600));
    let removed = app.flow.sweep_sessions().await.unwrap();
    assert!(removed >= 5, "removed {removed}");
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(app.flow.store().pool())
        .await
        .unwrap();
    assert_eq!(
        remaining, 1,
        "only the session opened within the retention is left"
    );
});

/// The registry's document statuses, counted.
async fn registry(app: &TestApp) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM issued_documents GROUP BY status")
            .fetch_all(app.embedded.register.pool())
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// Has the in-process issuer render an order the gateway never hears of: what is left when
/// the gateway dies between the issuer's commit and its own.
async fn render_behind_the_gateways_back(app: &TestApp, issuance_id: &str) -> Vec<String> {
    let resident = app.residents()[2].clone();
    let request = pb::RenderRequest {
        issuance_id: issuance_id.to_owned(),
        municipality_code: "131016".into(),
        requester_ref: resident,
        items: vec![
            item(pb::CertificateType::ResidentRecord),
            item(pb::CertificateType::ResidentRecordItems),
        ],
        issued_at: Some(kiosk_gateway::service::timestamp(app.flow.now_ms())),
    };
    app.embedded
        .issuers
        .render(tonic::Request::new(request))
        .await
        .unwrap()
        .into_inner()
        .documents
        .into_iter()
        .map(|d| d.serial)
        .collect()
}

on_both_databases!(
    documents_nobody_recorded_are_voided_by_reconciliation,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        // A recorded issuance is confirmed at once: its documents are issued, none pending.
        let (session, items, total) = logged_in(&app, &terminal).await;
        let issued = terminal
            .issue(
                &session,
                "reconcile-recorded1",
                items,
                total,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(registry(&app).await.get("issued"), Some(&1));
        assert_eq!(registry(&app).await.get("pending"), None);

        let orphan =
            render_behind_the_gateways_back(&app, "i-orphan0000000000000000000000001").await;
        assert_eq!(registry(&app).await.get("pending"), Some(&2));
        // Too young to judge: an issuance in flight is never voided.
        let young = app.flow.reconcile().await.unwrap();
        assert_eq!(young.orphans, 0);
        assert_eq!(registry(&app).await.get("pending"), Some(&2));

        // Past the Issue deadline plus the margin, with no record: voided, and on the record.
        app.clock.advance(Duration::from_secs(91));
        let fresh =
            render_behind_the_gateways_back(&app, "i-orphan0000000000000000000000002").await;
        let done = app.flow.reconcile().await.unwrap();
        assert_eq!((done.orphans, done.orphan_documents), (1, 2));
        assert!(done.unreachable.is_empty());
        let counts = registry(&app).await;
        assert_eq!(counts.get("voided"), Some(&2));
        assert_eq!(
            counts.get("pending"),
            Some(&2),
            "the younger orphan waits for its turn"
        );
        assert_eq!(
            counts.get("issued"),
            Some(&1),
            "the recorded issuance is untouched"
        );
        for serial in &orphan {
            let status = app
                .embedded
                .issuers
                .void(tonic::Request::new(pb::VoidRequest {
                    serials: vec![serial.clone()],
                    reason: "probe".into(),
                }))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(status.voided_serials, vec![serial.clone()]);
        }
        let recorded = events_of(&app, EventType::OrphansVoided).await;
        assert_eq!(recorded.len(), 2, "one event per certificate type");
        for event in &recorded {
            assert_eq!(
                event.issuance().map(|i| i.as_str()),
                Some("i-orphan0000000000000000000000001")
            );
        }
        // Settled issuances are not settled twice.
        let again = app.flow.reconcile().await.unwrap();
        assert_eq!(again.orphans, 0);
        assert!(!fresh.is_empty());

        // The audit log still verifies, and the released issuance still prints.
        terminal
            .report_print(
                &session,
                &issued.header.issuance_id,
                pb::PrintOutcome::Printed,
                total,
                "",
            )
            .await
            .unwrap();
    }
);

/// An issuer link whose Confirm is lost (the gateway dies or the network drops after its
/// record commits), or whose documents a reconciliation voided just before the Confirm.
struct ConfirmTrouble {
    inner: Arc<dyn IssuerLink>,
    voided_first: bool,
    /// The first Confirm is the troubled one; later ones (reconciliation's) go through.
    troubled: std::sync::atomic::AtomicBool,
}

#[tonic::async_trait]
impl IssuerLink for ConfirmTrouble {
    async fn get_menu(
        &self,
        request: pb::IssuerMenuRequest,
    ) -> Result<pb::IssuerMenuResponse, tonic::Status> {
        self.inner.get_menu(request).await
    }
    async fn quote(
        &self,
        request: pb::IssuerQuoteRequest,
    ) -> Result<pb::IssuerQuoteResponse, tonic::Status> {
        self.inner.quote(request).await
    }
    async fn render(
        &self,
        request: pb::RenderRequest,
        deadline: Duration,
    ) -> Result<pb::RenderResponse, tonic::Status> {
        self.inner.render(request, deadline).await
    }
    async fn void(&self, request: pb::VoidRequest) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void(request).await
    }
    async fn confirm(
        &self,
        request: pb::ConfirmRequest,
    ) -> Result<pb::ConfirmResponse, tonic::Status> {
        if !self
            .troubled
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return self.inner.confirm(request).await;
        }
        if !self.voided_first {
            return Err(tonic::Status::unavailable("connection reset"));
        }
        let far_future = kiosk_gateway::service::timestamp(i64::from(i32::MAX) * 1000);
        self.inner
            .void_pending(pb::VoidPendingRequest {
                municipality_code: request.municipality_code.clone(),
                issuance_id: request.issuance_id.clone(),
                issued_before: Some(far_future),
                reason: "RECONCILED".into(),
            })
            .await?;
        self.inner.confirm(request).await
    }
    async fn list_pending(
        &self,
        request: pb::ListPendingRequest,
    ) -> Result<pb::ListPendingResponse, tonic::Status> {
        self.inner.list_pending(request).await
    }
    async fn void_pending(
        &self,
        request: pb::VoidPendingRequest,
    ) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void_pending(request).await
    }
}

fn troubled(db: Db, voided_first: bool) -> AppOptions {
    let mut options = AppOptions::new(db);
    options.directory = Some(Box::new(move |embedded| {
        let inner: Arc<dyn IssuerLink> =
            Arc::new(kiosk_gateway::route::InProcess(embedded.issuers.clone()));
        let mut directory = IssuerDirectory::new();
        let link = ConfirmTrouble {
            inner,
            voided_first,
            troubled: std::sync::atomic::AtomicBool::new(true),
        };
        directory.insert("131016", Arc::new(link));
        directory
    }));
    options
}

on_both_databases!(
    a_lost_confirmation_is_repeated_by_reconciliation,
    |db| async move {
        let app = spawn_app_with(troubled(db, false)).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let (session, items, total) = logged_in(&app, &terminal).await;
        // Recorded within the deadline: released although the Confirm did not arrive.
        let issued = terminal
            .issue(
                &session,
                "lost-confirmation01",
                items,
                total,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(issued.documents.len(), 1);
        assert_eq!(registry(&app).await.get("pending"), Some(&1));
        app.clock.advance(Duration::from_secs(91));
        let done = app.flow.reconcile().await.unwrap();
        assert_eq!((done.confirmed, done.orphans), (1, 0));
        assert_eq!(registry(&app).await.get("issued"), Some(&1));
        assert!(events_of(&app, EventType::OrphansVoided).await.is_empty());
    }
);

on_both_databases!(
    documents_voided_before_confirmation_are_never_released,
    |db| async move {
        let app = spawn_app_with(troubled(db, true)).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let (session, items, total) = logged_in(&app, &terminal).await;
        let refused = raw_issue(&app, &session, "voided-before-conf1", &items, total)
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "TIMED_OUT");
        // The gateway's record follows the issuer: voided, with its events.
        let voided = events_of(&app, EventType::DocumentsVoided).await;
        assert_eq!(voided.len(), 1);
        // A retry sends nothing either.
        let retry = raw_issue(&app, &session, "voided-before-conf1", &items, total)
            .await
            .unwrap_err();
        assert_eq!(reason(&retry), "ISSUANCE_FINISHED");
        assert_eq!(metadata(&retry)["issuance_state"], "ISSUANCE_STATE_VOIDED");
    }
);

on_both_databases!(the_whole_log_streams_a_page_at_a_time, |db| async move {
    let app = spawn_app(db).await;
    // More events than one page (500): the stream must read on past each page boundary.
    let mut tx = app.flow.store().begin_write().await.unwrap();
    let events: Vec<_> = (0..1_200)
        .map(|n| {
            audit::event::Event::session_opened(
                UnixMillis(app.flow.now_ms()),
                audit::event::Ident::parse(KIOSK_1).unwrap(),
                audit::event::Ident::parse(&format!("s-page-{n:05}")).unwrap(),
            )
        })
        .collect();
    audit::store::append_batch(&mut tx, &events).await.unwrap();
    tx.commit().await.unwrap();
    let list = |start_index, limit, types: Vec<i32>| pb::ListEventsRequest {
        start_index,
        limit,
        types,
        ..Default::default()
    };
    let read = |request: pb::ListEventsRequest| {
        let app = &app;
        async move {
            let mut auditor = app.auditor().await;
            let mut stream = auditor.list_events(request).await.unwrap().into_inner();
            let mut indexes = Vec::new();
            while let Some(event) = stream.message().await.unwrap() {
                indexes.push(event.index);
            }
            indexes
        }
    };
    let all = read(list(0, 0, Vec::new())).await;
    assert!(all.len() > 1_200, "{}", all.len());
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1),
        "every index once, in order"
    );
    let some = read(list(3, 700, Vec::new())).await;
    assert_eq!(some.len(), 700);
    assert_eq!(some[0], 3);
    let opened = read(list(0, 0, vec![pb::AuditEventType::SessionOpened as i32])).await;
    assert_eq!(
        opened.len(),
        1_200,
        "a filter that skips other events pages on too"
    );
    let tail = read(list(all[all.len() - 10], 0, Vec::new())).await;
    assert!(tail.len() >= 10, "{}", tail.len());
});
