//! The eligibility rules of docs/domain.md section 3, one named function each, with the stable
//! reason code of `kiosk.v1.ErrorReason` it refuses with.
//!
//! The functions are pure: they judge register data that the issuer read inside the order's
//! transaction, so what they decide is always the current register (no cached copy).

use kiosk_document::{CertificateType, ResidentRef};
use time::{OffsetDateTime, Weekday};

use crate::calendar::{age_on, in_jst};
pub use crate::reason::Reason;
use crate::register::{
    ClosedDate, KosekiMember, PendingChange, Resident, ResidentStatus, SealRegistration,
    ServiceWindow, SupportMeasure, TaxRecord,
};

/// The whole service and the type's window (営業時間): kill switch and maintenance first
/// (SERVICE_SUSPENDED), then whether the type is offered, then the year-end closure 12/29–1/3,
/// configured closed days, weekday-only types and the daily hours (OUT_OF_SERVICE_HOURS).
/// Everything is judged in Japan time.
pub fn service_window(
    window: Option<&ServiceWindow>,
    suspended: bool,
    in_maintenance: bool,
    closed: Option<ClosedDate>,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    if suspended || in_maintenance {
        return Err(Reason::ServiceSuspended);
    }
    let window = match window {
        Some(window) if window.offered => window,
        _ => return Err(Reason::CertificateTypeNotOffered),
    };
    let jst = in_jst(now);
    let (month, day) = (u8::from(jst.month()), jst.day());
    if (month == 12 && day >= 29) || (month == 1 && day <= 3) {
        return Err(Reason::OutOfServiceHours);
    }
    if let Some(closed) = closed
        && (!closed.weekday_types_only || window.weekdays_only)
    {
        return Err(Reason::OutOfServiceHours);
    }
    if window.weekdays_only && matches!(jst.weekday(), Weekday::Saturday | Weekday::Sunday) {
        return Err(Reason::OutOfServiceHours);
    }
    let minute = u32::from(jst.hour()) * 60 + u32::from(jst.minute());
    if minute < window.opens_at_minute || minute >= window.closes_at_minute {
        return Err(Reason::OutOfServiceHours);
    }
    Ok(())
}

/// The requester's own status: the dead and the moved-out cannot obtain anything here.
/// (A filed 転出届 blocks only 住民票 types; see [`household_moving_out`].)
pub fn requester_status(requester: &Resident) -> Result<(), Reason> {
    match requester.status {
        ResidentStatus::Deceased => Err(Reason::Deceased),
        ResidentStatus::MovedOut => Err(Reason::MovedOut),
        ResidentStatus::Active | ResidentStatus::MoveOutFiled => Ok(()),
    }
}

/// 支援措置: a person under a support measure cannot use store issuance at all, and nobody may
/// obtain a 住民票 or 附票 that shows someone under one. Any active measure counts, whichever
/// system's flag is set (the Kyoto case: a missing 附票 flag must not leak the 附票).
pub fn support_measure(
    ty: CertificateType,
    requester: Option<SupportMeasure>,
    subjects: &[Option<SupportMeasure>],
) -> Result<(), Reason> {
    if requester.is_some() {
        return Err(Reason::SupportMeasure);
    }
    if ty.shows_address_of_subjects() && subjects.iter().any(Option::is_some) {
        return Err(Reason::SupportMeasure);
    }
    Ok(())
}

/// 転出 / 転出予定 for 住民票 and 記載事項証明書: refused when anyone linked to the requester's
/// household has moved out or filed to move out (the whole household is held back until the
/// move is processed). Other types are not affected.
pub fn household_moving_out(ty: CertificateType, household: &[Resident]) -> Result<(), Reason> {
    if !ty.is_resident_record() {
        return Ok(());
    }
    if household
        .iter()
        .any(|r| r.status == ResidentStatus::MovedOut)
    {
        return Err(Reason::MovedOut);
    }
    if household
        .iter()
        .any(|r| r.status == ResidentStatus::MoveOutFiled)
    {
        return Err(Reason::MoveOutFiled);
    }
    Ok(())
}

/// 死亡: a deceased person's 住民票 (消除者) is never printed.
pub fn deceased(subject: &Resident) -> Result<(), Reason> {
    if subject.status == ResidentStatus::Deceased {
        Err(Reason::Deceased)
    } else {
        Ok(())
    }
}

/// The municipality's minimum age (e.g. 15歳未満 cannot use the service), on today's JST date.
pub fn minimum_age(
    requester: &Resident,
    minimum_age: u32,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    if age_on(requester.birth_date, in_jst(now).date()) < minimum_age {
        Err(Reason::UnderMinimumAge)
    } else {
        Ok(())
    }
}

