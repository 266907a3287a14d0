//! Shared test helpers: a fresh database per test on SQLite (temp file) or PostgreSQL (a
//! uniquely named database, dropped afterwards), and event factories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]
#![allow(dead_code)]

use audit::event::{
    CertificateType, Ident, IssuanceFacts, MunicipalityCode, PrintOutcome, Pseudonymizer,
};
use audit::{Event, UnixMillis};
use sqlx::AnyPool;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const BOTH: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

pub struct TestDb {
    pub pool: AnyPool,
    pub url: String,
    kind: Kind,
    admin_url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_base() -> String {
    std::env::var("KIOSK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        sqlx::any::install_default_drivers();
        let name = format!("audit_{}", hex::encode(rand::random::<[u8; 6]>()));
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/{name}.db?mode=rwc", dir.path().display());
                let pool = connect(&url).await;
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&pool)
                    .await
                    .unwrap();
                TestDb {
                    pool,
                    url,
                    kind,
                    admin_url: String::new(),
                    name,
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let admin_url = postgres_base();
                let admin = AnyPool::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin_url} is unreachable ({e}); set KIOSK_TEST_POSTGRES_URL")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let (base, _) = admin_url.rsplit_once('/').unwrap();
                let url = format!("{base}/{name}");
                let pool = connect(&url).await;
                TestDb {
                    pool,
                    url,
                    kind,
                    admin_url,
                    name,
                    _dir: None,
                }
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Closes the pool and drops the PostgreSQL database.
    pub async fn cleanup(self) {
        self.pool.close().await;
        if self.kind == Kind::Postgres {
            let admin = AnyPool::connect(&self.admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&admin)
            .await
            .unwrap();
            admin.close().await;
        }
    }
}

pub async fn connect(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap();
    audit::migrate(&pool).await.unwrap();
    pool
}

/// Begins a transaction suitable for appending on either backend.
pub async fn begin(pool: &AnyPool) -> sqlx::Transaction<'static, sqlx::Any> {
    pool.begin().await.unwrap()
}

pub fn facts(n: u64) -> IssuanceFacts {
    IssuanceFacts {
        terminal: Ident::parse(&format!("T-{:03}", n % 7)).unwrap(),
        chain: Ident::parse(["chain-a", "chain-b"][(n % 2) as usize]).unwrap(),
        store: Ident::parse(&format!("store-{}", n % 5)).unwrap(),
        municipality: MunicipalityCode::parse(["131211", "131016"][(n % 2) as usize]).unwrap(),
        certificate_type: CertificateType::ALL[(n % 7) as usize],
        session: Ident::parse(&format!("s-{n}")).unwrap(),
        issuance: Ident::parse(&format!("i-{n}")).unwrap(),
        document_count: 1 + (n % 3) as u32,
        fee_yen: 200 * (1 + (n % 3)),
    }
}

/// A varied event number `n` (one of several types), at a time derived from `n`.
pub fn event(n: u64) -> Event {
    let p = Pseudonymizer::new(&[5u8; 32])
        .unwrap()
        .pseudonymize(format!("resident-{}", n % 11).as_bytes());
    let t = UnixMillis(1_795_400_000_000 + (n as i64) * 60_000);
    let f = facts(n);
    match n % 4 {
        0 => Event::documents_released(t, p, &f),
        1 => Event::print_reported(t, p, &f, PrintOutcome::Printed),
        2 => Event::session_opened(t, f.terminal.clone(), f.session.clone()),
        _ => Event::deadline_passed(t, p, &f),
    }
}
