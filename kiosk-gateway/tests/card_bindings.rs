//! `admin card-binding import` and `renew` on SQLite and PostgreSQL: an import adds what is
//! new with one audit event and a re-run writes nothing; conflicts (a certificate bound to
//! another resident, an unregistered municipality) refuse the whole file naming each line; a
//! bad line is named by number and field before the database is touched; a renewal closes
//! the old binding (kept) and binds the new certificate to the same resident, once. Then the
//! binary's wiring: exit codes 0, 1 and 64 and what it prints.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

use audit::event::UnixMillis;
use kiosk_devkit::testdb::TestDb;
use kiosk_gateway::admin::{AdminError, Attribution, Change};
use kiosk_gateway::admin_bindings::{import_bindings, read_import_file, renew_binding};
use kiosk_gateway::cardauth::CardKey;
use kiosk_gateway::store::{self, Municipality, Store};

const NOW: UnixMillis = UnixMillis(1_780_000_000_000);

fn key(serial: &str) -> CardKey {
    CardKey {
        issuer_key_id: "8f3a0011".into(),
        serial: serial.into(),
    }
}

fn line(serial: &str, municipality: &str, resident: &str) -> String {
    format!(
        "{{\"issuer_key_id\":\"8f3a0011\",\"card_serial_hex\":\"{serial}\",\
         \"municipality_code\":\"{municipality}\",\"resident_ref\":\"{resident}\"}}\n"
    )
}

fn by() -> Attribution {
    Attribution::parse("ops-test-01", "cards of the pilot").unwrap()
}

