//! Test support: a fresh SQLite file or PostgreSQL database per test for the generator's
//! registers (the database half of `issuer/tests/common`).

#![allow(dead_code)]

use ring::rand::SecureRandom;
use sqlx::{Connection, Executor};
use time::macros::date;

/// The register's "today" in every test: Tuesday 2026-11-24.
pub const AS_OF: time::Date = date!(2026 - 11 - 24);
/// The test municipality (千代田区, with a valid check digit).
pub const CODE: &str = "131016";

/// One test database, dropped by [`TestDb::cleanup`].
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("register.db").display());
        TestDb {
            url,
            backend: "sqlite",
            admin: None,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database; fails (never skips) when the server is unreachable.
    pub async fn postgres() -> TestDb {
        sqlx::any::install_default_drivers();
        let base = std::env::var("KIOSK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("devkit_{}", random_hex());
        let mut admin = sqlx::AnyConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {base} is unreachable ({e}); set KIOSK_TEST_POSTGRES_URL")
            });
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.unwrap();
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

    pub async fn cleanup(self) {
        if let Some((base, name)) = &self.admin {
            let mut admin = sqlx::AnyConnection::connect(base).await.unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .unwrap();
        }
    }
}
