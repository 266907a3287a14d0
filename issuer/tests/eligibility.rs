//! Every blocking case refuses with its reason, on SQLite and on PostgreSQL, against a
//! generated register; and a change committed a moment before a request is honoured by it.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CODE, OPEN, TestDb, generated};
use issuer::register::{ResidentStatus, ServiceWindow, SupportMeasure, read, write};
use issuer::rules::Reason;
use issuer::{CertificateOptions, Issuer, IssuerError, MemberRelation, RequestItem};
use kiosk_devkit::generator::Case;
use kiosk_document::{CertificateType as T, ResidentRef};
use time::OffsetDateTime;
use time::macros::{date, datetime};

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

fn about(ty: T, subjects: &[&ResidentRef]) -> RequestItem {
    RequestItem {
        subject_refs: subjects.iter().map(|s| (*s).clone()).collect(),
        ..item(ty)
    }
}

async fn refusal(
    issuer: &Issuer,
    who: &ResidentRef,
    it: RequestItem,
    at: OffsetDateTime,
) -> Reason {
    match issuer.quote(who, std::slice::from_ref(&it), at).await {
        Err(IssuerError::Refused(reason)) => reason,
        other => panic!("expected a refusal for {:?}, got {other:?}", it.ty),
    }
}

async fn allowed(issuer: &Issuer, who: &ResidentRef, it: RequestItem, at: OffsetDateTime) {
    let ty = it.ty;
    issuer
        .quote(who, &[it], at)
        .await
        .unwrap_or_else(|e| panic!("{ty:?} refused: {e:?}"));
}

async fn household_of(issuer: &Issuer, who: &ResidentRef) -> Vec<issuer::register::Resident> {
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    let me = read::resident(&mut conn, who).await.unwrap().unwrap();
    read::household_members(&mut conn, &me.household_id)
        .await
        .unwrap()
}

