//! `issuer import`: a register from the municipality's own data, as JSON Lines (one record
//! per line, its `kind` naming the table; docs/register-import.md and
//! docs/register-import.schema.json), and change files (異動) applied on top.
//!
//! A full load is one transaction: every line is parsed, checked and inserted as it is read
//! (nothing but the current line is held in memory), the register's keys and foreign keys
//! catch duplicates and dangling references at the line that causes them, the cross-record
//! checks run at the end, and any refusal rolls everything back. A change file commits each
//! change with its `applied_changes` row and stops at the first refusal.

mod batch;
mod changes;
mod fields;
mod lines;
mod records;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use indicatif::ProgressBar;
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::error::ErrorKind;
use time::OffsetDateTime;

pub use changes::CHANGE_KINDS;
pub use fields::Bad;
pub use records::KINDS;

use crate::calendar::unix_ms;
use crate::error::IssuerError;
use crate::register::Register;
use fields::Fields;
use lines::Lines;
use records::{Plan, Val};

/// Why an import stopped. Messages name files, lines, fields and record ids, never a value
/// from the register (names, addresses, numbers are personal data).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line was refused.
    #[error("{file}:{line}: {field}: {reason}")]
    Line {
        /// The file as given.
        file: String,
        /// 1-based line number.
        line: u64,
        /// The field (`line` when the line as a whole is refused).
        field: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database failed (the driver's own message is left out when it could quote a
    /// value: only its SQLSTATE code is kept).
    #[error("database error: {0}")]
    Database(String),
    /// Opening the register failed.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Database(redacted(&e))
    }
}

fn redacted(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!("code {}", db.code().unwrap_or_default()),
        None => e.to_string(),
    }
}

/// A step refused: a field of the line, or the database.
#[derive(Debug)]
pub(crate) enum Fail {
    Bad(Bad),
    Db(sqlx::Error),
    Issuer(IssuerError),
}

impl From<Bad> for Fail {
    fn from(b: Bad) -> Fail {
        Fail::Bad(b)
    }
}
impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Fail {
        Fail::Db(e)
    }
}
impl From<IssuerError> for Fail {
    fn from(e: IssuerError) -> Fail {
        match e {
            IssuerError::Database(e) => Fail::Db(e),
            other => Fail::Issuer(other),
        }
    }
}

const NO_MUNICIPALITY: &str =
    "municipality not in the register (add it first with `issuer municipality apply`)";

/// What a full load wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Records per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// All records.
    pub records: u64,
}

/// What a change file run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    /// Changes applied now.
    pub applied: u64,
    /// Changes found applied before (same id, same content) and skipped.
    pub already_applied: u64,
}

/// A change run that stopped: what it applied before the refusal, and the refusal.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} applied before it, {} already applied)", .summary.applied, .summary.already_applied)]
pub struct ChangeFailure {
    /// Applied before the failure (they stay applied).
    pub summary: ChangeSummary,
    /// The failure.
    pub error: ImportError,
}

/// The total size of `files`, for a progress bar's length.
pub fn total_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Splits a line into its kind and its other fields.
fn split(text: &str) -> Result<(String, Fields), Bad> {
    if text.trim().is_empty() {
        return Err(Bad::new("line", "is empty"));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Bad::new("line", format!("is not valid JSON (column {})", e.column())))?;
    let Value::Object(mut map) = value else {
        return Err(Bad::new("line", "must be a JSON object"));
    };
    let kind = match map.remove("kind") {
        None | Some(Value::Null) => return Err(Bad::new("kind", "missing")),
        Some(Value::String(k)) => k,
        Some(_) => return Err(Bad::new("kind", "must be a string")),
    };
    let fields = Fields::new(map, &kind, "");
    Ok((kind, fields))
}

