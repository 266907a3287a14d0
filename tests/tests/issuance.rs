//! The whole issuance over the real gateway (port 0, mutual TLS, software cards), on SQLite
//! and on PostgreSQL: every certificate type, each refusal, idempotent retries, print
//! outcomes, deadlines, verification, and the audit trail.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod forged;

use std::time::Duration;

use kiosk_proto::reasons;
use kiosk_proto::v1 as pb;
use kiosk_tests::{
    Db, TERMINAL_1, TERMINAL_2, fee, item, on_both_databases, page_subjects, pdf_text, sign,
    spawn_app,
};

fn reason(error: &kiosk_terminal::client::TerminalError) -> String {
    error.reason().to_owned()
}

async fn issue_one(
    terminal: &kiosk_terminal::client::Terminal,
    session: &str,
    menu: &pb::Menu,
    items: Vec<pb::RequestItem>,
    key: &str,
) -> Result<kiosk_terminal::client::Issued, kiosk_terminal::client::TerminalError> {
    let total = fee(menu, &items);
    terminal
        .issue(session, key, items, total, Duration::from_secs(60))
        .await
}

on_both_databases!(
    every_type_for_a_family_names_only_the_family,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let family = app.examples("Family")[0].clone();
        let (session, menu) = app.login(&terminal, &family).await.unwrap();
        let me = &menu.members[0];
        assert_eq!(me.relation, pb::MemberRelation::Self_ as i32);
        let others: Vec<String> = app
            .residents()
            .into_iter()
            .filter(|r| !menu.members.iter().any(|m| &m.subject_ref == r))
            .collect();
        let mut issued_types = 0;
        for entry in menu.entries.iter().filter(|e| e.available) {
            let mut request = item(pb::CertificateType::try_from(entry.r#type).unwrap());
            if let Some(year) = entry.fiscal_years.first() {
                request.options = Some(pb::CertificateOptions {
                    fiscal_year: *year,
                    ..Default::default()
                });
            }
            let key = format!("family-{}-{}", entry.r#type, &session[2..18]);
            let issued = issue_one(&terminal, &session, &menu, vec![request], &key)
                .await
                .unwrap_or_else(|e| panic!("type {} refused: {e}", entry.r#type));
            for document in &issued.documents {
                for (issuance, subjects) in page_subjects(&document.pdf) {
                    assert_eq!(issuance, issued.header.issuance_id);
                    for subject in subjects {
                        assert!(!others.contains(&subject), "a page names someone else");
                        assert!(menu.members.iter().any(|m| m.subject_ref == subject));
                    }
                }
                let text = pdf_text(&document.pdf);
                assert!(text.contains(&document.serial), "serial printed");
            }
            terminal
                .report_print(
                    &session,
                    &issued.header.issuance_id,
                    pb::PrintOutcome::Printed,
                    issued.header.total_fee_yen,
                    "",
                )
                .await
                .unwrap();
            issued_types += 1;
        }
        assert_eq!(
            issued_types, 7,
            "a family can obtain all seven types in office hours"
        );
    }
);

on_both_databases!(refusals_carry_their_reasons, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;

    // A support measure: the menu greys out and Issue refuses with the reason.
    let protected = app.examples("SupportMeasure")[0].clone();
    let (session, menu) = app.login(&terminal, &protected).await.unwrap();
    let entry = menu
        .entries
        .iter()
        .find(|e| e.r#type == pb::CertificateType::ResidentRecord as i32)
        .unwrap();
    assert!(!entry.available);
    assert_eq!(entry.unavailable_reason, "SUPPORT_MEASURE");
    let error = terminal
        .issue(
            &session,
            "support-measure-0001",
            vec![item(pb::CertificateType::ResidentRecord)],
            200,
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "SUPPORT_MEASURE");
    match &error {
        kiosk_terminal::client::TerminalError::Refused { ja, en, code, .. } => {
            assert_eq!(*code, tonic::Code::FailedPrecondition);
            assert_eq!(ja, reasons::find("SUPPORT_MEASURE").unwrap().ja);
            assert!(!en.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }

    // No seal registration.
    let no_seal = app.examples("NoSeal")[0].clone();
    let (_, menu) = app.login(&terminal, &no_seal).await.unwrap();
    let seal = menu
        .entries
        .iter()
        .find(|e| e.r#type == pb::CertificateType::SealRegistration as i32)
        .unwrap();
    assert_eq!(seal.unavailable_reason, "NO_SEAL_REGISTRATION");

    // Bad fields get INVALID_FIELD with a BadRequest.
    let family = app.examples("Family")[0].clone();
    let (session, _) = app.login(&terminal, &family).await.unwrap();
    let error = terminal
        .issue(&session, "short", vec![], 0, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "INVALID_FIELD");
});

on_both_databases!(card_failures_each_get_their_reason, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let pki = app.pki_dir();

    // A revoked card (fixture serial 3 is on the CRL).
    let revoked =
        kiosk_devkit::softcard::SoftCard::load(&pki.join("cards/revoked-0003.toml")).unwrap();
    let opened = terminal.open_session().await.unwrap();
    let proof = sign(revoked, &opened).unwrap();
    let error = terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "CARD_REVOKED");

    // A valid card that is bound to no resident.
    let unbound =
        kiosk_devkit::softcard::SoftCard::load(&pki.join("cards/resident-0001.toml")).unwrap();
    let opened = terminal.open_session().await.unwrap();
    let proof = sign(unbound, &opened).unwrap();
    let error = terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "CARD_UNKNOWN");

    // A 住基カード never reaches the gateway: the terminal refuses it on the card.
    let juki = kiosk_devkit::softcard::SoftCard::load(&pki.join("cards/juki-0004.toml")).unwrap();
    let opened = terminal.open_session().await.unwrap();
    assert_eq!(
        reason(&sign(juki, &opened).unwrap_err()),
        "JUKI_CARD_UNSUPPORTED"
    );

    // A signature made for another session does not verify here.
    let resident = app.examples("Family")[0].clone();
    let first = terminal.open_session().await.unwrap();
    let second = terminal.open_session().await.unwrap();
    let proof = sign(app.card(&resident), &first).unwrap();
    let error = terminal
        .authenticate(
            &second.session_id,
            proof.certificate.clone(),
            proof.signature.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "SIGNATURE_INVALID");
    // The failed attempt burnt the second session's challenge: no second try.
    let retry = sign(app.card(&resident), &second).unwrap();
    let error = terminal
        .authenticate(&second.session_id, retry.certificate, retry.signature)
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "CHALLENGE_USED");
    // The right session accepts it once; a replay is refused.
    terminal
        .authenticate(
            &first.session_id,
            proof.certificate.clone(),
            proof.signature.clone(),
        )
        .await
        .unwrap();
    let error = terminal
        .authenticate(&first.session_id, proof.certificate, proof.signature)
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "SESSION_STATE");

    // An expired challenge.
    let opened = terminal.open_session().await.unwrap();
    let proof = sign(app.card(&resident), &opened).unwrap();
    app.clock.advance(Duration::from_secs(61));
    let error = terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "CHALLENGE_EXPIRED");

    // A malformed certificate.
    let opened = terminal.open_session().await.unwrap();
    let error = terminal
        .authenticate(&opened.session_id, vec![0x30, 0x03, 1, 2, 3], vec![0; 256])
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "CARD_CERTIFICATE_MALFORMED");
});

