//! `issuer import`: the example files load and match the JSON Schema, change files apply in
//! order and re-run idempotently, every kind of malformed line is refused with its line,
//! field and reason and changes nothing, and an imported 転出 is what the next decision
//! reads. On SQLite and on PostgreSQL.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{CODE, OPEN, TestDb, generated};
use indicatif::ProgressBar;
use issuer::import::{self, ChangeSummary};
use issuer::register::{Municipality, write};
use issuer::rules::Reason;
use issuer::{CertificateOptions, IssuerError, Register, RequestItem};
use kiosk_devkit::generator::Case;
use kiosk_document::CertificateType as T;
use serde_json::{Value, json};

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");

fn example() -> PathBuf {
    Path::new(DOCS).join("register-import.example.jsonl")
}

fn example_changes() -> PathBuf {
    Path::new(DOCS).join("register-changes.example.jsonl")
}

fn hidden() -> ProgressBar {
    ProgressBar::hidden()
}

/// A register with the example's municipality (set by `issuer municipality` in production).
async fn register(db: &TestDb) -> Register {
    let register = Register::open(&db.url).await.unwrap();
    let mut conn = register.pool().acquire().await.unwrap();
    let m = Municipality {
        code: CODE.to_owned(),
        name: "千代田区".to_owned(),
        prefecture: "東京都".to_owned(),
        mayor_title: "千代田区長".to_owned(),
        mayor_name: "試験　太郎".to_owned(),
        minimum_age: 15,
        tax_years_offered: 3,
    };
    write::upsert_municipality(&mut conn, &m).await.unwrap();
    register
}

async fn count(register: &Register, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(register.pool())
        .await
        .unwrap();
    row.0
}

async fn text(register: &Register, sql: &'static str, id: &str) -> String {
    let row: (String,) = sqlx::query_as(sql)
        .bind(id)
        .fetch_one(register.pool())
        .await
        .unwrap();
    row.0
}

#[test]
fn example_files_match_the_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DOCS).join("register-import.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in [example(), example_changes()] {
        let body = std::fs::read_to_string(&file).unwrap();
        for (i, line) in body.lines().enumerate() {
            let value: Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{}:{}: {errors:?}",
                file.display(),
                i + 1
            );
        }
    }
    // The schema is not vacuous: a resident without a name fails it.
    let bad = json!({"kind": "resident", "resident_id": "R1"});
    assert!(!validator.is_valid(&bad));
}

async fn example_loads_and_changes_apply_idempotently(db: &TestDb) {
    let register = register(db).await;
    let summary = import::load(&register, &[example()], &hidden())
        .await
        .unwrap();
    assert_eq!(summary.records, 17);
    assert_eq!(summary.by_kind["resident"], 4);
    assert_eq!(count(&register, "residents").await, 4);
    assert_eq!(count(&register, "individual_numbers").await, 1);
    assert_eq!(
        count(&register, "seal_images").await,
        1,
        "one image, stored once"
    );
    assert_eq!(count(&register, "koseki_events").await, 2);

    let files = [example_changes()];
    let done = import::apply_changes(&register, &files, &hidden())
        .await
        .unwrap();
    assert_eq!(
        done,
        ChangeSummary {
            applied: 8,
            already_applied: 0
        }
    );
    let status = "SELECT status FROM residents WHERE id = $1";
    assert_eq!(text(&register, status, "R0003").await, "moved_out");
    assert_eq!(text(&register, status, "R0005").await, "deceased");
    assert_eq!(text(&register, status, "R0001").await, "active");
    let given = "SELECT given_name FROM residents WHERE id = $1";
    assert_eq!(text(&register, given, "R0004").await, "ヴァン　ビン");
    let head = "SELECT head_resident_id FROM households WHERE id = $1";
    assert_eq!(
        text(&register, head, "H0003").await,
        "R0005",
        "転入 made a household"
    );
    let seal = "SELECT status FROM seal_registrations WHERE registration_number = $1";
    assert_eq!(text(&register, seal, "S0001").await, "abolished");

    // Re-running the whole file (after a crash, say) changes nothing more.
    let again = import::apply_changes(&register, &files, &hidden())
        .await
        .unwrap();
    assert_eq!(
        again,
        ChangeSummary {
            applied: 0,
            already_applied: 8
        }
    );
    assert_eq!(count(&register, "applied_changes").await, 8);

    // A full load of the same records again is refused at its first line, and changes nothing.
    let err = import::load(&register, &[example()], &hidden())
        .await
        .unwrap_err();
    let file = example().display().to_string();
    assert_eq!(
        err.to_string(),
        format!("{file}:1: household_id: household already in the register")
    );
    assert_eq!(count(&register, "residents").await, 5);
    register.close().await;
}
on_both_databases!(example_loads_and_changes_apply_idempotently);

