//! The vendor guide's card commands are what the card answers: every row of the table "The
//! card's commands" in docs/terminal-integration.md is sent, in order, to the software card of
//! a My Number Card and of a 住基カード, and each answer is compared with the one the guide
//! states. The guide and the card (and card/README.md, which describes the same behaviour)
//! cannot part again without this failing.
// Helpers outside #[test] functions panic on purpose: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kiosk_devkit::softcard::{CardFile, SoftCard};

/// One expected answer byte: a value, any byte (`..`), or any `n` bytes (`<n bytes>`).
#[derive(Debug, Clone, Copy)]
enum Want {
    Byte(u8),
    Any,
    AnyRun(usize),
}

/// One row of the guide's table: the step, the command, and each card's answer (`None`
/// where the guide sends nothing to that card).
struct Row {
    step: String,
    command: Vec<u8>,
    my_number: Option<Vec<Want>>,
    juki: Option<Vec<Want>>,
}

fn cell_text(cell: &str) -> &str {
    cell.trim().trim_matches('`').trim()
}

/// The tokens of a cell, `<n bytes>` kept as one token.
fn tokens(cell: &str) -> Vec<String> {
    let text = cell_text(cell).replace(" bytes>", "-bytes>");
    text.split_whitespace().map(str::to_owned).collect()
}

fn run_length(token: &str) -> Option<usize> {
    token
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix("-bytes>"))
        .map(|n| n.parse().expect("a byte count"))
}

fn command(cell: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for token in tokens(cell) {
        match run_length(&token) {
            // A DigestInfo's length of bytes: any content signs.
            Some(n) => bytes.extend(std::iter::repeat_n(0x5A, n)),
            None => bytes.push(u8::from_str_radix(&token, 16).expect("hex byte")),
        }
    }
    bytes
}

fn answer(cell: &str) -> Option<Vec<Want>> {
    if cell_text(cell).is_empty() {
        return None;
    }
    let wants = tokens(cell)
        .iter()
        .map(|token| match (token.as_str(), run_length(token)) {
            ("..", _) => Want::Any,
            (_, Some(n)) => Want::AnyRun(n),
            _ => Want::Byte(u8::from_str_radix(token, 16).expect("hex byte")),
        })
        .collect();
    Some(wants)
}

fn guide_rows() -> Vec<Row> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/terminal-integration.md");
    let guide = std::fs::read_to_string(path).expect("docs/terminal-integration.md");
    let section = guide
        .split("### The card's commands")
        .nth(1)
        .expect("the guide has a section \"The card's commands\"");
    let rows: Vec<Row> = section
        .lines()
        .skip_while(|line| !line.starts_with("| step |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            assert_eq!(cells.len(), 4, "four cells: {line}");
            Row {
                step: cells[0].trim().to_owned(),
                command: command(cells[1]),
                my_number: answer(cells[2]),
                juki: answer(cells[3]),
            }
        })
        .collect();
    assert!(rows.len() >= 10, "the table of card commands is there");
    rows
}

fn matches(wants: &[Want], got: &[u8]) -> bool {
    let mut at = 0;
    for want in wants {
        match want {
            Want::Byte(b) if got.get(at) == Some(b) => at += 1,
            Want::Any if at < got.len() => at += 1,
            Want::AnyRun(n) if at + n <= got.len() => at += n,
            _ => return false,
        }
    }
    at == got.len()
}

fn card(name: &str) -> SoftCard {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/pki/cards")
        .join(format!("{name}.toml"));
    SoftCard::from_file(CardFile::load(&path).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_guides_card_commands_are_what_the_card_answers() {
    let rows = guide_rows();
    let mut my_number = card("resident-0001");
    let mut juki = card("juki-0004");
    let mut sent_to_juki = 0;
    for row in &rows {
        for (name, card, want) in [
            ("My Number Card", &mut my_number, &row.my_number),
            ("住基カード", &mut juki, &row.juki),
        ] {
            let Some(want) = want else { continue };
            if name == "住基カード" {
                sent_to_juki += 1;
            }
            let got = card.process(&row.command);
            assert!(
                matches(want, &got),
                "{} on the {name}: the guide says {want:?}, the card answered {}",
                row.step,
                hex(&got)
            );
        }
    }
    assert!(
        sent_to_juki >= 3,
        "the guide tells how a 住基カード answers"
    );
}

#[test]
fn the_guide_and_the_card_readme_describe_the_juki_card_once_and_alike() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let guide = std::fs::read_to_string(root.join("docs/terminal-integration.md")).unwrap();
    // The old words said the opposite of what the card does.
    assert!(!guide.contains("住基カード has no\n      JPKI AP"));
    assert!(!guide.contains("住基カード has no JPKI AP"));
    let readme = std::fs::read_to_string(root.join("card/README.md")).unwrap();
    assert!(readme.contains("docs/terminal-integration.md"));
}
