//! Storage tests: every one runs on SQLite (temp file) and PostgreSQL (fresh database).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]

mod common;

use audit::UnixMillis;
use audit::checkpoint::CheckpointSigner;
use audit::event::{Actor, AnomalyKind, EventType, Ident, ResolutionNote};
use audit::merkle::{self, MemoryTree};
use audit::settlement::{self, Grouping, Period};
use audit::store::{self, EventFilter, StoreError};
use audit::verify::{self, Tamper};
use common::{BOTH, Kind, TestDb, begin, event, facts};

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("kiosk.example.lg.jp/audit/v1", &[11u8; 32]).unwrap()
}

/// Appends `n` events in batches of `batch` and returns the in-memory mirror.
async fn fill(db: &TestDb, n: u64, batch: u64) -> MemoryTree {
    let mut mirror = MemoryTree::new();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let events: Vec<_> = (i..end).map(event).collect();
        let mut tx = begin(&db.pool).await;
        let out = store::append_batch(&mut tx, &events).await.unwrap();
        tx.commit().await.unwrap();
        for (k, a) in out.iter().enumerate() {
            assert_eq!(a.index, i + k as u64);
            assert_eq!(a.leaf_hash, merkle::leaf_hash(&events[k].encode().unwrap()));
            mirror.push(a.leaf_hash);
        }
        i = end;
    }
    mirror
}

