//! A fresh test database per test (TEST ONLY): a SQLite file in a temporary directory, or a
//! PostgreSQL database created on the server named by `KIOSK_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped by [`TestDb::cleanup`]. The issuer's
//! and the generator's tests share it.

use ring::rand::SecureRandom;
use sqlx::{Connection, Executor};

/// One test database, dropped by [`TestDb::cleanup`].
pub struct TestDb {
    /// The database URL to open.
    pub url: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source");
    hex::encode(bytes)
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("register.db").display());
        TestDb {
            url,
            backend: "sqlite",
            admin: None,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database; fails (never skips) when the server is unreachable.
    pub async fn postgres(prefix: &str) -> TestDb {
        sqlx::any::install_default_drivers();
        let base = std::env::var("KIOSK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("{prefix}_{}", random_hex());
        let mut admin = sqlx::AnyConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {base} is unreachable ({e}); set KIOSK_TEST_POSTGRES_URL")
            });
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        admin.close().await.expect("closing the admin connection");
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => panic!("KIOSK_TEST_POSTGRES_URL has no database part"),
        };
        TestDb {
            url,
            backend: "postgres",
            admin: Some((base, name)),
            _dir: None,
        }
    }

    /// Drops the PostgreSQL database (a SQLite file goes with its directory).
    pub async fn cleanup(self) {
        if let Some((base, name)) = &self.admin {
            let mut admin = sqlx::AnyConnection::connect(base)
                .await
                .expect("PostgreSQL for the cleanup");
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .expect("DROP DATABASE");
        }
    }
}
