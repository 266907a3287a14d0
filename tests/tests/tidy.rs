//! Conventions of the workspace, checked as tests so they do not depend on memory:
//! every crate forbids `unsafe`, every source file opens with a module doc, no test is
//! ignored or expects a panic, no stub macros in non-test code, the crypto stack stays
//! ring-only in every manifest, each concept of the shared vocabulary has one type, and
//! production crates do not reach the test and demo fixtures of kiosk-devkit.
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
    "devkit",
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

/// The packages a manifest depends on outside its tests: every dependency declared in a
/// `[dependencies]` or `[build-dependencies]` table, also per target
/// (`[target.'cfg(..)'.dependencies]`) and in the one-table-per-dependency form
/// (`[dependencies.name]`), by package name (`alias = { package = "name" }` counts as
/// `name`). `[dev-dependencies]` do not count. Comments do not count.
fn production_dependencies(manifest: &str) -> Vec<String> {
    /// Whether a table header (without brackets) is a table of production dependencies:
    /// `dependencies`, `build-dependencies`, or either under `target.<spec>.`.
    fn dependency_table(header: &str) -> bool {
        let table = match header.strip_prefix("target.") {
            Some(rest) => rest.rsplit('.').next().unwrap_or(""),
            None => header,
        };
        matches!(table, "dependencies" | "build-dependencies")
    }
    fn unquote(key: &str) -> String {
        key.trim().trim_matches('"').trim_matches('\'').to_owned()
    }
    /// The string value of `package = "name"` in an inline table or a value, if any.
    fn package_of(value: &str) -> Option<String> {
        let (_, rest) = value.split_once("package")?;
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        rest.split_once('"').map(|(name, _)| name.to_owned())
    }
    let mut found = Vec::new();
    // None: another table; Some(None): a dependency table; Some(Some(i)): the table of the
    // one dependency `found[i]` (`[dependencies.name]`).
    let mut table: Option<Option<usize>> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim();
            table = if dependency_table(header) {
                Some(None)
            } else if let Some((_, name)) = header
                .rsplit_once('.')
                .filter(|(parent, _)| dependency_table(parent))
            {
                found.push(unquote(name));
                Some(Some(found.len() - 1))
            } else {
                None
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match table {
            Some(None) => {
                let name = unquote(key.split('.').next().unwrap_or(""));
                found.push(package_of(value).unwrap_or(name));
            }
            // `package = "name"` inside `[dependencies.alias]`: the package is `name`.
            Some(Some(i)) if key.trim() == "package" => {
                if let Some(package) = package_of(line) {
                    found[i] = package;
                }
            }
            _ => {}
        }
    }
    found
}

/// The crates production runs (libraries and their binaries) must not reach the fixtures.
const PRODUCTION_CRATES: &[&str] = &["card", "issuer", "document", "audit", "db", "proto"];