#[tokio::test]
async fn proofs_from_storage_match_the_in_memory_tree_for_every_size() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let mirror = fill(&db, 70, 9).await;
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(
            store::tree_head(&mut conn).await.unwrap(),
            (70, mirror.root())
        );
        for size in 1..=70u64 {
            let root = store::root_at(&mut conn, size).await.unwrap();
            assert_eq!(
                root,
                mirror.root_at(size).unwrap(),
                "{kind:?} root at {size}"
            );
            for index in [0, size / 2, size - 1] {
                let (leaf, proof) = store::inclusion_proof(&mut conn, index, size)
                    .await
                    .unwrap();
                assert_eq!(proof, mirror.inclusion_proof(index, size).unwrap());
                merkle::verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            }
            for old in [1, size / 2 + 1, size] {
                let proof = store::consistency_proof(&mut conn, old, size)
                    .await
                    .unwrap();
                merkle::verify_consistency(old, size, &mirror.root_at(old).unwrap(), &root, &proof)
                    .unwrap();
            }
        }
        // Out of range is a typed error (PROOF_RANGE_INVALID), not a panic.
        assert!(matches!(
            store::inclusion_proof(&mut conn, 70, 70).await,
            Err(StoreError::Range(_))
        ));
        assert!(matches!(
            store::inclusion_proof(&mut conn, 0, 71).await,
            Err(StoreError::Range(_))
        ));
        assert!(matches!(
            store::consistency_proof(&mut conn, 0, 5).await,
            Err(StoreError::Range(_))
        ));
        assert!(matches!(
            store::consistency_proof(&mut conn, 6, 5).await,
            Err(StoreError::Range(_))
        ));
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_neither_event_nor_tree_change() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        fill(&db, 5, 5).await;
        let mut tx = begin(&db.pool).await;
        store::append(&mut tx, &event(99)).await.unwrap();
        tx.rollback().await.unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(store::tree_size(&mut conn).await.unwrap(), 5, "{kind:?}");
        let all = store::list_events(&mut conn, &EventFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_writers_are_serialised_and_the_tree_stays_valid() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let pool = db.pool.clone();
            let k = db.kind();
            tasks.push(tokio::spawn(async move {
                for j in 0..10u64 {
                    let mut tx = if k == Kind::Sqlite {
                        pool.begin_with("BEGIN IMMEDIATE").await.unwrap()
                    } else {
                        pool.begin().await.unwrap()
                    };
                    store::append(&mut tx, &event(w * 100 + j)).await.unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut conn = db.pool.acquire().await.unwrap();
        let signer = signer();
        let cp = store::checkpoint_now(&mut conn, &signer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.signed.checkpoint().size(), 40);
        let (_, findings) = verify::verify_store(&mut conn, cp.signed.checkpoint())
            .await
            .unwrap();
        assert!(findings.is_empty(), "{kind:?}: {findings:?}");
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn checkpoints_are_signed_stored_reused_and_verify() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let signer = signer();
        let verifier = signer.verifier();
        let mut conn = db.pool.acquire().await.unwrap();
        assert!(
            store::checkpoint_now(&mut conn, &signer)
                .await
                .unwrap()
                .is_none()
        );
        drop(conn);
        let mirror = fill(&db, 10, 10).await;
        let mut conn = db.pool.acquire().await.unwrap();
        let a = store::checkpoint_now(&mut conn, &signer)
            .await
            .unwrap()
            .unwrap();
        let again = store::checkpoint_now(&mut conn, &signer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a, again, "same size: the stored checkpoint is served");
        let checked = verifier.verify(a.signed.note()).unwrap();
        assert_eq!(checked.checkpoint().root(), &mirror.root());
        drop(conn);
        let mirror = {
            let mut m = mirror;
            for a in fill_more(&db, 10, 7).await {
                m.push(a);
            }
            m
        };
        let mut conn = db.pool.acquire().await.unwrap();
        let b = store::checkpoint_now(&mut conn, &signer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store::latest_checkpoint(&mut conn).await.unwrap().unwrap(),
            b
        );
        assert_eq!(b.signed.checkpoint().root(), &mirror.root());
        let proof = store::consistency_proof(&mut conn, 10, 17).await.unwrap();
        verify::check_consistency(a.signed.checkpoint(), b.signed.checkpoint(), &proof).unwrap();
        drop(conn);
        db.cleanup().await;
    }
}

async fn fill_more(db: &TestDb, from: u64, n: u64) -> Vec<audit::Hash> {
    let events: Vec<_> = (from..from + n).map(event).collect();
    let mut tx = begin(&db.pool).await;
    let out = store::append_batch(&mut tx, &events).await.unwrap();
    tx.commit().await.unwrap();
    out.iter().map(|a| a.leaf_hash).collect()
}

#[tokio::test]
async fn the_schedule_makes_checkpoints_until_shutdown() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        fill(&db, 3, 3).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let signer = std::sync::Arc::new(signer());
        let pool = db.pool.clone();
        let task = tokio::spawn(store::checkpoint_schedule(
            pool,
            signer,
            std::time::Duration::from_millis(20),
            async {
                let _ = stop_rx.await;
            },
            |e| panic!("checkpoint round failed: {e}"),
        ));
        // Wait for the first tick's checkpoint by polling the table (the tick fires at once).
        let mut conn = db.pool.acquire().await.unwrap();
        let cp = loop {
            if let Some(cp) = store::latest_checkpoint(&mut conn).await.unwrap() {
                break cp;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(cp.signed.checkpoint().size(), 3, "{kind:?}");
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn list_events_filters_and_rechecks_rows() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        fill(&db, 40, 40).await;
        let mut conn = db.pool.acquire().await.unwrap();
        let all = store::list_events(&mut conn, &EventFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 40);
        let filter = EventFilter {
            types: vec![EventType::PrintReported],
            terminal: Some(Ident::parse("T-001").unwrap()),
            ..Default::default()
        };
        let got = store::list_events(&mut conn, &filter).await.unwrap();
        let expected: Vec<u64> = all
            .iter()
            .filter(|s| filter.matches(&s.event))
            .map(|s| s.index)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(
            got.iter().map(|s| s.index).collect::<Vec<_>>(),
            expected,
            "{kind:?}"
        );
        let window = EventFilter {
            from: Some(all[10].event.time()),
            to: Some(all[20].event.time()),
            start_index: 12,
            limit: Some(3),
            ..Default::default()
        };
        let got = store::list_events(&mut conn, &window).await.unwrap();
        assert_eq!(
            got.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![12, 13, 14]
        );
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn anomalies_open_resolve_and_their_errors() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let f = facts(3);
        let id = Ident::parse("an-1").unwrap();
        let mut tx = begin(&db.pool).await;
        let opened = store::open_anomaly(
            &mut tx,
            &store::anomaly_opened_event(
                UnixMillis(1_000),
                id.clone(),
                AnomalyKind::PrintFailed,
                &f,
            ),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(opened.opened_event_index, 0);

        let mut tx = begin(&db.pool).await;
        let dup = store::open_anomaly(
            &mut tx,
            &store::anomaly_opened_event(
                UnixMillis(1_001),
                id.clone(),
                AnomalyKind::PrintFailed,
                &f,
            ),
        )
        .await;
        assert!(matches!(dup, Err(StoreError::AnomalyExists)), "{kind:?}");
        tx.rollback().await.unwrap();

        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(
            store::list_anomalies(&mut conn, false).await.unwrap().len(),
            1
        );
        drop(conn);

        let note = ResolutionNote::parse("printer jam confirmed by store; refunded").unwrap();
        let auditor = Actor::Auditor(Ident::parse("auditor-7").unwrap());
        let mut tx = begin(&db.pool).await;
        let closed = store::resolve_anomaly(
            &mut tx,
            UnixMillis(2_000),
            &id,
            auditor.clone(),
            note.clone(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let res = closed.resolution.clone().unwrap();
        assert_eq!(res.event_index, 1);
        assert_eq!(res.by, "auditor-7");

        let mut tx = begin(&db.pool).await;
        let again = store::resolve_anomaly(
            &mut tx,
            UnixMillis(3_000),
            &id,
            auditor.clone(),
            note.clone(),
        )
        .await;
        assert!(matches!(again, Err(StoreError::AnomalyAlreadyResolved)));
        tx.rollback().await.unwrap();
        let mut tx = begin(&db.pool).await;
        let missing = store::resolve_anomaly(
            &mut tx,
            UnixMillis(3_000),
            &Ident::parse("nope").unwrap(),
            auditor,
            note,
        )
        .await;
        assert!(matches!(missing, Err(StoreError::AnomalyNotFound)));
        tx.rollback().await.unwrap();

        let mut conn = db.pool.acquire().await.unwrap();
        assert!(
            store::list_anomalies(&mut conn, false)
                .await
                .unwrap()
                .is_empty()
        );
        let all = store::list_anomalies(&mut conn, true).await.unwrap();
        assert_eq!(all, vec![closed.clone()]);
        // The resolution is itself an event, and the list can be rebuilt from events alone.
        let events = store::list_events(&mut conn, &EventFilter::default())
            .await
            .unwrap();
        assert_eq!(events[1].event.event_type(), EventType::AnomalyResolved);
        let rebuilt = store::anomalies_from_events(events.iter().map(|s| (s.index, &s.event)));
        assert_eq!(rebuilt, vec![closed]);
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn settlement_from_store_equals_settlement_from_events() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        fill(&db, 200, 50).await;
        let mut conn = db.pool.acquire().await.unwrap();
        let events = store::list_events(&mut conn, &EventFilter::default())
            .await
            .unwrap();
        let (from, to) = (UnixMillis(0), UnixMillis(i64::MAX));
        for grouping in [
            Grouping::Chain,
            Grouping::Store,
            Grouping::Terminal,
            Grouping::Municipality,
            Grouping::CertificateType,
        ] {
            for period in [Period::Day, Period::Month] {
                let db_rows =
                    settlement::settlement_from_store(&mut conn, from, to, period, grouping)
                        .await
                        .unwrap();
                let offline = settlement::settlement(
                    events.iter().map(|s| &s.event),
                    from,
                    to,
                    period,
                    grouping,
                );
                assert_eq!(db_rows, offline, "{kind:?} {grouping:?} {period:?}");
            }
        }
        // Hand-computed totals: event(n) with n % 4 == 1 is a printed report, == 3 a deadline.
        let rows =
            settlement::settlement_from_store(&mut conn, from, to, Period::Month, Grouping::Chain)
                .await
                .unwrap();
        let issued: u64 = rows.iter().map(|r| r.issued).sum();
        let fees: u64 = rows.iter().map(|r| r.fees_yen).sum();
        let unconfirmed: u64 = rows.iter().map(|r| r.unconfirmed).sum();
        let want_issued: u64 = (0..200u64).filter(|n| n % 4 == 1).map(|n| 1 + n % 3).sum();
        let want_fees: u64 = (0..200u64)
            .filter(|n| n % 4 == 1)
            .map(|n| 200 * (1 + n % 3))
            .sum();
        let want_unconfirmed: u64 = (0..200u64).filter(|n| n % 4 == 3).map(|n| 1 + n % 3).sum();
        assert_eq!(
            (issued, fees, unconfirmed),
            (want_issued, want_fees, want_unconfirmed)
        );
        drop(conn);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrations_coexist_with_the_gateways_own() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        // A gateway migration at version 1, applied after ours, with ignore_missing as documented.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("1_gateway.sql"),
            "CREATE TABLE gateway_thing (id BIGINT PRIMARY KEY);",
        )
        .unwrap();
        let mut gw = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
        gw.set_ignore_missing(true);
        gw.run(&db.pool).await.unwrap();
        // Ours again: idempotent, and not confused by version 1.
        audit::migrate(&db.pool).await.unwrap();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(versions, vec![1, 1000], "{kind:?}");
        db.cleanup().await;
    }
}

/// Tamper scenarios applied directly to the database, each detected and named.
#[tokio::test]
async fn tampering_with_stored_rows_is_detected_and_named() {
    for kind in BOTH {
        for scenario in [
            "change",
            "change_with_hash",
            "delete",
            "reorder",
            "truncate",
            "node",
        ] {
            let db = TestDb::new(kind).await;
            let mirror = fill(&db, 20, 20).await;
            let signer = signer();
            let mut conn = db.pool.acquire().await.unwrap();
            let cp = store::checkpoint_now(&mut conn, &signer)
                .await
                .unwrap()
                .unwrap();
            let cp = signer.verifier().verify(cp.signed.note()).unwrap();
            let (_, clean) = verify::verify_store(&mut conn, cp.checkpoint())
                .await
                .unwrap();
            assert!(clean.is_empty(), "{clean:?}");
            let known: Vec<_> = (0..20).map(|i| mirror.leaf(i).unwrap()).collect();
            let other = event(1000).encode().unwrap();
            let other_hash = merkle::leaf_hash(&other).as_bytes().to_vec();
            match scenario {
                "change" => {
                    sqlx::query("UPDATE audit_event SET canonical = $1 WHERE idx = 7")
                        .bind(other.clone())
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
                "change_with_hash" => {
                    sqlx::query(
                        "UPDATE audit_event SET canonical = $1, leaf_hash = $2 WHERE idx = 7",
                    )
                    .bind(other.clone())
                    .bind(other_hash.clone())
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                }
                "delete" => {
                    sqlx::query("DELETE FROM audit_event WHERE idx = 7")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    sqlx::query("UPDATE audit_event SET idx = idx - 1 WHERE idx > 7")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
                "reorder" => {
                    sqlx::query("UPDATE audit_event SET idx = -1 WHERE idx = 3")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    sqlx::query("UPDATE audit_event SET idx = 3 WHERE idx = 9")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    sqlx::query("UPDATE audit_event SET idx = 9 WHERE idx = -1")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
                "truncate" => {
                    sqlx::query("DELETE FROM audit_event WHERE idx >= 15")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
                _ => {
                    sqlx::query("UPDATE audit_node SET hash = $1 WHERE lvl = 2 AND idx = 1")
                        .bind(other_hash.clone())
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
            }
            let (re, findings) = verify::verify_store(&mut conn, cp.checkpoint())
                .await
                .unwrap();
            let named = verify::diagnose(&known, &re.leaves());
            let ctx = format!("{kind:?} {scenario}: {findings:?} / {named:?}");
            match scenario {
                "change" => {
                    assert!(
                        findings.contains(&Tamper::LeafHashMismatch { index: 7 }),
                        "{ctx}"
                    );
                    assert!(
                        findings.contains(&Tamper::RootMismatch { size: 20 }),
                        "{ctx}"
                    );
                    assert_eq!(named, Some(Tamper::Modified { index: 7 }), "{ctx}");
                }
                "change_with_hash" => {
                    assert!(
                        findings.contains(&Tamper::NodeMismatch { level: 1, index: 3 }),
                        "{ctx}"
                    );
                    assert!(
                        findings.contains(&Tamper::RootMismatch { size: 20 }),
                        "{ctx}"
                    );
                    assert_eq!(named, Some(Tamper::Modified { index: 7 }), "{ctx}");
                }
                "delete" => {
                    assert!(
                        findings.contains(&Tamper::Truncated {
                            size: 19,
                            expected: 20
                        }),
                        "{ctx}"
                    );
                    assert_eq!(named, Some(Tamper::Deleted { index: 7 }), "{ctx}");
                }
                "reorder" => {
                    assert!(
                        findings.contains(&Tamper::RootMismatch { size: 20 }),
                        "{ctx}"
                    );
                    assert_eq!(
                        named,
                        Some(Tamper::Reordered {
                            first: 3,
                            second: 9
                        }),
                        "{ctx}"
                    );
                }
                "truncate" => {
                    assert!(
                        findings.contains(&Tamper::Truncated {
                            size: 15,
                            expected: 20
                        }),
                        "{ctx}"
                    );
                    assert_eq!(
                        named,
                        Some(Tamper::Truncated {
                            size: 15,
                            expected: 20
                        }),
                        "{ctx}"
                    );
                }
                _ => {
                    assert_eq!(
                        findings,
                        vec![Tamper::NodeMismatch { level: 2, index: 1 }],
                        "{ctx}"
                    );
                    assert_eq!(named, None, "{ctx}");
                }
            }
            drop(conn);
            db.cleanup().await;
        }
    }
}

/// A fork: the operator rewrites event 5 and rebuilds a self-consistent tree and signs it. Each
/// checkpoint verifies alone, but no consistency proof links them.
#[tokio::test]
async fn a_forked_log_is_detected_by_consistency() {
    for kind in BOTH {
        let honest = TestDb::new(kind).await;
        let forked = TestDb::new(kind).await;
        fill(&honest, 12, 12).await;
        let events: Vec<_> = (0..20u64)
            .map(|n| if n == 5 { event(500) } else { event(n) })
            .collect();
        let mut tx = begin(&forked.pool).await;
        store::append_batch(&mut tx, &events).await.unwrap();
        tx.commit().await.unwrap();
        let signer = signer();
        let mut a = honest.pool.acquire().await.unwrap();
        let mut b = forked.pool.acquire().await.unwrap();
        let old = store::checkpoint_now(&mut a, &signer)
            .await
            .unwrap()
            .unwrap();
        let new = store::checkpoint_now(&mut b, &signer)
            .await
            .unwrap()
            .unwrap();
        let v = signer.verifier();
        let old = v.verify(old.signed.note()).unwrap();
        let new = v.verify(new.signed.note()).unwrap();
        let proof = store::consistency_proof(&mut b, 12, 20).await.unwrap();
        assert_eq!(
            verify::check_consistency(old.checkpoint(), new.checkpoint(), &proof),
            Err(Tamper::Fork {
                old_size: 12,
                new_size: 20
            }),
            "{kind:?}"
        );
        drop(a);
        drop(b);
        honest.cleanup().await;
        forked.cleanup().await;
    }
}

/// One batch larger than every backend's INSERT chunk (several statements per table) gives the
/// same tree as appending the events one by one in memory.
#[tokio::test]
async fn a_batch_spanning_several_insert_statements_builds_the_same_tree() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let mirror = fill(&db, 9_000, 9_000).await;
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(
            store::tree_head(&mut conn).await.unwrap(),
            (9_000, mirror.root()),
            "{kind:?}"
        );
        let signer = signer();
        let cp = store::checkpoint_now(&mut conn, &signer)
            .await
            .unwrap()
            .unwrap();
        let (_, findings) = verify::verify_store(&mut conn, cp.signed.checkpoint())
            .await
            .unwrap();
        assert!(findings.is_empty(), "{kind:?}: {findings:?}");
        let (leaf, proof) = store::inclusion_proof(&mut conn, 4_321, 9_000)
            .await
            .unwrap();
        merkle::verify_inclusion(&leaf, 4_321, 9_000, &proof, &mirror.root()).unwrap();
        drop(conn);
        db.cleanup().await;
    }
}