/// 印鑑登録: no certificate without a live registration (廃止 and 抹消 are not live).
pub fn live_seal(seal: Option<&SealRegistration>) -> Result<(), Reason> {
    match seal {
        Some(_) => Ok(()),
        None => Err(Reason::NoSealRegistration),
    }
}

/// Same-day and pending changes (転入当日, 外字登録中, a 戸籍届出 not reflected): refused until
/// the change is reflected, so nothing stale is printed.
pub fn pending_changes(pending: &[PendingChange]) -> Result<(), Reason> {
    if pending.is_empty() {
        Ok(())
    } else {
        Err(Reason::PendingChange)
    }
}

/// 課税資料: the year must be one the municipality offers and the resident must have a record
/// for it.
pub fn tax_data(
    fiscal_year: u32,
    offered_years: &[u32],
    record: Option<&TaxRecord>,
) -> Result<(), Reason> {
    if !offered_years.contains(&fiscal_year) || record.is_none() {
        Err(Reason::NoTaxData)
    } else {
        Ok(())
    }
}

/// The fiscal years a municipality offers on `now`: the newest assessed year and the
/// `years_offered - 1` before it, newest first.
pub fn offered_tax_years(years_offered: u32, now: OffsetDateTime) -> Vec<u32> {
    let newest = crate::calendar::newest_tax_fiscal_year(in_jst(now).date());
    (0..years_offered)
        .filter_map(|back| newest.checked_sub(back))
        .collect()
}

