//! The gateway's database: terminals, municipalities, card bindings, sessions, issuances and
//! their documents, beside the audit log's tables (from the `audit` crate) in the same
//! database, so a state change and its audit event commit in one transaction.
//!
//! One code path over `sqlx::Any` serves SQLite (the embedded default) and PostgreSQL. Times
//! are unix milliseconds in BIGINT columns; bytes are BLOB on SQLite and BYTEA on PostgreSQL,
//! hence one migration folder per backend with the same versions (1-999; the audit crate uses
//! 1000-1999).
//!
//! Sessions are in `store/sessions.rs`, issuances and their documents in
//! `store/issuances.rs`; both are re-exported here, so every query is `store::…`.
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

mod issuances;
mod sessions;

pub use issuances::*;
pub use sessions::*;

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
