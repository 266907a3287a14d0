//! A transaction whose `BEGIN` was cancelled in flight must not live on in the pool.
//!
//! CI once failed with PostgreSQL's "there is already a transaction in progress" followed
//! by an issuer `database error`: a gRPC deadline dropped an issuer request while its
//! `BEGIN ... READ ONLY` was on the wire. sqlx 0.9.0 counted the transaction only once the
//! server had answered, so the dropped future queued no `ROLLBACK`, the pool handed the
//! connection on, and the next order's `BEGIN ISOLATION LEVEL REPEATABLE READ` ran inside
//! the stale read-only transaction (sqlx issue 4393, fixed in 0.9.1). An order deciding on
//! a stale snapshot, or failing its write, is what this test forbids.
//!
//! The cancellation is provoked deterministically: the `BEGIN` future is polled by hand
//! until the server reports the session `idle in transaction`, then dropped without being
//! polled again, so it cannot have read the server's answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use kiosk_db::{Database, Migrations, OpenOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection, Executor, Transaction};

static NONE: Migrator = Migrator::DEFAULT;

const READ_ONLY: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
const WRITE: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ";

fn server_url() -> String {
    std::env::var("KIOSK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own on the test server, dropped at the end.
struct Scratch {
    admin: AnyConnection,
    name: String,
    url: String,
}

impl Scratch {
    async fn create() -> Scratch {
        sqlx::any::install_default_drivers();
        let base = server_url();
        let mut admin = AnyConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {base} is unreachable ({e}); set KIOSK_TEST_POSTGRES_URL")
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .subsec_nanos();
        let name = format!("cancelled_begin_{}_{nanos}", std::process::id());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        let stem = base
            .rfind('/')
            .map(|i| &base[..i])
            .expect("a database part");
        let url = format!("{stem}/{name}");
        Scratch { admin, name, url }
    }

    async fn session_state(&mut self, pid: i32) -> String {
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut self.admin)
            .await
            .expect("the session's state")
    }

    async fn drop_database(mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        self.admin
            .execute(sqlx::AssertSqlSafe(drop))
            .await
            .expect("DROP DATABASE");
    }
}

type Begin<'a> =
    Pin<Box<dyn Future<Output = Result<Transaction<'static, sqlx::Any>, sqlx::Error>> + 'a>>;

/// Polls `begin` until the server holds the session inside the transaction, then drops it
/// unanswered. `false` when the future finished first (the window was missed).
async fn cancel_in_flight(mut begin: Begin<'_>, scratch: &mut Scratch, pid: i32) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(result) = begin.as_mut().poll(&mut context) {
            result.expect("BEGIN").rollback().await.expect("ROLLBACK");
            return false;
        }
        if scratch.session_state(pid).await == "idle in transaction" {
            drop(begin);
            return true;
        }
        assert!(Instant::now() < deadline, "BEGIN never reached the server");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_cancelled_begin_does_not_leak_its_transaction_postgres() {
    let mut scratch = Scratch::create().await;
    let options = OpenOptions {
        max_connections: 1,
        ..OpenOptions::default()
    };
    let migrations = Migrations {
        sqlite: &NONE,
        postgres: &NONE,
        ignore_missing: true,
    };
    let db = Database::open(&scratch.url, options, migrations)
        .await
        .expect("open");
    // One connection, so the next borrower gets the very session the cancelled BEGIN used.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .expect("the session's pid");

    let mut cancelled = 0;
    for _ in 0..20 {
        let begin: Begin<'_> = Box::pin(db.pool().begin_with(READ_ONLY));
        if cancel_in_flight(begin, &mut scratch, pid).await {
            cancelled += 1;
        }
        let mut next = db.pool().begin_with(WRITE).await.expect("the next BEGIN");
        let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
            .fetch_one(&mut *next)
            .await
            .expect("SHOW");
        assert_eq!(
            read_only, "off",
            "the next write transaction ran inside the cancelled read-only one"
        );
        next.rollback().await.expect("ROLLBACK");
        let state = scratch.session_state(pid).await;
        assert_eq!(state, "idle", "the session is left inside a transaction");
    }
    assert!(
        cancelled > 0,
        "no BEGIN was cancelled in flight in 20 tries"
    );
    db.pool().close().await;
    scratch.drop_database().await;
}