async fn every_case_refuses_with_its_reason(db: &TestDb) {
    let (issuer, report) = generated(db, 120).await;
    let ex = |case: Case| report.example(case).unwrap().clone();

    // The ordinary family may obtain every type.
    let family = ex(Case::Family);
    for ty in T::ALL {
        allowed(&issuer, &family, item(ty), OPEN).await;
    }

    let who = ex(Case::SupportMeasure);
    for ty in T::ALL {
        assert_eq!(
            refusal(&issuer, &who, item(ty), OPEN).await,
            Reason::SupportMeasure
        );
    }

    // Asking about a protected spouse: refused for the household's 住民票, allowed alone.
    let who = ex(Case::SupportMeasureInHousehold);
    let household = household_of(&issuer, &who).await;
    let spouse = &household
        .iter()
        .find(|r| r.id != who && r.relationship != "子")
        .unwrap()
        .id;
    assert_eq!(
        refusal(
            &issuer,
            &who,
            about(T::ResidentRecord, &[&who, spouse]),
            OPEN
        )
        .await,
        Reason::SupportMeasure
    );
    assert_eq!(
        refusal(
            &issuer,
            &who,
            about(T::ResidentRecordItems, &[spouse]),
            OPEN
        )
        .await,
        Reason::SupportMeasure
    );
    allowed(&issuer, &who, about(T::ResidentRecord, &[&who]), OPEN).await;

    // Kyoto: the kin's measure is flagged for the 住民票 only, and still blocks the 附票.
    let who = ex(Case::FuhyoMeasureOnKin);
    assert_eq!(
        refusal(&issuer, &who, item(T::KosekiFuhyo), OPEN).await,
        Reason::SupportMeasure
    );
    allowed(&issuer, &who, item(T::KosekiFull), OPEN).await;

    let who = ex(Case::MovedOutInHousehold);
    assert_eq!(
        refusal(&issuer, &who, item(T::ResidentRecord), OPEN).await,
        Reason::MovedOut
    );
    assert_eq!(
        refusal(&issuer, &who, item(T::ResidentRecordItems), OPEN).await,
        Reason::MovedOut
    );
    allowed(&issuer, &who, item(T::SealRegistration), OPEN).await;
    let moved = household_of(&issuer, &who)
        .await
        .into_iter()
        .find(|r| r.status == ResidentStatus::MovedOut)
        .unwrap();
    assert_eq!(
        refusal(&issuer, &moved.id, item(T::IncomeTax), OPEN).await,
        Reason::MovedOut
    );

    let who = ex(Case::MoveOutFiled);
    assert_eq!(
        refusal(&issuer, &who, item(T::ResidentRecord), OPEN).await,
        Reason::MoveOutFiled
    );

    // The deceased mother: her own card is refused, and so is her 住民票 for her son.
    let dead = ex(Case::Deceased);
    assert_eq!(
        refusal(&issuer, &dead, item(T::ResidentRecord), OPEN).await,
        Reason::Deceased
    );
    let son = household_of(&issuer, &dead)
        .await
        .into_iter()
        .find(|r| r.relationship == "世帯主")
        .unwrap();
    assert_eq!(
        refusal(
            &issuer,
            &son.id,
            about(T::ResidentRecordItems, &[&dead]),
            OPEN
        )
        .await,
        Reason::Deceased
    );

    for case in [Case::SealAbolished, Case::NoSeal] {
        assert_eq!(
            refusal(&issuer, &ex(case), item(T::SealRegistration), OPEN).await,
            Reason::NoSealRegistration,
            "{case:?}"
        );
    }
    for ty in T::ALL {
        assert_eq!(
            refusal(&issuer, &ex(Case::UnderMinimumAge), item(ty), OPEN).await,
            Reason::UnderMinimumAge
        );
    }
    let who = ex(Case::PendingChange);
    assert_eq!(
        refusal(&issuer, &who, item(T::ResidentRecord), OPEN).await,
        Reason::PendingChange
    );
    assert_eq!(
        refusal(&issuer, &who, item(T::SealRegistration), OPEN).await,
        Reason::PendingChange
    );
    let who = ex(Case::KosekiPending);
    assert_eq!(
        refusal(&issuer, &who, item(T::KosekiFull), OPEN).await,
        Reason::PendingChange
    );
    allowed(&issuer, &who, item(T::ResidentRecord), OPEN).await;

    assert_eq!(
        refusal(&issuer, &ex(Case::NoTaxData), item(T::IncomeTax), OPEN).await,
        Reason::NoTaxData
    );
    let mut old_year = item(T::IncomeTax);
    old_year.options.fiscal_year = Some(2020);
    assert_eq!(
        refusal(&issuer, &family, old_year, OPEN).await,
        Reason::NoTaxData
    );

    assert_eq!(
        refusal(
            &issuer,
            &ex(Case::HonsekiElsewhere),
            item(T::KosekiFull),
            OPEN
        )
        .await,
        Reason::CertificateTypeNotOffered
    );

    // Who may obtain what: seal and tax are the holder's alone; another household is out.
    let household = household_of(&issuer, &family).await;
    let spouse = &household
        .iter()
        .find(|r| r.relationship == "妻" || r.relationship == "夫")
        .unwrap()
        .id;
    assert_eq!(
        refusal(
            &issuer,
            &family,
            about(T::SealRegistration, &[spouse]),
            OPEN
        )
        .await,
        Reason::NotPermittedSubject
    );
    assert_eq!(
        refusal(&issuer, &family, about(T::IncomeTax, &[spouse]), OPEN).await,
        Reason::NotPermittedSubject
    );
    allowed(
        &issuer,
        &family,
        about(T::ResidentRecord, &[&family, spouse]),
        OPEN,
    )
    .await;
    let stranger = ex(Case::NoSeal);
    assert_eq!(
        refusal(
            &issuer,
            &family,
            about(T::ResidentRecord, &[&stranger]),
            OPEN
        )
        .await,
        Reason::NotPermittedSubject
    );
    assert_eq!(
        refusal(
            &issuer,
            &family,
            about(T::KosekiIndividual, &[&stranger]),
            OPEN
        )
        .await,
        Reason::NotPermittedSubject
    );

    let nobody = ResidentRef::parse("r-no-such-resident").unwrap();
    assert_eq!(
        refusal(&issuer, &nobody, item(T::ResidentRecord), OPEN).await,
        Reason::ResidentNotFound
    );
    issuer.register().close().await;
}
on_both_databases!(every_case_refuses_with_its_reason);