/// Who may obtain what: 本人 always; for 住民票 and 記載事項証明書 the members of the
/// requester's household; for 戸籍 certificates the members of the requester's 戸籍; for
/// 印鑑登録証明書 and 税証明 the requester alone.
pub fn permitted_subject(
    ty: CertificateType,
    requester: &Resident,
    subject: &ResidentRef,
    household: &[Resident],
    koseki_members: &[KosekiMember],
) -> Result<(), Reason> {
    let allowed = match ty {
        CertificateType::ResidentRecord | CertificateType::ResidentRecordItems => {
            *subject == requester.id
                || household
                    .iter()
                    .any(|r| r.id == *subject && r.household_id == requester.household_id)
        }
        CertificateType::SealRegistration | CertificateType::IncomeTax => *subject == requester.id,
        CertificateType::KosekiFull
        | CertificateType::KosekiIndividual
        | CertificateType::KosekiFuhyo => {
            let requester_in = koseki_members.iter().any(|m| m.person_ref == requester.id);
            requester_in && koseki_members.iter().any(|m| m.person_ref == *subject)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(Reason::NotPermittedSubject)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::register::{ForeignResidentItems, Sex};

    fn resident(id: &str, household: &str, status: ResidentStatus) -> Resident {
        Resident {
            id: ResidentRef::parse(id).unwrap(),
            municipality_code: "131016".into(),
            household_id: household.into(),
            family_name: "山田".into(),
            given_name: "太郎".into(),
            family_name_kana: "ヤマダ".into(),
            given_name_kana: "タロウ".into(),
            former_surname: None,
            former_surname_kana: None,
            birth_date: date!(1980 - 04 - 01),
            sex: Sex::Male,
            relationship: "世帯主".into(),
            address: "東京都千代田区一番町1番地".into(),
            resident_since: date!(2000 - 01 - 01),
            address_since: date!(2000 - 01 - 01),
            previous_address: None,
            honseki: None,
            hittosha: None,
            koseki_id: None,
            status,
            status_date: None,
            foreign: None::<ForeignResidentItems>,
        }
    }

    fn window(ty: CertificateType, weekdays_only: bool, open: u32, close: u32) -> ServiceWindow {
        ServiceWindow {
            ty,
            offered: true,
            weekdays_only,
            opens_at_minute: open,
            closes_at_minute: close,
            max_copies: 5,
        }
    }

    #[test]
    fn reason_names_are_contract_reasons() {
        for reason in [
            Reason::SupportMeasure,
            Reason::MovedOut,
            Reason::MoveOutFiled,
            Reason::Deceased,
            Reason::NoSealRegistration,
            Reason::UnderMinimumAge,
            Reason::PendingChange,
            Reason::NoTaxData,
            Reason::NotPermittedSubject,
            Reason::OutOfServiceHours,
            Reason::ServiceSuspended,
            Reason::CertificateTypeNotOffered,
            Reason::ResidentNotFound,
        ] {
            assert!(
                kiosk_proto::reasons::find(reason.name()).is_some(),
                "{} is not in the contract",
                reason.name()
            );
        }
    }

    #[test]
    fn service_window_hours_and_closures() {
        let daily = window(CertificateType::ResidentRecord, false, 390, 1380);
        let koseki = window(CertificateType::KosekiFull, true, 540, 1020);
        // 2026-11-24 is a Tuesday. 06:29 JST = 21:29 UTC the day before.
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2026-11-23 21:29 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2026-11-23 21:30 UTC)
            ),
            Ok(())
        );
        // 23:00 JST is closed.
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2026-11-24 14:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        // Year-end: 12/29 10:00 JST.
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2026-12-29 01:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2027-01-03 01:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                None,
                datetime!(2027-01-04 01:00 UTC)
            ),
            Ok(())
        );
        // 戸籍: weekday 10:00 JST open, Saturday closed, 17:00 closed.
        assert_eq!(
            service_window(
                Some(&koseki),
                false,
                false,
                None,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Ok(())
        );
        assert_eq!(
            service_window(
                Some(&koseki),
                false,
                false,
                None,
                datetime!(2026-11-28 01:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        assert_eq!(
            service_window(
                Some(&koseki),
                false,
                false,
                None,
                datetime!(2026-11-24 08:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        // A public holiday closes weekday-only types but not the others.
        let holiday = Some(ClosedDate {
            weekday_types_only: true,
        });
        assert_eq!(
            service_window(
                Some(&koseki),
                false,
                false,
                holiday,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Err(Reason::OutOfServiceHours)
        );
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                false,
                holiday,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Ok(())
        );
        // Kill switch and maintenance come first.
        assert_eq!(
            service_window(
                Some(&daily),
                true,
                false,
                None,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Err(Reason::ServiceSuspended)
        );
        assert_eq!(
            service_window(
                Some(&daily),
                false,
                true,
                None,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Err(Reason::ServiceSuspended)
        );
        let mut off = daily;
        off.offered = false;
        assert_eq!(
            service_window(
                Some(&off),
                false,
                false,
                None,
                datetime!(2026-11-24 01:00 UTC)
            ),
            Err(Reason::CertificateTypeNotOffered)
        );
        assert_eq!(
            service_window(None, false, false, None, datetime!(2026-11-24 01:00 UTC)),
            Err(Reason::CertificateTypeNotOffered)
        );
    }

    #[test]
    fn requester_status_refuses_dead_and_moved_out() {
        assert_eq!(
            requester_status(&resident("a", "h", ResidentStatus::Deceased)),
            Err(Reason::Deceased)
        );
        assert_eq!(
            requester_status(&resident("a", "h", ResidentStatus::MovedOut)),
            Err(Reason::MovedOut)
        );
        assert_eq!(
            requester_status(&resident("a", "h", ResidentStatus::MoveOutFiled)),
            Ok(())
        );
        assert_eq!(
            requester_status(&resident("a", "h", ResidentStatus::Active)),
            Ok(())
        );
    }

    #[test]
    fn support_measure_blocks_requester_everywhere_and_subjects_where_addresses_show() {
        let m = Some(SupportMeasure {
            covers_resident_record: true,
            covers_fuhyo: false,
        });
        for ty in CertificateType::ALL {
            assert_eq!(support_measure(ty, m, &[]), Err(Reason::SupportMeasure));
        }
        assert_eq!(
            support_measure(CertificateType::ResidentRecord, None, &[None, m]),
            Err(Reason::SupportMeasure)
        );
        // The 附票 is refused even though only the 住民票 flag is set (Kyoto).
        assert_eq!(
            support_measure(CertificateType::KosekiFuhyo, None, &[m]),
            Err(Reason::SupportMeasure)
        );
        // A 戸籍 certificate shows no address.
        assert_eq!(
            support_measure(CertificateType::KosekiFull, None, &[m]),
            Ok(())
        );
        assert_eq!(
            support_measure(CertificateType::ResidentRecord, None, &[None]),
            Ok(())
        );
    }

    #[test]
    fn household_moving_out_blocks_resident_records_only() {
        let household = [
            resident("a", "h", ResidentStatus::Active),
            resident("b", "h", ResidentStatus::MoveOutFiled),
        ];
        assert_eq!(
            household_moving_out(CertificateType::ResidentRecord, &household),
            Err(Reason::MoveOutFiled)
        );
        assert_eq!(
            household_moving_out(CertificateType::ResidentRecordItems, &household),
            Err(Reason::MoveOutFiled)
        );
        assert_eq!(
            household_moving_out(CertificateType::SealRegistration, &household),
            Ok(())
        );
        let moved = [
            resident("a", "h", ResidentStatus::Active),
            resident("b", "h", ResidentStatus::MovedOut),
        ];
        assert_eq!(
            household_moving_out(CertificateType::ResidentRecord, &moved),
            Err(Reason::MovedOut)
        );
        assert_eq!(
            household_moving_out(
                CertificateType::ResidentRecord,
                &[resident("a", "h", ResidentStatus::Active)]
            ),
            Ok(())
        );
    }

    #[test]
    fn deceased_subject_is_refused() {
        assert_eq!(
            deceased(&resident("a", "h", ResidentStatus::Deceased)),
            Err(Reason::Deceased)
        );
        assert_eq!(
            deceased(&resident("a", "h", ResidentStatus::Active)),
            Ok(())
        );
    }

    #[test]
    fn minimum_age_uses_japan_date() {
        let mut child = resident("a", "h", ResidentStatus::Active);
        child.birth_date = date!(2011 - 11 - 25);
        // 2026-11-24 20:00 UTC is already the 25th in Japan: 15 today.
        assert_eq!(
            minimum_age(&child, 15, datetime!(2026-11-24 20:00 UTC)),
            Ok(())
        );
        assert_eq!(
            minimum_age(&child, 15, datetime!(2026-11-24 10:00 UTC)),
            Err(Reason::UnderMinimumAge)
        );
    }

    #[test]
    fn seal_pending_and_tax() {
        assert_eq!(live_seal(None), Err(Reason::NoSealRegistration));
        let seal = SealRegistration {
            registration_number: "1".into(),
            resident_id: ResidentRef::parse("a").unwrap(),
            registered_on: date!(2020 - 01 - 01),
            image_png: vec![],
        };
        assert_eq!(live_seal(Some(&seal)), Ok(()));
        assert_eq!(pending_changes(&[]), Ok(()));
        assert_eq!(
            pending_changes(&[PendingChange {
                id: "p".into(),
                kind: "転居".into()
            }]),
            Err(Reason::PendingChange)
        );
        let record = TaxRecord {
            fiscal_year: 2026,
            salary_income: 1,
            total_income: 1,
            deductions: 0,
            taxable_income: 1,
            municipal_tax: 0,
            prefectural_tax: 0,
            dependents: 0,
        };
        assert_eq!(tax_data(2026, &[2026, 2025], Some(&record)), Ok(()));
        assert_eq!(tax_data(2026, &[2026], None), Err(Reason::NoTaxData));
        assert_eq!(
            tax_data(2024, &[2026, 2025], Some(&record)),
            Err(Reason::NoTaxData)
        );
        assert_eq!(
            offered_tax_years(3, datetime!(2026-11-24 01:00 UTC)),
            vec![2026, 2025, 2024]
        );
        assert_eq!(
            offered_tax_years(1, datetime!(2026-05-24 01:00 UTC)),
            vec![2025]
        );
    }

    #[test]
    fn who_may_obtain_what() {
        let me = resident("me", "h1", ResidentStatus::Active);
        let spouse = resident("spouse", "h1", ResidentStatus::Active);
        let other = resident("other", "h2", ResidentStatus::Active);
        let household = [me.clone(), spouse.clone()];
        let rr = CertificateType::ResidentRecord;
        assert_eq!(permitted_subject(rr, &me, &me.id, &household, &[]), Ok(()));
        assert_eq!(
            permitted_subject(rr, &me, &spouse.id, &household, &[]),
            Ok(())
        );
        assert_eq!(
            permitted_subject(rr, &me, &other.id, &household, &[]),
            Err(Reason::NotPermittedSubject)
        );
        // Seal and tax: 本人 only, even for a spouse.
        for ty in [
            CertificateType::SealRegistration,
            CertificateType::IncomeTax,
        ] {
            assert_eq!(
                permitted_subject(ty, &me, &spouse.id, &household, &[]),
                Err(Reason::NotPermittedSubject)
            );
            assert_eq!(permitted_subject(ty, &me, &me.id, &household, &[]), Ok(()));
        }
        let member = |r: &str, no: u32| KosekiMember {
            member_no: no,
            person_ref: ResidentRef::parse(r).unwrap(),
            family_name: "山田".into(),
            given_name: "花子".into(),
            birth_date: date!(1980 - 01 - 01),
            sex: Sex::Female,
            father_name: None,
            mother_name: None,
            parent_relationship: "長女".into(),
            role: "妻".into(),
            present: true,
            events: vec![],
            fuhyo: vec![],
        };
        let koseki = [member("me", 1), member("away", 2)];
        let away = ResidentRef::parse("away").unwrap();
        assert_eq!(
            permitted_subject(CertificateType::KosekiIndividual, &me, &away, &[], &koseki),
            Ok(())
        );
        assert_eq!(
            permitted_subject(
                CertificateType::KosekiIndividual,
                &me,
                &other.id,
                &[],
                &koseki
            ),
            Err(Reason::NotPermittedSubject)
        );
        // Not a member of the 戸籍 at all.
        assert_eq!(
            permitted_subject(CertificateType::KosekiFull, &other, &other.id, &[], &koseki),
            Err(Reason::NotPermittedSubject)
        );
    }
}
