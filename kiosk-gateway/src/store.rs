//! The gateway's database: terminals, municipalities, card bindings, sessions, issuances and
//! their documents, beside the audit log's tables (from the `audit` crate) in the same
//! database, so a state change and its audit event commit in one transaction.
//!
//! One code path over `sqlx::Any` serves SQLite (the embedded default) and PostgreSQL. Times
//! are unix milliseconds in BIGINT columns; bytes are BLOB on SQLite and BYTEA on PostgreSQL,
//! hence one migration folder per backend with the same versions (1-999; the audit crate uses
//! 1000-1999).
//!
//! Writers: every transaction that appends an audit event serialises on the log's head row.
//! On SQLite it must be begun with `BEGIN IMMEDIATE` (see [`Store::begin_write`]): a deferred
//! transaction that read first cannot be upgraded while another writer holds the lock and
//! would fail with `SQLITE_BUSY` instead of waiting. SQLite writers of this process also take
//! a turn on an in-process FIFO lock first ([`WriteTx`]): SQLite's own busy handler makes a
//! blocked writer sleep and poll (1, 2, 5 … 100 ms), so under load writers idled while the lock
//! was free and the tail latency grew to seconds. Other processes (the admin CLI) still meet
//! the busy timeout.

use std::ops::{Deref, DerefMut};

use kiosk_db::{Database, Migrations, OpenOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::error::GatewayError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub use kiosk_db::Backend;

/// The gateway's database handle.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
}

/// A write transaction, holding this process's writer turn on SQLite until it commits or is
/// dropped. Derefs to the sqlx transaction, so `&mut tx` is a connection.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    // Dropped after `tx`: the turn passes on only once the transaction has ended.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then passes the writer turn on.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let WriteTx { tx, _turn } = self;
        tx.commit().await
    }

    /// Rolls back, then passes the writer turn on.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let WriteTx { tx, _turn } = self;
        tx.rollback().await
    }
}

impl Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store {
    /// Connects (creating a SQLite file if missing) and runs the gateway's and the audit log's
    /// migrations, through the one opening path of every component (`kiosk_db`: SQLite in WAL
    /// mode, durable on commit).
    pub async fn open(url: &str) -> Result<Self, GatewayError> {
        let backend = Backend::of_url(url).map_err(db_error)?;
        let options = OpenOptions {
            max_connections: match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            },
            ..OpenOptions::default()
        };
        // The audit crate's migrations share `_sqlx_migrations`; each side ignores the other's.
        let migrations = Migrations {
            sqlite: &SQLITE_MIGRATIONS,
            postgres: &POSTGRES_MIGRATIONS,
            ignore_missing: true,
        };
        let db = Database::open(url, options, migrations)
            .await
            .map_err(db_error)?;
        audit::store::migrate(db.pool())
            .await
            .map_err(|e| GatewayError::Internal(format!("audit migrations: {e}")))?;
        Ok(Store { db })
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Begins a transaction that will write (and so append audit events).
    /// On SQLite the writer turn is taken before a pooled connection, so queued writers do not
    /// hold connections that readers need.
    pub async fn begin_write(&self) -> Result<WriteTx, GatewayError> {
        let tx = match self.db.backend() {
            Backend::Sqlite => {
                let turn = self.db.writer_turn().await;
                WriteTx {
                    tx: self.pool().begin_with("BEGIN IMMEDIATE").await?,
                    _turn: turn,
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool().begin().await?,
                _turn: None,
            },
        };
        Ok(tx)
    }

    /// Whether the database answers (for health checks).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(self.pool()).await.is_ok()
    }
}

/// A database that could not be opened: an internal failure, with its cause for the log.
fn db_error(error: kiosk_db::DbError) -> GatewayError {
    GatewayError::Internal(format!("gateway database: {error}"))
}

/// The setting the flow reads for the global kill switch (`on` refuses issuing everywhere).
pub const KILL_SWITCH_SETTING: &str = "kill_switch";

/// A terminal's registration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStatus {
    /// May open sessions.
    Active,
    /// Temporarily refused.
    Suspended,
    /// Permanently refused.
    Retired,
}

