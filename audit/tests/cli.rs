//! The `kiosk-audit` binary end to end, on SQLite and PostgreSQL: export, the audit run with
//! remembered state, each kind of tampering named, inclusion, settlement, anomalies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use audit::UnixMillis;
use audit::checkpoint::CheckpointSigner;
use audit::event::{AnomalyKind, Ident};
use audit::store;
use common::{BOTH, TestDb, begin, event, facts};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiosk-audit"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = bin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects exit code 1 (tampering) with `named` on stderr.
fn tampered(args: &[&str], named: &str) {
    let out = bin(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(named),
        "{args:?}: expected `{named}` in: {err}"
    );
}

async fn append(db: &TestDb, range: std::ops::Range<u64>) {
    let events: Vec<_> = range.map(event).collect();
    let mut tx = begin(&db.pool).await;
    store::append_batch(&mut tx, &events).await.unwrap();
    tx.commit().await.unwrap();
}

async fn checkpoint(db: &TestDb, signer: &CheckpointSigner, path: &Path) {
    let mut conn = db.pool.acquire().await.unwrap();
    let cp = store::checkpoint_now(&mut conn, signer)
        .await
        .unwrap()
        .unwrap();
    std::fs::write(path, cp.signed.note()).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn the_auditor_tool_end_to_end() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let signer =
            CheckpointSigner::from_seed("kiosk.example.lg.jp/audit/v1", &[21u8; 32]).unwrap();
        let vkey = signer.verifier().vkey();
        let state = p("state");

        append(&db, 0..50).await;
        let mut tx = begin(&db.pool).await;
        store::open_anomaly(
            &mut tx,
            &store::anomaly_opened_event(
                UnixMillis(1_795_400_000_000),
                Ident::parse("an-9").unwrap(),
                AnomalyKind::DeadlinePassed,
                &facts(9),
            ),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        checkpoint(&db, &signer, Path::new(&p("cp1"))).await;

        // Export in both formats.
        ok(&[
            "export",
            "--db",
            &db.url,
            "--format",
            "jsonl",
            "--out",
            &p("e1.jsonl"),
        ]);
        assert_eq!(lines(Path::new(&p("e1.jsonl"))).len(), 51);
        ok(&[
            "export",
            "--db",
            &db.url,
            "--format",
            "csv",
            "--out",
            &p("e1.csv"),
            "--type",
            "PRINT_REPORTED",
        ]);
        let csv = lines(Path::new(&p("e1.csv")));
        assert!(csv[0].starts_with("index,time_ms,event_type"));
        assert_eq!(csv.len() - 1, (0..50).filter(|n| n % 4 == 1).count());

        ok(&[
            "verify-checkpoint",
            "--key",
            &vkey,
            "--checkpoint",
            &p("cp1"),
        ]);
        let first = ok(&[
            "--state",
            &state,
            "check",
            "--key",
            &vkey,
            "--export",
            &p("e1.jsonl"),
            "--checkpoint",
            &p("cp1"),
        ]);
        assert!(first.contains("size 51 verified (first run"), "{first}");

        // The log grows; the next run proves consistency from the remembered checkpoint.
        append(&db, 50..90).await;
        checkpoint(&db, &signer, Path::new(&p("cp2"))).await;
        ok(&["export", "--db", &db.url, "--out", &p("e2.jsonl")]);
        let e2 = lines(Path::new(&p("e2.jsonl")));

        // Tampered exports are refused, named, and do not move the remembered state.
        let mut reordered = e2.clone();
        let (a, b) = (reordered[3].clone(), reordered[9].clone());
        reordered[3] = b.replacen("\"index\":9,", "\"index\":3,", 1);
        reordered[9] = a.replacen("\"index\":3,", "\"index\":9,", 1);
        write_lines(Path::new(&p("reordered.jsonl")), &reordered);
        let check = |export: &str, cp: &str| -> Vec<String> {
            vec![
                "--state".into(),
                state.clone(),
                "check".into(),
                "--key".into(),
                vkey.clone(),
                "--export".into(),
                export.into(),
                "--checkpoint".into(),
                cp.into(),
            ]
        };
        let run = |args: Vec<String>, named: &str| {
            tampered(&args.iter().map(String::as_str).collect::<Vec<_>>(), named)
        };
        run(
            check(&p("reordered.jsonl"), &p("cp2")),
            "events 3 and 9 were reordered",
        );

        let mut changed = e2.clone();
        changed[7] = e2[20].replacen("\"index\":20,", "\"index\":7,", 1);
        write_lines(Path::new(&p("changed.jsonl")), &changed);
        run(check(&p("changed.jsonl"), &p("cp2")), "event 7 was changed");

        let mut field_edit = e2.clone();
        field_edit[12] = field_edit[12].replacen("\"T-", "\"X-", 1);
        write_lines(Path::new(&p("field.jsonl")), &field_edit);
        run(
            check(&p("field.jsonl"), &p("cp2")),
            "event 12: readable fields differ",
        );

        let mut deleted = e2.clone();
        deleted.remove(7);
        let deleted: Vec<String> = deleted
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i >= 7 {
                    l.replacen(
                        &format!("\"index\":{},", i + 1),
                        &format!("\"index\":{i},"),
                        1,
                    )
                } else {
                    l.clone()
                }
            })
            .collect();
        write_lines(Path::new(&p("deleted.jsonl")), &deleted);
        run(check(&p("deleted.jsonl"), &p("cp2")), "event 7 was deleted");

        write_lines(Path::new(&p("truncated.jsonl")), &e2[..40]);
        run(
            check(&p("truncated.jsonl"), &p("cp1")),
            "log truncated to 40 events",
        );

        // A fork: same key, a log whose event 5 differs, signed at a larger size.
        let fork = TestDb::new(kind).await;
        let forked: Vec<_> = (0..90u64)
            .map(|n| if n == 5 { event(555) } else { event(n) })
            .collect();
        let mut tx = begin(&fork.pool).await;
        store::append_batch(&mut tx, &forked).await.unwrap();
        tx.commit().await.unwrap();
        checkpoint(&fork, &signer, Path::new(&p("cp_fork"))).await;
        ok(&["export", "--db", &fork.url, "--out", &p("fork.jsonl")]);
        run(
            check(&p("fork.jsonl"), &p("cp_fork")),
            "fork: signed checkpoints of sizes 51 and 90 are not consistent",
        );
        fork.cleanup().await;

        // The honest export still verifies against the unchanged state.
        let second = ok(&check(&p("e2.jsonl"), &p("cp2"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
        assert!(
            second.contains("size 91 consistent with verified size 51"),
            "{second}"
        );

        // Direct database mode, from the state just saved.
        append(&db, 90..95).await;
        checkpoint(&db, &signer, Path::new(&p("cp3"))).await;
        let third = ok(&["--state", &state, "check", "--key", &vkey, "--db", &db.url]);
        assert!(
            third.contains("size 96 consistent with verified size 91"),
            "{third}"
        );

        // Inclusion, both modes.
        ok(&[
            "inclusion",
            "--key",
            &vkey,
            "--db",
            &db.url,
            "--index",
            "17",
        ]);
        ok(&[
            "inclusion",
            "--key",
            &vkey,
            "--export",
            &p("e2.jsonl"),
            "--checkpoint",
            &p("cp2"),
            "--index",
            "90",
        ]);
        tampered(
            &[
                "inclusion",
                "--key",
                &vkey,
                "--export",
                &p("changed.jsonl"),
                "--checkpoint",
                &p("cp2"),
                "--index",
                "7",
            ],
            "differs from the signed checkpoint",
        );

        // Settlement: offline from the export equals direct from the database.
        let args = [
            "--from",
            "2026-01-01",
            "--to",
            "2027-01-01",
            "--period",
            "day",
            "--group",
            "store",
            "--format",
            "jsonl",
        ];
        ok(&["export", "--db", &db.url, "--out", &p("e3.jsonl")]);
        let offline = ok(&[&["settlement", "--export", &p("e3.jsonl")][..], &args[..]].concat());
        let direct = ok(&[&["settlement", "--db", &db.url][..], &args[..]].concat());
        assert_eq!(offline, direct);
        assert!(offline.lines().count() >= 5, "{offline}");

        // Anomalies: list open, resolve (an event), list again.
        let open = ok(&["anomalies", "--db", &db.url]);
        assert!(open.contains("an-9,DEADLINE_PASSED"), "{open}");
        ok(&[
            "resolve",
            "--db",
            &db.url,
            "--id",
            "an-9",
            "--reason",
            "store confirmed no print; refunded",
            "--auditor",
            "aud-1",
        ]);
        assert!(!ok(&["anomalies", "--db", &db.url]).contains("an-9"));
        let all = ok(&["anomalies", "--db", &db.url, "--all"]);
        assert!(
            all.contains("store confirmed no print; refunded") && all.contains("aud-1"),
            "{all}"
        );
        let bad = bin(&[
            "resolve",
            "--db",
            &db.url,
            "--id",
            "an-9",
            "--reason",
            "again",
            "--auditor",
            "aud-1",
        ]);
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("already resolved"));
        ok(&["export", "--db", &db.url, "--out", &p("e4.jsonl")]);
        let offline_anomalies = ok(&["anomalies", "--export", &p("e4.jsonl"), "--all"]);
        assert_eq!(offline_anomalies, all);

        db.cleanup().await;
    }
}
