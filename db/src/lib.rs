//! The one way every component of the service opens its database.
//!
//! The gateway's store and the issuer's register both hold the only copy of something (the
//! audit log; each issued PDF), so both open their database the same way: SQLite in WAL mode
//! with `synchronous=FULL` (a committed transaction survives power loss) and a busy timeout
//! for writers of other processes, or PostgreSQL as its server is configured; the schema
//! migrated at open; and on SQLite an in-process FIFO queue of writers ([`WriterTurn`]).
//! Before this crate the two copies of the opening code had drifted apart: the register ran
//! with `synchronous=NORMAL`, which can lose the last commits on power loss.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("a database URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    /// The TLS connection to the server failed: with `sslmode=verify-full` the server's
    /// certificate must chain to `sslrootcert` and name the URL's host. Apart from
    /// [`DbError::Sqlx`] so that an operator reads which settings to look at.
    #[error(
        "the TLS connection was refused ({0}); with sslmode=verify-full the \
         server's certificate must chain to the CA in sslrootcert and name the URL's host"
    )]
    Tls(String),
    /// The driver failed.
    #[error("database: {0}")]
    Sqlx(sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        // The detail is rustls' (or the CA file's) message: no URL, so no password. A
        // certificate refused during the handshake reaches sqlx as an I/O error around
        // rustls' error; one refused while setting up TLS (the CA file) as its TLS error.
        let refused = match &error {
            sqlx::Error::Tls(detail) => Some(detail.to_string()),
            sqlx::Error::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(ToString::to_string),
            _ => None,
        };
        match refused {
            Some(detail) => DbError::Tls(detail),
            None => DbError::Sqlx(error),
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs: the embedded default.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs: production.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }
}

/// How to open a database.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer of another process waits for the lock.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// An open database: its pool, its backend and this process's queue of SQLite writers.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    writers: WriterTurn,
}

impl Database {
    /// Opens (for SQLite, creates) the database at `url` and runs `migrations` (the one of the
    /// backend). `ignore_missing` lets two components keep their migrations in one database
    /// (the gateway's and the audit log's), each ignoring the other's versions.
    pub async fn open(
        url: &str,
        options: OpenOptions,
        migrations: Migrations<'_>,
    ) -> Result<Database, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = pool(url, backend, options).await?;
        let migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        let source = migrator;
        let mut migrator = Migrator::with_migrations(source.migrations.to_vec());
        migrator.set_locking(source.locking);
        migrator.set_ignore_missing(migrations.ignore_missing);
        migrator.run(&pool).await?;
        Ok(Database {
            pool,
            backend,
            writers: WriterTurn::default(),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for this process's turn to write (SQLite; `None` on PostgreSQL, whose lock
    /// queue does not poll). Hold the guard until the write transaction has ended.
    pub async fn writer_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writers.take().await),
            Backend::Postgres => None,
        }
    }
}

/// The migrations of one component, per backend.
#[derive(Clone, Copy)]
pub struct Migrations<'a> {
    /// For SQLite.
    pub sqlite: &'a Migrator,
    /// For PostgreSQL.
    pub postgres: &'a Migrator,
    /// Whether versions this component does not know are ignored (another component's).
    pub ignore_missing: bool,
}

/// SQLite writers of one process queue here, first come first served, before `BEGIN
/// IMMEDIATE`. SQLite's busy handler makes a blocked writer sleep and poll in growing steps
/// up to 100 ms, so under load writers idled while the lock was free; an in-process FIFO
/// wakes the next writer as soon as the previous one ends. Writers of other processes still
/// meet the busy timeout.
#[derive(Debug, Clone, Default)]
pub struct WriterTurn(Arc<Mutex<()>>);

impl WriterTurn {
    /// Waits for the turn; it passes on when the guard is dropped.
    pub async fn take(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.0).lock_owned().await
    }
}

async fn pool(url: &str, backend: Backend, options: OpenOptions) -> Result<AnyPool, DbError> {
    let url = match backend {
        // Create the file on first open; pragmas are set per connection below.
        Backend::Sqlite if !url.contains("mode=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        }
        _ => url.to_owned(),
    };
    let connect = AnyConnectOptions::from_str(&url)?;
    let busy_ms = options.busy_timeout.as_millis();
    Ok(AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; FULL syncs the WAL on every
                    // commit, so what was committed survives power loss; the busy timeout
                    // makes a writer of another process wait, not fail.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    let busy = format!("PRAGMA busy_timeout = {busy_ms}");
                    conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    static NONE: Migrator = Migrator::DEFAULT;

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(Backend::of_url("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::of_url("mysql://h/db"),
            Err(DbError::UnsupportedUrl)
        ));
    }

    #[tokio::test]
    async fn sqlite_is_durable_on_commit_in_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let migrations = Migrations {
            sqlite: &NONE,
            postgres: &NONE,
            ignore_missing: false,
        };
        let db = Database::open(&url, OpenOptions::default(), migrations)
            .await
            .expect("opens");
        let mut conn = db.pool().acquire().await.expect("connection");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .expect("journal mode");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("synchronous");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert!(db.writer_turn().await.is_some());
    }
}
