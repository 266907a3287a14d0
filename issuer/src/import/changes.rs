//! Change files (異動): one change per line, applied in order, each in its own transaction
//! together with its row in `applied_changes`, so that a file re-run after a crash skips
//! what was applied and goes on from the first change that was not.

use kiosk_document::ResidentRef;
use sqlx::AnyConnection;
use time::Date;

use super::fields::{Bad, Fields};
use super::records::{Plan, Val, resident};
use super::{Fail, execute};
use crate::register::write;
use crate::register::{ResidentStatus, SupportMeasure};

/// The change kinds, as the `kind` of a change line.
pub const CHANGE_KINDS: &[&str] = &[
    "move_in",
    "move_out_filed",
    "move_out",
    "death",
    "name_change",
    "seal_abolition",
    "support_measure_set",
    "support_measure_lifted",
];

/// One parsed change.
#[derive(Debug)]
pub enum Change {
    /// 転入: a new resident; their household is created when it is new.
    MoveIn(Plan),
    /// 転出届, 転出 (消除) or 死亡 (消除).
    Status {
        /// The resident.
        resident: String,
        /// The new status.
        status: ResidentStatus,
        /// 異動日.
        on: Date,
    },
    /// 氏名の変更: only the names given change.
    Rename {
        /// The resident.
        resident: String,
        /// 氏, 名, 氏 (kana), 名 (kana); `None` keeps the current value.
        names: [Option<String>; 4],
    },
    /// 印鑑登録の廃止.
    SealAbolition {
        /// The holder.
        resident: String,
    },
    /// 支援措置 set (or replaced).
    SupportSet {
        /// The person.
        person: String,
        /// Since.
        since: Date,
        /// The two systems' flags.
        measure: SupportMeasure,
    },
    /// 支援措置 lifted.
    SupportLifted {
        /// The person.
        person: String,
    },
}

/// Reads the change of `kind` (its `change_id` is read by the caller). Every change has an
/// `effective_on` (異動日); the kinds whose register row has no date for it still require it,
/// so every change line has the same shape.
pub fn parse(kind: &str, f: &mut Fields, now_ms: i64) -> Result<Change, Bad> {
    if !CHANGE_KINDS.contains(&kind) {
        return Err(Bad::new(
            "kind",
            format!("unknown change kind; one of {}", CHANGE_KINDS.join(", ")),
        ));
    }
    let on = f.date("effective_on")?;
    let status = match kind {
        "move_out_filed" => Some(ResidentStatus::MoveOutFiled),
        "move_out" => Some(ResidentStatus::MovedOut),
        "death" => Some(ResidentStatus::Deceased),
        _ => None,
    };
    if let Some(status) = status {
        return Ok(Change::Status {
            resident: f.id("resident_id")?,
            status,
            on,
        });
    }
    match kind {
        "move_in" => Ok(Change::MoveIn(resident(f, now_ms, false)?)),
        "name_change" => {
            let resident = f.id("resident_id")?;
            let names = [
                f.opt_text("family_name")?,
                f.opt_text("given_name")?,
                f.opt_kana("family_name_kana")?,
                f.opt_kana("given_name_kana")?,
            ];
            if names.iter().all(Option::is_none) {
                return Err(Bad::new(
                    "family_name",
                    "missing (a name change changes a name)",
                ));
            }
            Ok(Change::Rename { resident, names })
        }
        "seal_abolition" => Ok(Change::SealAbolition {
            resident: f.id("resident_id")?,
        }),
        "support_measure_set" => Ok(Change::SupportSet {
            person: f.id("person_ref")?,
            since: on,
            measure: SupportMeasure {
                covers_resident_record: f.bool("covers_resident_record")?,
                covers_fuhyo: f.bool("covers_fuhyo")?,
            },
        }),
        _ => Ok(Change::SupportLifted {
            person: f.id("person_ref")?,
        }),
    }
}

fn person(id: &str, field: &'static str) -> Result<ResidentRef, Fail> {
    ResidentRef::parse(id).map_err(|_| Fail::Bad(Bad::new(field, "is not a resident reference")))
}

