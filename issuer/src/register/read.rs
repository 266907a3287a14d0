//! Reads of the current register, to run inside a transaction.

use kiosk_document::{CertificateType, ResidentRef};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::Date;

use super::records::{
    ClosedDate, FuhyoEntry, Koseki, KosekiEvent, KosekiMember, Municipality, PendingChange,
    Resident, SealRegistration, ServiceSwitch, ServiceWindow, Sex, SupportMeasure, TaxRecord,
};
use super::rows::{
    RESIDENT_COLUMNS, date, flag, int, opt_text, resident_from_row, resident_ref, small, text,
};
use crate::calendar::format_date;
use crate::error::IssuerError;

/// The municipality `code`.
pub async fn municipality(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Option<Municipality>, IssuerError> {
    let row = sqlx::query(
        "SELECT code, name, prefecture, mayor_title, mayor_name, minimum_age, \
         tax_years_offered FROM municipalities WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(Municipality {
            code: text(&row, "code")?,
            name: text(&row, "name")?,
            prefecture: text(&row, "prefecture")?,
            mayor_title: text(&row, "mayor_title")?,
            mayor_name: text(&row, "mayor_name")?,
            minimum_age: small(&row, "minimum_age", "minimum age")?,
            tax_years_offered: small(&row, "tax_years_offered", "tax years offered")?,
        })
    })
    .transpose()
}