/// Issue 11: the test PKI, the software card, the synthetic register and the rest of the test
/// and demo fixtures live in kiosk-devkit; no production crate depends on it outside its tests.
#[test]
fn production_crates_do_not_depend_on_the_fixtures() {
    let mut found = Vec::new();
    for krate in PRODUCTION_CRATES {
        let manifest = workspace_root().join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let dependencies = production_dependencies(&text);
        // A manifest the parser reads nothing from would pass for the wrong reason.
        assert!(
            !dependencies.is_empty(),
            "no dependencies found in {}",
            manifest.display()
        );
        if dependencies.iter().any(|d| d == "kiosk-devkit") {
            found.push(manifest.display().to_string());
        }
    }
    assert!(
        found.is_empty(),
        "production crates depending on kiosk-devkit (make it a dev-dependency):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_dependency_parser_sees_every_form() {
    let devkit = ["kiosk", "-devkit"].concat();
    for (manifest, declared) in [
        (format!("[dependencies]\n{devkit}.workspace = true\n"), true),
        (
            format!("[dependencies]\n{devkit} = {{ path = \"../devkit\" }}\n"),
            true,
        ),
        (format!("[dependencies]\n\"{devkit}\" = \"0.1\"\n"), true),
        (
            format!("[dependencies.{devkit}]\npath = \"../devkit\"\n"),
            true,
        ),
        (
            format!("[target.'cfg(unix)'.dependencies]\n{devkit} = \"0.1\"\n"),
            true,
        ),
        (
            format!("[build-dependencies]\n{devkit}.workspace = true\n"),
            true,
        ),
        (
            format!("[dependencies]\nfixtures = {{ package = \"{devkit}\", path = \"x\" }}\n"),
            true,
        ),
        (
            format!(
                "[dependencies]\nring.workspace = true\n\n[dev-dependencies]\n{devkit}.workspace = true\n"
            ),
            false,
        ),
        (
            format!("[dependencies.fixtures]\npackage = \"{devkit}\"\npath = \"x\"\n"),
            true,
        ),
        (
            format!("[dev-dependencies.{devkit}]\npath = \"../devkit\"\n"),
            false,
        ),
        (
            format!("[dependencies]\n# {devkit}.workspace = true\n"),
            false,
        ),
        (format!("[dependencies]\n{devkit}-extra = \"1\"\n"), false),
        (
            format!("[features]\nfixtures = [\"{devkit}/pcsc\"]\n"),
            false,
        ),
    ] {
        assert_eq!(
            production_dependencies(&manifest).contains(&devkit),
            declared,
            "{manifest}"
        );
    }
}

/// Where code may name the test PKI: the fixtures themselves, the end-to-end tests,
/// the reference terminal, the gateway's embedded default and demo, and the fuzz targets;
/// besides, anything in a `tests`, `benches` or `examples` directory, and what follows a
/// `#[cfg(test)]` line. Paths are relative to the workspace root.
const MAY_NAME_THE_TEST_PKI: &[&str] = &[
    "devkit/",
    "tests/",
    "terminal/",
    "kiosk-gateway/src/provision.rs",
    "kiosk-gateway/src/demo.rs",
    "fuzz/",
    // Until the gateway's embedded default goes behind its `embedded` feature (issue 11, in
    // progress on another branch): the development client CRLs and the default card CRL path.
    "kiosk-gateway/src/revocation.rs",
    "kiosk-gateway/src/config.rs",
];

/// Whether `path` (relative to the workspace root, `/`-separated) may mention the test PKI.
fn may_name_the_test_pki(path: &str) -> bool {
    MAY_NAME_THE_TEST_PKI.iter().any(|p| path.starts_with(p))
        || path
            .split('/')
            .any(|dir| matches!(dir, "tests" | "benches" | "examples"))
}

/// The part of a source file that is not test code: everything before its first
/// `#[cfg(test)]` line (test modules come last in this workspace's files).
fn outside_tests(text: &str) -> &str {
    let marker = ["#[cfg(", "test)]"].concat();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(&marker) {
            return &text[..start];
        }
        start += line.len();
    }
    text
}

/// Issue 11: production code does not reach the test PKI (kiosk-devkit's `testpki`).
#[test]
fn production_code_does_not_name_the_test_pki() {
    let root = workspace_root();
    let mut files = Vec::new();
    all_rust_files(&root, &mut files);
    assert!(files.len() > 100, "found only {} files", files.len());
    // Built from pieces so this file does not match itself.
    let needle = ["test", "pki"].concat();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap();
        let relative = relative.to_string_lossy().replace('\\', "/");
        if may_name_the_test_pki(&relative) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if outside_tests(&text).contains(&needle) {
            found.push(relative);
        }
    }
    assert!(
        found.is_empty(),
        "production code naming the test PKI (a fixture of kiosk-devkit):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_test_pki_finder_sees_what_it_must() {
    let needle = ["test", "pki"].concat();
    assert!(!may_name_the_test_pki("issuer/src/serve.rs"));
    assert!(!may_name_the_test_pki("card/src/lib.rs"));
    assert!(!may_name_the_test_pki("kiosk-gateway/src/cli.rs"));
    assert!(may_name_the_test_pki("issuer/tests/common/mod.rs"));
    assert!(may_name_the_test_pki(
        "issuer/src/document/tests/pdf_signature.rs"
    ));
    assert!(may_name_the_test_pki("kiosk-gateway/src/provision.rs"));
    assert!(may_name_the_test_pki("devkit/src/testpki.rs"));
    let production = format!("use kiosk_devkit::{needle}::DevPki;\nfn f() {{}}\n");
    assert!(outside_tests(&production).contains(&needle));
    let in_tests =
        format!("fn f() {{}}\n\n#[cfg(test)]\nmod tests {{\n    use kiosk_devkit::{needle};\n}}\n");
    assert!(!outside_tests(&in_tests).contains(&needle));
    assert_eq!(outside_tests("#[cfg(test)]\nmod tests {}\n"), "");
    let windows = format!("fn f() {{}}\r\n  #[cfg(test)]\r\nmod tests {{ use {needle}; }}\r\n");
    assert_eq!(outside_tests(&windows), "fn f() {}\r\n");
    let attribute_elsewhere = format!("#[cfg(not(test))]\nuse kiosk_devkit::{needle};\n");
    assert!(outside_tests(&attribute_elsewhere).contains(&needle));
}
