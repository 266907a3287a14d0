//! `issuer municipality apply` and `show`: create, idempotent re-apply, a new fee date, a
//! refused rewrite of a past fee, conflicts named with nothing written, the show output, and
//! the real binary refusing a bad file. On SQLite and on PostgreSQL. The clock is fixed
//! (2030-06-01 12:00 JST), so no test depends on today's date or the machine's zone.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{CODE, TestDb};
use issuer::municipality::{Operator, Plan, Reason, apply, show};
use issuer::{IssuerError, Register};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::{date, datetime};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/municipality.example.json"
);
/// 2030-06-01 12:00 in Japan: after the example's 2020 fees, before its 2099 ones.
const NOW: OffsetDateTime = datetime!(2030-06-01 03:00 UTC);

fn example() -> Value {
    serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap()
}

fn plan(v: &Value) -> Plan {
    Plan::parse(&v.to_string()).unwrap()
}

fn conflicts(result: Result<impl std::fmt::Debug, IssuerError>) -> Vec<String> {
    match result {
        Err(IssuerError::Operator(conflicts)) => conflicts,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn run(
    register: &Register,
    v: &Value,
    now: OffsetDateTime,
) -> Result<issuer::municipality::ApplySummary, IssuerError> {
    apply(
        register,
        &plan(v),
        &Operator::named("kiosk-ops"),
        &Reason::parse("fee ordinance").unwrap(),
        now,
    )
    .await
}

async fn count(register: &Register, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(register.pool())
        .await
        .unwrap();
    row.0
}

async fn create_reapply_and_add_a_fee_date(db: &TestDb) {
    let register = Register::open(&db.url).await.unwrap();
    let mut v = example();
    let created = run(&register, &v, NOW).await.unwrap();
    assert!(created.created);
    assert_eq!(
        created.changes.len(),
        1 + 8 + 7 + 1,
        "{:?}",
        created.changes
    );
    assert_eq!(count(&register, "municipality_changes").await, 17);

    let again = run(&register, &v, NOW).await.unwrap();
    assert!(!again.created);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(count(&register, "municipality_changes").await, 17);

    // A new effective date adds a row; a future one may be corrected before it applies.
    v["fees"].as_array_mut().unwrap().push(json!(
        {"certificate_type": "INCOME_TAX", "effective_from": "2031-04-01", "fee_yen": 350}));
    v["fees"][1]["fee_yen"] = json!(260);
    let changed = run(&register, &v, NOW).await.unwrap();
    assert_eq!(
        changed.changes,
        vec![
            "fee RESIDENT_RECORD from 2099-04-01: 260 yen".to_owned(),
            "fee INCOME_TAX from 2031-04-01: 350 yen".to_owned(),
        ]
    );
    assert_eq!(count(&register, "fee_schedule").await, 9);
    register.close().await;
}
on_both_databases!(create_reapply_and_add_a_fee_date);

async fn past_fees_are_history(db: &TestDb) {
    let register = Register::open(&db.url).await.unwrap();
    run(&register, &example(), NOW).await.unwrap();
    let mut v = example();
    v["fees"][0]["fee_yen"] = json!(150);
    v["fees"].as_array_mut().unwrap().push(json!(
        {"certificate_type": "KOSEKI_FULL", "effective_from": "2030-05-01", "fee_yen": 500}));
    let refused = conflicts(run(&register, &v, NOW).await);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with("fee RESIDENT_RECORD from 2020-04-01: 200 yen is in force"),
        "{refused:?}"
    );
    assert!(
        refused[1].starts_with(
            "fee KOSEKI_FULL from 2030-05-01: a new fee must take effect after today (2030-06-01)"
        ),
        "{refused:?}"
    );
    assert_eq!(count(&register, "fee_schedule").await, 8);
    assert_eq!(count(&register, "municipality_changes").await, 17);

    // The same future fee, once its date has passed, is history too.
    let mut later = example();
    later["fees"][1]["fee_yen"] = json!(999);
    let refused = conflicts(run(&register, &later, datetime!(2099-04-01 00:00 UTC)).await);
    assert!(
        refused[0].starts_with("fee RESIDENT_RECORD from 2099-04-01: 250 yen"),
        "{refused:?}"
    );
    register.close().await;
}
on_both_databases!(past_fees_are_history);

async fn conflicts_are_named_and_nothing_is_written(db: &TestDb) {
    let register = Register::open(&db.url).await.unwrap();
    run(&register, &example(), NOW).await.unwrap();
    // A register conflict (the name) together with a change that alone would apply.
    let mut v = example();
    v["name"] = json!("中央区");
    v["closures"] = json!([]);
    let refused = conflicts(run(&register, &v, NOW).await);
    assert_eq!(
        refused,
        vec![
            "name: municipality 131016 is 千代田区 in the register, the file says 中央区"
                .to_owned()
        ]
    );
    assert_eq!(count(&register, "service_closed_dates").await, 1);

    // File conflicts, each named, all at once.
    let mut bad = example();
    bad["code"] = json!("131017");
    bad["fees"][0]["certificate_type"] = json!("DOG_LICENCE");
    bad["fees"][2]["certificate_type"] = json!("RESIDENT_RECORD");
    bad["fees"][2]["effective_from"] = json!("2099-04-01");
    bad["hours"][0]["closes"] = json!("06:00");
    bad["closures"] = json!([{"date": "2099-12-29", "weekday_types_only": false, "note": "a"},
                             {"date": "2099-12-29", "weekday_types_only": true, "note": "b"}]);
    let refused = conflicts(Plan::parse(&bad.to_string()));
    assert_eq!(
        refused,
        vec![
            "code \"131017\": 6 digits with a valid check digit".to_owned(),
            "fees[0]: unknown certificate type \"DOG_LICENCE\"".to_owned(),
            "fees[2]: RESIDENT_RECORD from 2099-04-01 is given twice".to_owned(),
            "hours[0]: RESIDENT_RECORD: closes at 06:00 before it opens at 06:30".to_owned(),
            "closures[1]: 2099-12-29 is given twice".to_owned(),
        ]
    );
    assert!(Reason::parse("resident 1234567 asked").is_err());
    assert_eq!(count(&register, "municipality_changes").await, 17);
    register.close().await;
}
on_both_databases!(conflicts_are_named_and_nothing_is_written);

async fn show_prints_fees_hours_closures_and_history(db: &TestDb) {
    let register = Register::open(&db.url).await.unwrap();
    run(&register, &example(), NOW).await.unwrap();
    let code = kiosk_document::MunicipalityCode::parse(CODE).unwrap();
    let text = show(&register, &code, date!(2030 - 06 - 01)).await.unwrap();
    for expected in [
        "municipality 131016 東京都千代田区\n",
        "fees in force on 2030-06-01:\n  RESIDENT_RECORD 200 yen\n",
        "upcoming fee changes:\n  RESIDENT_RECORD 250 yen from 2099-04-01\n",
        "hours (Japan time):\n  RESIDENT_RECORD 06:30-23:00, at most 10 copies\n",
        "  KOSEKI_FULL 09:00-17:00 weekdays only, at most 5 copies\n",
        "closures from 2030-06-01:\n  2099-12-29 年末年始\n",
        "  2030-06-01 03:00:00Z kiosk-ops (fee ordinance): municipality 131016 created: 千代田区\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let later = show(&register, &code, date!(2099 - 04 - 01)).await.unwrap();
    assert!(later.contains("  RESIDENT_RECORD 250 yen\n"), "{later}");
    register.close().await;
}
on_both_databases!(show_prints_fees_hours_closures_and_history);

/// The binary: a bad file exits 1 naming each conflict, and the register stays empty.
#[test]
fn binary_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = example();
    bad["hours"][4]["opens"] = json!("18:00");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let output = issuer_cmd(&db, &file, "onboarding");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("issuer: refused, nothing written: hours[4]: KOSEKI_FULL: closes at 17:00 before it opens at 18:00"),
        "{stderr}"
    );
    let output = issuer_cmd(&db, Path::new(EXAMPLE), "ticket 12345678");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--reason: no runs of 6 or more digits")
    );
    let output = issuer_cmd(&db, Path::new(EXAMPLE), "onboarding");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("municipality 131016 created by "));
    let output = issuer_cmd(&db, Path::new(EXAMPLE), "onboarding");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("unchanged"),
        "{output:?}"
    );
}

