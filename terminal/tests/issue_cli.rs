//! The reference terminal's `issue` command end to end: the real `kiosk-terminal` binary
//! against a gateway started by the shared harness (port 0, real TLS, software cards), used on
//! a pseudo-terminal as a person at the kiosk uses it. The PIN is typed at its prompt once the
//! terminal has switched echo off, and the certificate is picked by the number the printed menu
//! shows; `tests/pty_session.py` plays the person (rpassword reads the PIN from the controlling
//! terminal, so piped stdin cannot answer it).
//!
//! The test lives in this package because only its tests get `CARGO_BIN_EXE_kiosk-terminal`,
//! which cargo builds fresh for them.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiosk_devkit::cards::TEST_CARD_PIN;
use kiosk_devkit::softcard::CardFile;
use kiosk_document::ResidentRef;
use kiosk_gateway::store::{self, IssuanceState};
use kiosk_proto::v1 as pb;
use kiosk_tests::{Db, TERMINAL_1, TestApp, page_subjects, pdf_text, spawn_app};
use serde_json::json;

/// The PIN prompt of `kiosk-terminal issue` (its English half), as a regular expression.
const PIN_PROMPT: &str = r"PIN \(4 digits\): ";
/// The same prompt as printed.
const PIN_PROMPT_TEXT: &str = "PIN (4 digits): ";

/// What the command printed on its terminal, and how it ended.
struct Session {
    /// The exit status.
    status: i32,
    /// Everything shown on the terminal, echo included, with `\n` line ends.
    transcript: String,
}