/// Loads `files` into the register as one transaction: all of it or, on the first refused
/// line, nothing.
pub async fn load(
    register: &Register,
    files: &[PathBuf],
    progress: &ProgressBar,
) -> Result<LoadSummary, ImportError> {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    let known: HashSet<String> = sqlx::query_as::<_, (String,)>("SELECT code FROM municipalities")
        .fetch_all(register.pool())
        .await?
        .into_iter()
        .map(|r| r.0)
        .collect();
    let _turn = register.writer_turn().await;
    let mut tx = register.begin().await?;
    let mut summary = LoadSummary::default();
    let mut done_bytes = 0;
    let mut batches = batch::Batches::new(register.backend());
    let at = |(file, line): batch::Loc, fail| lines::Lines::fail_at(&files[file], line, fail);
    for (index, file) in files.iter().enumerate() {
        let mut lines = Lines::open(file)?;
        while let Some(text) = lines.next_line()? {
            let (kind, mut f) = split(text).map_err(|b| lines.refuse(b))?;
            if CHANGE_KINDS.contains(&kind.as_str()) {
                let why = "is a change; apply change files with `issuer import --changes`";
                return Err(lines.refuse(Bad::new("kind", why)));
            }
            let plan = records::plan(&kind, &mut f, now_ms).map_err(|b| lines.refuse(b))?;
            f.finish().map_err(|b| lines.refuse(b))?;
            if let Some(m) = &plan.municipality
                && !known.contains(m)
            {
                return Err(lines.refuse(Bad::new("municipality_code", NO_MUNICIPALITY)));
            }
            let loc = (index, lines.line());
            batches
                .push(&mut tx, loc, plan)
                .await
                .map_err(|(loc, f)| at(loc, f))?;
            *summary.by_kind.entry(kind).or_default() += 1;
            summary.records += 1;
            progress.set_position(done_bytes + lines.bytes());
        }
        done_bytes += lines.bytes();
    }
    batches
        .flush(&mut tx)
        .await
        .map_err(|(loc, f)| at(loc, f))?;
    cross_checks(&mut tx, files).await?;
    tx.commit().await?;
    progress.finish();
    Ok(summary)
}

/// The checks no single line can fail: a household's head lives in it, and a resident's
/// 戸籍 (when kept here) is in the register. Run over the whole register in the load's
/// transaction, then the offending line is found by reading the files again.
async fn cross_checks(conn: &mut AnyConnection, files: &[PathBuf]) -> Result<(), ImportError> {
    let checks: [(&str, &str, &str, &str, &str); 2] = [
        (
            "SELECT h.id FROM households h WHERE NOT EXISTS (SELECT 1 FROM residents r \
             WHERE r.id = h.head_resident_id AND r.household_id = h.id) LIMIT 1",
            "household",
            "household_id",
            "head_resident_id",
            "is not a resident of this household",
        ),
        (
            "SELECT r.id FROM residents r WHERE r.koseki_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM koseki k WHERE k.id = r.koseki_id) LIMIT 1",
            "resident",
            "resident_id",
            "koseki_id",
            "koseki not in the register",
        ),
    ];
    for (sql, kind, key, field, reason) in checks {
        let found: Option<(String,)> = sqlx::query_as(sql).fetch_optional(&mut *conn).await?;
        if let Some((id,)) = found {
            let (file, line) = lines::find(files, kind, key, &id)?;
            return Err(ImportError::Line {
                file,
                line,
                field: field.to_owned(),
                reason: reason.to_owned(),
            });
        }
    }
    Ok(())
}

/// Runs a record's checks and inserts, naming the field the database refused.
pub(crate) async fn execute(conn: &mut AnyConnection, plan: &Plan) -> Result<(), Fail> {
    check_exists(conn, plan).await?;
    for row in &plan.rows {
        insert_one(conn, row).await?;
    }
    Ok(())
}

/// The rows a record needs that the schema has no foreign key for.
pub(crate) async fn check_exists(conn: &mut AnyConnection, plan: &Plan) -> Result<(), Fail> {
    for check in &plan.exists {
        let mut q = sqlx::query(check.sql);
        for v in &check.binds {
            q = bind(q, v);
        }
        if q.fetch_optional(&mut *conn).await?.is_none() {
            return Err(Fail::Bad(Bad::new(check.blame.0, check.blame.1)));
        }
    }
    Ok(())
}

