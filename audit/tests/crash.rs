//! Crash safety: a writer process killed with SIGKILL in the middle of a batch append leaves
//! either the old or the new tree, and the log verifies and keeps working afterwards.
//!
//! The test re-executes its own binary as the writer (selected by an environment variable),
//! and synchronises on a marker line the writer prints, not on a sleep.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use audit::checkpoint::CheckpointSigner;
use audit::store;
use audit::verify;
use common::{BOTH, TestDb, begin, connect, event};

const URL_ENV: &str = "AUDIT_CRASH_CHILD_URL";
const MODE_ENV: &str = "AUDIT_CRASH_CHILD_MODE";
const MARKER: &str = "AUDIT-CRASH-MARKER";
const TEST_NAME: &str = "killed_writer_leaves_old_or_new_tree";
const BASE: u64 = 100;
const BATCH: u64 = 300;

#[tokio::test]
async fn killed_writer_leaves_old_or_new_tree() {
    if let Ok(url) = std::env::var(URL_ENV) {
        let mode = std::env::var(MODE_ENV).unwrap();
        writer(&url, &mode).await;
        return;
    }
    for kind in BOTH {
        for mode in ["mid-batch", "looping"] {
            let db = TestDb::new(kind).await;
            let events: Vec<_> = (0..BASE).map(event).collect();
            let mut tx = begin(&db.pool).await;
            store::append_batch(&mut tx, &events).await.unwrap();
            tx.commit().await.unwrap();

            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
                .env(URL_ENV, &db.url)
                .env(MODE_ENV, mode)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            loop {
                let line = lines
                    .next()
                    .expect("writer exited before the marker")
                    .unwrap();
                if line.trim_end().ends_with(MARKER) {
                    break;
                }
            }
            // SIGKILL: no destructor, no rollback by the client, no flush.
            child.kill().unwrap();
            child.wait().unwrap();

            // Reopen from scratch, as a restarted gateway would.
            db.pool.close().await;
            let pool = connect(&db.url).await;
            let mut conn = pool.acquire().await.unwrap();
            let size = store::tree_size(&mut conn).await.unwrap();
            let ctx = format!("{kind:?} {mode}: size {size}");
            match mode {
                "mid-batch" => assert_eq!(size, BASE, "{ctx}"),
                _ => assert!(
                    size >= BASE + BATCH && (size - BASE).is_multiple_of(BATCH),
                    "{ctx}"
                ),
            }
            let signer = CheckpointSigner::from_seed("kiosk.example/audit", &[1u8; 32]).unwrap();
            let cp = store::checkpoint_now(&mut conn, &signer)
                .await
                .unwrap()
                .unwrap();
            let (_, findings) = verify::verify_store(&mut conn, cp.signed.checkpoint())
                .await
                .unwrap();
            assert!(findings.is_empty(), "{ctx}: {findings:?}");
            drop(conn);
            // And it keeps working.
            let mut tx = pool.begin().await.unwrap();
            let a = store::append(&mut tx, &event(7)).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(a.index, size, "{ctx}");
            pool.close().await;
            db.cleanup().await;
        }
    }
}

/// The child: appends and announces progress on stdout.
async fn writer(url: &str, mode: &str) {
    let pool = connect(url).await;
    let batch: Vec<_> = (0..BATCH).map(|n| event(10_000 + n)).collect();
    match mode {
        "mid-batch" => {
            let mut tx = pool.begin().await.unwrap();
            // Half of a batch is written inside the open transaction...
            store::append_batch(&mut tx, &batch[..(BATCH / 2) as usize])
                .await
                .unwrap();
            println!("{MARKER}");
            // ...and the process is killed before the rest and the commit.
            std::future::pending::<()>().await;
        }
        _ => {
            let mut first = true;
            loop {
                let mut tx = pool.begin().await.unwrap();
                store::append_batch(&mut tx, &batch).await.unwrap();
                tx.commit().await.unwrap();
                if first {
                    // From here on the kill lands at an arbitrary point of some later batch.
                    println!("{MARKER}");
                    first = false;
                }
            }
        }
    }
}