fn write_file(dir: &Path, name: &str, lines: &[Vec<u8>]) -> PathBuf {
    let path = dir.join(name);
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    std::fs::write(&path, body).unwrap();
    path
}

fn line(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

async fn change_file_stops_at_first_bad_change_and_resumes(db: &TestDb) {
    let register = register(db).await;
    import::load(&register, &[example()], &hidden())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ok1 = json!({"kind": "move_out_filed", "change_id": "A1", "effective_on": "2026-11-25", "resident_id": "R0003"});
    let bad = json!({"kind": "move_out", "change_id": "A2", "effective_on": "2026-11-26", "resident_id": "R9999"});
    let ok2 = json!({"kind": "move_out", "change_id": "A2", "effective_on": "2026-11-26", "resident_id": "R0003"});
    let ok3 = json!({"kind": "death", "change_id": "A3", "effective_on": "2026-11-27", "resident_id": "R0004"});
    let path = write_file(dir.path(), "c.jsonl", &[line(&ok1), line(&bad), line(&ok3)]);
    let failure = import::apply_changes(&register, std::slice::from_ref(&path), &hidden())
        .await
        .unwrap_err();
    assert_eq!(
        failure.summary,
        ChangeSummary {
            applied: 1,
            already_applied: 0
        }
    );
    let p = path.display().to_string();
    assert_eq!(
        failure.error.to_string(),
        format!("{p}:2: resident_id: resident not in the register")
    );
    let status = "SELECT status FROM residents WHERE id = $1";
    assert_eq!(
        text(&register, status, "R0003").await,
        "move_out_filed",
        "applied before the stop"
    );
    assert_eq!(
        text(&register, status, "R0004").await,
        "active",
        "nothing after it"
    );

    // The corrected file runs again from where it stopped.
    let path = write_file(dir.path(), "c.jsonl", &[line(&ok1), line(&ok2), line(&ok3)]);
    let done = import::apply_changes(&register, std::slice::from_ref(&path), &hidden())
        .await
        .unwrap();
    assert_eq!(
        done,
        ChangeSummary {
            applied: 2,
            already_applied: 1
        }
    );
    assert_eq!(text(&register, status, "R0003").await, "moved_out");
    assert_eq!(text(&register, status, "R0004").await, "deceased");

    // Malformed or refused changes, each as the next line of a file.
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "move_out", "change_id": "A1", "effective_on": "2026-11-30", "resident_id": "R0003"}),
            "change_id: was applied before with different content",
        ),
        (
            json!({"kind": "move_out", "change_id": "B1", "effective_on": "2026-11-30", "resident_id": "R0003"}),
            "resident_id: resident is already moved_out",
        ),
        (
            json!({"kind": "name_change", "change_id": "B2", "effective_on": "2026-11-30", "resident_id": "R0001"}),
            "family_name: missing (a name change changes a name)",
        ),
        (
            json!({"kind": "seal_abolition", "change_id": "B3", "effective_on": "2026-11-30", "resident_id": "R0002"}),
            "resident_id: has no live seal registration",
        ),
        (
            json!({"kind": "support_measure_lifted", "change_id": "B4", "effective_on": "2026-11-30", "person_ref": "R0001"}),
            "person_ref: has no active support measure",
        ),
        (
            json!({"kind": "resident", "change_id": "B5"}),
            "kind: is a register record; load it without --changes",
        ),
        (
            json!({"kind": "move_out", "change_id": "B6", "resident_id": "R0001"}),
            "effective_on: missing",
        ),
        (
            json!({"kind": "move_out", "effective_on": "2026-11-30", "resident_id": "R0001"}),
            "change_id: missing",
        ),
        (
            json!({"kind": "transfer", "change_id": "B7"}),
            "kind: unknown change kind; one of move_in, move_out_filed, move_out, death, name_change, seal_abolition, support_measure_set, support_measure_lifted",
        ),
        (
            json!({"kind": "death", "change_id": "B8", "effective_on": "2026-11-30", "resident_id": "R0001", "cause": "x"}),
            "cause: unknown field for kind death",
        ),
    ];
    for (i, (change, expected)) in cases.iter().enumerate() {
        let path = write_file(dir.path(), &format!("bad{i}.jsonl"), &[line(change)]);
        let failure = import::apply_changes(&register, std::slice::from_ref(&path), &hidden())
            .await
            .unwrap_err();
        let p = path.display().to_string();
        assert_eq!(failure.error.to_string(), format!("{p}:1: {expected}"));
        assert_eq!(failure.summary, ChangeSummary::default());
    }
    assert_eq!(count(&register, "applied_changes").await, 3);
    register.close().await;
}
on_both_databases!(change_file_stops_at_first_bad_change_and_resumes);