fn issuer_cmd(db: &str, file: &Path, reason: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args([
            "municipality",
            "apply",
            "--db",
            db,
            "--reason",
            reason,
            "--file",
        ])
        .arg(file)
        .env_remove("KIOSK_ISSUER_DB")
        .output()
        .unwrap()
}

/// Operators applying the same file at once (each with its own pool, as two processes) take
/// turns: one creates the municipality, the others find it unchanged, and the history holds
/// each change once.
async fn concurrent_applies_take_turns(db: &TestDb) {
    let v = example();
    let mut registers = Vec::new();
    for _ in 0..4 {
        registers.push(Register::open(&db.url).await.unwrap());
    }
    let [a, b, c, d] = &registers[..] else {
        unreachable!()
    };
    let results = tokio::join!(
        run(a, &v, NOW),
        run(b, &v, NOW),
        run(c, &v, NOW),
        run(d, &v, NOW)
    );
    let summaries = [results.0, results.1, results.2, results.3].map(Result::unwrap);
    assert_eq!(summaries.iter().filter(|s| s.created).count(), 1);
    let written: Vec<usize> = summaries.iter().map(|s| s.changes.len()).collect();
    assert_eq!(written.iter().sum::<usize>(), 17, "{written:?}");
    assert_eq!(count(&registers[0], "municipality_changes").await, 17);
    for register in registers {
        register.close().await;
    }
}
on_both_databases!(concurrent_applies_take_turns);
