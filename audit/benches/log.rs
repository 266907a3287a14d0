//! Audit log benchmarks on SQLite (WAL, synchronous=FULL) and PostgreSQL.
//!
//! Each database reports, in the same run: an empty transaction, a transaction with one plain
//! INSERT (the commit/fsync floor), one append per transaction, appends in batches of 100,
//! and inclusion and consistency proofs on a log of `AUDIT_BENCH_SIZE` entries (default
//! 100,000; the issue's figure is `AUDIT_BENCH_SIZE=1000000`). `AUDIT_BENCH_DB` picks
//! `sqlite`, `postgres` or both (default). PostgreSQL comes from `KIOSK_TEST_POSTGRES_URL`.
//!
//! ```text
//! AUDIT_BENCH_SIZE=1000000 cargo bench -p audit --bench log
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use audit::event::{Ident, IssuanceFacts, MunicipalityCode, PrintOutcome, Pseudonymizer};
use audit::{CertificateType, Event, UnixMillis, store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::runtime::Runtime;

fn event(n: u64) -> Event {
    let p = Pseudonymizer::new(&[5u8; 32])
        .unwrap()
        .pseudonymize(&n.to_be_bytes());
    let f = IssuanceFacts {
        terminal: Ident::parse(&format!("T-{:04}", n % 1000)).unwrap(),
        chain: Ident::parse("chain-a").unwrap(),
        store: Ident::parse(&format!("store-{}", n % 300)).unwrap(),
        municipality: MunicipalityCode::parse("131211").unwrap(),
        certificate_type: CertificateType::ResidentRecord,
        session: Ident::parse(&format!("s-{n}")).unwrap(),
        issuance: Ident::parse(&format!("i-{n}")).unwrap(),
        document_count: 1,
        fee_yen: 200,
    };
    Event::print_reported(
        UnixMillis(1_795_400_000_000 + n as i64),
        p,
        &f,
        PrintOutcome::Printed,
    )
}

struct Db {
    name: &'static str,
    pool: AnyPool,
    sqlite: bool,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

async fn open(kind: &'static str) -> Db {
    sqlx::any::install_default_drivers();
    let db_name = format!("audit_bench_{}", hex::encode(rand::random::<[u8; 4]>()));
    if kind == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Durable commits: WAL with synchronous=FULL (see docs/performance.md §5).
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=FULL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .unwrap();
        audit::migrate(&pool).await.unwrap();
        sqlx::query("CREATE TABLE bench_plain (id BIGINT PRIMARY KEY, payload BLOB NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        Db {
            name: "sqlite",
            pool,
            sqlite: true,
            cleanup: None,
            _dir: Some(dir),
        }
    } else {
        let admin_url = std::env::var("KIOSK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = AnyPool::connect(&admin_url)
            .await
            .expect("PostgreSQL unreachable; set KIOSK_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{base}/{db_name}"))
            .await
            .unwrap();
        audit::migrate(&pool).await.unwrap();
        sqlx::query("CREATE TABLE bench_plain (id BIGINT PRIMARY KEY, payload BYTEA NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        Db {
            name: "postgres",
            pool,
            sqlite: false,
            cleanup: Some((admin_url, db_name)),
            _dir: None,
        }
    }
}

async fn begin(db: &Db) -> sqlx::Transaction<'static, sqlx::Any> {
    if db.sqlite {
        db.pool.begin_with("BEGIN IMMEDIATE").await.unwrap()
    } else {
        db.pool.begin().await.unwrap()
    }
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let size: u64 = std::env::var("AUDIT_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let which = std::env::var("AUDIT_BENCH_DB").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    for kind in ["sqlite", "postgres"] {
        if !which.split(',').any(|w| w == kind) {
            continue;
        }
        let db = rt.block_on(open(kind));
        let mut g = c.benchmark_group(format!("audit/{}", db.name));
        g.sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));

        g.throughput(Throughput::Elements(1));
        g.bench_function("empty_transaction", |b| {
            b.to_async(&rt).iter(|| async {
                let tx = begin(&db).await;
                tx.commit().await.unwrap();
            })
        });
        let mut plain_id = 0i64;
        g.bench_function("plain_insert_transaction", |b| {
            b.to_async(&rt).iter(|| {
                plain_id += 1;
                let id = plain_id;
                let db = &db;
                async move {
                    let mut tx = begin(db).await;
                    sqlx::query("INSERT INTO bench_plain (id, payload) VALUES ($1, $2)")
                        .bind(id)
                        .bind(vec![7u8; 300])
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });

        // Build the log to `size` entries in batches of 10,000 (timed, printed).
        let started = Instant::now();
        rt.block_on(async {
            let mut n = 0;
            while n < size {
                let end = (n + 10_000).min(size);
                let events: Vec<_> = (n..end).map(event).collect();
                let mut tx = begin(&db).await;
                store::append_batch(&mut tx, &events).await.unwrap();
                tx.commit().await.unwrap();
                n = end;
            }
        });
        let took = started.elapsed();
        println!(
            "audit/{}: built a {size}-entry log in {:.1} s ({:.0} appends/s in batches of 10,000)",
            db.name,
            took.as_secs_f64(),
            size as f64 / took.as_secs_f64()
        );

        let mut next = size;
        g.bench_function(BenchmarkId::new("append_1_per_transaction", size), |b| {
            b.to_async(&rt).iter(|| {
                next += 1;
                let e = event(next);
                let db = &db;
                async move {
                    let mut tx = begin(db).await;
                    store::append(&mut tx, &e).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });
        g.throughput(Throughput::Elements(100));
        g.bench_function(
            BenchmarkId::new("append_batch_100_per_transaction", size),
            |b| {
                b.to_async(&rt).iter(|| {
                    let events: Vec<_> = (next..next + 100).map(event).collect();
                    next += 100;
                    let db = &db;
                    async move {
                        let mut tx = begin(db).await;
                        store::append_batch(&mut tx, &events).await.unwrap();
                        tx.commit().await.unwrap();
                    }
                })
            },
        );

        g.throughput(Throughput::Elements(1));
        let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        g.bench_function(BenchmarkId::new("inclusion_proof", size), |b| {
            b.to_async(&rt).iter(|| {
                let index = rand() % size;
                let db = &db;
                async move {
                    let mut conn = db.pool.acquire().await.unwrap();
                    let (_, proof) = store::inclusion_proof(&mut conn, index, size)
                        .await
                        .unwrap();
                    assert!(!proof.is_empty());
                }
            })
        });
        g.bench_function(BenchmarkId::new("consistency_proof", size), |b| {
            b.to_async(&rt).iter(|| {
                let old = 1 + rand() % (size - 1);
                let db = &db;
                async move {
                    let mut conn = db.pool.acquire().await.unwrap();
                    let proof = store::consistency_proof(&mut conn, old, size)
                        .await
                        .unwrap();
                    assert!(!proof.is_empty());
                }
            })
        });
        g.finish();

        rt.block_on(async {
            db.pool.close().await;
            if let Some((admin_url, name)) = &db.cleanup {
                let admin = AnyPool::connect(admin_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await
                .unwrap();
            }
        });
    }
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
