//! Applying a checked file to the register: one transaction, every conflict named, every
//! change recorded with who, when and why.

use sqlx::{Any, AnyConnection, Row, Transaction};
use time::{Date, OffsetDateTime};

use super::file::{Closure, Fee, Hours, Plan, Profile, hhmm};
use super::operator::{Operator, Reason};
use crate::calendar::{format_date, in_jst, parse_date, unix_ms};
use crate::error::IssuerError;
use crate::register::{Backend, Register};

/// What a run changed (empty: the register already matched the file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Whether the municipality's row was created by this run.
    pub created: bool,
    /// One line per change, as recorded in `municipality_changes`.
    pub changes: Vec<String>,
}

/// The differences found so far, and the conflicts that refuse the whole run.
#[derive(Default)]
struct Diff {
    writes: Vec<Write>,
    changes: Vec<String>,
    conflicts: Vec<String>,
}

/// One statement to run once the comparison found no conflict.
enum Write {
    InsertProfile(Profile),
    UpdateProfile(Profile),
    Fee { fee: Fee, replace: bool },
    Hours(Hours),
    Closure(Closure),
    RemoveClosure(Date),
}

/// Applies `plan` at `now` (its Japan-time date is "today": fees dated on or before it are in
/// force or history). Refuses with [`IssuerError::Operator`] naming every conflict, having
/// written nothing.
pub async fn apply(
    register: &Register,
    plan: &Plan,
    operator: &Operator,
    reason: &Reason,
    now: OffsetDateTime,
) -> Result<ApplySummary, IssuerError> {
    let today = in_jst(now).date();
    let code = plan.code.as_str();
    let _turn = register.writer_turn().await;
    let mut tx = begin_in_turn(register, code).await?;
    let existing = read_profile(&mut tx, code).await?;
    let mut diff = Diff::default();
    compare_profile(existing.as_ref(), &plan.profile, code, &mut diff);
    compare_fees(
        &mut tx,
        code,
        &plan.fees,
        today,
        existing.is_none(),
        &mut diff,
    )
    .await?;
    compare_hours(&mut tx, code, &plan.hours, &mut diff).await?;
    compare_closures(&mut tx, code, &plan.closures, today, &mut diff).await?;
    if !diff.conflicts.is_empty() {
        tx.rollback().await?;
        return Err(IssuerError::Operator(diff.conflicts));
    }
    for write in &diff.writes {
        run(&mut tx, code, write).await?;
    }
    record(&mut tx, code, operator, reason, unix_ms(now), &diff.changes).await?;
    tx.commit().await?;
    Ok(ApplySummary {
        created: existing.is_none(),
        changes: diff.changes,
    })
}

/// Begins the run's transaction once every other run for `code` has ended, so that two
/// operators applying at once (two processes) take turns: the second compares against what
/// the first committed and finds it unchanged, where it used to fail on the history's
/// numbering with nothing written.
///
/// SQLite: `BEGIN IMMEDIATE` takes the one write lock at once. PostgreSQL: a transaction-scoped
/// advisory lock per municipality, in a READ COMMITTED transaction so that every statement
/// after the lock reads what the previous run committed (a REPEATABLE READ snapshot would be
/// taken before the wait and miss it).
async fn begin_in_turn(
    register: &Register,
    code: &str,
) -> Result<Transaction<'static, Any>, IssuerError> {
    if register.backend() == Backend::Sqlite {
        return register.begin().await;
    }
    let mut tx = register.pool().begin().await?;
    // The lock's function returns `void`, which the Any driver cannot decode: select around it.
    sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS turn")
        .bind(format!("issuer municipality apply {code}"))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn read_profile(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Option<Profile>, IssuerError> {
    let row = sqlx::query(
        "SELECT name, prefecture, mayor_title, mayor_name, minimum_age, tax_years_offered \
         FROM municipalities WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let small = |column: &str| -> Result<u32, IssuerError> {
        u32::try_from(row.try_get::<i64, _>(column)?).map_err(|_| IssuerError::Corrupt {
            what: "municipality",
        })
    };
    Ok(Some(Profile {
        name: row.try_get("name")?,
        prefecture: row.try_get("prefecture")?,
        mayor_title: row.try_get("mayor_title")?,
        mayor_name: row.try_get("mayor_name")?,
        minimum_age: small("minimum_age")?,
        tax_years_offered: small("tax_years_offered")?,
    }))
}

/// A new municipality is inserted; an existing one may change anything but its name: a code
/// whose register holds another name is the wrong file (or a merger, which gets a new code),
/// so it is refused rather than renamed.
fn compare_profile(existing: Option<&Profile>, wanted: &Profile, code: &str, diff: &mut Diff) {
    let Some(existing) = existing else {
        diff.writes.push(Write::InsertProfile(wanted.clone()));
        diff.changes
            .push(format!("municipality {code} created: {}", wanted.name));
        return;
    };
    if existing.name != wanted.name {
        diff.conflicts.push(format!(
            "name: municipality {code} is {} in the register, the file says {}",
            existing.name, wanted.name
        ));
        return;
    }
    if existing != wanted {
        diff.writes.push(Write::UpdateProfile(wanted.clone()));
        diff.changes.push(format!(
            "municipality {code}: prefecture {}, mayor {} {}, minimum age {}, tax years {}",
            wanted.prefecture,
            wanted.mayor_title,
            wanted.mayor_name,
            wanted.minimum_age,
            wanted.tax_years_offered
        ));
    }
}

async fn read_fees(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Vec<(String, Date, i64)>, IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, effective_from, fee_yen FROM fee_schedule \
         WHERE municipality_code = $1",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let from: String = row.try_get("effective_from")?;
            Ok((
                row.try_get("certificate_type")?,
                parse_date(&from, "fee effective_from")?,
                row.try_get("fee_yen")?,
            ))
        })
        .collect()
}

