//! The sessions table: a session's challenge, state and authenticated resident, with the
//! compare-and-set writes that keep a challenge single-use and a closed session closed.

use sqlx::{AnyConnection, Row};

use super::cards::CardBinding;
use crate::error::GatewayError;

/// A session's place in the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Opened; the challenge is outstanding.
    Open,
    /// A card authenticated a resident.
    Authenticated,
    /// Closed by the terminal.
    Closed,
}

impl SessionState {
    fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Authenticated => "authenticated",
            SessionState::Closed => "closed",
        }
    }

    fn parse(s: &str) -> Result<Self, GatewayError> {
        match s {
            "open" => Ok(SessionState::Open),
            "authenticated" => Ok(SessionState::Authenticated),
            "closed" => Ok(SessionState::Closed),
            other => Err(GatewayError::Internal(format!("session state {other:?}"))),
        }
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session id.
    pub session_id: String,
    /// The terminal that opened it.
    pub terminal_id: String,
    /// The 32-byte challenge.
    pub challenge: Vec<u8>,
    /// When the challenge stops being accepted (unix ms).
    pub challenge_expires_at: i64,
    /// Whether an Authenticate call consumed the challenge.
    pub challenge_used: bool,
    /// Where the session is in the flow.
    pub state: SessionState,
    /// Set once authenticated.
    pub municipality_code: Option<String>,
    /// Set once authenticated.
    pub resident_ref: Option<String>,
    /// Set once authenticated: the subject refs the menu offered.
    pub allowed_subjects: Vec<String>,
    /// When the session ends (unix ms).
    pub expires_at: i64,
    /// When it was opened (unix ms).
    pub created_at: i64,
    /// `OpenSessionRequest.locale` as sent (empty: ja-JP): the order of an error's
    /// LocalizedMessage entries on this session.
    pub locale: String,
}

/// Stores a new session.
pub async fn insert_session(conn: &mut AnyConnection, s: &SessionRow) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO sessions (session_id, terminal_id, challenge, challenge_expires_at,
             challenge_used, state, municipality_code, resident_ref, allowed_subjects, expires_at,
             created_at, locale)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&s.session_id)
    .bind(&s.terminal_id)
    .bind(&s.challenge)
    .bind(s.challenge_expires_at)
    .bind(i64::from(s.challenge_used))
    .bind(s.state.as_str())
    .bind(s.municipality_code.clone())
    .bind(s.resident_ref.clone())
    .bind(s.allowed_subjects.join(" "))
    .bind(s.expires_at)
    .bind(s.created_at)
    .bind(&s.locale)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) const SESSION_COLUMNS: &str = "s.session_id, s.terminal_id, s.challenge,
    s.challenge_expires_at, s.challenge_used, s.state, s.municipality_code, s.resident_ref,
    s.allowed_subjects, s.expires_at, s.created_at, s.locale";

/// The session in columns `0..12` of `row` (as selected by [`SESSION_COLUMNS`]).
pub(super) fn session_from_row(row: &sqlx::any::AnyRow) -> Result<SessionRow, GatewayError> {
    Ok(SessionRow {
        session_id: row.try_get(0)?,
        terminal_id: row.try_get(1)?,
        challenge: row.try_get(2)?,
        challenge_expires_at: row.try_get(3)?,
        challenge_used: row.try_get::<i64, _>(4)? != 0,
        state: SessionState::parse(&row.try_get::<String, _>(5)?)?,
        municipality_code: row.try_get(6)?,
        resident_ref: row.try_get(7)?,
        allowed_subjects: row
            .try_get::<Option<String>, _>(8)?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        expires_at: row.try_get(9)?,
        created_at: row.try_get(10)?,
        locale: row.try_get(11)?,
    })
}

/// A session by id.
pub async fn session(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Option<SessionRow>, GatewayError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.session_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(session_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// The number of columns in [`SESSION_COLUMNS`].
pub(super) const SESSION_COLUMN_COUNT: usize = 12;

/// Deletes up to `limit` sessions that expired before `before_ms` and returns how many. An
/// expired session answers nothing (every call checks expiry); its row only takes room.
/// Its issuances keep their own rows: an audit trail does not depend on the session's.
pub async fn delete_expired_sessions(
    conn: &mut AnyConnection,
    before_ms: i64,
    limit: i64,
) -> Result<u64, GatewayError> {
    let done = sqlx::query(
        "DELETE FROM sessions WHERE session_id IN
             (SELECT session_id FROM sessions WHERE expires_at < $1 LIMIT $2)",
    )
    .bind(before_ms)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Marks the session's challenge used. Returns false when it already was: the compare and
/// set is what makes a challenge single-use under concurrent calls.
pub async fn consume_challenge(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE sessions SET challenge_used = 1 WHERE session_id = $1 AND challenge_used = 0",
    )
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Consumes the session's challenge and records its authenticated resident and the
/// subjects its menu offered, in one compare-and-set: false when the challenge was already
/// used or the session is no longer open (a concurrent Authenticate or Close won).
pub async fn consume_challenge_and_authenticate(
    conn: &mut AnyConnection,
    session_id: &str,
    binding: &CardBinding,
    allowed_subjects: &[String],
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE sessions SET challenge_used = 1, state = 'authenticated',
             municipality_code = $2, resident_ref = $3, allowed_subjects = $4
         WHERE session_id = $1 AND challenge_used = 0 AND state = 'open'",
    )
    .bind(session_id)
    .bind(&binding.municipality_code)
    .bind(&binding.resident_ref)
    .bind(allowed_subjects.join(" "))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes a session of `terminal_id`. Returns false when there is no such open session of
/// that terminal (already closed, another terminal's, or unknown: the caller tells them apart
/// on that rare path).
pub async fn close_owned_session(
    conn: &mut AnyConnection,
    session_id: &str,
    terminal_id: &str,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE sessions SET state = 'closed'
         WHERE session_id = $1 AND terminal_id = $2 AND state <> 'closed'",
    )
    .bind(session_id)
    .bind(terminal_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes a session. Returns false when it was already closed.
pub async fn close_session(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE sessions SET state = 'closed' WHERE session_id = $1 AND state <> 'closed'",
    )
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
