//! Rows of a full load written in multi-row INSERTs: one round trip per few hundred rows
//! instead of one per row (on PostgreSQL the round trips were nine tenths of the time).
//!
//! Rows wait per table and are flushed in the schema's dependency order, so a resident's
//! household is written before it. A batch the database refuses is rolled back to its
//! savepoint and written again row by row, so the refusal still names the line that caused it.

use sqlx::AnyConnection;

use super::records::{Plan, Row};
use super::{AnyQuery, Fail, bind, check_exists, insert_one};

/// The register's tables in the order their foreign keys need.
const TABLES: [&str; 12] = [
    "households",
    "residents",
    "individual_numbers",
    "seal_images",
    "seal_registrations",
    "tax_records",
    "koseki",
    "koseki_members",
    "koseki_events",
    "fuhyo_entries",
    "support_measures",
    "pending_changes",
];

/// Rows waiting before a flush.
const FLUSH_AT: usize = 4096;

/// Bound parameters per statement, below SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// Where a row came from: the file's index and the line.
pub type Loc = (usize, u64);

/// The rows waiting, per table.
#[derive(Default)]
pub struct Batches {
    waiting: [Vec<(Loc, Row)>; 12],
    count: usize,
    anonymous: bool,
}

impl Batches {
    /// Batches for `backend`. SQLite statements take anonymous `?` placeholders: sqlx looks
    /// each numbered `$N` up by walking the statement's parameter names, quadratic in the
    /// parameter count (a 100,000-resident load did not finish in ten minutes with `$N`; the
    /// generator in kiosk-devkit measured the same).
    pub fn new(backend: crate::register::Backend) -> Batches {
        Batches {
            anonymous: backend == crate::register::Backend::Sqlite,
            ..Batches::default()
        }
    }

    /// Queues a record's rows; writes everything when enough wait, or first when the record
    /// must check rows that may still be waiting.
    pub async fn push(
        &mut self,
        conn: &mut AnyConnection,
        loc: Loc,
        plan: Plan,
    ) -> Result<(), (Loc, Fail)> {
        if !plan.exists.is_empty() {
            self.flush(conn).await?;
            check_exists(conn, &plan).await.map_err(|f| (loc, f))?;
        }
        for row in plan.rows {
            let Some(i) = TABLES.iter().position(|t| *t == row.table) else {
                insert_one(conn, &row).await.map_err(|f| (loc, f))?;
                continue;
            };
            self.waiting[i].push((loc, row));
            self.count += 1;
        }
        if self.count >= FLUSH_AT {
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Writes every waiting row, table by table.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), (Loc, Fail)> {
        for rows in &mut self.waiting {
            let rows = std::mem::take(rows);
            if rows.is_empty() {
                continue;
            }
            let per = (MAX_PARAMS / rows[0].1.cols.len().max(1)).clamp(1, 1000);
            for chunk in rows.chunks(per) {
                write_chunk(conn, chunk, self.anonymous).await?;
            }
        }
        self.count = 0;
        Ok(())
    }
}

/// One multi-row INSERT under a savepoint; on a refusal, row by row to find the line.
async fn write_chunk(
    conn: &mut AnyConnection,
    chunk: &[(Loc, Row)],
    anonymous: bool,
) -> Result<(), (Loc, Fail)> {
    let first = &chunk[0];
    let same_shape = chunk.iter().all(|(_, r)| {
        r.ignore_duplicate == first.1.ignore_duplicate
            && r.cols.len() == first.1.cols.len()
            && r.cols.iter().zip(&first.1.cols).all(|(a, b)| a.0 == b.0)
    });
    let db = |e: sqlx::Error| (first.0, Fail::Db(e));
    if chunk.len() == 1 || !same_shape {
        return row_by_row(conn, chunk).await;
    }
    sqlx::query("SAVEPOINT import_batch")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let row = &first.1;
    let names: Vec<&str> = row.cols.iter().map(|c| c.0).collect();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", row.table, names.join(", "));
    let mut n = 0;
    for (i, _) in chunk.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..names.len() {
            n += 1;
            let sep = if c == 0 { "" } else { ", " };
            if anonymous {
                sql.push_str(sep);
                sql.push('?');
            } else {
                sql.push_str(&format!("{sep}${n}"));
            }
        }
        sql.push(')');
    }
    if row.ignore_duplicate {
        sql.push_str(" ON CONFLICT DO NOTHING");
    }
    let mut q: AnyQuery<'_> = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, r) in chunk {
        for (_, v) in &r.cols {
            q = bind(q, v);
        }
    }
    match q.execute(&mut *conn).await {
        Ok(_) => {
            sqlx::query("RELEASE SAVEPOINT import_batch")
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(())
        }
        Err(e) if e.as_database_error().is_some() => {
            sqlx::query("ROLLBACK TO SAVEPOINT import_batch")
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            row_by_row(conn, chunk).await?;
            // Every row went in one at a time: the batch failed for a reason of its own.
            Err(db(e))
        }
        Err(e) => Err(db(e)),
    }
}

async fn row_by_row(conn: &mut AnyConnection, chunk: &[(Loc, Row)]) -> Result<(), (Loc, Fail)> {
    for (loc, row) in chunk {
        insert_one(conn, row).await.map_err(|f| (*loc, f))?;
    }
    Ok(())
}