async fn store_with_municipality(url: &str) -> Store {
    let store = Store::open(url).await.unwrap();
    let mut tx = store.begin_write().await.unwrap();
    store::upsert_municipality(
        &mut tx,
        &Municipality {
            code: "131016".into(),
            name: "千代田区".into(),
            suspended: false,
            issuer_endpoint: "in-process".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store
}

async fn events(store: &Store) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM audit_event WHERE event_type = 'CARD_BINDING_CHANGED'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn resident_of(store: &Store, serial: &str) -> Option<String> {
    let mut conn = store.pool().acquire().await.unwrap();
    store::card_binding_served(&mut conn, &key(serial))
        .await
        .unwrap()
        .map(|(binding, _)| binding.resident_ref)
}

async fn import_is_idempotent_and_refuses_conflicts(store: &Store, dir: &Path) {
    let file = dir.join("bindings.jsonl");
    let text = [
        line("01", "131016", "r1"),
        "\n".into(),
        line("02", "131016", "r2"),
    ];
    std::fs::write(&file, text.concat()).unwrap();
    let lines = read_import_file(&file).unwrap();
    let report = import_bindings(store, &lines, &by(), NOW).await.unwrap();
    assert_eq!((report.added, report.unchanged), (2, 0));
    assert!(report.event_index.is_some());
    assert_eq!(resident_of(store, "01").await.as_deref(), Some("r1"));
    assert_eq!(events(store).await, 1);

    let again = import_bindings(store, &lines, &by(), NOW).await.unwrap();
    assert_eq!(
        (again.added, again.unchanged, again.event_index),
        (0, 2, None)
    );
    assert!(again.to_string().contains("nothing written"), "{again}");
    assert_eq!(events(store).await, 1);

    let conflicting = dir.join("conflicting.jsonl");
    let text = [
        line("03", "131016", "r3"),
        line("01", "131016", "r9"),
        line("04", "271004", "r4"),
    ];
    std::fs::write(&conflicting, text.concat()).unwrap();
    let lines = read_import_file(&conflicting).unwrap();
    match import_bindings(store, &lines, &by(), NOW).await {
        Err(AdminError::Conflict(conflicts)) => assert_eq!(
            conflicts,
            [
                "line 2: the certificate is already bound to another resident",
                "line 3: municipality 271004 is not registered in this gateway",
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(resident_of(store, "03").await, None, "nothing written");
    assert_eq!(resident_of(store, "01").await.as_deref(), Some("r1"));
    assert_eq!(events(store).await, 1);
}

async fn renewal_closes_the_old_binding(store: &Store, dir: &Path) {
    let (old, new) = (key("01"), key("05"));
    let renewed = renew_binding(store, &old, &new, &by(), NOW).await.unwrap();
    assert!(matches!(renewed, Change::Applied { .. }), "{renewed:?}");
    assert_eq!(
        resident_of(store, "01").await,
        None,
        "the old card leads nowhere"
    );
    assert_eq!(resident_of(store, "05").await.as_deref(), Some("r1"));
    let mut conn = store.pool().acquire().await.unwrap();
    let closed = store::card_binding(&mut conn, &old).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(closed.closed_at, Some(NOW.0), "closed, not deleted");
    assert_eq!(events(store).await, 2);

    let again = renew_binding(store, &old, &new, &by(), NOW).await.unwrap();
    assert_eq!(again, Change::Unchanged);
    assert_eq!(events(store).await, 2);
    let refusals = [
        (
            key("02"),
            key("05"),
            "--new: the certificate is already bound",
        ),
        (key("09"), key("0a"), "--old: the certificate is not bound"),
        (key("01"), key("0b"), "closed by another renewal"),
    ];
    for (old, new, expected) in refusals {
        let error = renew_binding(store, &old, &new, &by(), NOW)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert_eq!(events(store).await, 2);

    // The original file again: the closed binding stays closed, nothing is written.
    let lines = read_import_file(&dir.join("bindings.jsonl")).unwrap();
    let report = import_bindings(store, &lines, &by(), NOW).await.unwrap();
    assert_eq!((report.added, report.event_index), (0, None));
    assert_eq!(resident_of(store, "01").await, None);
}

async fn run(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_municipality(&db.url).await;
    import_is_idempotent_and_refuses_conflicts(&store, dir.path()).await;
    renewal_closes_the_old_binding(&store, dir.path()).await;
    store.pool().close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn card_bindings_on_sqlite() {
    run(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn card_bindings_on_postgres() {
    run(TestDb::postgres("gw_card_bindings").await).await;
}

#[test]
fn a_bad_line_is_named_by_number_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (line("01", "131017", "r1"), "line 2: municipality_code"),
        (line("0001", "131016", "r1"), "line 2: card_serial_hex"),
        (line("01", "131016", "r/1"), "line 2: resident_ref"),
        (
            line("01", "131016", "r1").replace("8f3a0011", "8F3A0011"),
            "line 2: issuer_key_id",
        ),
        (
            line("01", "131016", "r1").replace("\"resident_ref\"", "\"resident\""),
            "line 2: resident: not a field",
        ),
        (
            line("01", "131016", "r1").replace("\"r1\"", "7"),
            "line 2: resident_ref: not a string",
        ),
        (
            "{\"issuer_key_id\":\"8f3a\"}\n".into(),
            "line 2: card_serial_hex: missing",
        ),
        ("not json\n".into(), "line 2: not JSON"),
        (
            line("02", "131016", "r2"),
            "line 2: the certificate of line 1 again",
        ),
    ];
    for (second, expected) in cases {
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, [line("02", "131016", "r1"), second].concat()).unwrap();
        let error = read_import_file(&file).unwrap_err();
        assert!(matches!(error, AdminError::BadInput(_)), "{error:?}");
        assert!(error.to_string().contains(expected), "{expected}: {error}");
        assert!(error.is_usage());
    }
    std::fs::write(dir.path().join("empty.jsonl"), "\n").unwrap();
    assert!(read_import_file(&dir.path().join("empty.jsonl")).is_err());
}

fn binary(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .args(args)
        .env_remove("KIOSK_CONFIG")
        .env("KIOSK_DATA_DIR", data_dir)
        .env("KIOSK_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_commands_print_and_exit_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    store_with_municipality(&url).await.pool().close().await;
    let file = dir.path().join("b.jsonl");
    let file_arg = file.to_str().unwrap();
    let import = [
        "admin",
        "card-binding",
        "import",
        file_arg,
        "--operator",
        "ops-test-01",
        "--reason",
        "cards of the pilot",
    ];
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    std::fs::write(&file, line("01", "131016", "r1")).unwrap();
    let first = binary(dir.path(), &url, &import);
    assert_eq!(first.status.code(), Some(0), "{}", err(&first));
    assert!(out(&first).contains("1 added"), "{}", out(&first));
    let again = binary(dir.path(), &url, &import);
    assert_eq!(again.status.code(), Some(0), "{}", err(&again));
    assert!(out(&again).contains("nothing written"), "{}", out(&again));

    std::fs::write(&file, line("01", "131016", "r2")).unwrap();
    let conflict = binary(dir.path(), &url, &import);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(err(&conflict).contains("line 1: the certificate is already bound"));

    std::fs::write(&file, line("01", "13101", "r2")).unwrap();
    let bad = binary(dir.path(), &url, &import);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        err(&bad).contains("line 1: municipality_code"),
        "{}",
        err(&bad)
    );

    let renew = [
        "admin",
        "card-binding",
        "renew",
        "--old",
        "8f3a0011:01",
        "--new",
        "8f3a0011:02",
        "--operator",
        "ops-test-01",
        "--reason",
        "card renewed",
    ];
    let renewed = binary(dir.path(), &url, &renew);
    assert_eq!(renewed.status.code(), Some(0), "{}", err(&renewed));
    assert!(out(&renewed).contains("card binding renewed"));
    let bad_key = binary(
        dir.path(),
        &url,
        &[&renew[..4], &["8f3a0011-01"], &renew[5..]].concat(),
    );
    assert_eq!(bad_key.status.code(), Some(64), "{}", err(&bad_key));

    let not_a_cert = binary(dir.path(), &url, &["card-key", "--cert", file_arg]);
    assert_eq!(not_a_cert.status.code(), Some(64));
}