/// Where the terminal finds the card.
enum CardIn<'a> {
    /// A software card file (`--card`).
    File(&'a Path),
    /// A PC/SC reader (`--reader`).
    #[cfg_attr(not(feature = "pcsc"), allow(dead_code))]
    Reader(&'a str),
}

/// Runs `kiosk-terminal issue --card <card> --out <out> <extra>` (or `--reader <name>`)
/// against `app` on a new pseudo-terminal and answers its prompts with `steps` (see
/// `tests/pty_session.py`).
async fn issue_on_a_terminal(
    app: &TestApp,
    card: CardIn<'_>,
    out: &Path,
    extra: &[&str],
    steps: serde_json::Value,
) -> Session {
    let output = tokio::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_session.py"))
        .arg(steps.to_string())
        .arg(env!("CARGO_BIN_EXE_kiosk-terminal"))
        .arg("--gateway")
        .arg(&app.url)
        .arg("--pki")
        .arg(app.pki_dir())
        .arg("--terminal")
        .arg(TERMINAL_1)
        .arg("--server-name")
        .arg("localhost")
        .arg("issue")
        .args(match card {
            CardIn::File(path) => ["--card".as_ref(), path.as_os_str()],
            CardIn::Reader(name) => ["--reader".as_ref(), name.as_ref()],
        })
        .arg("--out")
        .arg(out)
        .args(extra)
        // The command line above says everything; nothing may come from the environment.
        .env_remove("KIOSK_GATEWAY")
        .env_remove("KIOSK_PKI")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python3 runs the pty driver");
    let transcript = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
    // The command's own stderr goes to the pty; the driver's stderr is only its own failures.
    let driver = String::from_utf8_lossy(&output.stderr);
    assert!(
        driver.trim().is_empty(),
        "the session at the terminal broke off: {driver}\ntranscript:\n{transcript}"
    );
    Session {
        status: output
            .status
            .code()
            .expect("the driver exits with a status"),
        transcript,
    }
}

/// The step that types `pin` at the PIN prompt, once echo is off.
fn type_pin(pin: &str) -> serde_json::Value {
    json!({ "expect": PIN_PROMPT, "answer": format!("{pin}\n"), "secret": true })
}

/// What follows the PIN prompt on the screen up to the end of that line: with echo off,
/// nothing (rpassword echoes only the newline).
fn typed_after_the_pin_prompt(transcript: &str) -> &str {
    let (_, after) = transcript
        .split_once(PIN_PROMPT_TEXT)
        .expect("the PIN prompt was shown");
    after.split('\n').next().unwrap_or("")
}

/// The files in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Every event of the gateway's audit log, through AuditService.
async fn audit_events(app: &TestApp) -> Vec<pb::AuditEvent> {
    let mut stream = app
        .auditor()
        .await
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    events
}

/// The user-authentication PIN tries the card file has left.
fn tries_left(card: &Path) -> u8 {
    CardFile::load(card)
        .unwrap()
        .auth
        .expect("a JPKI card has the authentication side")
        .tries_left
}

/// Every digit of the right PIN, one up: a PIN of the right form that is surely wrong.
fn wrong_pin() -> String {
    let wrong: String = TEST_CARD_PIN
        .chars()
        .map(|c| char::from_digit((c.to_digit(10).unwrap() + 1) % 10, 10).unwrap())
        .collect();
    assert_ne!(wrong, TEST_CARD_PIN);
    wrong
}

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_types_the_pin_picks_from_the_menu_and_the_documents_are_printed() {
    let app = spawn_app(Db::Sqlite).await;
    let resident = app.examples("Family")[0].clone();
    let card = app.embedded.card_of(&resident).unwrap().card_file.clone();
    let out = app.dir.path().join("printed");

    let session = issue_on_a_terminal(
        &app,
        CardIn::File(&card),
        &out,
        &[],
        json!([
            type_pin(TEST_CARD_PIN),
            // The person reads the menu, finds 住民票の写し with its fee (not greyed out with ×)
            // and types its number at the prompt that follows.
            {
                "expect": r"(?s)\[(\d+)\] 住民票の写し +\d+ 円.*choose \(e\.g\. 1,3\): ",
                "answer": "\\1\n",
            },
        ]),
    )
    .await;
    let transcript = &session.transcript;
    assert_eq!(session.status, 0, "the command failed:\n{transcript}");

    assert!(
        transcript.contains("report: ISSUANCE_STATE_PRINTED"),
        "{transcript}"
    );
    let pdfs = files_in(&out);
    assert_eq!(
        pdfs.len(),
        1,
        "one PDF for one item: {pdfs:?}\n{transcript}"
    );

    // The PIN went to the card only: the terminal never showed it. The random parts of the
    // screen (the temporary folder, the serial) are masked first, so that they cannot
    // contain the PIN's digits by chance.
    assert_eq!(
        typed_after_the_pin_prompt(transcript),
        "",
        "the PIN was echoed:\n{transcript}"
    );
    let screen = transcript.replace(out.to_str().unwrap(), "<out>").replace(
        pdfs[0].file_name().unwrap().to_str().unwrap(),
        "<serial>.pdf",
    );
    assert!(
        !screen.contains(TEST_CARD_PIN),
        "the PIN appears on the screen:\n{transcript}"
    );
    assert_eq!(tries_left(&card), 3, "a right PIN keeps every try");

    // One document, written as <serial>.pdf, about the card's resident and naming them.
    let pdf = std::fs::read(&pdfs[0]).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(pdfs[0].extension().unwrap(), "pdf");
    let serial = pdfs[0].file_stem().unwrap().to_str().unwrap().to_owned();
    let pages = page_subjects(&pdf);
    assert!(!pages.is_empty(), "the PDF carries page markers");
    let issuance_id = pages[0].0.clone();
    for (issuance, subjects) in &pages {
        assert_eq!(issuance, &issuance_id, "every page belongs to one issuance");
        assert!(
            subjects.contains(&resident),
            "a page not about the resident"
        );
    }
    let person = {
        let mut conn = app.embedded.register.pool().acquire().await.unwrap();
        issuer::register::read::resident(&mut conn, &ResidentRef::parse(&resident).unwrap())
            .await
            .unwrap()
            .expect("the card's resident is in the register")
    };
    let text = without_spaces(&pdf_text(&pdf));
    assert!(text.contains(&serial), "the file is named by its serial");
    assert!(
        text.contains(&without_spaces(&person.family_name))
            && text.contains(&without_spaces(&person.given_name)),
        "the document does not name the card's resident"
    );

    // The gateway recorded that issuance, for this resident, as printed and paid.
    let row = {
        let mut conn = app.flow.store().pool().acquire().await.unwrap();
        store::issuance(&mut conn, &issuance_id)
            .await
            .unwrap()
            .expect("the gateway recorded the issuance")
    };
    assert_eq!(row.state, IssuanceState::Printed);
    assert_eq!(row.resident_ref, resident);
    assert_eq!(row.collected_yen, Some(row.total_fee_yen));
    assert!(
        transcript.contains(&format!("合計 / total: {} 円", row.total_fee_yen)),
        "the total shown is the total recorded:\n{transcript}"
    );

    // Its audit trail: rendered, released, reported printed; and the session was closed.
    let events = audit_events(&app).await;
    let chain: Vec<&pb::AuditEvent> = events
        .iter()
        .filter(|e| e.issuance_id == issuance_id)
        .collect();
    let types: Vec<i32> = chain.iter().map(|e| e.r#type).collect();
    assert_eq!(
        types,
        vec![
            pb::AuditEventType::IssuanceRendered as i32,
            pb::AuditEventType::DocumentsReleased as i32,
            pb::AuditEventType::PrintReported as i32,
        ]
    );
    let report = chain[2];
    assert_eq!(
        report.attributes.get("outcome").map(String::as_str),
        Some("PRINTED")
    );
    assert!(
        events
            .iter()
            .any(|e| e.r#type == pb::AuditEventType::SessionClosed as i32
                && e.session_id == report.session_id),
        "the terminal closed its session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_shows_the_tries_left_and_issues_nothing() {
    let app = spawn_app(Db::Sqlite).await;
    let resident = app.examples("Family")[0].clone();
    let card = app.embedded.card_of(&resident).unwrap().card_file.clone();
    let out = app.dir.path().join("printed");
    let wrong = wrong_pin();

    // The item is chosen on the command line, so only the PIN stands between it and an issue.
    let session = issue_on_a_terminal(
        &app,
        CardIn::File(&card),
        &out,
        &["--type", "RESIDENT_RECORD"],
        json!([type_pin(&wrong)]),
    )
    .await;
    let transcript = &session.transcript;
    assert_ne!(session.status, 0, "a wrong PIN must fail:\n{transcript}");
    assert!(
        transcript.contains("PIN_WRONG") && transcript.contains("2 tries left"),
        "the card's remaining tries are shown:\n{transcript}"
    );
    // The kiosk's texts for the reason, from the contract's table, in both languages.
    let texts = kiosk_proto::reasons::PIN_WRONG;
    assert!(
        transcript.contains(texts.ja) && transcript.contains(texts.en),
        "the ja-JP and en-US texts are shown:\n{transcript}"
    );
    assert_eq!(typed_after_the_pin_prompt(transcript), "", "{transcript}");
    assert!(
        !transcript.contains(&wrong),
        "the PIN appears on the screen:\n{transcript}"
    );
    // The software card keeps its counter in its file, as a real card does.
    assert_eq!(tries_left(&card), 2);
    assert!(files_in(&out).is_empty(), "no document may be written");

    // The terminal did reach the gateway (it opened a session before asking for the PIN), and
    // nothing beyond that happened there.
    let events = audit_events(&app).await;
    let has = |t: pb::AuditEventType| events.iter().any(|e| e.r#type == t as i32);
    assert!(has(pb::AuditEventType::SessionOpened));
    // The terminal ends the session at once instead of leaving it to the idle timeout.
    assert!(has(pb::AuditEventType::SessionClosed), "session left open");
    for t in [
        pb::AuditEventType::CardAuthPassed,
        pb::AuditEventType::MenuShown,
        pb::AuditEventType::IssuanceRendered,
        pb::AuditEventType::DocumentsReleased,
        pb::AuditEventType::PrintReported,
    ] {
        assert!(!has(t), "{t:?} after a wrong PIN");
    }
    let issuances: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM issuances")
        .fetch_one(app.flow.store().pool())
        .await
        .unwrap();
    assert_eq!(issuances, 0, "the gateway recorded an issuance");
}

/// The same person at a kiosk with a real card reader: the card sits in a PC/SC reader served
/// by a private pcscd with the vpcd driver and `card-emulator`
/// (`kiosk_devkit::testing::PcscStack`), and the terminal reaches it only through libpcsclite.
/// A wrong PIN first, then the right one.
#[cfg(feature = "pcsc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_in_a_pcsc_reader_signs_the_login() {
    let app = spawn_app(Db::Sqlite).await;
    let resident = app.examples("Family")[0].clone();
    let card = app.embedded.card_of(&resident).unwrap().card_file.clone();
    let out = app.dir.path().join("printed");
    // kiosk-devkit's emulator, built into the same directory by any workspace test run
    // (kiosk-devkit's own PC/SC tests need it); cargo names only this package's binaries.
    let emulator = Path::new(env!("CARGO_BIN_EXE_kiosk-terminal"))
        .with_file_name(format!("card-emulator{}", std::env::consts::EXE_SUFFIX));
    assert!(
        emulator.exists(),
        "{} is missing: run the workspace tests (bash scripts/test.sh) or \
         `cargo build -p kiosk-devkit --bin card-emulator` first",
        emulator.display()
    );
    let (stack, inserted) = tokio::task::spawn_blocking(move || {
        let stack = kiosk_devkit::testing::PcscStack::start().unwrap();
        let inserted = stack.insert_card(&emulator, &card, 0).unwrap();
        (stack, inserted)
    })
    .await
    .unwrap();
    let reader = stack.reader(0);

    let wrong = wrong_pin();
    let refused = issue_on_a_terminal(
        &app,
        CardIn::Reader(&reader),
        &out,
        &["--type", "RESIDENT_RECORD"],
        json!([type_pin(&wrong)]),
    )
    .await;
    assert_ne!(refused.status, 0, "{}", refused.transcript);
    assert!(
        refused.transcript.contains("PIN_WRONG") && refused.transcript.contains("2 tries left"),
        "the card behind the reader counts the try:\n{}",
        refused.transcript
    );

    let session = issue_on_a_terminal(
        &app,
        CardIn::Reader(&reader),
        &out,
        &["--type", "RESIDENT_RECORD"],
        json!([type_pin(TEST_CARD_PIN)]),
    )
    .await;
    let transcript = &session.transcript;
    assert_eq!(session.status, 0, "the command failed:\n{transcript}");
    assert!(
        transcript.contains("report: ISSUANCE_STATE_PRINTED"),
        "{transcript}"
    );
    let pdfs = files_in(&out);
    assert_eq!(pdfs.len(), 1, "{pdfs:?}\n{transcript}");
    for (_, subjects) in page_subjects(&std::fs::read(&pdfs[0]).unwrap()) {
        assert_eq!(subjects, std::slice::from_ref(&resident));
    }
    drop(inserted);
    drop(stack);
}
