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
//!
//! This file holds the handle and its transactions; the statements live with their tables
//! (`terminals`, `municipalities` with the settings, `cards`, `sessions`, `issuances` with
//! their documents), and the one-statement reads that join several of them on the hot paths
//! in `gates`. Everything is re-exported here, so callers name `store::…` as before.

use std::ops::{Deref, DerefMut};

use kiosk_db::{Database, Migrations, OpenOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::error::GatewayError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

mod cards;
mod gates;
mod issuances;
mod municipalities;
mod sessions;
mod terminals;

pub use cards::{
    CardBinding, StoredBinding, bind_card, card_binding, card_binding_served, close_binding,
};
pub use gates::{
    IssueLookup, OpenGate, issue_lookup, issuing_suspended, session_gate, terminal_gate,
};
pub use issuances::{
    DocumentRow, IssuanceRow, IssuanceState, document, documents, insert_issuance, issuance,
    issuance_by_request, mark_printed, overdue_issuances, transition_issuance, void_documents,
};
pub use kiosk_db::Backend;
pub use municipalities::{
    KILL_SWITCH_SETTING, Municipality, municipality, set_setting, setting, upsert_municipality,
};
pub use sessions::{
    SessionRow, SessionState, close_owned_session, close_session, consume_challenge,
    consume_challenge_and_authenticate, delete_expired_sessions, insert_session, session,
};
pub use terminals::{
    TerminalRow, TerminalStatus, list_terminals, terminal_status, upsert_terminal,
};

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
    GatewayError::Internal(format!("the gateway's database cannot be opened: {error}"))
}
