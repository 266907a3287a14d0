//! The register store: one code path over `sqlx::AnyPool` for SQLite and PostgreSQL.
//!
//! Readers take a `&mut AnyConnection` so that the issuer runs all of them inside the one
//! transaction that decides and records an order. Nothing here caches register data.

use std::time::Duration;

use kiosk_db::{Database, DbError, Migrations, OpenOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::error::IssuerError;

pub mod read;
mod records;
mod rows;
pub mod write;

pub use kiosk_db::Backend;
pub use records::{
    ClosedDate, ForeignResidentItems, FuhyoEntry, Koseki, KosekiEvent, KosekiMember, Municipality,
    PendingChange, Resident, ResidentStatus, SealRegistration, ServiceSwitch, ServiceWindow, Sex,
    SupportMeasure, TaxRecord,
};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A municipality's register database.
#[derive(Debug, Clone)]
pub struct Register {
    db: Database,
}

impl Register {
    /// Opens (and for SQLite creates) the register at `url` and applies the schema.
    ///
    /// Through the one opening path of every component (`kiosk_db`): SQLite in WAL mode with
    /// `synchronous=FULL`, because the registry of issued documents holds the only copy of
    /// each PDF and a commit it reported must survive power loss; PostgreSQL as configured.
    pub async fn open(url: &str) -> Result<Register, IssuerError> {
        Register::open_with(url, 8).await
    }

    /// As [`Register::open`], with at most `max_connections` pooled connections.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Register, IssuerError> {
        let options = OpenOptions {
            max_connections,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        };
        let migrations = Migrations {
            sqlite: &SQLITE_MIGRATOR,
            postgres: &POSTGRES_MIGRATOR,
            ignore_missing: false,
        };
        let db = Database::open(url, options, migrations)
            .await
            .map_err(|e| match e {
                DbError::UnsupportedUrl => IssuerError::InvalidField {
                    field: "database_url",
                },
                DbError::Migrate(e) => IssuerError::Migrate(e),
                e @ (DbError::Sqlx(_) | DbError::Tls(_)) => IssuerError::Open(e.to_string()),
            })?;
        Ok(Register { db })
    }

    /// The pool, for callers that run their own statements.
    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Waits for this process's turn to write; hold the guard until the write transaction has
    /// ended. SQLite only (`None` on PostgreSQL, whose lock queue does not poll): SQLite's busy
    /// handler makes a blocked writer sleep and poll in growing steps up to 100 ms, so under
    /// load writers idled while the lock was free. Queueing in-process is FIFO and wakes the
    /// next writer as soon as the previous one ends; other processes still meet the busy
    /// timeout.
    pub async fn writer_turn(&self) -> Option<OwnedMutexGuard<()>> {
        self.db.writer_turn().await
    }

    /// Begins the transaction in which an order is decided and recorded.
    ///
    /// SQLite: `BEGIN IMMEDIATE`, so the write at the end cannot fail on a snapshot another
    /// writer moved past (SQLITE_BUSY_SNAPSHOT); the busy timeout queues writers instead.
    /// PostgreSQL: REPEATABLE READ, so every read of one order sees the same snapshot, taken
    /// at its first statement — after the request arrived, so every change committed before
    /// the request is in it.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, IssuerError> {
        let statement = match self.db.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        };
        Ok(self.pool().begin_with(statement).await?)
    }

    /// Begins a read-only transaction (menus and quotes): one consistent snapshot of the
    /// current register, without taking SQLite's write lock, so menus never queue behind
    /// renders.
    pub async fn begin_read(&self) -> Result<Transaction<'static, Any>, IssuerError> {
        let statement = match self.db.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        Ok(self.pool().begin_with(statement).await?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool().close().await;
    }
}

/// Begins a plain write transaction on one connection (used by admin changes and the
/// synthetic register generator, `kiosk_devkit::generator`).
pub async fn begin_plain(conn: &mut AnyConnection) -> Result<Transaction<'_, Any>, IssuerError> {
    Ok(conn.begin().await?)
}