/// Inserts one row; a duplicate key or a missing reference is the row's field to blame.
pub(crate) async fn insert_one(conn: &mut AnyConnection, row: &records::Row) -> Result<(), Fail> {
    let names: Vec<&str> = row.cols.iter().map(|c| c.0).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let conflict = if row.ignore_duplicate {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}){conflict}",
        row.table,
        names.join(", "),
        marks.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, v) in &row.cols {
        q = bind(q, v);
    }
    if let Err(e) = q.execute(&mut *conn).await {
        let blame = match e.as_database_error().map(|d| d.kind()) {
            Some(ErrorKind::UniqueViolation) => row.key,
            Some(ErrorKind::ForeignKeyViolation) => row.reference,
            _ => return Err(Fail::Db(e)),
        };
        return Err(Fail::Bad(Bad::new(blame.0, blame.1)));
    }
    Ok(())
}

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

pub(crate) fn bind<'q>(q: AnyQuery<'q>, v: &Val) -> AnyQuery<'q> {
    match v {
        Val::Text(t) => q.bind(t.clone()),
        Val::Int(i) => q.bind(*i),
        Val::Bytes(b) => q.bind(b.clone()),
    }
}

/// Applies change files in order, each change in its own transaction with its
/// `applied_changes` row; changes applied before (same id and content) are skipped, so a
/// file can be re-run after a crash. Stops at the first refused change.
pub async fn apply_changes(
    register: &Register,
    files: &[PathBuf],
    progress: &ProgressBar,
) -> Result<ChangeSummary, ChangeFailure> {
    let mut summary = ChangeSummary::default();
    let mut done_bytes = 0;
    for file in files {
        let mut lines = Lines::open(file).map_err(|error| ChangeFailure {
            summary: summary.clone(),
            error,
        })?;
        loop {
            let step = one_change(register, &mut lines).await;
            let fail = |error| ChangeFailure {
                summary: summary.clone(),
                error,
            };
            match step.map_err(fail)? {
                None => break,
                Some(true) => summary.applied += 1,
                Some(false) => summary.already_applied += 1,
            }
            progress.set_position(done_bytes + lines.bytes());
        }
        done_bytes += lines.bytes();
    }
    progress.finish();
    Ok(summary)
}

/// Reads and applies the next change: `None` at the end of the file, `Some(true)` when
/// applied now, `Some(false)` when it was applied before.
async fn one_change(register: &Register, lines: &mut Lines) -> Result<Option<bool>, ImportError> {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    let Some(text) = lines.next_line()? else {
        return Ok(None);
    };
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
    let (kind, mut f) = split(text).map_err(|b| lines.refuse(b))?;
    if KINDS.contains(&kind.as_str()) {
        let why = "is a register record; load it without --changes";
        return Err(lines.refuse(Bad::new("kind", why)));
    }
    let parsed = (|| {
        let id = f.id("change_id")?;
        let change = changes::parse(&kind, &mut f, now_ms)?;
        Ok::<_, Bad>((id, change))
    })();
    let (change_id, change) = parsed.map_err(|b| lines.refuse(b))?;
    f.finish().map_err(|b| lines.refuse(b))?;
    let _turn = register.writer_turn().await;
    let mut tx = register.begin().await?;
    let before: Option<(String,)> =
        sqlx::query_as("SELECT digest FROM applied_changes WHERE change_id = $1")
            .bind(&change_id)
            .fetch_optional(&mut *tx)
            .await?;
    match before {
        Some((d,)) if d == digest => return Ok(Some(false)),
        Some(_) => {
            let why = "was applied before with different content";
            return Err(lines.refuse(Bad::new("change_id", why)));
        }
        None => {}
    }
    changes::apply(&mut tx, &change, now_ms)
        .await
        .map_err(|e| lines.fail(e))?;
    sqlx::query(
        "INSERT INTO applied_changes (change_id, kind, digest, applied_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&change_id)
    .bind(&kind)
    .bind(&digest)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(true))
}