fn set(base: &Value, key: &str, value: Value) -> Vec<u8> {
    let mut v = base.clone();
    v[key] = value;
    line(&v)
}

fn unset(base: &Value, key: &str) -> Vec<u8> {
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove(key);
    line(&v)
}

fn example_line(n: usize) -> Value {
    let body = std::fs::read_to_string(example()).unwrap();
    serde_json::from_str(body.lines().nth(n - 1).unwrap()).unwrap()
}

/// Each malformed line with the refusal it must get (after `FILE:18: `).
fn malformed() -> Vec<(Vec<u8>, String)> {
    let household = example_line(1);
    let resident = example_line(4);
    let new_resident = set(&resident, "resident_id", json!("R0100"));
    let new_resident: Value = serde_json::from_slice(&new_resident).unwrap();
    let seal = example_line(7);
    let seal_new =
        serde_json::from_slice::<Value>(&set(&seal, "registration_number", json!("S0100")))
            .unwrap();
    let tax = example_line(9);
    let tax_new = serde_json::from_slice::<Value>(&set(&tax, "fiscal_year", json!(2025))).unwrap();
    let koseki = example_line(10);
    let member = example_line(11);
    let member_new = serde_json::from_slice::<Value>(&set(&member, "member_no", json!(9))).unwrap();
    let fuhyo = example_line(14);
    let measure =
        serde_json::from_slice::<Value>(&set(&example_line(16), "person_ref", json!("P9")))
            .unwrap();
    let pending =
        serde_json::from_slice::<Value>(&set(&example_line(17), "pending_change_id", json!("PC9")))
            .unwrap();
    let mut png_bad = new_resident.clone();
    png_bad["nationality"] = json!("ベトナム");
    let one = |s: &str| s.to_owned();
    vec![
        (
            b"{\"kind\": \"resident\",".to_vec(),
            one("line: is not valid JSON (column 20)"),
        ),
        (Vec::new(), one("line: is empty")),
        (b"[1, 2]".to_vec(), one("line: must be a JSON object")),
        (b"{\"resident_id\": \"R1\"}".to_vec(), one("kind: missing")),
        (
            set(&resident, "kind", json!(7)),
            one("kind: must be a string"),
        ),
        (
            set(&resident, "kind", json!("citizen")),
            format!("kind: unknown kind; one of {}", import::KINDS.join(", ")),
        ),
        (
            set(&resident, "kind", json!("move_out")),
            one("kind: is a change; apply change files with `issuer import --changes`"),
        ),
        (
            set(&new_resident, "nickname", json!("タロ")),
            one("nickname: unknown field for kind resident"),
        ),
        (
            unset(&new_resident, "family_name"),
            one("family_name: missing"),
        ),
        (
            set(&new_resident, "family_name", json!(12)),
            one("family_name: must be a string"),
        ),
        (
            set(&new_resident, "given_name", json!(" ")),
            one("given_name: must not be empty"),
        ),
        (
            set(&new_resident, "address", json!("千代田\u{7}区")),
            one("address: contains a control character"),
        ),
        (
            set(&new_resident, "address", json!("あ".repeat(401))),
            one("address: longer than 400 characters"),
        ),
        (
            set(&new_resident, "resident_id", json!("R 1/2")),
            one("resident_id: must be 1 to 64 of A-Z a-z 0-9 . _ : -"),
        ),
        (
            set(&new_resident, "family_name_kana", json!("山田")),
            one("family_name_kana: must be full-width katakana"),
        ),
        (
            set(&new_resident, "birth_date", json!("1982/07/15")),
            one("birth_date: must be a date YYYY-MM-DD"),
        ),
        (
            set(&new_resident, "birth_date", json!("2023-02-30")),
            one("birth_date: is not a calendar date"),
        ),
        (
            set(&new_resident, "birth_date", json!("1700-01-01")),
            one("birth_date: year must be 1868 to 2200"),
        ),
        (
            set(&new_resident, "municipality_code", json!("131017")),
            one("municipality_code: must be a 6-digit municipality code with its check digit"),
        ),
        (
            set(&new_resident, "municipality_code", json!("011002")),
            one(
                "municipality_code: municipality not in the register (add it first with `issuer municipality apply`)",
            ),
        ),
        (
            set(&new_resident, "sex", json!(3)),
            one("sex: must be 1 to 2"),
        ),
        (
            set(&new_resident, "sex", json!("1")),
            one("sex: must be an integer"),
        ),
        (
            set(&new_resident, "status", json!("gone")),
            one("status: must be one of active, move_out_filed, moved_out, deceased"),
        ),
        (
            set(&new_resident, "status", json!("moved_out")),
            one("status_date: missing (required unless status is active)"),
        ),
        (
            set(&new_resident, "resident_since", json!("1970-01-01")),
            one("resident_since: is before birth_date"),
        ),
        (
            line(&png_bad),
            one("residence_status: missing (foreign resident items are all four or none)"),
        ),
        (
            set(&new_resident, "individual_number", json!("12345678901")),
            one("individual_number: must be 12 digits"),
        ),
        (
            set(&new_resident, "individual_number", json!("123456789010")),
            one("individual_number: check digit does not match"),
        ),
        (
            set(
                &new_resident,
                "individual_number",
                example_line(3)["individual_number"].clone(),
            ),
            one("individual_number: already registered to another resident"),
        ),
        (
            line(&resident),
            one("resident_id: resident already in the register"),
        ),
        (
            set(&new_resident, "household_id", json!("H9999")),
            one("household_id: household not in the register (list it before its residents)"),
        ),
        (
            set(&household, "head_resident_id", json!("R0002")),
            one("household_id: household already in the register"),
        ),
        (
            set(
                &set_v(&household, "household_id", "H0100"),
                "head_resident_id",
                json!("R0001"),
            ),
            one("head_resident_id: is not a resident of this household"),
        ),
        (
            set(&new_resident, "koseki_id", json!("K9999")),
            one("koseki_id: koseki not in the register"),
        ),
        (
            set(&seal_new, "impression_png_base64", json!("%%%")),
            one("impression_png_base64: is not base64"),
        ),
        (
            set(&seal_new, "impression_png_base64", json!("aGVsbG8=")),
            one("impression_png_base64: is not a PNG image"),
        ),
        (
            set(&seal_new, "resident_id", json!("R9999")),
            one("resident_id: resident not in the register"),
        ),
        (
            set(&seal_new, "status", json!("abolished")),
            one("status_changed_at: missing (required unless status is active)"),
        ),
        (
            set(
                &set_v(&seal_new, "status", "abolished"),
                "status_changed_at",
                json!("2024-06-01"),
            ),
            one("status_changed_at: must be an RFC 3339 time with offset"),
        ),
        (
            set(&tax_new, "salary_income", json!(-1)),
            one("salary_income: must be 0 to 1000000000000"),
        ),
        (
            set(&tax_new, "fiscal_year", json!(1900)),
            one("fiscal_year: must be 1989 to 2200"),
        ),
        (
            line(&tax),
            one("fiscal_year: tax record of this resident and fiscal year already in the register"),
        ),
        (
            set(&koseki, "status", json!("open")),
            one("status: must be one of current, closed"),
        ),
        (
            set(&member_new, "koseki_id", json!("K9999")),
            one("koseki_id: koseki not in the register"),
        ),
        (
            set(&member_new, "events", json!([{"event_kind": "出生"}])),
            one("events[0].event_date: missing"),
        ),
        (
            set(&member_new, "events", json!({"event_kind": "出生"})),
            one("events: must be an array"),
        ),
        (
            set(&fuhyo, "member_no", json!(7)),
            one("member_no: koseki member not in the register"),
        ),
        (
            set(&measure, "covers_fuhyo", json!("yes")),
            one("covers_fuhyo: must be true or false"),
        ),
        (
            unset(&pending, "resident_id"),
            one("resident_id: missing (or koseki_id)"),
        ),
        (
            set(&pending, "resident_id", json!("R9999")),
            one("resident_id: resident not in the register"),
        ),
        (
            b"{\"kind\": \"resident\", \"family_name\": \"\xff\"}".to_vec(),
            one("line: is not UTF-8"),
        ),
        (vec![b'x'; 1024 * 1024 + 10], one("line: longer than 1 MiB")),
    ]
}