on_both_databases!(callers_only_reach_what_their_role_allows, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let other = app.terminal(TERMINAL_2).await;
    let resident = app.examples("Family")[0].clone();
    let (session, _) = app.login(&terminal, &resident).await.unwrap();

    // Another terminal cannot touch this session.
    let error = other.close_session(&session).await.unwrap_err();
    assert_eq!(reason(&error), "SESSION_NOT_FOUND");
    let error = other
        .issue(
            &session,
            "other-terminal-0001",
            vec![item(pb::CertificateType::ResidentRecord)],
            200,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "SESSION_NOT_FOUND");

    // An auditor certificate cannot call TerminalService.
    let auditor_as_terminal =
        kiosk_terminal::client::Terminal::new(app.channel(Some("auditor")).await);
    let error = auditor_as_terminal.open_session().await.unwrap_err();
    assert_eq!(reason(&error), "WRONG_CLIENT_ROLE");

    // A terminal certificate cannot call AuditService.
    let mut audit_as_terminal =
        pb::audit_service_client::AuditServiceClient::new(app.channel(Some(TERMINAL_1)).await);
    let status = audit_as_terminal
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        reasons::reason_of(&status).unwrap().name,
        "WRONG_CLIENT_ROLE"
    );

    // No client certificate: TerminalService refuses, VerifyService answers.
    let anonymous = kiosk_terminal::client::Terminal::new(app.channel(None).await);
    let error = anonymous.open_session().await.unwrap_err();
    assert_eq!(reason(&error), "TERMINAL_UNKNOWN");

    // A suspended terminal.
    let mut tx = app.flow.store().begin_write().await.unwrap();
    kiosk_gateway::store::upsert_terminal(
        &mut tx,
        "seven/131016-0042/k2",
        "seven",
        "131016-0042",
        kiosk_gateway::store::TerminalStatus::Suspended,
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let error = other.open_session().await.unwrap_err();
    assert_eq!(reason(&error), "TERMINAL_SUSPENDED");
});