/// Applies one change inside the caller's transaction.
pub async fn apply(conn: &mut AnyConnection, change: &Change, now_ms: i64) -> Result<(), Fail> {
    match change {
        Change::MoveIn(plan) => move_in(conn, plan).await,
        Change::Status {
            resident,
            status,
            on,
        } => {
            let current = current_status(conn, resident).await?;
            if current == "moved_out" || current == "deceased" || current == status.code() {
                return Err(Fail::Bad(Bad::new(
                    "resident_id",
                    format!("resident is already {current}"),
                )));
            }
            let id = person(resident, "resident_id")?;
            write::set_status(conn, &id, *status, *on, now_ms).await?;
            Ok(())
        }
        Change::Rename { resident, names } => {
            current_status(conn, resident).await?;
            let [family, given, family_kana, given_kana] = names;
            sqlx::query(
                "UPDATE residents SET family_name = COALESCE($2, family_name), \
                 given_name = COALESCE($3, given_name), \
                 family_name_kana = COALESCE($4, family_name_kana), \
                 given_name_kana = COALESCE($5, given_name_kana), updated_at = $6 \
                 WHERE id = $1",
            )
            .bind(resident)
            .bind(family)
            .bind(given)
            .bind(family_kana)
            .bind(given_kana)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Change::SealAbolition { resident } => {
            let id = person(resident, "resident_id")?;
            if write::abolish_seal(conn, &id, now_ms).await? {
                Ok(())
            } else {
                Err(Fail::Bad(Bad::new(
                    "resident_id",
                    "has no live seal registration",
                )))
            }
        }
        Change::SupportSet {
            person: p,
            since,
            measure,
        } => {
            let id = person(p, "person_ref")?;
            write::set_support_measure(conn, &id, *measure, *since, now_ms).await?;
            Ok(())
        }
        Change::SupportLifted { person: p } => {
            let done = sqlx::query(
                "UPDATE support_measures SET active = 0, updated_at = $2 \
                 WHERE person_ref = $1 AND active = 1",
            )
            .bind(p)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Fail::Bad(Bad::new(
                    "person_ref",
                    "has no active support measure",
                )));
            }
            Ok(())
        }
    }
}

async fn current_status(conn: &mut AnyConnection, resident: &str) -> Result<String, Fail> {
    let row: Option<(String,)> = sqlx::query_as("SELECT status FROM residents WHERE id = $1")
        .bind(resident)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.0)
        .ok_or_else(|| Fail::Bad(Bad::new("resident_id", "resident not in the register")))
}

fn text_col<'a>(plan: &'a Plan, name: &str) -> Option<&'a str> {
    plan.rows.first()?.cols.iter().find_map(|(c, v)| match v {
        Val::Text(Some(t)) if *c == name => Some(t.as_str()),
        _ => None,
    })
}

/// 転入: the household first when it is new (the newcomer heads it), then the resident.
async fn move_in(conn: &mut AnyConnection, plan: &Plan) -> Result<(), Fail> {
    let (Some(municipality), Some(household), Some(id), Some(address)) = (
        plan.municipality.as_deref(),
        text_col(plan, "household_id"),
        text_col(plan, "id"),
        text_col(plan, "address"),
    ) else {
        return Err(Fail::Bad(Bad::new("resident_id", "missing")));
    };
    let known: Option<(String,)> =
        sqlx::query_as("SELECT code FROM municipalities WHERE code = $1")
            .bind(municipality)
            .fetch_optional(&mut *conn)
            .await?;
    if known.is_none() {
        return Err(Fail::Bad(Bad::new(
            "municipality_code",
            super::NO_MUNICIPALITY,
        )));
    }
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM households WHERE id = $1")
        .bind(household)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        sqlx::query(
            "INSERT INTO households (id, municipality_code, head_resident_id, address) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(household)
        .bind(municipality)
        .bind(id)
        .bind(address)
        .execute(&mut *conn)
        .await?;
    }
    execute(conn, plan).await
}