fn set_v(base: &Value, key: &str, value: &str) -> Value {
    serde_json::from_slice(&set(base, key, json!(value))).unwrap()
}

async fn malformed_lines_are_refused_and_change_nothing(db: &TestDb) {
    let register = register(db).await;
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read(example()).unwrap();
    let mut good: Vec<Vec<u8>> = body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    good.retain(|l| !l.is_empty());
    assert_eq!(good.len(), 17);
    let cases = malformed();
    assert!(cases.len() >= 30, "{} kinds", cases.len());
    for (i, (bad, expected)) in cases.into_iter().enumerate() {
        let mut lines = good.clone();
        lines.push(bad);
        let path = write_file(dir.path(), &format!("bad{i}.jsonl"), &lines);
        let err = import::load(&register, std::slice::from_ref(&path), &hidden())
            .await
            .unwrap_err();
        let p = path.display().to_string();
        assert_eq!(err.to_string(), format!("{p}:18: {expected}"), "case {i}");
        for table in [
            "residents",
            "households",
            "seal_registrations",
            "koseki",
            "pending_changes",
        ] {
            assert_eq!(
                count(&register, table).await,
                0,
                "case {i} left rows in {table}"
            );
        }
    }
    register.close().await;
}
on_both_databases!(malformed_lines_are_refused_and_change_nothing);

/// The decision after an imported 転出 reads it: a quote that passed is refused next time.
async fn imported_move_out_is_what_the_next_decision_reads(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let family = report.example(Case::Family).unwrap().clone();
    let item = RequestItem {
        ty: T::ResidentRecord,
        options: CertificateOptions::default(),
        subject_refs: Vec::new(),
        copies: 1,
    };
    issuer
        .quote(&family, std::slice::from_ref(&item), OPEN)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let change = json!({"kind": "move_out", "change_id": "T1", "effective_on": "2026-11-24", "resident_id": family.as_str()});
    let path = write_file(dir.path(), "move-out.jsonl", &[line(&change)]);
    let done = import::apply_changes(issuer.register(), &[path], &hidden())
        .await
        .unwrap();
    assert_eq!(done.applied, 1);
    match issuer.quote(&family, &[item], OPEN).await {
        Err(IssuerError::Refused(reason)) => assert_eq!(reason, Reason::MovedOut),
        other => panic!("expected MovedOut, got {other:?}"),
    }
    issuer.register().close().await;
}
on_both_databases!(imported_move_out_is_what_the_next_decision_reads);
