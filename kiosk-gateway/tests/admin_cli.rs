//! The `kiosk-gateway admin` wiring: the real binary, configured only through `KIOSK_*`
//! variables like `serve`, against a prepared SQLite gateway database. The behaviour behind
//! the commands is tested end to end in tests/tests/operations.rs; here the point is that the
//! command line reaches it, prints it, and exits with the right code.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

use kiosk_gateway::store::{self, Store, TerminalStatus};

/// Runs the binary with the gateway database `url` and nothing else from the environment
/// that could point it elsewhere.
fn admin(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .arg("admin")
        .args(args)
        .env_remove("KIOSK_CONFIG")
        .env("KIOSK_DATA_DIR", data_dir)
        .env("KIOSK_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test]
async fn admin_commands_reach_the_configured_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    {
        let store = Store::open(&url).await.unwrap();
        let mut tx = store.begin_write().await.unwrap();
        for (id, chain, shop, status) in [
            (
                "seven/131016-0042/k1",
                "seven",
                "131016-0042",
                TerminalStatus::Active,
            ),
            (
                "lawson/271004-0007/k1",
                "lawson",
                "271004-0007",
                TerminalStatus::Suspended,
            ),
        ] {
            store::upsert_terminal(&mut tx, id, chain, shop, status, 0)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        store.pool().close().await;
    }

    let listed = admin(dir.path(), &url, &["terminal", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let lines: Vec<Vec<String>> = stdout(&listed)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["TERMINAL", "CHAIN", "STORE", "STATUS"],
            vec![
                "lawson/271004-0007/k1",
                "lawson",
                "271004-0007",
                "suspended"
            ],
            vec!["seven/131016-0042/k1", "seven", "131016-0042", "active"],
        ]
    );

    // A change through the binary lands in the same database, with its audit event.
    let suspend = [
        "terminal",
        "suspend",
        "seven/131016-0042/k1",
        "--on-behalf-of",
        "ops-chiyoda-01",
        "--reason",
        "printer maintenance",
    ];
    let changed = admin(dir.path(), &url, &suspend);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert!(stdout(&changed).contains("suspended (audit event 0)"));
    let again = admin(dir.path(), &url, &suspend);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("already suspended: nothing written"));
    let store = Store::open(&url).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(
        store::terminal_status(&mut conn, "seven/131016-0042/k1")
            .await
            .unwrap(),
        Some(TerminalStatus::Suspended)
    );
    assert_eq!(audit::store::tree_size(&mut conn).await.unwrap(), 1);
    // Its actor is the account the command ran under, as the system names it, not the name
    // given on the command line; that one is recorded beside it.
    let events = audit::store::list_events(&mut conn, &audit::store::EventFilter::default())
        .await
        .unwrap();
    let event = &events[0].event;
    assert_eq!(
        event.actor(),
        &audit::Actor::Operator(audit::operator::os_account())
    );
    assert!(audit::operator::os_account().as_str().starts_with("unix:"));
    assert_eq!(
        event
            .fact("on_behalf_of")
            .map(audit::Fact::value)
            .as_deref(),
        Some("ops-chiyoda-01")
    );
    assert_eq!(
        event.fact("resolution").map(audit::Fact::value).as_deref(),
        Some("printer maintenance")
    );

    // Refusals exit non-zero with the reason: 1 for the database's answer, 64 for bad input.
    let unknown = admin(
        dir.path(),
        &url,
        &[
            "terminal",
            "retire",
            "seven/131016-0042/k9",
            "--operator",
            "ops-chiyoda-01",
            "--reason",
            "typo",
        ],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("seven/131016-0042/k9 is not registered"));
    let no_reason = admin(
        dir.path(),
        &url,
        &["kill-switch", "on", "--operator", "ops-chiyoda-01"],
    );
    assert_eq!(
        no_reason.status.code(),
        Some(2),
        "clap refuses a missing --reason"
    );
    let bad_operator = admin(
        dir.path(),
        &url,
        &[
            "kill-switch",
            "on",
            "--operator",
            "山田 太郎",
            "--reason",
            "drill",
        ],
    );
    assert_eq!(bad_operator.status.code(), Some(64));
    assert_eq!(audit::store::tree_size(&mut conn).await.unwrap(), 1);

    // A mistyped database path is refused, not created empty.
    let missing = format!("sqlite://{}", dir.path().join("gatewy.db").display());
    let nowhere = admin(dir.path(), &missing, &["kill-switch", "status"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(stderr(&nowhere).contains("no gateway database"));
    assert!(!dir.path().join("gatewy.db").exists());
}
