//! Rendering through the issuer on SQLite and PostgreSQL: every type with its options, all or
//! nothing, recorded in the registry in the same transaction, idempotent by issuance id,
//! voidable; the PDF text (pdftotext) names the right person and nobody else.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{OPEN, TestDb, generated};
use issuer::register::{Resident, read, write};
use issuer::rules::Reason;
use issuer::{
    CertificateOptions, DocumentStatus, Issuer, IssuerError, RenderedDocument, RequestItem,
};
use kiosk_devkit::generator::Case;
use kiosk_document::{CertificateType as T, IssuanceId, ResidentRef};
use time::macros::date;

fn item(ty: T) -> RequestItem {
    RequestItem {
        ty,
        options: CertificateOptions {
            fiscal_year: (ty == T::IncomeTax).then_some(2026),
            ..Default::default()
        },
        subject_refs: Vec::new(),
        copies: 1,
    }
}

/// The text poppler extracts from a PDF, whitespace removed (the layout may space out
/// characters).
fn pdf_text(pdf: &[u8]) -> String {
    let mut child = Command::new("pdftotext")
        .args(["-enc", "UTF-8", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pdftotext (poppler-utils) must be installed");
    child.stdin.take().unwrap().write_all(pdf).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

async fn resident(issuer: &Issuer, who: &ResidentRef) -> Resident {
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    read::resident(&mut conn, who).await.unwrap().unwrap()
}

async fn household(issuer: &Issuer, who: &ResidentRef) -> Vec<Resident> {
    let me = resident(issuer, who).await;
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    read::household_members(&mut conn, &me.household_id)
        .await
        .unwrap()
}

fn nospace(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{3000}')
        .collect()
}

fn check_document(doc: &RenderedDocument, allowed: &[&ResidentRef]) {
    assert!(doc.pdf.starts_with(b"%PDF-"));
    assert_eq!(
        doc.pdf_sha256.as_slice(),
        ring::digest::digest(&ring::digest::SHA256, &doc.pdf).as_ref()
    );
    assert!(!doc.pages.is_empty());
    for page in &doc.pages {
        assert!(!page.is_empty(), "a page without subjects");
        for s in page {
            assert!(
                allowed.contains(&s),
                "page names {s}, not an allowed subject"
            );
        }
    }
}

async fn every_type_renders_for_the_right_person(db: &TestDb) {
    let (issuer, report) = generated(db, 80).await;
    let family = report.example(Case::Family).unwrap().clone();
    let me = resident(&issuer, &family).await;
    let members = household(&issuer, &family).await;
    let allowed: Vec<&ResidentRef> = members.iter().map(|r| &r.id).collect();
    let stranger = resident(&issuer, report.example(Case::NoSeal).unwrap()).await;

    let mut whole = item(T::ResidentRecord);
    whole.subject_refs = members.iter().map(|r| r.id.clone()).collect();
    whole.options.include_household_head = true;
    whole.options.include_honseki = true;
    whole.options.include_individual_number = true;
    whole.copies = 2;
    let items = vec![
        whole,
        item(T::ResidentRecordItems),
        item(T::SealRegistration),
        item(T::IncomeTax),
        item(T::KosekiFull),
        RequestItem {
            subject_refs: vec![family.clone()],
            ..item(T::KosekiIndividual)
        },
        item(T::KosekiFuhyo),
    ];
    let id = IssuanceId::parse("iss-render-0001").unwrap();
    let docs = issuer.render(&id, &family, &items, OPEN).await.unwrap();
    assert_eq!(docs.len(), 8, "two copies of the 住民票 plus six");
    let mut serials: Vec<&str> = docs.iter().map(|d| d.serial.as_str()).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 8, "every copy has its own serial");

    let individual_number = {
        let mut conn = issuer.register().pool().acquire().await.unwrap();
        read::individual_number(&mut conn, &family)
            .await
            .unwrap()
            .unwrap()
    };
    for doc in &docs {
        check_document(doc, &allowed);
        assert!(doc.serial.starts_with("131016-261124-"), "{}", doc.serial);
        let text = pdf_text(&doc.pdf);
        assert!(
            text.contains(&nospace(&me.family_name)),
            "{:?} lacks the requester's surname",
            doc.ty
        );
        assert!(
            !text.contains(&nospace(&stranger.full_name())),
            "{:?} names a stranger",
            doc.ty
        );
        assert!(text.contains("千代田区"));
        match doc.ty {
            T::ResidentRecord => {
                for m in &members {
                    assert!(text.contains(&nospace(&m.given_name)), "member missing");
                }
                assert!(text.contains(&individual_number));
                assert!(text.contains("世帯主"));
            }
            T::SealRegistration | T::ResidentRecordItems | T::IncomeTax => {
                // pdftotext may order a wrapped name's parts apart; both must be there.
                assert!(
                    text.contains(&nospace(&me.given_name)),
                    "{:?}: {text}",
                    doc.ty
                );
                assert_eq!(
                    doc.pages.iter().flatten().collect::<Vec<_>>(),
                    vec![&family]
                );
                assert!(!text.contains(&individual_number));
            }
            T::KosekiFull | T::KosekiIndividual => {
                // 身分事項 and 戸籍事項 print each item in one pair of brackets, as the
                // official layout has it: 【出生日】, never 【【出生日】】.
                assert!(text.contains("【出生日】"), "{:?}: {text}", doc.ty);
                assert!(text.contains("【編製日】") || doc.ty == T::KosekiIndividual);
                assert!(!text.contains("【【") && !text.contains("】】"), "{text}");
                // A detail naming its own item is not put under 【事項】 as well.
                assert!(!text.contains("【事項】【"), "{text}");
            }
            _ => {}
        }
        // Pending until the gateway records the issuance and confirms it.
        assert_eq!(
            issuer.document_status(&doc.serial).await.unwrap(),
            Some(DocumentStatus::Pending)
        );
    }
    let confirmed = issuer.confirm(&id).await.unwrap();
    assert_eq!(confirmed.issued.len(), 8);
    assert!(confirmed.voided.is_empty());
    assert_eq!(
        issuer.document_status(&docs[0].serial).await.unwrap(),
        Some(DocumentStatus::Issued)
    );
    let fees: u32 = docs.iter().map(|d| d.fee_yen).sum();
    assert_eq!(fees, 200 * 2 + 200 + 200 + 250 + 350 + 350 + 200);

    // The same issuance id and order: the same documents, nothing new recorded.
    let again = issuer.render(&id, &family, &items, OPEN).await.unwrap();
    assert_eq!(again, docs);
    assert_eq!(issuer.registry_counts().await.unwrap()["issued"], 8);
    // The same id with another order is refused.
    assert!(matches!(
        issuer.render(&id, &family, &items[1..], OPEN).await,
        Err(IssuerError::IssuanceConflict)
    ));

    // Void: idempotent, unknown serials left out, status visible.
    let to_void = vec![
        docs[0].serial.clone(),
        "131016-261124-NOSUCHDOC0".to_owned(),
    ];
    assert_eq!(
        issuer.void(&to_void, "PRINT_FAILED").await.unwrap(),
        vec![docs[0].serial.clone()]
    );
    assert_eq!(
        issuer.void(&to_void, "PRINT_FAILED").await.unwrap(),
        vec![docs[0].serial.clone()]
    );
    assert_eq!(
        issuer.document_status(&docs[0].serial).await.unwrap(),
        Some(DocumentStatus::Voided)
    );
    issuer.register().close().await;
}
on_both_databases!(every_type_renders_for_the_right_person);

async fn an_order_is_all_or_nothing(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    let mut old = item(T::IncomeTax);
    old.options.fiscal_year = Some(2019);
    let id = IssuanceId::parse("iss-all-or-nothing").unwrap();
    assert!(matches!(
        issuer
            .render(&id, &family, &[item(T::ResidentRecord), old], OPEN)
            .await,
        Err(IssuerError::Refused(Reason::NoTaxData))
    ));
    assert!(issuer.registry_counts().await.unwrap().is_empty());
    // The refused id is free: the corrected order renders under it.
    let docs = issuer
        .render(&id, &family, &[item(T::ResidentRecord)], OPEN)
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    issuer.register().close().await;
}
on_both_databases!(an_order_is_all_or_nothing);

async fn changes_just_before_render_are_printed(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    // Incident G: an in-town move committed a moment before must be what is printed.
    let new_address = "東京都千代田区永田町九丁目9番9号";
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    write::change_household_address(&mut conn, &family, new_address, date!(2026 - 11 - 24), 0)
        .await
        .unwrap();
    drop(conn);
    let docs = issuer
        .render(
            &IssuanceId::parse("iss-moved").unwrap(),
            &family,
            &[item(T::ResidentRecord), item(T::SealRegistration)],
            OPEN,
        )
        .await
        .unwrap();
    for doc in &docs {
        assert!(
            pdf_text(&doc.pdf).contains(&nospace(new_address)),
            "{:?}",
            doc.ty
        );
    }

    // Incident F: a registered 旧氏 asked for is printed.
    let wife = report.example(Case::FormerSurname).unwrap().clone();
    let former = resident(&issuer, &wife).await.former_surname.unwrap();
    let mut with_former = item(T::ResidentRecord);
    with_former.options.include_former_surname = true;
    let docs = issuer
        .render(
            &IssuanceId::parse("iss-former").unwrap(),
            &wife,
            &[with_former, item(T::ResidentRecord)],
            OPEN,
        )
        .await
        .unwrap();
    let with = pdf_text(&docs[0].pdf);
    assert!(with.contains("旧氏") && with.contains(&nospace(&former)));
    assert!(!pdf_text(&docs[1].pdf).contains("旧氏"));
    issuer.register().close().await;
}
on_both_databases!(changes_just_before_render_are_printed);

async fn concurrent_renders_never_cross(db: &TestDb) {
    let (issuer, report) = generated(db, 120).await;
    // Incidents D and I: orders arriving together each get only their own person's pages.
    let people: Vec<ResidentRef> = [
        Case::Family,
        Case::SealAbolished,
        Case::NoSeal,
        Case::NoTaxData,
        Case::FormerSurname,
        Case::HonsekiElsewhere,
        Case::KosekiPending,
        Case::Foreign,
    ]
    .iter()
    .map(|c| report.example(*c).unwrap().clone())
    .collect();
    let mut tasks = Vec::new();
    for (i, who) in people.iter().enumerate() {
        let issuer = issuer.clone();
        let who = who.clone();
        tasks.push(tokio::spawn(async move {
            let id = IssuanceId::parse(&format!("iss-concurrent-{i}")).unwrap();
            let docs = issuer
                .render(&id, &who, &[item(T::ResidentRecordItems)], OPEN)
                .await
                .unwrap();
            (who, docs)
        }));
    }
    for task in tasks {
        let (who, docs) = task.await.unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].pages, vec![vec![who.clone()]]);
        let me = resident(&issuer, &who).await;
        let text = pdf_text(&docs[0].pdf);
        assert!(
            text.contains(&nospace(&me.family_name)) && text.contains(&nospace(&me.given_name))
        );
    }
    assert_eq!(issuer.registry_counts().await.unwrap()["pending"], 8);
    issuer.register().close().await;
}
on_both_databases!(concurrent_renders_never_cross);