async fn service_windows_kill_switch_and_maintenance(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    // Saturday 10:00 JST: 戸籍 is weekday-only, 住民票 is open.
    let saturday = datetime!(2026-11-28 01:00 UTC);
    assert_eq!(
        refusal(&issuer, &family, item(T::KosekiFull), saturday).await,
        Reason::OutOfServiceHours
    );
    allowed(&issuer, &family, item(T::ResidentRecord), saturday).await;
    // 06:00 JST, and the year-end closure.
    assert_eq!(
        refusal(
            &issuer,
            &family,
            item(T::ResidentRecord),
            datetime!(2026-11-23 21:00 UTC)
        )
        .await,
        Reason::OutOfServiceHours
    );
    assert_eq!(
        refusal(
            &issuer,
            &family,
            item(T::ResidentRecord),
            datetime!(2026-12-30 01:00 UTC)
        )
        .await,
        Reason::OutOfServiceHours
    );
    let pool = issuer.register().pool().clone();
    let mut conn = pool.acquire().await.unwrap();
    // A public holiday closes 戸籍 only.
    write::add_closed_date(&mut conn, CODE, date!(2026 - 11 - 24), true, "holiday")
        .await
        .unwrap();
    assert_eq!(
        refusal(&issuer, &family, item(T::KosekiFull), OPEN).await,
        Reason::OutOfServiceHours
    );
    allowed(&issuer, &family, item(T::ResidentRecord), OPEN).await;
    // Maintenance, then the kill switch.
    let at = issuer::calendar::unix_ms(OPEN);
    write::add_maintenance(&mut conn, CODE, "m1", at - 1000, at + 1000, "patch")
        .await
        .unwrap();
    assert_eq!(
        refusal(&issuer, &family, item(T::ResidentRecord), OPEN).await,
        Reason::ServiceSuspended
    );
    let later = OPEN + time::Duration::hours(1);
    allowed(&issuer, &family, item(T::ResidentRecord), later).await;
    write::set_suspended(&mut conn, CODE, true, "incident", at)
        .await
        .unwrap();
    assert_eq!(
        refusal(&issuer, &family, item(T::ResidentRecord), later).await,
        Reason::ServiceSuspended
    );
    write::set_suspended(&mut conn, CODE, false, "resolved", at)
        .await
        .unwrap();
    allowed(&issuer, &family, item(T::ResidentRecord), later).await;
    // A type taken off the menu.
    write::set_service_window(
        &mut conn,
        CODE,
        &ServiceWindow {
            ty: T::IncomeTax,
            offered: false,
            weekdays_only: false,
            opens_at_minute: 0,
            closes_at_minute: 1440,
            max_copies: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        refusal(&issuer, &family, item(T::IncomeTax), later).await,
        Reason::CertificateTypeNotOffered
    );
    drop(conn);
    issuer.register().close().await;
}
on_both_databases!(service_windows_kill_switch_and_maintenance);

async fn changes_committed_a_moment_before_are_honoured(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    allowed(&issuer, &family, item(T::SealRegistration), OPEN).await;
    allowed(&issuer, &family, item(T::ResidentRecord), OPEN).await;
    let pool = issuer.register().pool().clone();

    // 印鑑 廃止 (incident E): committed, then the very next request is refused.
    let mut conn = pool.acquire().await.unwrap();
    assert!(write::abolish_seal(&mut conn, &family, 0).await.unwrap());
    drop(conn);
    assert_eq!(
        refusal(&issuer, &family, item(T::SealRegistration), OPEN).await,
        Reason::NoSealRegistration
    );

    // A support measure set a moment before (Kyoto/DV): refused at once.
    let mut conn = pool.acquire().await.unwrap();
    write::set_support_measure(
        &mut conn,
        &family,
        SupportMeasure {
            covers_resident_record: true,
            covers_fuhyo: true,
        },
        date!(2026 - 11 - 24),
        0,
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        refusal(&issuer, &family, item(T::ResidentRecord), OPEN).await,
        Reason::SupportMeasure
    );
    issuer.register().close().await;
}
on_both_databases!(changes_committed_a_moment_before_are_honoured);

async fn options_and_copies_are_checked(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    let mut bad = item(T::SealRegistration);
    bad.options.include_individual_number = true;
    assert!(matches!(
        issuer.quote(&family, &[bad], OPEN).await,
        Err(IssuerError::InvalidField {
            field: "options.include_individual_number"
        })
    ));
    let mut year = item(T::ResidentRecord);
    year.options.fiscal_year = Some(2025);
    assert!(matches!(
        issuer.quote(&family, &[year], OPEN).await,
        Err(IssuerError::InvalidField {
            field: "options.fiscal_year"
        })
    ));
    let mut none = item(T::ResidentRecord);
    none.copies = 0;
    assert!(matches!(
        issuer.quote(&family, &[none], OPEN).await,
        Err(IssuerError::InvalidField { field: "copies" })
    ));
    let mut many = item(T::ResidentRecord);
    many.copies = 6;
    assert!(matches!(
        issuer.quote(&family, &[many], OPEN).await,
        Err(IssuerError::TooManyCopies)
    ));
    let mut no_year = item(T::IncomeTax);
    no_year.options.fiscal_year = None;
    assert!(matches!(
        issuer.quote(&family, &[no_year], OPEN).await,
        Err(IssuerError::InvalidField { .. })
    ));
    // Fees come from the schedule in force: 200 yen a 住民票, 350 a 戸籍, times nothing.
    let lines = issuer
        .quote(
            &family,
            &[item(T::ResidentRecord), item(T::KosekiFull)],
            OPEN,
        )
        .await
        .unwrap();
    assert_eq!(
        lines.iter().map(|l| l.fee_yen).collect::<Vec<_>>(),
        vec![200, 350]
    );
    // A fee change effective tomorrow does not apply today, and applies tomorrow.
    let mut conn = issuer.register().pool().acquire().await.unwrap();
    write::set_fee(
        &mut conn,
        CODE,
        T::ResidentRecord,
        date!(2026 - 11 - 25),
        150,
    )
    .await
    .unwrap();
    drop(conn);
    let today = issuer
        .quote(&family, &[item(T::ResidentRecord)], OPEN)
        .await
        .unwrap();
    let tomorrow = issuer
        .quote(
            &family,
            &[item(T::ResidentRecord)],
            OPEN + time::Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!((today[0].fee_yen, tomorrow[0].fee_yen), (200, 150));
    issuer.register().close().await;
}
on_both_databases!(options_and_copies_are_checked);

async fn menu_lists_members_fees_and_reasons(db: &TestDb) {
    let (issuer, report) = generated(db, 60).await;
    let family = report.example(Case::Family).unwrap().clone();
    let menu = issuer.get_menu_at(&family, OPEN).await.unwrap();
    assert_eq!(menu.municipality_name, "千代田区");
    assert_eq!(menu.entries.len(), 7);
    assert!(
        menu.entries.iter().all(|e| e.unavailable.is_none()),
        "{menu:?}"
    );
    assert_eq!(menu.members[0].subject_ref, family);
    assert_eq!(menu.members[0].relation, MemberRelation::SelfPerson);
    let household = household_of(&issuer, &family).await;
    assert_eq!(
        menu.members
            .iter()
            .filter(|m| m.relation == MemberRelation::Household)
            .count(),
        household.len() - 1
    );
    let tax = menu.entries.iter().find(|e| e.ty == T::IncomeTax).unwrap();
    assert_eq!(tax.fiscal_years, vec![2026, 2025, 2024]);
    let rr = menu
        .entries
        .iter()
        .find(|e| e.ty == T::ResidentRecord)
        .unwrap();
    assert_eq!(rr.selectable_subject_refs.len(), household.len());

    // Someone in their parents' 戸籍 sees the parents as 戸籍 members.
    let kin = report.example(Case::FuhyoMeasureOnKin).unwrap();
    let menu = issuer.get_menu_at(kin, OPEN).await.unwrap();
    assert_eq!(
        menu.members
            .iter()
            .filter(|m| m.relation == MemberRelation::Koseki)
            .count(),
        2
    );
    let fuhyo = menu
        .entries
        .iter()
        .find(|e| e.ty == T::KosekiFuhyo)
        .unwrap();
    assert_eq!(fuhyo.unavailable, Some(Reason::SupportMeasure));

    // Greyed-out entries carry their reason.
    let menu = issuer
        .get_menu_at(report.example(Case::NoSeal).unwrap(), OPEN)
        .await
        .unwrap();
    let seal = menu
        .entries
        .iter()
        .find(|e| e.ty == T::SealRegistration)
        .unwrap();
    assert_eq!(seal.unavailable, Some(Reason::NoSealRegistration));
    assert_eq!(seal.fee_yen, 200);
    let saturday = issuer
        .get_menu_at(&family, datetime!(2026-11-28 01:00 UTC))
        .await
        .unwrap();
    let koseki = saturday
        .entries
        .iter()
        .find(|e| e.ty == T::KosekiFull)
        .unwrap();
    assert_eq!(koseki.unavailable, Some(Reason::OutOfServiceHours));
    assert!(matches!(
        issuer
            .get_menu_at(&ResidentRef::parse("nobody").unwrap(), OPEN)
            .await,
        Err(IssuerError::Refused(Reason::ResidentNotFound))
    ));
    issuer.register().close().await;
}
on_both_databases!(menu_lists_members_fees_and_reasons);