/// Fees are history: a row dated on or before today cannot be rewritten, and a type that
/// already has fees takes a new one only from a future date (a past-dated row would change
/// what was charged). A future row may be corrected until it takes effect. Rows the file
/// does not mention stay.
async fn compare_fees(
    conn: &mut AnyConnection,
    code: &str,
    fees: &[Fee],
    today: Date,
    creating: bool,
    diff: &mut Diff,
) -> Result<(), IssuerError> {
    let existing = if creating {
        Vec::new()
    } else {
        read_fees(conn, code).await?
    };
    for fee in fees {
        let (ty, from) = (fee.ty.code(), format_date(fee.from));
        let same = existing.iter().find(|(t, d, _)| t == ty && *d == fee.from);
        let line = format!("fee {ty} from {from}: {} yen", fee.yen);
        match same {
            Some((_, _, yen)) if *yen == i64::from(fee.yen) => {}
            Some((_, _, yen)) if fee.from <= today => diff.conflicts.push(format!(
                "fee {ty} from {from}: {yen} yen is in force or past and cannot be rewritten \
                 (history is immutable; add a new effective date)"
            )),
            Some(_) => {
                diff.writes.push(Write::Fee {
                    fee: fee.clone(),
                    replace: true,
                });
                diff.changes.push(line);
            }
            None if fee.from <= today && existing.iter().any(|(t, _, _)| t == ty) => {
                diff.conflicts.push(format!(
                    "fee {ty} from {from}: a new fee must take effect after today ({})",
                    format_date(today)
                ))
            }
            None => {
                diff.writes.push(Write::Fee {
                    fee: fee.clone(),
                    replace: false,
                });
                diff.changes.push(line);
            }
        }
    }
    Ok(())
}

async fn read_hours(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Vec<(String, [i64; 5])>, IssuerError> {
    let rows = sqlx::query(
        "SELECT certificate_type, offered, weekdays_only, opens_at_minute, closes_at_minute, \
         max_copies FROM service_windows WHERE municipality_code = $1",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let mut values = [0; 5];
            for (value, column) in values.iter_mut().zip([
                "offered",
                "weekdays_only",
                "opens_at_minute",
                "closes_at_minute",
                "max_copies",
            ]) {
                *value = row.try_get(column)?;
            }
            Ok((row.try_get("certificate_type")?, values))
        })
        .collect()
}

fn hours_values(h: &Hours) -> [i64; 5] {
    [
        i64::from(h.offered),
        i64::from(h.weekdays_only),
        i64::from(h.opens),
        i64::from(h.closes),
        i64::from(h.max_copies),
    ]
}

/// Hours are the current configuration, not history: a type in the file is set to what the
/// file says; types the file leaves out keep their row.
async fn compare_hours(
    conn: &mut AnyConnection,
    code: &str,
    hours: &[Hours],
    diff: &mut Diff,
) -> Result<(), IssuerError> {
    let existing = read_hours(conn, code).await?;
    for h in hours {
        let current = existing.iter().find(|(t, _)| t == h.ty.code());
        if current.map(|(_, v)| *v) == Some(hours_values(h)) {
            continue;
        }
        diff.writes.push(Write::Hours(h.clone()));
        diff.changes.push(format!(
            "hours {}: {}, {}-{}{}, at most {} copies",
            h.ty.code(),
            if h.offered { "offered" } else { "not offered" },
            hhmm(h.opens),
            hhmm(h.closes),
            if h.weekdays_only {
                " weekdays only"
            } else {
                ""
            },
            h.max_copies
        ));
    }
    Ok(())
}

async fn read_closures(conn: &mut AnyConnection, code: &str) -> Result<Vec<Closure>, IssuerError> {
    let rows = sqlx::query(
        "SELECT closed_on, weekday_types_only, note FROM service_closed_dates \
         WHERE municipality_code = $1",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let on: String = row.try_get("closed_on")?;
            Ok(Closure {
                date: parse_date(&on, "closed_on")?,
                weekday_types_only: row.try_get::<i64, _>("weekday_types_only")? != 0,
                note: row.try_get("note")?,
            })
        })
        .collect()
}

