//! `issuer municipality show`: what the go-live checklist compares with the council's fee
//! ordinance and hours, and who changed it when and why.

use std::fmt::Write as _;

use kiosk_document::MunicipalityCode;
use sqlx::{AnyConnection, Row};
use time::Date;

use super::file::hhmm;
use crate::calendar::{format_date, from_unix_ms};
use crate::error::IssuerError;
use crate::register::Register;
use crate::register::read;

/// The municipality as text: its row, the fees in force on `at`, fee changes after `at`,
/// hours, closures from `at` on, and the change history.
pub async fn show(
    register: &Register,
    code: &MunicipalityCode,
    at: Date,
) -> Result<String, IssuerError> {
    let mut tx = register.begin_read().await?;
    let code = code.as_str();
    let mut out = String::new();
    header(&mut tx, code, &mut out).await?;
    let _ = writeln!(out, "fees in force on {}:", format_date(at));
    let mut fees = read::fees(&mut tx, code, at).await?;
    // In kiosk.v1 (menu) order, the order of the ordinance's table, not alphabetical.
    fees.sort_by_key(|(ty, _)| ty.number());
    for (ty, yen) in fees {
        let _ = writeln!(out, "  {} {yen} yen", ty.code());
    }
    upcoming(&mut tx, code, at, &mut out).await?;
    hours(&mut tx, code, &mut out).await?;
    closures(&mut tx, code, at, &mut out).await?;
    history(&mut tx, code, &mut out).await?;
    tx.commit().await?;
    Ok(out)
}

async fn header(conn: &mut AnyConnection, code: &str, out: &mut String) -> Result<(), IssuerError> {
    let row = sqlx::query(
        "SELECT name, prefecture, mayor_title, mayor_name, minimum_age, tax_years_offered \
         FROM municipalities WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        IssuerError::Operator(vec![format!("municipality {code} is not in the register")])
    })?;
    let _ = writeln!(
        out,
        "municipality {code} {}{}\nmayor: {} {}\nminimum age: {}, tax years offered: {}",
        row.try_get::<String, _>("prefecture")?,
        row.try_get::<String, _>("name")?,
        row.try_get::<String, _>("mayor_title")?,
        row.try_get::<String, _>("mayor_name")?,
        row.try_get::<i64, _>("minimum_age")?,
        row.try_get::<i64, _>("tax_years_offered")?,
    );
    Ok(())
}

async fn upcoming(
    conn: &mut AnyConnection,
    code: &str,
    at: Date,
    out: &mut String,
) -> Result<(), IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, effective_from, fee_yen FROM fee_schedule \
         WHERE municipality_code = $1 AND effective_from > $2 \
         ORDER BY effective_from, certificate_type",
    )
    .bind(code)
    .bind(format_date(at))
    .fetch_all(&mut *conn)
    .await?;
    let _ = writeln!(out, "upcoming fee changes:");
    for row in &rows {
        let _ = writeln!(
            out,
            "  {} {} yen from {}",
            row.try_get::<String, _>("certificate_type")?,
            row.try_get::<i64, _>("fee_yen")?,
            row.try_get::<String, _>("effective_from")?,
        );
    }
    Ok(())
}

async fn hours(conn: &mut AnyConnection, code: &str, out: &mut String) -> Result<(), IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, offered, weekdays_only, opens_at_minute, closes_at_minute, \
         max_copies FROM service_windows WHERE municipality_code = $1 ORDER BY certificate_type",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    let _ = writeln!(out, "hours (Japan time):");
    let mut rows = rows;
    // Menu order, as the fees; an unknown code (a newer schema's type) sorts last.
    rows.sort_by_key(|row| {
        row.try_get::<String, _>("certificate_type")
            .ok()
            .and_then(|code| kiosk_document::CertificateType::from_code(&code))
            .map_or(u8::MAX, |ty| ty.number())
    });
    for row in &rows {
        let minute = |c: &str| -> Result<u32, IssuerError> {
            u32::try_from(row.try_get::<i64, _>(c)?)
                .map_err(|_| IssuerError::Corrupt { what: "hours" })
        };
        let offered = row.try_get::<i64, _>("offered")? != 0;
        let weekdays = row.try_get::<i64, _>("weekdays_only")? != 0;
        let _ = writeln!(
            out,
            "  {} {}-{}{}{}, at most {} copies",
            row.try_get::<String, _>("certificate_type")?,
            hhmm(minute("opens_at_minute")?),
            hhmm(minute("closes_at_minute")?),
            if weekdays { " weekdays only" } else { "" },
            if offered { "" } else { " (not offered)" },
            row.try_get::<i64, _>("max_copies")?,
        );
    }
    Ok(())
}

async fn closures(
    conn: &mut AnyConnection,
    code: &str,
    at: Date,
    out: &mut String,
) -> Result<(), IssuerError> {
    let rows = sqlx::query(
        "SELECT closed_on, weekday_types_only, note FROM service_closed_dates \
         WHERE municipality_code = $1 AND closed_on >= $2 ORDER BY closed_on",
    )
    .bind(code)
    .bind(format_date(at))
    .fetch_all(&mut *conn)
    .await?;
    let _ = writeln!(out, "closures from {}:", format_date(at));
    for row in &rows {
        let weekday = row.try_get::<i64, _>("weekday_types_only")? != 0;
        let _ = writeln!(
            out,
            "  {}{} {}",
            row.try_get::<String, _>("closed_on")?,
            if weekday { " (weekday-only types)" } else { "" },
            row.try_get::<String, _>("note")?,
        );
    }
    Ok(())
}

async fn history(
    conn: &mut AnyConnection,
    code: &str,
    out: &mut String,
) -> Result<(), IssuerError> {
    let rows = sqlx::query(
        "SELECT applied_at, operator, reason, change FROM municipality_changes \
         WHERE municipality_code = $1 ORDER BY seq",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    let _ = writeln!(out, "history:");
    for row in &rows {
        let at = from_unix_ms(row.try_get("applied_at")?)?;
        let _ = writeln!(
            out,
            "  {} {:02}:{:02}:{:02}Z {} ({}): {}",
            format_date(at.date()),
            at.hour(),
            at.minute(),
            at.second(),
            row.try_get::<String, _>("operator")?,
            row.try_get::<String, _>("reason")?,
            row.try_get::<String, _>("change")?,
        );
    }
    Ok(())
}
