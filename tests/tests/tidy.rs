//! Conventions of the workspace, checked as tests so they do not depend on memory:
//! every crate forbids `unsafe`, every source file opens with a module doc, no test is
//! ignored or expects a panic, no stub macros in non-test code, and the crypto stack stays
//! ring-only in every manifest.
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