impl TerminalStatus {
    /// The stored (and displayed) name: `active`, `suspended`, `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminalStatus::Active => "active",
            TerminalStatus::Suspended => "suspended",
            TerminalStatus::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self, GatewayError> {
        match s {
            "active" => Ok(TerminalStatus::Active),
            "suspended" => Ok(TerminalStatus::Suspended),
            "retired" => Ok(TerminalStatus::Retired),
            other => Err(GatewayError::Internal(format!("terminal status {other:?}"))),
        }
    }
}

/// Registers or changes a terminal.
pub async fn upsert_terminal(
    conn: &mut AnyConnection,
    terminal_id: &str,
    chain: &str,
    store: &str,
    status: TerminalStatus,
    now_ms: i64,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO terminals (terminal_id, chain, store, status, changed_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (terminal_id) DO UPDATE SET status = excluded.status,
             chain = excluded.chain, store = excluded.store, changed_at = excluded.changed_at",
    )
    .bind(terminal_id)
    .bind(chain)
    .bind(store)
    .bind(status.as_str())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A terminal's status, if registered.
pub async fn terminal_status(
    conn: &mut AnyConnection,
    terminal_id: &str,
) -> Result<Option<TerminalStatus>, GatewayError> {
    let row = sqlx::query("SELECT status FROM terminals WHERE terminal_id = $1")
        .bind(terminal_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(TerminalStatus::parse(&row.try_get::<String, _>(0)?)?)),
        None => Ok(None),
    }
}

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

/// A served municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 6-digit code.
    pub code: String,
    /// Name as printed.
    pub name: String,
    /// The municipality's kill switch.
    pub suspended: bool,
}

/// Registers or changes a municipality.
pub async fn upsert_municipality(
    conn: &mut AnyConnection,
    municipality: &Municipality,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO municipalities (code, name, suspended) VALUES ($1, $2, $3)
         ON CONFLICT (code) DO UPDATE SET name = excluded.name, suspended = excluded.suspended",
    )
    .bind(&municipality.code)
    .bind(&municipality.name)
    .bind(i64::from(municipality.suspended))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A municipality, if served.
pub async fn municipality(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Option<Municipality>, GatewayError> {
    let row = sqlx::query("SELECT code, name, suspended FROM municipalities WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(Municipality {
            code: row.try_get(0)?,
            name: row.try_get(1)?,
            suspended: row.try_get::<i64, _>(2)? != 0,
        })),
        None => Ok(None),
    }
}

/// Sets a global setting.
pub async fn set_setting(
    conn: &mut AnyConnection,
    name: &str,
    value: &str,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A global setting, if set.
pub async fn setting(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, GatewayError> {
    let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// Where a card certificate leads: the resident's municipality and opaque reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBinding {
    /// 6-digit municipality code.
    pub municipality_code: String,
    /// The issuer's opaque resident reference.
    pub resident_ref: String,
}

/// Binds a card certificate (issuer name, serial hex) to a resident.
pub async fn bind_card(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
    binding: &CardBinding,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO card_bindings (cert_issuer, cert_serial, municipality_code, resident_ref)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (cert_issuer, cert_serial) DO UPDATE SET
             municipality_code = excluded.municipality_code, resident_ref = excluded.resident_ref",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
    .bind(&binding.municipality_code)
    .bind(&binding.resident_ref)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The binding of a card certificate, if any.
pub async fn card_binding(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
) -> Result<Option<CardBinding>, GatewayError> {
    let row = sqlx::query(
        "SELECT municipality_code, resident_ref FROM card_bindings
         WHERE cert_issuer = $1 AND cert_serial = $2",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some(CardBinding {
            municipality_code: row.try_get(0)?,
            resident_ref: row.try_get(1)?,
        }),
        None => None,
    })
}

/// The binding of a card certificate, if any, and whether its municipality is served here,
/// in one statement.
pub async fn card_binding_served(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
) -> Result<Option<(CardBinding, bool)>, GatewayError> {
    let row = sqlx::query(
        "SELECT b.municipality_code, b.resident_ref, m.code FROM card_bindings b
         LEFT JOIN municipalities m ON m.code = b.municipality_code
         WHERE b.cert_issuer = $1 AND b.cert_serial = $2",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some((
            CardBinding {
                municipality_code: row.try_get(0)?,
                resident_ref: row.try_get(1)?,
            },
            row.try_get::<Option<String>, _>(2)?.is_some(),
        )),
        None => None,
    })
}

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
}