/// The pending state that keeps a document from counting as issued until the gateway has
/// recorded it: listed for reconciliation once old enough, voided only while still pending
/// and older than the cutoff, and a confirmation that comes too late reports the void.
async fn pending_documents_are_confirmed_or_voided_conditionally(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    let lost = IssuanceId::parse("iss-lost-after-render").unwrap();
    let kept = IssuanceId::parse("iss-recorded-in-time").unwrap();
    let items = [item(T::ResidentRecord), item(T::ResidentRecordItems)];
    let docs = issuer.render(&lost, &family, &items, OPEN).await.unwrap();
    issuer
        .render(&kept, &family, &items[..1], OPEN)
        .await
        .unwrap();
    let before_open = OPEN - time::Duration::seconds(1);
    let after_open = OPEN + time::Duration::minutes(2);

    // Listed only once older than the cutoff, oldest first, with serials and types.
    assert!(
        issuer
            .pending_before(before_open, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let pending = issuer.pending_before(after_open, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    let listed = pending
        .iter()
        .find(|p| p.issuance_id == lost.as_str())
        .unwrap();
    assert_eq!(
        listed.documents,
        docs.iter()
            .map(|d| (d.serial.clone(), d.ty))
            .collect::<Vec<_>>()
    );
    assert_eq!(issuer.pending_before(after_open, 1).await.unwrap().len(), 1);

    // Recorded in time: confirmed, idempotently, and no longer pending.
    assert_eq!(issuer.confirm(&kept).await.unwrap().issued.len(), 1);
    assert_eq!(issuer.confirm(&kept).await.unwrap().issued.len(), 1);
    // A cutoff before the issue time voids nothing; a confirmed issuance is never voided.
    assert!(
        issuer
            .void_pending(&lost, before_open, "RECONCILED")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        issuer
            .void_pending(&kept, after_open, "RECONCILED")
            .await
            .unwrap()
            .is_empty()
    );
    let voided = issuer
        .void_pending(&lost, after_open, "RECONCILED")
        .await
        .unwrap();
    assert_eq!(voided.len(), 2);
    assert!(
        issuer
            .void_pending(&lost, after_open, "RECONCILED")
            .await
            .unwrap()
            .is_empty()
    );
    // A confirmation after the void reports it: the gateway must not release them.
    let late = issuer.confirm(&lost).await.unwrap();
    assert!(late.issued.is_empty());
    assert_eq!(late.voided.len(), 2);
    assert_eq!(
        issuer.document_status(&docs[0].serial).await.unwrap(),
        Some(DocumentStatus::Voided)
    );
    let counts = issuer.registry_counts().await.unwrap();
    assert_eq!((counts["issued"], counts["voided"]), (1, 2));
    assert!(
        issuer
            .pending_before(after_open, 10)
            .await
            .unwrap()
            .is_empty()
    );
    issuer.register().close().await;
}
on_both_databases!(pending_documents_are_confirmed_or_voided_conditionally);

async fn foreign_residents_items_are_printed_when_asked(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let who = report.example(Case::Foreign).unwrap().clone();
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    let me = read::resident(&mut conn, &who).await.unwrap().unwrap();
    drop(conn);
    let foreign = me.foreign.clone().unwrap();
    let mut with_items = item(T::ResidentRecord);
    with_items.options.include_foreign_resident_items = true;
    let docs = issuer
        .render(
            &IssuanceId::parse("iss-foreign").unwrap(),
            &who,
            &[with_items, item(T::ResidentRecord)],
            OPEN,
        )
        .await
        .unwrap();
    let with = pdf_text(&docs[0].pdf);
    assert!(with.contains(&nospace(&foreign.nationality)));
    assert!(with.contains(&nospace(&foreign.residence_status)));
    assert!(with.contains(&foreign.residence_card_number));
    let without = pdf_text(&docs[1].pdf);
    assert!(!without.contains(&foreign.residence_card_number));
    // A foreign resident has no 本籍.
    assert!(me.honseki.is_none());
    issuer.register().close().await;
}
on_both_databases!(foreign_residents_items_are_printed_when_asked);
