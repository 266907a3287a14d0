//! Changes to the register and the configuration (the operator's side, and what tests use to
//! change the register a moment before a request).

use kiosk_document::{CertificateType, ResidentRef};
use sqlx::AnyConnection;
use time::Date;

use super::records::{Municipality, ResidentStatus, ServiceWindow, SupportMeasure};
use super::rows::text;
use crate::calendar::format_date;
use crate::error::IssuerError;
use crate::reason::Reason;

/// Inserts or replaces a municipality.
pub async fn upsert_municipality(
    conn: &mut AnyConnection,
    m: &Municipality,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO municipalities (code, name, prefecture, mayor_title, mayor_name, \
         minimum_age, tax_years_offered) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
         prefecture = excluded.prefecture, mayor_title = excluded.mayor_title, \
         mayor_name = excluded.mayor_name, minimum_age = excluded.minimum_age, \
         tax_years_offered = excluded.tax_years_offered",
    )
    .bind(&m.code)
    .bind(&m.name)
    .bind(&m.prefecture)
    .bind(&m.mayor_title)
    .bind(&m.mayor_name)
    .bind(i64::from(m.minimum_age))
    .bind(i64::from(m.tax_years_offered))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds (or replaces) the fee of `ty` from `effective_from` on.
pub async fn set_fee(
    conn: &mut AnyConnection,
    municipality: &str,
    ty: CertificateType,
    effective_from: Date,
    fee_yen: u32,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO fee_schedule (municipality_code, certificate_type, effective_from, \
         fee_yen) VALUES ($1, $2, $3, $4) ON CONFLICT (municipality_code, certificate_type, \
         effective_from) DO UPDATE SET fee_yen = excluded.fee_yen",
    )
    .bind(municipality)
    .bind(ty.code())
    .bind(format_date(effective_from))
    .bind(i64::from(fee_yen))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets a type's service window.
pub async fn set_service_window(
    conn: &mut AnyConnection,
    municipality: &str,
    w: &ServiceWindow,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO service_windows (municipality_code, certificate_type, offered, \
         weekdays_only, opens_at_minute, closes_at_minute, max_copies) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (municipality_code, certificate_type) DO UPDATE SET \
         offered = excluded.offered, weekdays_only = excluded.weekdays_only, \
         opens_at_minute = excluded.opens_at_minute, \
         closes_at_minute = excluded.closes_at_minute, max_copies = excluded.max_copies",
    )
    .bind(municipality)
    .bind(w.ty.code())
    .bind(i64::from(w.offered))
    .bind(i64::from(w.weekdays_only))
    .bind(i64::from(w.opens_at_minute))
    .bind(i64::from(w.closes_at_minute))
    .bind(i64::from(w.max_copies))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds a closed day.
pub async fn add_closed_date(
    conn: &mut AnyConnection,
    municipality: &str,
    on: Date,
    weekday_types_only: bool,
    note: &str,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO service_closed_dates (municipality_code, closed_on, \
         weekday_types_only, note) VALUES ($1, $2, $3, $4)",
    )
    .bind(municipality)
    .bind(format_date(on))
    .bind(i64::from(weekday_types_only))
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds a maintenance window `[starts_at_ms, ends_at_ms)`.
pub async fn add_maintenance(
    conn: &mut AnyConnection,
    municipality: &str,
    id: &str,
    starts_at_ms: i64,
    ends_at_ms: i64,
    note: &str,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO maintenance_windows (id, municipality_code, starts_at, ends_at, note) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(municipality)
    .bind(starts_at_ms)
    .bind(ends_at_ms)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Throws or resets the kill switch.
pub async fn set_suspended(
    conn: &mut AnyConnection,
    municipality: &str,
    suspended: bool,
    reason: &str,
    at_ms: i64,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO service_switch (municipality_code, suspended, reason, changed_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (municipality_code) DO UPDATE SET \
         suspended = excluded.suspended, reason = excluded.reason, \
         changed_at = excluded.changed_at",
    )
    .bind(municipality)
    .bind(i64::from(suspended))
    .bind(reason)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Abolishes (廃止) the live seal registration of `id`. Returns whether one was live.
pub async fn abolish_seal(
    conn: &mut AnyConnection,
    id: &ResidentRef,
    at_ms: i64,
) -> Result<bool, IssuerError> {
    let done = sqlx::query(
        "UPDATE seal_registrations SET status = 'abolished', status_changed_at = $2 \
         WHERE resident_id = $1 AND status = 'active'",
    )
    .bind(id.as_str())
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records a move within the municipality (転居) of `id`'s whole household: the new
/// address, the old one as 前住所.
pub async fn change_household_address(
    conn: &mut AnyConnection,
    id: &ResidentRef,
    new_address: &str,
    since: Date,
    at_ms: i64,
) -> Result<(), IssuerError> {
    let household = sqlx::query("SELECT household_id FROM residents WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(IssuerError::Refused(Reason::ResidentNotFound))?;
    let household = text(&household, "household_id")?;
    sqlx::query(
        "UPDATE residents SET previous_address = address, address = $2, \
         address_since = $3, updated_at = $4 WHERE household_id = $1",
    )
    .bind(&household)
    .bind(new_address)
    .bind(format_date(since))
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE households SET address = $2 WHERE id = $1")
        .bind(&household)
        .bind(new_address)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets (or replaces) a support measure on `id`.
pub async fn set_support_measure(
    conn: &mut AnyConnection,
    id: &ResidentRef,
    measure: SupportMeasure,
    since: Date,
    at_ms: i64,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO support_measures (person_ref, since, covers_resident_record, \
         covers_fuhyo, active, updated_at) VALUES ($1, $2, $3, $4, 1, $5) \
         ON CONFLICT (person_ref) DO UPDATE SET since = excluded.since, \
         covers_resident_record = excluded.covers_resident_record, \
         covers_fuhyo = excluded.covers_fuhyo, active = 1, updated_at = excluded.updated_at",
    )
    .bind(id.as_str())
    .bind(format_date(since))
    .bind(i64::from(measure.covers_resident_record))
    .bind(i64::from(measure.covers_fuhyo))
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets a resident's status (転出届, 転出, 死亡).
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &ResidentRef,
    status: ResidentStatus,
    on: Date,
    at_ms: i64,
) -> Result<(), IssuerError> {
    sqlx::query(
        "UPDATE residents SET status = $2, status_date = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(status.code())
    .bind(format_date(on))
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Files a change for a resident or a 戸籍 that is not reflected yet.
pub async fn file_pending_change(
    conn: &mut AnyConnection,
    id: &str,
    resident: Option<&ResidentRef>,
    koseki_id: Option<&str>,
    kind: &str,
    at_ms: i64,
) -> Result<(), IssuerError> {
    sqlx::query(
        "INSERT INTO pending_changes (id, resident_id, koseki_id, kind, filed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(resident.map(ResidentRef::as_str))
    .bind(koseki_id)
    .bind(kind)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a pending change as reflected.
pub async fn reflect_pending_change(
    conn: &mut AnyConnection,
    id: &str,
    at_ms: i64,
) -> Result<(), IssuerError> {
    sqlx::query("UPDATE pending_changes SET reflected_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