/// Stores a new session.
pub async fn insert_session(conn: &mut AnyConnection, s: &SessionRow) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO sessions (session_id, terminal_id, challenge, challenge_expires_at,
             challenge_used, state, municipality_code, resident_ref, allowed_subjects, expires_at,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const SESSION_COLUMNS: &str = "s.session_id, s.terminal_id, s.challenge,
    s.challenge_expires_at, s.challenge_used, s.state, s.municipality_code, s.resident_ref,
    s.allowed_subjects, s.expires_at, s.created_at";

/// The session in columns `0..11` of `row` (as selected by [`SESSION_COLUMNS`]).
fn session_from_row(row: &sqlx::any::AnyRow) -> Result<SessionRow, GatewayError> {
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

/// The number of columns in [`SESSION_COLUMNS`].
const SESSION_COLUMN_COUNT: usize = 11;

/// The terminal status in column `at` of `row`, if any.
fn terminal_status_at(
    row: &sqlx::any::AnyRow,
    at: usize,
) -> Result<Option<TerminalStatus>, GatewayError> {
    match row.try_get::<Option<String>, _>(at)? {
        Some(status) => Ok(Some(TerminalStatus::parse(&status)?)),
        None => Ok(None),
    }
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
    // The issuance columns are the `i.` ones, after the session's 11, the terminal status
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

/// Where an issuance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuanceState {
    /// Released, awaiting the print report.
    Released,
    /// Printed and confirmed.
    Printed,
    /// Voided.
    Voided,
    /// No report before the deadline.
    Unconfirmed,
}

impl IssuanceState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuanceState::Released => "released",
            IssuanceState::Printed => "printed",
            IssuanceState::Voided => "voided",
            IssuanceState::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(s: &str) -> Result<Self, GatewayError> {
        match s {
            "released" => Ok(IssuanceState::Released),
            "printed" => Ok(IssuanceState::Printed),
            "voided" => Ok(IssuanceState::Voided),
            "unconfirmed" => Ok(IssuanceState::Unconfirmed),
            other => Err(GatewayError::Internal(format!("issuance state {other:?}"))),
        }
    }
}

/// A stored issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceRow {
    /// The issuance id.
    pub issuance_id: String,
    /// The session it was issued in.
    pub session_id: String,
    /// The terminal.
    pub terminal_id: String,
    /// The terminal's idempotency key.
    pub client_request_id: String,
    /// SHA-256 of the canonical order, to tell a retry from a reuse of the key.
    pub request_digest: Vec<u8>,
    /// The resident's municipality.
    pub municipality_code: String,
    /// The requester.
    pub resident_ref: String,
    /// Where it is.
    pub state: IssuanceState,
    /// The amount due.
    pub total_fee_yen: i64,
    /// Set by the print report.
    pub collected_yen: Option<i64>,
    /// Set by the print report.
    pub refund_due_yen: Option<i64>,
    /// Report before this (unix ms).
    pub print_deadline: i64,
    /// When it was recorded (unix ms).
    pub created_at: i64,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// Serial number.
    pub serial: String,
    /// The issuance.
    pub issuance_id: String,
    /// Position in the issuance.
    pub doc_index: i64,
    /// Certificate type name (kiosk.v1 enum value name).
    pub cert_type: String,
    /// Pages.
    pub page_count: i64,
    /// Fee for this document.
    pub fee_yen: i64,
    /// SHA-256 of the PDF: what an idempotent retry checks the issuer's copy against.
    pub pdf_sha256: Vec<u8>,
    /// SHA-256 of the printed content (as in the QR payload).
    pub content_digest: Vec<u8>,
    /// `issued` or `voided`.
    pub status: String,
    /// When issued (unix ms).
    pub issued_at: i64,
}

const ISSUANCE_COLUMNS: &str = "issuance_id, session_id, terminal_id, client_request_id,
    request_digest, municipality_code, resident_ref, state, total_fee_yen, collected_yen,
    refund_due_yen, print_deadline, created_at";