on_both_databases!(
    retries_return_the_same_issuance_and_never_charge_twice,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let resident = app.examples("Family")[0].clone();
        let (session, menu) = app.login(&terminal, &resident).await.unwrap();
        let items = vec![item(pb::CertificateType::ResidentRecordItems)];
        let first = issue_one(
            &terminal,
            &session,
            &menu,
            items.clone(),
            "retry-key-000000001",
        )
        .await
        .unwrap();
        assert!(!first.header.replayed);
        let again = issue_one(&terminal, &session, &menu, items, "retry-key-000000001")
            .await
            .unwrap();
        assert!(again.header.replayed);
        assert_eq!(again.header.issuance_id, first.header.issuance_id);
        assert_eq!(again.documents, first.documents);
        // The same key for another order is refused.
        let error = issue_one(
            &terminal,
            &session,
            &menu,
            vec![item(pb::CertificateType::ResidentRecord)],
            "retry-key-000000001",
        )
        .await
        .unwrap_err();
        assert_eq!(reason(&error), "IDEMPOTENCY_KEY_REUSED");
        // Reporting twice with the same outcome gives the same answer; another outcome is refused.
        let report =
            |outcome| terminal.report_print(&session, &first.header.issuance_id, outcome, 200, "");
        let printed = report(pb::PrintOutcome::Printed).await.unwrap();
        assert_eq!(printed, report(pb::PrintOutcome::Printed).await.unwrap());
        let error = report(pb::PrintOutcome::Failed).await.unwrap_err();
        assert_eq!(reason(&error), "ISSUANCE_ALREADY_REPORTED");
    }
);