/// The resident `id`, in any status.
pub async fn resident(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Option<Resident>, IssuerError> {
    let sql = format!("SELECT {RESIDENT_COLUMNS} FROM residents WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(resident_from_row).transpose()
}

/// The resident `id` (in any status) and everyone linked to their household, ordered as
/// [`household_members`], in one query: every decision reads both.
pub async fn resident_with_household(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Option<(Resident, Vec<Resident>)>, IssuerError> {
    let sql = format!(
        "SELECT {RESIDENT_COLUMNS} FROM residents \
         WHERE household_id = (SELECT household_id FROM residents WHERE id = $1) \
         ORDER BY CASE WHEN relationship = '世帯主' THEN 0 ELSE 1 END, birth_date, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let household = rows
        .iter()
        .map(resident_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    // The resident's own household row is among them (household_id is NOT NULL).
    Ok(household
        .iter()
        .find(|r| r.id == *id)
        .cloned()
        .map(|resident| (resident, household)))
}

/// Everyone linked to household `household_id` (in any status), head first, then by id.
pub async fn household_members(
    conn: &mut AnyConnection,
    household_id: &str,
) -> Result<Vec<Resident>, IssuerError> {
    let sql = format!(
        "SELECT {RESIDENT_COLUMNS} FROM residents WHERE household_id = $1 \
         ORDER BY CASE WHEN relationship = '世帯主' THEN 0 ELSE 1 END, birth_date, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(household_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(resident_from_row).collect()
}

/// The individual number of `id`.
pub async fn individual_number(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Option<String>, IssuerError> {
    let row =
        sqlx::query("SELECT individual_number FROM individual_numbers WHERE resident_id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|row| text(&row, "individual_number")).transpose()
}

/// The live (not 廃止 or 抹消) seal registration of `id`.
pub async fn live_seal(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Option<SealRegistration>, IssuerError> {
    let row = sqlx::query(
        "SELECT s.registration_number, s.resident_id, s.registered_on, i.png \
         FROM seal_registrations s JOIN seal_images i ON i.sha256 = s.image_sha256 \
         WHERE s.resident_id = $1 AND s.status = 'active'",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(SealRegistration {
            registration_number: text(&row, "registration_number")?,
            resident_id: resident_ref(&row, "resident_id")?,
            registered_on: date(&row, "registered_on", "seal registered on")?,
            image_png: row.try_get::<Vec<u8>, _>("png")?,
        })
    })
    .transpose()
}

fn tax_from_row(row: &AnyRow) -> Result<TaxRecord, IssuerError> {
    Ok(TaxRecord {
        fiscal_year: small(row, "fiscal_year", "fiscal year")?,
        salary_income: int(row, "salary_income")?,
        total_income: int(row, "total_income")?,
        deductions: int(row, "deductions")?,
        taxable_income: int(row, "taxable_income")?,
        municipal_tax: int(row, "municipal_tax")?,
        prefectural_tax: int(row, "prefectural_tax")?,
        dependents: small(row, "dependents", "dependents")?,
    })
}

/// The tax record of `id` for `fiscal_year`.
pub async fn tax_record(
    conn: &mut AnyConnection,
    id: &ResidentRef,
    fiscal_year: u32,
) -> Result<Option<TaxRecord>, IssuerError> {
    let row = sqlx::query(
        "SELECT fiscal_year, salary_income, total_income, deductions, taxable_income, \
         municipal_tax, prefectural_tax, dependents FROM tax_records \
         WHERE resident_id = $1 AND fiscal_year = $2",
    )
    .bind(id.as_str())
    .bind(i64::from(fiscal_year))
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(tax_from_row).transpose()
}

/// The fiscal years with a tax record for `id`, newest first.
pub async fn tax_years(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Vec<u32>, IssuerError> {
    let rows = sqlx::query(
        "SELECT fiscal_year FROM tax_records WHERE resident_id = $1 ORDER BY fiscal_year DESC",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| small(row, "fiscal_year", "fiscal year"))
        .collect()
}

/// The 戸籍 `id`.
pub async fn koseki(conn: &mut AnyConnection, id: &str) -> Result<Option<Koseki>, IssuerError> {
    let row = sqlx::query(
        "SELECT id, honseki, hittosha_name, created_on, status FROM koseki WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(Koseki {
            id: text(&row, "id")?,
            honseki: text(&row, "honseki")?,
            hittosha_name: text(&row, "hittosha_name")?,
            created_on: date(&row, "created_on", "koseki created on")?,
            current: text(&row, "status")? == "current",
        })
    })
    .transpose()
}

/// The members of 戸籍 `koseki_id` in order, with events and 附票 entries.
pub async fn koseki_members(
    conn: &mut AnyConnection,
    koseki_id: &str,
) -> Result<Vec<KosekiMember>, IssuerError> {
    let mut members = koseki_members_without_details(conn, koseki_id).await?;
    koseki_member_details(conn, koseki_id, &mut members).await?;
    Ok(members)
}

/// The members of 戸籍 `koseki_id` without their 身分事項 and 附票 (`events` and `fuhyo`
/// empty): what eligibility needs; only koseki certificates print the rest.
pub async fn koseki_members_without_details(
    conn: &mut AnyConnection,
    koseki_id: &str,
) -> Result<Vec<KosekiMember>, IssuerError> {
    let rows = sqlx::query(
        "SELECT member_no, person_ref, family_name, given_name, birth_date, sex, \
         father_name, mother_name, parent_relationship, role, status \
         FROM koseki_members WHERE koseki_id = $1 ORDER BY member_no",
    )
    .bind(koseki_id)
    .fetch_all(&mut *conn)
    .await?;
    let members = rows
        .iter()
        .map(|row| {
            Ok(KosekiMember {
                member_no: small(row, "member_no", "member number")?,
                person_ref: resident_ref(row, "person_ref")?,
                family_name: text(row, "family_name")?,
                given_name: text(row, "given_name")?,
                birth_date: date(row, "birth_date", "member birth date")?,
                sex: Sex::parse(int(row, "sex")?)?,
                father_name: opt_text(row, "father_name")?,
                mother_name: opt_text(row, "mother_name")?,
                parent_relationship: text(row, "parent_relationship")?,
                role: text(row, "role")?,
                present: text(row, "status")? == "in",
                events: Vec::new(),
                fuhyo: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, IssuerError>>()?;
    Ok(members)
}

/// Fills in the 身分事項 and 附票 of `members` (as read by
/// [`koseki_members_without_details`] for 戸籍 `koseki_id`).
pub async fn koseki_member_details(
    conn: &mut AnyConnection,
    koseki_id: &str,
    members: &mut [KosekiMember],
) -> Result<(), IssuerError> {
    let events = sqlx::query(
        "SELECT member_no, kind, event_date, place, detail FROM koseki_events \
         WHERE koseki_id = $1 ORDER BY member_no, seq",
    )
    .bind(koseki_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &events {
        let no = small(row, "member_no", "member number")?;
        if let Some(member) = members.iter_mut().find(|m| m.member_no == no) {
            member.events.push(KosekiEvent {
                kind: text(row, "kind")?,
                date: date(row, "event_date", "event date")?,
                place: opt_text(row, "place")?,
                detail: opt_text(row, "detail")?,
            });
        }
    }
    let fuhyo = sqlx::query(
        "SELECT member_no, address, since FROM fuhyo_entries WHERE koseki_id = $1 \
         ORDER BY member_no, seq",
    )
    .bind(koseki_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &fuhyo {
        let no = small(row, "member_no", "member number")?;
        if let Some(member) = members.iter_mut().find(|m| m.member_no == no) {
            member.fuhyo.push(FuhyoEntry {
                address: text(row, "address")?,
                since: date(row, "since", "fuhyo since")?,
            });
        }
    }
    Ok(())
}

fn pending_from_rows(rows: &[AnyRow]) -> Result<Vec<PendingChange>, IssuerError> {
    rows.iter()
        .map(|row| {
            Ok(PendingChange {
                id: text(row, "id")?,
                kind: text(row, "kind")?,
            })
        })
        .collect()
}

/// The changes not reflected yet that were filed for any of `ids` or for 戸籍 `koseki_id`,
/// in one query: each as (resident, 戸籍, change). A decision reads them once rather than
/// once per certificate type and person.
pub async fn pending_for_people(
    conn: &mut AnyConnection,
    ids: &[&ResidentRef],
    koseki_id: Option<&str>,
) -> Result<Vec<(Option<String>, Option<String>, PendingChange)>, IssuerError> {
    if ids.is_empty() && koseki_id.is_none() {
        return Ok(Vec::new());
    }
    let mut conditions = Vec::new();
    if !ids.is_empty() {
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        conditions.push(format!("resident_id IN ({})", placeholders.join(", ")));
    }
    if koseki_id.is_some() {
        conditions.push(format!("koseki_id = ${}", ids.len() + 1));
    }
    let sql = format!(
        "SELECT id, kind, resident_id, koseki_id FROM pending_changes \
         WHERE reflected_at IS NULL AND ({})",
        conditions.join(" OR ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.as_str());
    }
    if let Some(koseki_id) = koseki_id {
        query = query.bind(koseki_id);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok((
                opt_text(row, "resident_id")?,
                opt_text(row, "koseki_id")?,
                PendingChange {
                    id: text(row, "id")?,
                    kind: text(row, "kind")?,
                },
            ))
        })
        .collect()
}

/// Changes filed for resident `id` and not reflected yet.
pub async fn pending_for_resident(
    conn: &mut AnyConnection,
    id: &ResidentRef,
) -> Result<Vec<PendingChange>, IssuerError> {
    let rows = sqlx::query(
        "SELECT id, kind FROM pending_changes WHERE resident_id = $1 AND reflected_at IS NULL",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    pending_from_rows(&rows)
}

/// 届出 filed for 戸籍 `koseki_id` and not reflected yet.
pub async fn pending_for_koseki(
    conn: &mut AnyConnection,
    koseki_id: &str,
) -> Result<Vec<PendingChange>, IssuerError> {
    let rows = sqlx::query(
        "SELECT id, kind FROM pending_changes WHERE koseki_id = $1 AND reflected_at IS NULL",
    )
    .bind(koseki_id)
    .fetch_all(&mut *conn)
    .await?;
    pending_from_rows(&rows)
}

/// Every type's fee in force on `on` (per type, the row with the latest `effective_from`
/// not after it), in one query: a menu prices seven types.
pub async fn fees(
    conn: &mut AnyConnection,
    municipality: &str,
    on: Date,
) -> Result<Vec<(CertificateType, u32)>, IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, fee_yen FROM fee_schedule WHERE municipality_code = $1 \
         AND effective_from <= $2 ORDER BY certificate_type, effective_from DESC",
    )
    .bind(municipality)
    .bind(format_date(on))
    .fetch_all(&mut *conn)
    .await?;
    let mut fees: Vec<(CertificateType, u32)> = Vec::new();
    for row in &rows {
        let code = text(row, "certificate_type")?;
        // Unknown codes are rows of a newer schema; they price nothing here.
        let Some(ty) = CertificateType::from_code(&code) else {
            continue;
        };
        // Rows come newest first per type: the first one seen is in force.
        if !fees.iter().any(|(seen, _)| *seen == ty) {
            fees.push((ty, small(row, "fee_yen", "fee")?));
        }
    }
    Ok(fees)
}

/// The active support measures on any of `ids`, in one query. A person with several
/// active rows gets the union of what they cover (the protective reading).
pub async fn support_measures(
    conn: &mut AnyConnection,
    ids: &[&ResidentRef],
) -> Result<Vec<(ResidentRef, SupportMeasure)>, IssuerError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT person_ref, covers_resident_record, covers_fuhyo FROM support_measures \
         WHERE active = 1 AND person_ref IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut measures: Vec<(ResidentRef, SupportMeasure)> = Vec::new();
    for row in &rows {
        let person = ResidentRef::parse(&text(row, "person_ref")?)?;
        let measure = SupportMeasure {
            covers_resident_record: flag(row, "covers_resident_record")?,
            covers_fuhyo: flag(row, "covers_fuhyo")?,
        };
        match measures.iter_mut().find(|(p, _)| *p == person) {
            Some((_, seen)) => {
                seen.covers_resident_record |= measure.covers_resident_record;
                seen.covers_fuhyo |= measure.covers_fuhyo;
            }
            None => measures.push((person, measure)),
        }
    }
    Ok(measures)
}

/// Every type's service window.
pub async fn service_windows(
    conn: &mut AnyConnection,
    municipality: &str,
) -> Result<Vec<ServiceWindow>, IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, offered, weekdays_only, opens_at_minute, \
         closes_at_minute, max_copies FROM service_windows WHERE municipality_code = $1",
    )
    .bind(municipality)
    .fetch_all(&mut *conn)
    .await?;
    let mut windows = rows
        .iter()
        .map(|row| {
            Ok(ServiceWindow {
                ty: CertificateType::from_code(&text(row, "certificate_type")?).ok_or(
                    IssuerError::Corrupt {
                        what: "certificate type",
                    },
                )?,
                offered: flag(row, "offered")?,
                weekdays_only: flag(row, "weekdays_only")?,
                opens_at_minute: small(row, "opens_at_minute", "opening")?,
                closes_at_minute: small(row, "closes_at_minute", "closing")?,
                max_copies: small(row, "max_copies", "max copies")?,
            })
        })
        .collect::<Result<Vec<_>, IssuerError>>()?;
    windows.sort_by_key(|window| window.ty);
    Ok(windows)
}

/// The configured closure on `on`, if any.
pub async fn closed_date(
    conn: &mut AnyConnection,
    municipality: &str,
    on: Date,
) -> Result<Option<ClosedDate>, IssuerError> {
    let row = sqlx::query(
        "SELECT weekday_types_only FROM service_closed_dates \
         WHERE municipality_code = $1 AND closed_on = $2",
    )
    .bind(municipality)
    .bind(format_date(on))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(ClosedDate {
            weekday_types_only: flag(&row, "weekday_types_only")?,
        })
    })
    .transpose()
}

/// Whether a maintenance window covers `at_ms`.
pub async fn in_maintenance(
    conn: &mut AnyConnection,
    municipality: &str,
    at_ms: i64,
) -> Result<bool, IssuerError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM maintenance_windows WHERE municipality_code = $1 \
         AND starts_at <= $2 AND ends_at > $2",
    )
    .bind(municipality)
    .bind(at_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(int(&row, "n")? > 0)
}

/// The municipality's kill switch, whether a maintenance window covers `at_ms`, and the
/// configured closure on `on`, in one statement (three round trips folded into one; the
/// same reads as [`service_switch`], [`in_maintenance`] and [`closed_date`]).
pub async fn service_state(
    conn: &mut AnyConnection,
    municipality: &str,
    at_ms: i64,
    on: Date,
) -> Result<(ServiceSwitch, bool, Option<ClosedDate>), IssuerError> {
    let row = sqlx::query(
        "SELECT (SELECT suspended FROM service_switch WHERE municipality_code = $1) \
             AS suspended, \
         (SELECT COUNT(*) FROM maintenance_windows WHERE municipality_code = $1 \
             AND starts_at <= $2 AND ends_at > $2) AS maintenance, \
         (SELECT weekday_types_only FROM service_closed_dates \
             WHERE municipality_code = $1 AND closed_on = $3) AS weekday_types_only",
    )
    .bind(municipality)
    .bind(at_ms)
    .bind(format_date(on))
    .fetch_one(&mut *conn)
    .await?;
    let suspended = row.try_get::<Option<i64>, _>("suspended")?.unwrap_or(0) != 0;
    let maintenance = row.try_get::<Option<i64>, _>("maintenance")?.unwrap_or(0) > 0;
    let closed = row
        .try_get::<Option<i64>, _>("weekday_types_only")?
        .map(|flag| ClosedDate {
            weekday_types_only: flag != 0,
        });
    Ok((ServiceSwitch { suspended }, maintenance, closed))
}

/// The kill switch.
pub async fn service_switch(
    conn: &mut AnyConnection,
    municipality: &str,
) -> Result<ServiceSwitch, IssuerError> {
    let row = sqlx::query("SELECT suspended FROM service_switch WHERE municipality_code = $1")
        .bind(municipality)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(ServiceSwitch {
        suspended: match row {
            Some(row) => flag(&row, "suspended")?,
            None => false,
        },
    })
}
