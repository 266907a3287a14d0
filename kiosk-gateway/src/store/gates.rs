//! The reads that decide whether a call may go on, each one statement across the tables:
//! what OpenSession checks (`terminal_gate`), what every call on a session checks
//! (`session_gate`) and what an Issue reads before it renders (`issue_lookup`). Each table a
//! gate joins is a round trip saved on the hottest paths (on SQLite, to sqlx's worker thread).

use sqlx::{AnyConnection, Row};

use super::Backend;
use super::issuances::{ISSUANCE_COLUMNS, IssuanceRow, issuance_from_row_at};
use super::municipalities::KILL_SWITCH_SETTING;
use super::sessions::{SESSION_COLUMN_COUNT, SESSION_COLUMNS, SessionRow, session_from_row};
use super::terminals::{TerminalStatus, terminal_status_at};
use crate::error::GatewayError;

/// What an OpenSession checks before it opens a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenGate {
    /// The terminal's status, if registered.
    pub status: Option<TerminalStatus>,
    /// Whether the global kill switch is on.
    pub kill_switch: bool,
    /// The terminal's sessions that are neither closed nor expired at `now_ms`.
    pub open_sessions: i64,
}

/// What an OpenSession checks, read in one statement: the terminal's status (if registered),
/// whether the global kill switch is on, and how many sessions the terminal has open. One
/// round trip instead of three on the hottest write transaction.
///
/// The count holds across gateway replicas because it is read in the write transaction: on
/// SQLite `BEGIN IMMEDIATE` serialises writers; on PostgreSQL the terminal's row is locked
/// first (a second statement), so two replicas opening sessions for one terminal count one
/// after the other.
pub async fn terminal_gate(
    conn: &mut AnyConnection,
    backend: Backend,
    terminal_id: &str,
    now_ms: i64,
) -> Result<OpenGate, GatewayError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM terminals WHERE terminal_id = $1 FOR UPDATE")
            .bind(terminal_id)
            .execute(&mut *conn)
            .await?;
    }
    let row = sqlx::query(
        "SELECT (SELECT status FROM terminals WHERE terminal_id = $1),
                (SELECT value FROM settings WHERE name = $2),
                (SELECT COUNT(*) FROM sessions
                 WHERE terminal_id = $1 AND expires_at > $3 AND state <> 'closed')",
    )
    .bind(terminal_id)
    .bind(KILL_SWITCH_SETTING)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    let status = match row.try_get::<Option<String>, _>(0)? {
        Some(status) => Some(TerminalStatus::parse(&status)?),
        None => None,
    };
    Ok(OpenGate {
        status,
        kill_switch: row.try_get::<Option<String>, _>(1)?.as_deref() == Some("on"),
        open_sessions: row.try_get::<i64, _>(2)?,
    })
}

/// The session `session_id` (if any) and the status of `terminal_id` (if registered), in
/// one statement: every call on a session checks the terminal is still active, and that
/// costs no extra round trip.
pub async fn session_gate(
    conn: &mut AnyConnection,
    session_id: &str,
    terminal_id: &str,
) -> Result<(Option<SessionRow>, Option<TerminalStatus>), GatewayError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, (SELECT status FROM terminals WHERE terminal_id = $2)
         FROM (SELECT 1 AS one) AS gate LEFT JOIN sessions s ON s.session_id = $1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(session_id)
        .bind(terminal_id)
        .fetch_one(&mut *conn)
        .await?;
    let session = match row.try_get::<Option<String>, _>(0)? {
        Some(_) => Some(session_from_row(&row)?),
        None => None,
    };
    Ok((session, terminal_status_at(&row, SESSION_COLUMN_COUNT)?))
}

/// Whether issuing is suspended for residents of `municipality_code`: the global kill switch
/// or the municipality's, in one statement (what a menu shows, and Issue refuses).
pub async fn issuing_suspended(
    conn: &mut AnyConnection,
    municipality_code: &str,
) -> Result<bool, GatewayError> {
    let row = sqlx::query(
        "SELECT (SELECT value FROM settings WHERE name = $1),
                (SELECT suspended FROM municipalities WHERE code = $2)",
    )
    .bind(KILL_SWITCH_SETTING)
    .bind(municipality_code)
    .fetch_one(&mut *conn)
    .await?;
    let kill_switch = row.try_get::<Option<String>, _>(0)?.as_deref() == Some("on");
    let municipality_suspended = row.try_get::<Option<i64>, _>(1)?.unwrap_or(0) != 0;
    Ok(kill_switch || municipality_suspended)
}

/// What an Issue reads before it renders, in one statement.
#[derive(Debug, Clone)]
pub struct IssueLookup {
    /// The calling terminal's status, if registered.
    pub terminal_status: Option<TerminalStatus>,
    /// The session named by the request, if it exists (not yet checked against the terminal).
    pub session: Option<SessionRow>,
    /// Whether issuing is suspended: the global kill switch, or the session's municipality's.
    pub suspended: bool,
    /// The issuance this terminal already recorded under the request's idempotency key.
    pub existing: Option<IssuanceRow>,
}

/// The calling terminal's status, the session `session_id`, whether issuing is suspended
/// for its municipality, and the issuance `terminal_id` recorded under `client_request_id`,
/// in one statement: each is a round trip to the database (on SQLite, to sqlx's worker
/// thread), and an Issue needs all four. Always one row: the parts that do not exist are
/// `None`.
pub async fn issue_lookup(
    conn: &mut AnyConnection,
    session_id: &str,
    terminal_id: &str,
    client_request_id: &str,
) -> Result<IssueLookup, GatewayError> {
    // The issuance columns are the `i.` ones, after the session's 12, the terminal status
    // and the two switches.
    let issuance_columns = ISSUANCE_COLUMNS
        .split(',')
        .map(|c| format!("i.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, (SELECT status FROM terminals WHERE terminal_id = $2),
                (SELECT value FROM settings WHERE name = $4), m.suspended, {issuance_columns}
         FROM (SELECT 1 AS one) AS gate
         LEFT JOIN sessions s ON s.session_id = $1
         LEFT JOIN municipalities m ON m.code = s.municipality_code
         LEFT JOIN issuances i ON i.terminal_id = $2 AND i.client_request_id = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(session_id)
        .bind(terminal_id)
        .bind(client_request_id)
        .bind(KILL_SWITCH_SETTING)
        .fetch_one(&mut *conn)
        .await?;
    let session = match row.try_get::<Option<String>, _>(0)? {
        Some(_) => Some(session_from_row(&row)?),
        None => None,
    };
    let at = SESSION_COLUMN_COUNT;
    let terminal_status = terminal_status_at(&row, at)?;
    let kill_switch = row.try_get::<Option<String>, _>(at + 1)?.as_deref() == Some("on");
    let municipality_suspended = row.try_get::<Option<i64>, _>(at + 2)?.unwrap_or(0) != 0;
    let existing = if row.try_get::<Option<String>, _>(at + 3)?.is_some() {
        Some(issuance_from_row_at(&row, at + 3)?)
    } else {
        None
    };
    Ok(IssueLookup {
        terminal_status,
        session,
        suspended: kill_switch || municipality_suspended,
        existing,
    })
}