on_both_databases!(print_failures_void_and_verifiers_see_it, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = app.login(&terminal, &resident).await.unwrap();
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];
    let good = issue_one(
        &terminal,
        &session,
        &menu,
        items.clone(),
        "print-ok-000000001",
    )
    .await
    .unwrap();
    terminal
        .report_print(
            &session,
            &good.header.issuance_id,
            pb::PrintOutcome::Printed,
            200,
            "",
        )
        .await
        .unwrap();
    let bad = issue_one(&terminal, &session, &menu, items, "print-jam-00000001")
        .await
        .unwrap();
    let report = terminal
        .report_print(
            &session,
            &bad.header.issuance_id,
            pb::PrintOutcome::PartlyPrinted,
            200,
            "E-JAM",
        )
        .await
        .unwrap();
    assert_eq!(report.state, pb::IssuanceState::Voided as i32);
    assert_eq!(report.refund_due_yen, 200);
    assert_eq!(report.voided_serials, vec![bad.documents[0].serial.clone()]);

    let mut verifier = app.verifier().await;
    let verdict = |pdf: Vec<u8>| pb::VerifyDocumentRequest {
        document: Some(pb::verify_document_request::Document::Pdf(pdf)),
    };
    let valid = verifier
        .verify_document(verdict(good.documents[0].pdf.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(valid.validity, pb::Validity::Valid as i32);
    assert!(valid.pdf_signature_valid);
    let voided = verifier
        .verify_document(verdict(bad.documents[0].pdf.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.validity, pb::Validity::Voided as i32);
    // A changed byte in the printed content breaks the PDF signature.
    let mut forged = good.documents[0].pdf.clone();
    let at = forged.len() / 3;
    forged[at] ^= 0x01;
    let answer = verifier.verify_document(verdict(forged)).await;
    match answer {
        Ok(answer) => assert_ne!(answer.into_inner().validity, pb::Validity::Valid as i32),
        Err(status) => assert_eq!(
            reasons::reason_of(&status).unwrap().name,
            "DOCUMENT_UNREADABLE"
        ),
    }
    // The failure opened an anomaly an auditor can see and close.
    let mut auditor = app.auditor().await;
    let anomalies = auditor
        .list_anomalies(pb::ListAnomaliesRequest {
            include_resolved: false,
        })
        .await
        .unwrap()
        .into_inner()
        .anomalies;
    let anomaly = anomalies
        .iter()
        .find(|a| a.issuance_id == bad.header.issuance_id)
        .expect("anomaly for the failed print");
    assert_eq!(anomaly.kind, pb::AnomalyKind::PrintFailed as i32);
    let resolved = auditor
        .resolve_anomaly(pb::ResolveAnomalyRequest {
            anomaly_id: anomaly.anomaly_id.clone(),
            resolution: "refund paid at the counter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .anomaly
        .unwrap();
    assert_eq!(resolved.resolution, "refund paid at the counter");
});

on_both_databases!(
    a_missed_print_deadline_leaves_the_issuance_unconfirmed,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let resident = app.examples("Family")[0].clone();
        let (session, menu) = app.login(&terminal, &resident).await.unwrap();
        let issued = issue_one(
            &terminal,
            &session,
            &menu,
            vec![item(pb::CertificateType::ResidentRecordItems)],
            "deadline-000000001",
        )
        .await
        .unwrap();
        app.clock.advance(Duration::from_secs(301));
        assert_eq!(app.flow.sweep_deadlines().await.unwrap(), 1);
        let error = terminal
            .report_print(
                &session,
                &issued.header.issuance_id,
                pb::PrintOutcome::Printed,
                200,
                "",
            )
            .await
            .unwrap_err();
        assert_eq!(reason(&error), "PRINT_DEADLINE_PASSED");
        let mut auditor = app.auditor().await;
        let anomalies = auditor
            .list_anomalies(pb::ListAnomaliesRequest {
                include_resolved: false,
            })
            .await
            .unwrap()
            .into_inner()
            .anomalies;
        assert!(
            anomalies
                .iter()
                .any(|a| a.issuance_id == issued.header.issuance_id
                    && a.kind == pb::AnomalyKind::DeadlinePassed as i32)
        );
    }
);

on_both_databases!(
    eligibility_reads_the_register_committed_a_moment_before,
    |db| async move {
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let resident = app.examples("Family")[0].clone();
        let (session, menu) = app.login(&terminal, &resident).await.unwrap();
        let seal = menu
            .entries
            .iter()
            .find(|e| e.r#type == pb::CertificateType::SealRegistration as i32)
            .unwrap();
        assert!(seal.available, "the family member has a live seal");
        // The seal registration is abolished after the menu was shown...
        let mut conn = app.embedded.register.pool().acquire().await.unwrap();
        let resident_ref = kiosk_document::ResidentRef::parse(&resident).unwrap();
        assert!(
            issuer::register::write::abolish_seal(&mut conn, &resident_ref, 0)
                .await
                .unwrap()
        );
        drop(conn);
        // ...and the very next request honours it.
        let error = issue_one(
            &terminal,
            &session,
            &menu,
            vec![item(pb::CertificateType::SealRegistration)],
            "abolished-00000001",
        )
        .await
        .unwrap_err();
        assert_eq!(reason(&error), "NO_SEAL_REGISTRATION");
    }
);

on_both_databases!(the_kill_switch_closes_the_service, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = app.login(&terminal, &resident).await.unwrap();
    let mut tx = app.flow.store().begin_write().await.unwrap();
    kiosk_gateway::store::set_setting(&mut tx, "kill_switch", "on")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let opened = terminal.open_session().await.unwrap();
    let status = opened.service_status.unwrap();
    assert_eq!(status.state, pb::ServiceState::Closed as i32);
    assert_eq!(status.reason, "SERVICE_SUSPENDED");
    let error = issue_one(
        &terminal,
        &session,
        &menu,
        vec![item(pb::CertificateType::ResidentRecordItems)],
        "killed-0000000001",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&error), "SERVICE_SUSPENDED");
});

on_both_databases!(the_audit_log_proves_what_happened, |db| async move {
    let app = spawn_app(db).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = app.login(&terminal, &resident).await.unwrap();
    let mut auditor = app.auditor().await;
    let first = auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let issued = issue_one(
        &terminal,
        &session,
        &menu,
        vec![item(pb::CertificateType::ResidentRecordItems)],
        "audited-000000001",
    )
    .await
    .unwrap();
    terminal
        .report_print(
            &session,
            &issued.header.issuance_id,
            pb::PrintOutcome::Printed,
            200,
            "",
        )
        .await
        .unwrap();
    let second = auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(second.tree_size > first.tree_size);

    // The checkpoint verifies with the published key, and the log grew append-only.
    let verifier = audit::checkpoint::CheckpointVerifier::new(
        &second.origin,
        second.public_key.clone().try_into().unwrap(),
    )
    .unwrap();
    let old = verifier.verify(&first.signed_note).unwrap();
    let new = verifier.verify(&second.signed_note).unwrap();
    let proof = auditor
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first_tree_size: first.tree_size,
            second_tree_size: second.tree_size,
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

    // The issuance's events are in the log, with no resident name, and each is included.
    let events: Vec<pb::AuditEvent> = {
        let mut stream = auditor
            .list_events(pb::ListEventsRequest {
                terminal_id: "seven/131016-0042/k1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            out.push(event);
        }
        out
    };
    let chain: Vec<&pb::AuditEvent> = events
        .iter()
        .filter(|e| e.issuance_id == issued.header.issuance_id)
        .collect();
    let types: Vec<i32> = chain.iter().map(|e| e.r#type).collect();
    assert_eq!(
        types,
        vec![
            pb::AuditEventType::IssuanceRendered as i32,
            pb::AuditEventType::DocumentsReleased as i32,
            pb::AuditEventType::PrintReported as i32,
        ],
        "one event chain per issuance"
    );
    let name = &menu.members[0].display_name;
    let family_name = name.split(['　', ' ']).next().unwrap();
    for event in &events {
        assert!(!String::from_utf8_lossy(&event.canonical).contains(family_name));
        assert!(event.index < second.tree_size);
        let proof = auditor
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf_index: event.index,
                tree_size: second.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        let path: Vec<audit::merkle::Hash> = proof
            .hashes
            .iter()
            .map(|h| audit::merkle::Hash::from_slice(h).unwrap())
            .collect();
        audit::merkle::verify_inclusion(
            &audit::merkle::Hash::from_slice(&event.leaf_hash).unwrap(),
            event.index,
            second.tree_size,
            &path,
            new.checkpoint().root(),
        )
        .unwrap();
    }
    // Settlement (交付実績) counts the printed document and its fee, grouped by type.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let settlement = auditor
        .get_settlement(pb::GetSettlementRequest {
            from: Some(prost_types::Timestamp {
                seconds: now - 30 * 86_400,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: now + 30 * 86_400,
                nanos: 0,
            }),
            period: pb::SettlementPeriod::Month as i32,
            grouping: pb::SettlementGrouping::CertificateType as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let row = settlement
        .rows
        .iter()
        .find(|r| r.group == "RESIDENT_RECORD_ITEMS")
        .expect("a settlement row for the printed type");
    assert_eq!((row.issued, row.voided, row.fees_yen), (1, 0, 200));

    // A proof beyond the log is refused with its reason. (Far beyond: every auditor read
    // above appended an AUDITOR_READ event, so the log is larger than `second` by now.)
    let status = auditor
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf_index: second.tree_size + 1_000_000,
            tree_size: second.tree_size + 1_000_001,
        })
        .await
        .unwrap_err();
    assert_eq!(
        reasons::reason_of(&status).unwrap().name,
        "PROOF_RANGE_INVALID"
    );
});

on_both_databases!(
    a_retry_never_sends_documents_other_than_those_released,
    |db| async move {
        // The gateway keeps each released document's SHA-256, not its bytes; a retry fetches
        // the bytes from the issuer's registry. If the registry's copy were someone else's
        // document, the retry must send nothing.
        let app = spawn_app(db).await;
        let terminal = app.terminal(TERMINAL_1).await;
        let (first, second) = (
            app.examples("Family")[0].clone(),
            app.examples("FormerSurname")[0].clone(),
        );
        let items = vec![item(pb::CertificateType::ResidentRecordItems)];
        let (session_a, menu_a) = app.login(&terminal, &first).await.unwrap();
        let mine = issue_one(
            &terminal,
            &session_a,
            &menu_a,
            items.clone(),
            "mine-0000000000001",
        )
        .await
        .unwrap();
        let (session_b, menu_b) = app.login(&terminal, &second).await.unwrap();
        let theirs = issue_one(
            &terminal,
            &session_b,
            &menu_b,
            items.clone(),
            "theirs-00000000001",
        )
        .await
        .unwrap();
        assert_ne!(mine.documents[0].pdf, theirs.documents[0].pdf);
        // Untouched, the retry returns exactly what was released.
        let again = issue_one(
            &terminal,
            &session_a,
            &menu_a,
            items.clone(),
            "mine-0000000000001",
        )
        .await
        .unwrap();
        assert!(again.header.replayed);
        assert_eq!(again.documents, mine.documents);
        // The registry's copy of the first resident's document replaced by the second's.
        let mut conn = app.embedded.register.pool().acquire().await.unwrap();
        let done = sqlx::query("UPDATE issued_documents SET pdf = $1 WHERE serial = $2")
            .bind(theirs.documents[0].pdf.clone())
            .bind(mine.documents[0].serial.clone())
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
        drop(conn);
        let error = issue_one(&terminal, &session_a, &menu_a, items, "mine-0000000000001")
            .await
            .unwrap_err();
        assert_eq!(reason(&error), "SUBJECT_MISMATCH");
    }
);

/// An issued, printed document edited by an incremental update after signing (page 1 drawn
/// over, its markers kept) still carries a valid QR payload and a signature that verifies over
/// the bytes it covers. The public verifier must not call it VALID: the signature does not
/// cover the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_pdf_edited_by_an_incremental_update_is_not_valid() {
    let app = spawn_app(Db::Sqlite).await;
    let terminal = app.terminal(TERMINAL_1).await;
    let resident = app.examples("Family")[0].clone();
    let (session, menu) = app.login(&terminal, &resident).await.unwrap();
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];
    let issued = issue_one(&terminal, &session, &menu, items, "forged-update-0001")
        .await
        .unwrap();
    terminal
        .report_print(
            &session,
            &issued.header.issuance_id,
            pb::PrintOutcome::Printed,
            200,
            "",
        )
        .await
        .unwrap();
    let pdf = issued.documents[0].pdf.clone();
    let forged = forged::with_page_one_overwritten(&pdf);
    assert!(forged.starts_with(&pdf));

    let mut verifier = app.verifier().await;
    let mut verify = async |pdf: Vec<u8>| {
        verifier
            .verify_document(pb::VerifyDocumentRequest {
                document: Some(pb::verify_document_request::Document::Pdf(pdf)),
            })
            .await
            .unwrap()
            .into_inner()
    };
    let genuine = verify(pdf).await;
    assert_eq!(genuine.validity, pb::Validity::Valid as i32);
    assert!(genuine.pdf_signature_valid);
    let answer = verify(forged).await;
    assert_eq!(answer.validity, pb::Validity::Invalid as i32);
    assert_eq!(answer.reason, "PDF_SIGNATURE_INVALID");
    assert!(!answer.pdf_signature_valid);
    // The QR payload read from the markers is the genuine one: only the PDF check caught it.
    assert_eq!(answer.summary.unwrap().serial, issued.documents[0].serial);
}
