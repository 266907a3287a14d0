//! Test support: a fresh SQLite file or PostgreSQL database per test, and a generated
//! register in it.

#![allow(dead_code)]

use std::sync::Arc;

use issuer::document::render::Renderer;
use issuer::document::sign::DocumentSigner;
use issuer::{Issuer, Register};
use kiosk_devkit::generator::{GenerationReport, GeneratorConfig, generate};
use kiosk_document::MunicipalityCode;
use time::OffsetDateTime;
use time::macros::{date, datetime};

/// The register's "today" in every test: Tuesday 2026-11-24.
pub const AS_OF: time::Date = date!(2026 - 11 - 24);
/// A time the service is open for every type: Tuesday 10:00 JST.
pub const OPEN: OffsetDateTime = datetime!(2026-11-24 01:00 UTC);
/// The test municipality (千代田区, with a valid check digit).
pub const CODE: &str = "131016";

pub use kiosk_devkit::testdb::TestDb;

/// The renderer of the test municipality, signing with the committed test PKI.
pub fn renderer() -> Arc<Renderer> {
    let pki = concat!(env!("CARGO_MANIFEST_DIR"), "/../devkit/testdata/pki");
    let key = std::fs::read_to_string(format!("{pki}/municipality-{CODE}.key.pem")).unwrap();
    let cert = std::fs::read_to_string(format!("{pki}/municipality-{CODE}.crt.pem")).unwrap();
    let ca = std::fs::read_to_string(format!("{pki}/municipality-ca.crt.pem")).unwrap();
    let signer = DocumentSigner::from_pem(&key, &format!("{cert}{ca}")).unwrap();
    Arc::new(Renderer::new(signer))
}

/// A generated register of `residents` in `db`, and an issuer over it.
pub async fn generated(db: &TestDb, residents: u64) -> (Issuer, GenerationReport) {
    let register = Register::open(&db.url).await.unwrap();
    let cfg = GeneratorConfig::new(42, residents, CODE, "千代田区", AS_OF);
    let mut bindings = Vec::new();
    let report = generate(
        &register,
        &cfg,
        &indicatif::ProgressBar::hidden(),
        &mut bindings,
    )
    .await
    .unwrap();
    let issuer = Issuer::new(register, MunicipalityCode::parse(CODE).unwrap(), renderer());
    (issuer, report)
}

/// Runs the async test body `$body(db: &TestDb)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::sqlite().await;
                super::$body(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::common::TestDb::postgres("issuer").await;
                super::$body(&db).await;
                db.cleanup().await;
            }
        }
    };
}
