//! The synthetic register is deterministic and the same on both databases; it holds every
//! case, and its card bindings load back.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{AS_OF, CODE, TestDb};
use issuer::Register;
use issuer::bindings;
use kiosk_devkit::generator::{Case, GeneratorConfig, generate};
use sqlx::Row;

/// A digest of every row of the register's data tables, in a fixed order.
async fn fingerprint(register: &Register) -> String {
    let queries = [
        "SELECT id || '|' || family_name || given_name || '|' || birth_date || '|' || address \
         || '|' || status || '|' || COALESCE(koseki_id, '-') AS r FROM residents ORDER BY id",
        "SELECT resident_id || '|' || individual_number AS r FROM individual_numbers ORDER BY resident_id",
        "SELECT registration_number || '|' || resident_id || '|' || status || '|' || image_sha256 AS r \
         FROM seal_registrations ORDER BY registration_number",
        "SELECT resident_id || '|' || CAST(fiscal_year AS TEXT) || '|' || CAST(municipal_tax AS TEXT) AS r \
         FROM tax_records ORDER BY resident_id, fiscal_year",
        "SELECT koseki_id || '|' || CAST(member_no AS TEXT) || '|' || person_ref || '|' || given_name AS r \
         FROM koseki_members ORDER BY koseki_id, member_no",
        "SELECT koseki_id || '|' || CAST(member_no AS TEXT) || '|' || address AS r \
         FROM fuhyo_entries ORDER BY koseki_id, member_no, seq",
        "SELECT person_ref AS r FROM support_measures ORDER BY person_ref",
        "SELECT id || '|' || kind AS r FROM pending_changes ORDER BY id",
    ];
    let mut all = String::new();
    for q in queries {
        for row in sqlx::query(q).fetch_all(register.pool()).await.unwrap() {
            all.push_str(&row.try_get::<String, _>("r").unwrap());
            all.push('\n');
        }
    }
    hex::encode(ring::digest::digest(&ring::digest::SHA256, all.as_bytes()))
}

async fn run(
    db: &TestDb,
    seed: u64,
    residents: u64,
) -> (String, Vec<u8>, kiosk_devkit::generator::GenerationReport) {
    let register = Register::open(&db.url).await.unwrap();
    let cfg = GeneratorConfig::new(seed, residents, CODE, "千代田区", AS_OF);
    let mut out = Vec::new();
    let report = generate(&register, &cfg, &indicatif::ProgressBar::hidden(), &mut out)
        .await
        .unwrap();
    let print = fingerprint(&register).await;
    register.close().await;
    (print, out, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_register_on_both_databases() {
    let (a, b, c) = (
        TestDb::sqlite().await,
        TestDb::sqlite().await,
        TestDb::postgres("devkit").await,
    );
    let (print_a, bindings_a, report) = run(&a, 7, 500).await;
    let (print_b, bindings_b, _) = run(&b, 7, 500).await;
    let (print_c, bindings_c, _) = run(&c, 7, 500).await;
    assert_eq!(print_a, print_b, "same seed, different SQLite registers");
    assert_eq!(print_a, print_c, "SQLite and PostgreSQL registers differ");
    assert_eq!(bindings_a, bindings_b);
    assert_eq!(bindings_a, bindings_c);
    assert_eq!(report.residents, 500);
    for case in Case::ALL {
        assert!(report.example(case).is_some(), "no example of {case:?}");
    }
    // Another seed is another register.
    let d = TestDb::sqlite().await;
    let (print_d, _, _) = run(&d, 8, 500).await;
    assert_ne!(print_a, print_d);

    // The bindings load back, one per card holder, unique by (issuer, serial).
    let loaded = bindings::read_jsonl(&bindings_a[..]).unwrap();
    assert_eq!(loaded.len() as u64, report.bindings);
    let mut keys: Vec<_> = loaded
        .iter()
        .map(|b| (b.issuer_key_id.clone(), b.card_serial_hex.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), loaded.len());
    assert!(loaded.iter().all(|b| b.municipality_code == CODE));

    for db in [a, b, c, d] {
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_has_realistic_shape() {
    let db = TestDb::sqlite().await;
    let register = Register::open(&db.url).await.unwrap();
    let cfg = GeneratorConfig::new(3, 2000, CODE, "千代田区", AS_OF);
    let mut out = Vec::new();
    let report = generate(&register, &cfg, &indicatif::ProgressBar::hidden(), &mut out)
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let pool = register.pool().clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM residents").await, 2000);
    let foreign = count("SELECT COUNT(*) FROM residents WHERE nationality IS NOT NULL").await;
    assert!((20..200).contains(&foreign), "foreign residents: {foreign}");
    let kana =
        count("SELECT COUNT(*) FROM residents WHERE family_name_kana = '' OR given_name_kana = ''")
            .await;
    assert_eq!(kana, 0);
    // Three fiscal years per taxed adult.
    assert_eq!(report.tax_records % 3, 0);
    assert!(report.households > 500 && report.households < 1500);
    assert!(report.koseki > 200);
    // Seal impressions are PNGs, stored once per surname.
    let images = count("SELECT COUNT(*) FROM seal_images").await;
    assert!(images > 10 && (images as u64) < report.seals);
    let png: Vec<u8> = sqlx::query("SELECT png FROM seal_images LIMIT 1")
        .fetch_one(register.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    // Individual numbers are 12 digits and unique.
    assert_eq!(
        count("SELECT COUNT(DISTINCT individual_number) FROM individual_numbers").await,
        2000
    );
    register.close().await;
    db.cleanup().await;
}