/// The file's closures are the complete list from today on: a future closure the file no
/// longer lists is removed; past ones are left as the record of what was closed.
async fn compare_closures(
    conn: &mut AnyConnection,
    code: &str,
    closures: &[Closure],
    today: Date,
    diff: &mut Diff,
) -> Result<(), IssuerError> {
    let existing = read_closures(conn, code).await?;
    for c in closures {
        if existing.contains(c) {
            continue;
        }
        diff.writes.push(Write::Closure(c.clone()));
        diff.changes.push(format!(
            "closed {}{}: {}",
            format_date(c.date),
            if c.weekday_types_only {
                " (weekday-only types)"
            } else {
                ""
            },
            c.note
        ));
    }
    for old in &existing {
        if old.date >= today && !closures.iter().any(|c| c.date == old.date) {
            diff.writes.push(Write::RemoveClosure(old.date));
            diff.changes
                .push(format!("closure {} removed", format_date(old.date)));
        }
    }
    Ok(())
}

async fn run(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    write: &Write,
) -> Result<(), IssuerError> {
    match write {
        Write::InsertProfile(p) => profile(tx, code, p, true).await,
        Write::UpdateProfile(p) => profile(tx, code, p, false).await,
        Write::Fee { fee, replace } => write_fee(tx, code, fee, *replace).await,
        Write::Hours(h) => write_hours(tx, code, h).await,
        Write::Closure(c) => write_closure(tx, code, c).await,
        Write::RemoveClosure(day) => {
            sqlx::query(
                "DELETE FROM service_closed_dates WHERE municipality_code = $1 AND closed_on = $2",
            )
            .bind(code)
            .bind(format_date(*day))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    }
}

async fn profile(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    p: &Profile,
    insert: bool,
) -> Result<(), IssuerError> {
    let sql = if insert {
        "INSERT INTO municipalities (name, prefecture, mayor_title, mayor_name, minimum_age, \
         tax_years_offered, code) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    } else {
        "UPDATE municipalities SET name = $1, prefecture = $2, mayor_title = $3, \
         mayor_name = $4, minimum_age = $5, tax_years_offered = $6 WHERE code = $7"
    };
    sqlx::query(sql)
        .bind(&p.name)
        .bind(&p.prefecture)
        .bind(&p.mayor_title)
        .bind(&p.mayor_name)
        .bind(i64::from(p.minimum_age))
        .bind(i64::from(p.tax_years_offered))
        .bind(code)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_fee(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    fee: &Fee,
    replace: bool,
) -> Result<(), IssuerError> {
    let sql = if replace {
        "UPDATE fee_schedule SET fee_yen = $4 WHERE municipality_code = $1 \
         AND certificate_type = $2 AND effective_from = $3"
    } else {
        "INSERT INTO fee_schedule (municipality_code, certificate_type, effective_from, fee_yen) \
         VALUES ($1, $2, $3, $4)"
    };
    sqlx::query(sql)
        .bind(code)
        .bind(fee.ty.code())
        .bind(format_date(fee.from))
        .bind(i64::from(fee.yen))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_hours(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    h: &Hours,
) -> Result<(), IssuerError> {
    sqlx::query(
        "DELETE FROM service_windows WHERE municipality_code = $1 AND certificate_type = $2",
    )
    .bind(code)
    .bind(h.ty.code())
    .execute(&mut **tx)
    .await?;
    let [offered, weekdays_only, opens, closes, max_copies] = hours_values(h);
    sqlx::query(
        "INSERT INTO service_windows (municipality_code, certificate_type, offered, \
         weekdays_only, opens_at_minute, closes_at_minute, max_copies) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(code)
    .bind(h.ty.code())
    .bind(offered)
    .bind(weekdays_only)
    .bind(opens)
    .bind(closes)
    .bind(max_copies)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_closure(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    c: &Closure,
) -> Result<(), IssuerError> {
    sqlx::query("DELETE FROM service_closed_dates WHERE municipality_code = $1 AND closed_on = $2")
        .bind(code)
        .bind(format_date(c.date))
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO service_closed_dates (municipality_code, closed_on, weekday_types_only, note) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(code)
    .bind(format_date(c.date))
    .bind(i64::from(c.weekday_types_only))
    .bind(&c.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One history row per change, in the run's transaction.
async fn record(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    operator: &Operator,
    reason: &Reason,
    at_ms: i64,
    changes: &[String],
) -> Result<(), IssuerError> {
    // Numbered after the last recorded change, so that two runs in the same millisecond (or
    // under a fixed clock) keep their order and never collide.
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(seq) FROM municipality_changes WHERE municipality_code = $1",
    )
    .bind(code)
    .fetch_one(&mut **tx)
    .await?;
    let first = last.map_or(0, |n| n + 1);
    for (n, change) in changes.iter().enumerate() {
        let seq = first + i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO municipality_changes (municipality_code, applied_at, seq, operator, \
             reason, change) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code)
        .bind(at_ms)
        .bind(seq)
        .bind(operator.as_str())
        .bind(reason.as_str())
        .bind(change)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
