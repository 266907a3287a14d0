//! Conventions of the workspace, checked as tests so they do not depend on memory:
//! every crate forbids `unsafe`, every source file opens with a module doc, no test is
//! ignored or expects a panic, no stub macros in non-test code, the crypto stack stays
//! ring-only in every manifest, and each concept of the shared vocabulary has one type.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CRATES: &[&str] = &[
    "proto",
    "document",
    "card",
    "issuer",
    "audit",
    "kiosk-gateway",
    "terminal",
    "tests",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for krate in CRATES {
        for sub in ["src", "tests", "benches"] {
            rust_files(&workspace_root().join(krate).join(sub), &mut files);
        }
    }
    assert!(
        files.len() > 20,
        "found only {} files: wrong root?",
        files.len()
    );
    files
}

#[test]
fn every_crate_root_forbids_unsafe() {
    for krate in CRATES {
        let root = workspace_root().join(krate).join("src/lib.rs");
        let text = std::fs::read_to_string(&root).unwrap();
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{} lacks #![forbid(unsafe_code)]",
            root.display()
        );
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut missing = Vec::new();
    for file in sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            missing.push(file.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a //! module doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_ignored_or_panic_expecting_tests_and_no_stubs() {
    let mut found = Vec::new();
    // Built from pieces so this file does not match itself.
    let ignore = ["#[", "ignore"].concat();
    let panic_attr = ["should", "_panic"].concat();
    let stubs = [["todo", "!("].concat(), ["unimplemented", "!("].concat()];
    for file in sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.display().to_string();
        if text.contains(&ignore) || text.contains(&panic_attr) {
            found.push(format!("{name}: an ignored test, or one expecting a panic"));
        }
        let is_test = name.contains("/tests/") || name.contains("/benches/");
        if !is_test && stubs.iter().any(|s| text.contains(s.as_str())) {
            found.push(format!("{name}: stub macro in non-test code"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn manifests_keep_one_crypto_stack() {
    let mut manifests = vec![workspace_root().join("Cargo.toml")];
    for krate in CRATES {
        manifests.push(workspace_root().join(krate).join("Cargo.toml"));
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        // Comments may explain the rule; only what is declared counts.
        let text: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for banned in ["aws-lc", "aws_lc", "openssl", "native-tls"] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}: one crypto stack (ring) only",
                manifest.display()
            );
        }
    }
}

/// Every `.rs` file under the workspace root, the fuzz crate included, outside build output
/// (`target/`, where the generated protobuf code lives) and fuzzer corpora.
fn all_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(
                name.to_str(),
                Some("target" | ".git" | "corpus" | "artifacts")
            ) {
                all_rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where `name` is defined as a type in `text`: `struct`, `enum` or `type` followed by the
/// name, or a line that is only `name {` (a type declared through a macro, as the audit log's
/// enums once were). Comments do not count.
fn definitions(text: &str, name: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
        .filter(|line| {
            let declared = ["struct ", "enum ", "type "].iter().any(|kw| {
                line.split(kw).skip(1).any(|rest| {
                    rest.strip_prefix(name).is_some_and(|after| {
                        !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
            });
            declared || line.trim_end() == format!("{name} {{")
        })
        .count()
}

/// Issue 11: the municipality code, the certificate type and the print outcome had drifted
/// apart as three or four types each. Each is defined once, in kiosk-document; the protobuf
/// enums (generated into `target/`) are the wire types and do not count.
#[test]
fn each_vocabulary_concept_has_one_definition() {
    let mut files = Vec::new();
    all_rust_files(&workspace_root(), &mut files);
    assert!(files.len() > 100, "found only {} files", files.len());
    // Built from pieces so this file does not define them itself.
    let concepts: [(&str, &[&str]); 3] = [
        ("the municipality code", &["Municipality", "Code"]),
        ("the certificate type", &["Certificate", "Type"]),
        ("the print outcome", &["Print", "Outcome|Print", "Result"]),
    ];
    let mut problems = Vec::new();
    for (concept, pieces) in concepts {
        let joined = pieces.concat();
        let names: Vec<&str> = joined.split('|').collect();
        let mut found = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for name in &names {
                for _ in 0..definitions(&text, name) {
                    found.push(format!("{name} in {}", file.display()));
                }
            }
        }
        if found.len() != 1 {
            problems.push(format!(
                "{concept}: {} definitions (want 1):\n  {}",
                found.len(),
                found.join("\n  ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_definition_finder_sees_every_form() {
    let name = ["Print", "Outcome"].concat();
    for (text, count) in [
        (format!("pub enum {name} {{"), 1),
        (format!("pub(crate) struct {name}(String);"), 1),
        (format!("type {name} = u8;"), 1),
        (format!("    {name} {{"), 1),
        (format!("/// the enum {name} is defined once"), 0),
        (format!("pub enum {name}s {{"), 0),
        (format!("fn f(o: {name}) {{}}"), 0),
    ] {
        assert_eq!(definitions(&text, &name), count, "{text}");
    }
}

/// Issue 11: kiosk-document is the vocabulary and format every reader shares, and does no I/O
/// (times are passed in), so a terminal, an auditor or an offline verifier can use it without
/// dragging in a runtime, a database or a clock. Only its `verify-document` binary reads files.
#[test]
fn kiosk_document_library_does_no_io() {
    let root = workspace_root().join("document");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.retain(|f| !f.starts_with(root.join("src/bin")));
    assert!(files.len() > 10, "found only {} files", files.len());
    // Built from pieces so this file does not match itself.
    let banned = [
        ["std::", "fs"].concat(),
        ["std::", "net"].concat(),
        ["std::", "env"].concat(),
        ["std::", "process"].concat(),
        ["System", "Time"].concat(),
        ["Instant", "::now"].concat(),
        ["now", "_utc"].concat(),
        ["tok", "io"].concat(),
        ["sq", "lx"].concat(),
    ];
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for b in &banned {
            if text.contains(b.as_str()) {
                found.push(format!("{}: {b}", file.display()));
            }
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or("");
    for runtime in ["tokio", "sqlx", "tonic", "kiosk-proto", "issuer", "card"] {
        let declared = dependencies
            .lines()
            .any(|line| line.split(['.', ' ', '=']).next() == Some(runtime));
        if declared {
            found.push(format!("document/Cargo.toml depends on {runtime}"));
        }
    }
    assert!(
        found.is_empty(),
        "I/O in kiosk-document:\n{}",
        found.join("\n")
    );
}