fn issuance_from_row(row: &sqlx::any::AnyRow) -> Result<IssuanceRow, GatewayError> {
    issuance_from_row_at(row, 0)
}

/// The issuance in the 13 columns of `row` from `at` (as selected by [`ISSUANCE_COLUMNS`]).
fn issuance_from_row_at(row: &sqlx::any::AnyRow, at: usize) -> Result<IssuanceRow, GatewayError> {
    Ok(IssuanceRow {
        issuance_id: row.try_get(at)?,
        session_id: row.try_get(at + 1)?,
        terminal_id: row.try_get(at + 2)?,
        client_request_id: row.try_get(at + 3)?,
        request_digest: row.try_get(at + 4)?,
        municipality_code: row.try_get(at + 5)?,
        resident_ref: row.try_get(at + 6)?,
        state: IssuanceState::parse(&row.try_get::<String, _>(at + 7)?)?,
        total_fee_yen: row.try_get(at + 8)?,
        collected_yen: row.try_get(at + 9)?,
        refund_due_yen: row.try_get(at + 10)?,
        print_deadline: row.try_get(at + 11)?,
        created_at: row.try_get(at + 12)?,
    })
}

/// Stores an issuance and its documents' records. The PDF bytes are not stored here: the
/// issuer's registry keeps them (recorded in the transaction that decided them), and an
/// idempotent retry fetches them from there and checks them against `pdf_sha256` (see
/// `Flow::replay`).
pub async fn insert_issuance(
    conn: &mut AnyConnection,
    issuance: &IssuanceRow,
    documents: &[DocumentRow],
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO issuances (issuance_id, session_id, terminal_id, client_request_id,
             request_digest, municipality_code, resident_ref, state, total_fee_yen,
             collected_yen, refund_due_yen, print_deadline, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&issuance.issuance_id)
    .bind(&issuance.session_id)
    .bind(&issuance.terminal_id)
    .bind(&issuance.client_request_id)
    .bind(&issuance.request_digest)
    .bind(&issuance.municipality_code)
    .bind(&issuance.resident_ref)
    .bind(issuance.state.as_str())
    .bind(issuance.total_fee_yen)
    .bind(issuance.collected_yen)
    .bind(issuance.refund_due_yen)
    .bind(issuance.print_deadline)
    .bind(issuance.created_at)
    .execute(&mut *conn)
    .await?;
    // One multi-row insert per chunk rather than one statement per document. Chunks stay
    // small because SQLite resolves `$N` parameters by a linear search (see
    // `audit::store::append_batch`).
    for chunk in documents.chunks(32) {
        let mut sql = String::from(
            "INSERT INTO documents (serial, issuance_id, doc_index, cert_type, page_count,
                 fee_yen, pdf_sha256, content_digest, status, issued_at) VALUES ",
        );
        audit::store::push_placeholders(&mut sql, chunk.len(), 10);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q
                .bind(&d.serial)
                .bind(&d.issuance_id)
                .bind(d.doc_index)
                .bind(&d.cert_type)
                .bind(d.page_count)
                .bind(d.fee_yen)
                .bind(&d.pdf_sha256)
                .bind(&d.content_digest)
                .bind(&d.status)
                .bind(d.issued_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The issuance a terminal recorded under an idempotency key, if any.
pub async fn issuance_by_request(
    conn: &mut AnyConnection,
    terminal_id: &str,
    client_request_id: &str,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!(
        "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE terminal_id = $1 AND client_request_id = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(terminal_id)
        .bind(client_request_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// An issuance by id.
pub async fn issuance(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!("SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE issuance_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// Released issuances whose print deadline passed before `now_ms`, oldest first.
pub async fn overdue_issuances(
    conn: &mut AnyConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<IssuanceRow>, GatewayError> {
    let sql = format!(
        "SELECT {ISSUANCE_COLUMNS} FROM issuances
         WHERE state = 'released' AND print_deadline < $1 ORDER BY print_deadline LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(issuance_from_row).collect()
}

/// Moves an issuance from `from` to `to` with the print report's amounts. Returns false when
/// it was not in `from` (a concurrent report or the deadline sweep won).
pub async fn transition_issuance(
    conn: &mut AnyConnection,
    issuance_id: &str,
    from: IssuanceState,
    to: IssuanceState,
    collected_yen: Option<i64>,
    refund_due_yen: Option<i64>,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE issuances SET state = $3, collected_yen = COALESCE($4, collected_yen),
             refund_due_yen = COALESCE($5, refund_due_yen)
         WHERE issuance_id = $1 AND state = $2",
    )
    .bind(issuance_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(collected_yen)
    .bind(refund_due_yen)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a released issuance of `terminal_id`'s session `session_id` to printed, if its print
/// deadline has not passed at `now_ms`, and returns it as it is now: the common print report
/// in one statement (compare-and-set plus read). `None` when any condition fails; the caller
/// then reads the issuance and decides as before.
pub async fn mark_printed(
    conn: &mut AnyConnection,
    issuance_id: &str,
    terminal_id: &str,
    session_id: &str,
    collected_yen: i64,
    now_ms: i64,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!(
        "UPDATE issuances SET state = 'printed', collected_yen = $4,
             refund_due_yen = CASE WHEN $4 > total_fee_yen THEN $4 - total_fee_yen ELSE 0 END
         WHERE issuance_id = $1 AND terminal_id = $2 AND session_id = $3
             AND state = 'released' AND print_deadline >= $5
         RETURNING {ISSUANCE_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .bind(terminal_id)
        .bind(session_id)
        .bind(collected_yen)
        .bind(now_ms)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// Voids every document of an issuance; returns their serials.
pub async fn void_documents(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Vec<String>, GatewayError> {
    sqlx::query("UPDATE documents SET status = 'voided' WHERE issuance_id = $1")
        .bind(issuance_id)
        .execute(&mut *conn)
        .await?;
    let rows =
        sqlx::query("SELECT serial FROM documents WHERE issuance_id = $1 ORDER BY doc_index")
            .bind(issuance_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(GatewayError::from))
        .collect()
}

const DOCUMENT_COLUMNS: &str = "serial, issuance_id, doc_index, cert_type, page_count, fee_yen,
    pdf_sha256, content_digest, status, issued_at";

fn document_from_row(row: &sqlx::any::AnyRow) -> Result<DocumentRow, GatewayError> {
    Ok(DocumentRow {
        serial: row.try_get(0)?,
        issuance_id: row.try_get(1)?,
        doc_index: row.try_get(2)?,
        cert_type: row.try_get(3)?,
        page_count: row.try_get(4)?,
        fee_yen: row.try_get(5)?,
        pdf_sha256: row.try_get(6)?,
        content_digest: row.try_get(7)?,
        status: row.try_get(8)?,
        issued_at: row.try_get(9)?,
    })
}

/// The records of an issuance's documents, in order (without the PDFs).
pub async fn documents(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Vec<DocumentRow>, GatewayError> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE issuance_id = $1 ORDER BY doc_index"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(document_from_row).collect()
}

/// A document by serial (for VerifyService).
pub async fn document(
    conn: &mut AnyConnection,
    serial: &str,
) -> Result<Option<DocumentRow>, GatewayError> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE serial = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(serial)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(document_from_row).transpose()
}

/// A registered terminal, as operators list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalRow {
    /// `<chain>/<store>/<terminal>`.
    pub terminal_id: String,
    /// The store chain.
    pub chain: String,
    /// The store.
    pub store: String,
    /// May it open sessions.
    pub status: TerminalStatus,
    /// When the status last changed (unix ms).
    pub changed_at: i64,
}

/// Every registered terminal, by id (for `kiosk-gateway admin terminal list`).
pub async fn list_terminals(conn: &mut AnyConnection) -> Result<Vec<TerminalRow>, GatewayError> {
    let rows = sqlx::query(
        "SELECT terminal_id, chain, store, status, changed_at FROM terminals ORDER BY terminal_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TerminalRow {
                terminal_id: row.try_get(0)?,
                chain: row.try_get(1)?,
                store: row.try_get(2)?,
                status: TerminalStatus::parse(&row.try_get::<String, _>(3)?)?,
                changed_at: row.try_get(4)?,
            })
        })
        .collect()
}
