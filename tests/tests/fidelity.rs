//! The contract does what it says (issue 13): where a terminal written from proto/kiosk/v1 and
//! docs/terminal-integration.md alone once met a gateway that did otherwise, each test holds
//! the running gateway to the documented words. Raw `TerminalService` calls, so the statuses
//! are seen as a vendor's terminal sees them.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::time::Duration;

use audit::event::{Event, EventType, UnixMillis};
use kiosk_gateway::admin::{self, Attribution};
use kiosk_gateway::clock::Clock;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_client::TerminalServiceClient;
use kiosk_tests::{Db, TERMINAL_1, TestApp, fee, item, on_both_databases, sign, spawn_app};
use tonic::transport::Channel;
use tonic_types::{ErrorDetail, StatusExt};

/// The municipality the development register serves.
const CHIYODA: &str = "131016";

async fn client(app: &TestApp) -> TerminalServiceClient<Channel> {
    TerminalServiceClient::new(app.channel(Some(TERMINAL_1)).await)
}

async fn open(
    client: &mut TerminalServiceClient<Channel>,
    locale: &str,
) -> pb::OpenSessionResponse {
    client
        .open_session(pb::OpenSessionRequest {
            locale: locale.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Opens a session in `locale` and logs `resident` in: the session and its menu.
async fn login(
    app: &TestApp,
    client: &mut TerminalServiceClient<Channel>,
    locale: &str,
    resident: &str,
) -> (String, pb::Menu) {
    let opened = open(client, locale).await;
    let card = app.card(resident);
    let for_card = opened.clone();
    let proof = tokio::task::spawn_blocking(move || sign(card, &for_card))
        .await
        .unwrap()
        .unwrap();
    let menu = client
        .authenticate(pb::AuthenticateRequest {
            session_id: opened.session_id.clone(),
            card_certificate: proof.certificate,
            signature: proof.signature,
        })
        .await
        .unwrap()
        .into_inner()
        .menu
        .unwrap();
    (opened.session_id, menu)
}

fn reason(status: &tonic::Status) -> &'static str {
    kiosk_proto::reasons::reason_of(status).unwrap().name
}

/// The locales of a status's LocalizedMessage entries, in order.
fn locales(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details_vec()
        .into_iter()
        .filter_map(|detail| match detail {
            ErrorDetail::LocalizedMessage(m) => Some(m.locale),
            _ => None,
        })
        .collect()
}

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

/// Moves the gateway's clock forward to the next `hour:minute` JST.
fn advance_to_jst(app: &TestApp, hour: i64, minute: i64) {
    const DAY: i64 = 86_400_000;
    let now = app.clock.now_ms();
    let jst_of_day = (now + 9 * 3_600_000).rem_euclid(DAY);
    let target = (hour * 60 + minute) * 60_000;
    let ahead = (target - jst_of_day).rem_euclid(DAY);
    app.clock
        .advance(Duration::from_millis(u64::try_from(ahead).unwrap()));
}

fn year_end_in_jst(now_ms: i64) -> bool {
    let at = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap());
    matches!((u8::from(at.month()), at.day()), (12, 29..=31) | (1, 1..=3))
}

on_both_databases!(
    the_start_screen_shows_the_national_service_hours,
    |db| async move {
        let app = spawn_app(db).await;
        let mut kiosk = client(&app).await;
        let status = open(&mut kiosk, "").await.service_status.unwrap();
        assert_eq!(status.state, pb::ServiceState::Open as i32, "office hours");

        for (hour, minute) in [(23, 30), (3, 0), (6, 29)] {
            advance_to_jst(&app, hour, minute);
            let status = open(&mut kiosk, "").await.service_status.unwrap();
            assert_eq!(
                (status.state, status.reason.as_str()),
                (pb::ServiceState::Closed as i32, "OUT_OF_SERVICE_HOURS"),
                "{hour:02}:{minute:02} JST is outside 6:30-23:00"
            );
            let message = status.message.unwrap();
            assert_eq!(message.ja, kiosk_proto::reasons::OUT_OF_SERVICE_HOURS.ja);
            assert_eq!(message.en, kiosk_proto::reasons::OUT_OF_SERVICE_HOURS.en);
        }
        advance_to_jst(&app, 6, 30);
        let status = open(&mut kiosk, "").await.service_status.unwrap();
        let expected = if year_end_in_jst(app.clock.now_ms()) {
            pb::ServiceState::Closed
        } else {
            pb::ServiceState::Open
        };
        assert_eq!(status.state, expected as i32, "6:30 JST opens");
    }
);

on_both_databases!(errors_list_the_session_language_first, |db| async move {
    let app = spawn_app(db).await;
    let mut kiosk = client(&app).await;
    for (locale, expected) in [
        ("en-US", ["en-US", "ja-JP"]),
        ("en-GB", ["en-US", "ja-JP"]),
        ("ja-JP", ["ja-JP", "en-US"]),
        ("", ["ja-JP", "en-US"]),
    ] {
        let opened = open(&mut kiosk, locale).await;
        let error = menu_before_card(&mut kiosk, &opened).await;
        assert_eq!(locales(&error), expected, "locale {locale:?}");
        // A login that fails: the signature is not the card's.
        let error = kiosk
            .authenticate(pb::AuthenticateRequest {
                session_id: opened.session_id.clone(),
                card_certificate: vec![0x30, 0x03, 0x02, 0x01, 0x01],
                signature: vec![0; 256],
            })
            .await
            .unwrap_err();
        assert_eq!(locales(&error), expected, "locale {locale:?}: {error:?}");
    }
    // An invalid order in an English session: the BadRequest and English first.
    let resident = app.examples("Family")[0].clone();
    let (session, _) = login(&app, &mut kiosk, "en-US", &resident).await;
    let error = kiosk
        .quote(pb::QuoteRequest {
            session_id: session,
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "INVALID_FIELD");
    assert_eq!(locales(&error), ["en-US", "ja-JP"]);
});

/// A menu asked for before the card: refused with SESSION_STATE, on this session.
async fn menu_before_card(
    kiosk: &mut TerminalServiceClient<Channel>,
    opened: &pb::OpenSessionResponse,
) -> tonic::Status {
    let error = kiosk
        .get_menu(pb::GetMenuRequest {
            session_id: opened.session_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "SESSION_STATE");
    error
}

/// The first LocalizedMessage's text.
fn first_text(status: &tonic::Status) -> String {
    status
        .get_error_details_vec()
        .into_iter()
        .find_map(|d| match d {
            ErrorDetail::LocalizedMessage(m) => Some(m.message),
            _ => None,
        })
        .unwrap()
}

on_both_databases!(
    a_further_language_comes_first_with_both_contract_languages,
    |db| async move {
        let app = spawn_app(db).await;
        let mut kiosk = client(&app).await;
        for (locale, expected) in [
            ("vi-VN", vec!["vi", "ja-JP", "en-US"]),
            ("ko", vec!["ko", "ja-JP", "en-US"]),
            ("ja-x-easy", vec!["ja-x-easy", "ja-JP", "en-US"]),
            // Traditional Chinese is not Simplified: no third text rather than the wrong script.
            ("zh-TW", vec!["ja-JP", "en-US"]),
            ("fr-FR", vec!["ja-JP", "en-US"]),
        ] {
            let opened = open(&mut kiosk, locale).await;
            let error = menu_before_card(&mut kiosk, &opened).await;
            assert_eq!(locales(&error), expected, "locale {locale:?}");
            if let Some(further) = kiosk_proto::locales::negotiate(locale) {
                let text = further.text(&kiosk_proto::reasons::SESSION_STATE);
                assert_eq!(first_text(&error), text, "locale {locale:?}");
            }
        }
    }
);

on_both_databases!(
    the_start_screen_and_the_menu_speak_the_session_language,
    |db| async move {
        let app = spawn_app(db).await;
        let mut kiosk = client(&app).await;
        // Within office hours (the test clock starts there): the kill switch's menu.
        let store = app.flow.store();
        let operator = Attribution::parse("ops-chiyoda-01", "drill").unwrap();
        admin::set_kill_switch(store, Some(CHIYODA), true, &operator, UnixMillis::now())
            .await
            .unwrap();
        let resident = app.examples("Family")[0].clone();
        let (_, menu) = login(&app, &mut kiosk, "zh-CN", &resident).await;
        let chinese = kiosk_proto::locales::negotiate("zh-CN").unwrap();
        assert!(!menu.entries.is_empty());
        for entry in &menu.entries {
            let message = entry.unavailable_message.as_ref().unwrap();
            assert_eq!(message.locale, "zh-Hans");
            assert_eq!(
                message.text,
                chinese.text(&kiosk_proto::reasons::SERVICE_SUSPENDED)
            );
            assert_eq!(message.en, kiosk_proto::reasons::SERVICE_SUSPENDED.en);
            let names = kiosk_proto::certificate_types::name_of(entry.r#type()).unwrap();
            let type_name = entry.type_name.as_ref().unwrap();
            assert_eq!(
                (type_name.ja.as_str(), type_name.en.as_str()),
                (names.ja, names.en)
            );
            assert_eq!(type_name.ja, entry.display_name);
            assert_eq!(type_name.locale, "zh-Hans");
            assert_eq!(type_name.text, chinese.type_name(names));
        }
        admin::set_kill_switch(store, Some(CHIYODA), false, &operator, UnixMillis::now())
            .await
            .unwrap();
        // Late at night: the closed start screen.
        advance_to_jst(&app, 23, 30);
        let status = open(&mut kiosk, "pt-BR").await.service_status.unwrap();
        let message = status.message.unwrap();
        let portuguese = kiosk_proto::locales::negotiate("pt-BR").unwrap();
        assert_eq!(message.locale, "pt-BR");
        assert_eq!(
            message.text,
            portuguese.text(&kiosk_proto::reasons::OUT_OF_SERVICE_HOURS)
        );
        assert_eq!(message.ja, kiosk_proto::reasons::OUT_OF_SERVICE_HOURS.ja);
        let status = open(&mut kiosk, "").await.service_status.unwrap();
        let message = status.message.unwrap();
        assert_eq!((message.locale.as_str(), message.text.as_str()), ("", ""));
    }
);

on_both_databases!(the_kill_switches_show_in_the_menu, |db| async move {
    let app = spawn_app(db).await;
    let store = app.flow.store();
    let mut kiosk = client(&app).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = login(&app, &mut kiosk, "", &resident).await;
    assert!(menu.entries.iter().any(|e| e.available));
    let operator = Attribution::parse("ops-chiyoda-01", "drill").unwrap();
    let get_menu = |mut kiosk: TerminalServiceClient<Channel>, session: String| async move {
        kiosk
            .get_menu(pb::GetMenuRequest {
                session_id: session,
            })
            .await
            .unwrap()
            .into_inner()
            .menu
            .unwrap()
    };
    let all_suspended = |menu: &pb::Menu| {
        assert!(!menu.entries.is_empty());
        for entry in &menu.entries {
            assert!(!entry.available, "{entry:?}");
            assert_eq!(entry.unavailable_reason, "SERVICE_SUSPENDED");
            let message = entry.unavailable_message.as_ref().unwrap();
            assert_eq!(message.ja, kiosk_proto::reasons::SERVICE_SUSPENDED.ja);
            assert_eq!(message.en, kiosk_proto::reasons::SERVICE_SUSPENDED.en);
        }
    };
    for municipality in [None, Some(CHIYODA)] {
        admin::set_kill_switch(store, municipality, true, &operator, UnixMillis::now())
            .await
            .unwrap();
        all_suspended(&get_menu(kiosk.clone(), session.clone()).await);
        // A login under the switch shows it at once.
        let (_, fresh) = login(&app, &mut kiosk, "", &resident).await;
        all_suspended(&fresh);
        admin::set_kill_switch(store, municipality, false, &operator, UnixMillis::now())
            .await
            .unwrap();
        assert_eq!(get_menu(kiosk.clone(), session.clone()).await, menu);
    }
});

/// Sends an Issue and reads the stream to its end: the header, or the refusal.
async fn issue(
    kiosk: &mut TerminalServiceClient<Channel>,
    session: &str,
    id: &str,
    items: &[pb::RequestItem],
    total: u32,
) -> Result<pb::IssuanceHeader, tonic::Status> {
    let mut stream = kiosk
        .issue(pb::IssueRequest {
            session_id: session.to_owned(),
            client_request_id: id.to_owned(),
            items: items.to_vec(),
            expected_total_fee_yen: total,
        })
        .await?
        .into_inner();
    let mut header = None;
    while let Some(message) = stream.message().await? {
        if let Some(pb::issue_response::Event::Header(h)) = message.event {
            header = Some(h);
        }
    }
    Ok(header.unwrap())
}

on_both_databases!(a_fee_mismatch_is_a_clean_refusal, |db| async move {
    let app = spawn_app(db).await;
    let mut kiosk = client(&app).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = login(&app, &mut kiosk, "en-US", &resident).await;
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];
    let right = fee(&menu, &items);
    let id = "fee-mismatch-00000001";

    for _ in 0..2 {
        // The first time and an identical retry: the same clean refusal.
        let error = issue(&mut kiosk, &session, id, &items, right + 100)
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
        assert_eq!(reason(&error), "FEE_MISMATCH");
        assert!(!error.message().contains("void"), "{}", error.message());
        assert_eq!(locales(&error), ["en-US", "ja-JP"]);
    }
    // Nothing was rendered, released or voided: settlement has nothing to count.
    assert!(events(&app, EventType::DocumentsVoided).await.is_empty());
    assert!(events(&app, EventType::IssuanceRendered).await.is_empty());
    let refused = events(&app, EventType::IssuanceRefused).await;
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|e| e.reason().map(|r| r.as_str()) == Some("FEE_MISMATCH"))
    );

    // The same id with the re-quoted fee issues, as IssueRequest says.
    let header = issue(&mut kiosk, &session, id, &items, right)
        .await
        .unwrap();
    assert_eq!(header.total_fee_yen, right);
    assert!(!header.replayed);
    assert!(events(&app, EventType::DocumentsVoided).await.is_empty());
});

on_both_databases!(
    a_late_issue_is_reported_after_the_session_ends,
    |db| async move {
        let app = spawn_app(db).await;
        let mut kiosk = client(&app).await;
        let resident = app.examples("Family")[0].clone();
        let (session, menu) = login(&app, &mut kiosk, "", &resident).await;
        let items = vec![item(pb::CertificateType::ResidentRecordItems)];
        // Minute 8 of the session's 10: the print deadline (5 minutes) lies past its end.
        app.clock.advance(Duration::from_secs(8 * 60));
        let id = "late-issue-000000001";
        let header = issue(&mut kiosk, &session, id, &items, fee(&menu, &items))
            .await
            .unwrap();
        app.clock.advance(Duration::from_secs(3 * 60));
        // The session has ended: a retry of Issue is finished, with why.
        let error = issue(&mut kiosk, &session, id, &items, fee(&menu, &items))
            .await
            .unwrap_err();
        assert_eq!(reason(&error), "ISSUANCE_FINISHED");
        let info = error.get_error_details().error_info().unwrap().clone();
        assert_eq!(info.metadata["why"], "session_expired");
        // The report is still answered until the print deadline.
        let report = kiosk
            .report_print(pb::ReportPrintRequest {
                session_id: session.clone(),
                issuance_id: header.issuance_id.clone(),
                outcome: pb::PrintOutcome::Printed as i32,
                collected_yen: header.total_fee_yen,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.state, pb::IssuanceState::Printed as i32);
    }
);
