//! Conventions of the workspace, checked as tests so they do not depend on memory:
//! every crate forbids `unsafe`, every source file opens with a module doc, no test is
//! ignored or expects a panic, no stub macros in non-test code, the crypto stack stays
//! ring-only in every manifest, each concept of the shared vocabulary has one type, and
//! production crates do not reach the test and demo fixtures of kiosk-devkit.
//! Issue 11's size and layering rules too: outside devkit/, tests and fuzzing, no function
//! over 100 lines, no file over 1,000 lines before its tests, no module cycle in any crate
//! (the scanners are in `tidy/scan.rs`, with tests of their own at the end of this file).
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

#[path = "tidy/scan.rs"]
mod scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CRATES: &[&str] = &[
    "proto",
    "db",
    "document",
    "card",
    "issuer",
    "audit",
    "keys",
    "devkit",
    "kiosk-gateway",
    "terminal",
    "tests",
    "conformance",
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

/// The most lines a function may span, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 100;
/// The most lines a file may have before its first `#[cfg(test)]` line.
const MAX_FILE_LINES: usize = 1_000;

/// A source file of shipped code, as a path relative to the workspace root (with `/`).
struct Source {
    relative: String,
    masked: String,
}

/// Where the modules a file declares live: next to `lib.rs`, `main.rs` and `mod.rs`, else in
/// the directory named after the file.
fn child_module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "main" | "mod") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// Every `.rs` file of shipped code: not in devkit/, the tests crate or fuzz/, not an
/// integration test or benchmark (`tests/`, `benches/` directories), and not a module file
/// declared under `#[cfg(test)]` (with everything below it).
fn shipped_sources() -> Vec<Source> {
    let root = workspace_root();
    let mut files = Vec::new();
    all_rust_files(&root, &mut files);
    let mut sources = Vec::new();
    let mut test_modules: Vec<PathBuf> = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = relative.split('/').next().unwrap_or("");
        let harness = relative
            .split('/')
            .any(|part| matches!(part, "tests" | "benches"));
        if matches!(top, "devkit" | "tests" | "fuzz") || harness {
            continue;
        }
        let masked = scan::mask(&std::fs::read_to_string(&file).unwrap());
        for item in scan::test_items(&masked) {
            if let Some(name) = item.declares {
                let dir = child_module_dir(&file);
                test_modules.push(dir.join(format!("{name}.rs")));
                test_modules.push(dir.join(name));
            }
        }
        sources.push((file, Source { relative, masked }));
    }
    assert!(sources.len() > 100, "found only {} files", sources.len());
    sources
        .into_iter()
        .filter(|(file, _)| !test_modules.iter().any(|t| file.starts_with(t)))
        .map(|(_, source)| source)
        .collect()
}

/// The functions of a file longer than `max` lines, outside `#[cfg(test)]` items, as
/// `path:line name (N lines)`.
fn long_functions(relative: &str, masked: &str, max: usize) -> Vec<String> {
    let tests = scan::test_items(masked);
    scan::functions(masked)
        .into_iter()
        .filter(|f| f.lines > max && !tests.iter().any(|t| t.range.contains(&f.pos)))
        .map(|f| format!("{relative}:{} {} ({} lines)", f.line, f.name, f.lines))
        .collect()
}

/// Issue 11: a function that does not fit on a couple of screens does several things; split
/// it into named steps.
#[test]
fn no_function_over_100_lines() {
    let mut offenders = Vec::new();
    for source in shipped_sources() {
        offenders.extend(long_functions(
            &source.relative,
            &source.masked,
            MAX_FUNCTION_LINES,
        ));
    }
    assert!(
        offenders.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        offenders.join("\n")
    );
}

/// Issue 11: a file over 1,000 lines (its tests apart) holds several concerns; split it into
/// submodules along its seams.
#[test]
fn no_file_over_1000_lines() {
    let mut offenders = Vec::new();
    for source in shipped_sources() {
        let lines = scan::lines_before_tests(&source.masked);
        if lines > MAX_FILE_LINES {
            offenders.push(format!("{} ({lines} lines)", source.relative));
        }
    }
    assert!(
        offenders.is_empty(),
        "files over {MAX_FILE_LINES} lines before their tests:\n{}",
        offenders.join("\n")
    );
}

/// The compilation target a file of `<crate>/src/` belongs to and its module path there:
/// `src/bin/x.rs` and `src/bin/x/` are binary `x`, `src/main.rs` the main binary (whose
/// modules, if any, would be beside it), everything else the library.
fn target_and_module(in_src: &str) -> (String, Vec<String>) {
    let parts: Vec<&str> = in_src.split('/').collect();
    let (target, rest) = match parts.as_slice() {
        ["bin", file] => (format!("bin {}", file.trim_end_matches(".rs")), &[][..]),
        ["bin", dir, rest @ ..] => (format!("bin {dir}"), rest),
        ["main.rs"] => ("main".to_owned(), &[][..]),
        rest => ("lib".to_owned(), rest),
    };
    let mut module: Vec<String> = rest
        .iter()
        .map(|p| p.trim_end_matches(".rs").to_owned())
        .collect();
    let is_root = module.len() == 1 && matches!(module[0].as_str(), "lib" | "main");
    if is_root || module.last().is_some_and(|last| last == "mod") {
        module.pop();
    }
    (target, module)
}

/// The module graph of one compilation target from its files (module path, display path,
/// masked text): an edge for every `crate::`/`super::` reference into another module.
fn module_graph(files: &[(Vec<String>, String, String)]) -> scan::Graph {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let mut graph = scan::Graph::new();
    for (module, relative, masked) in files {
        let edges = graph.entry(module.clone()).or_default();
        for reference in scan::references(masked, module) {
            let target = scan::target_module(&reference.path, &modules);
            if &target != module {
                edges
                    .entry(target)
                    .or_insert_with(|| format!("{relative}:{}", reference.line));
            }
        }
    }
    graph
}

fn module_name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// Each cycle of `graph` as `a -> b -> a`, then where each step is written.
fn describe_cycles(graph: &scan::Graph) -> Vec<String> {
    scan::cycles(graph)
        .iter()
        .map(|cycle| {
            let names: Vec<String> = cycle.iter().map(|m| module_name(m)).collect();
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    let at = &graph[&pair[0]][&pair[1]];
                    format!(
                        "    {} -> {} at {at}",
                        module_name(&pair[0]),
                        module_name(&pair[1])
                    )
                })
                .collect();
            format!("{}\n{}", names.join(" -> "), steps.join("\n"))
        })
        .collect()
}

/// Issue 11: modules of one crate that need each other are one concern split in two, or
/// two concerns tangled; either way neither can be read, tested or moved alone. (Crates
/// cannot form cycles: cargo refuses them.) Exempt files contribute no references.
#[test]
fn no_module_cycles() {
    let mut by_target: std::collections::BTreeMap<String, Vec<(Vec<String>, String, String)>> =
        Default::default();
    for source in shipped_sources() {
        let Some((krate, in_src)) = source.relative.split_once("/src/") else {
            continue; // build scripts
        };
        let (target, module) = target_and_module(in_src);
        by_target
            .entry(format!("{krate} ({target})"))
            .or_default()
            .push((module, source.relative, source.masked));
    }
    assert!(by_target.len() >= 8, "found only {by_target:?}");
    let mut problems = Vec::new();
    for (target, files) in &by_target {
        for cycle in describe_cycles(&module_graph(files)) {
            problems.push(format!("{target}: {cycle}"));
        }
    }
    assert!(
        problems.is_empty(),
        "module cycles:\n{}",
        problems.join("\n")
    );
}

/// A function of `body_lines` lines between its `fn` line and its closing brace.
fn function_of(body_lines: usize) -> String {
    let mut text = String::from("pub fn long(x: u8) -> u8 {\n");
    for n in 0..body_lines {
        text.push_str(&format!("    let _v{n} = x;\n"));
    }
    text.push_str("    x\n}\n");
    text
}

#[test]
fn the_function_scanner_catches_a_101_line_function() {
    let at_limit = scan::mask(&function_of(MAX_FUNCTION_LINES - 3));
    assert_eq!(
        scan::functions(&at_limit)[0].lines,
        MAX_FUNCTION_LINES,
        "fn line, body and closing brace all count"
    );
    assert!(long_functions("a.rs", &at_limit, MAX_FUNCTION_LINES).is_empty());
    let over = scan::mask(&format!(
        "//! Doc.\n\n{}",
        function_of(MAX_FUNCTION_LINES - 2)
    ));
    assert_eq!(
        long_functions("a.rs", &over, MAX_FUNCTION_LINES),
        ["a.rs:3 long (101 lines)"]
    );
}

#[test]
fn braces_in_literals_and_comments_do_not_confuse_the_function_scanner() {
    let text = r###"
fn tricky<'a>(s: &'a str) -> char {
    let _ = "}}} \" }";
    let _ = r##"} "# }"##;
    let _ = b'}';
    let _ = '\'';
    let _ = '{';
    // }
    /* } /* nested } */ } */
    'outer: loop { break 'outer; }
    '}'
}
trait T { fn declared(&self); }
fn takes(f: fn(u8) -> u8) -> u8 { f(1) }
impl S {
    fn method(&self) {
        fn nested() {}
    }
}
"###;
    let found: Vec<(String, usize, usize)> = scan::functions(&scan::mask(text))
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    assert_eq!(
        found,
        [
            ("tricky".to_owned(), 2, 11),
            ("takes".to_owned(), 14, 1),
            ("method".to_owned(), 16, 3),
            ("nested".to_owned(), 17, 1),
        ]
    );
}

#[test]
fn test_items_are_not_shipped_code() {
    let text = format!(
        "//! Doc.\nfn short() {{}}\n#[cfg(test)]\n#[allow(dead_code)]\nmod tests {{\n{}}}\n\
         #[cfg(test)]\nmod more;\n",
        function_of(200)
    );
    let masked = scan::mask(&text);
    assert!(long_functions("a.rs", &masked, MAX_FUNCTION_LINES).is_empty());
    assert_eq!(scan::lines_before_tests(&masked), 2);
    let items = scan::test_items(&masked);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].declares.as_deref(), Some("more"));
    assert_eq!(scan::lines_before_tests("a\nb\nc\n"), 3);
}

fn path(p: &str) -> Vec<String> {
    p.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn references_are_read_from_paths_and_use_trees() {
    let text = r#"
use crate::{a::B, c::{self, d::E as F}, g::*};
use super::h::I;
pub(crate) mod inline {
    use super::j::K;
}
mod declared;
fn f() -> crate::l::M { crate::n::o::<u8>(); let _ = "crate::p::Q"; todo() }
// crate::r::S
#[cfg(test)]
mod tests { use crate::t::U; }
"#;
    let found: Vec<String> = scan::references(&scan::mask(text), &path("x::y"))
        .into_iter()
        .map(|r| format!("{}@{}", r.path.join("::"), r.line))
        .collect();
    assert_eq!(
        found,
        [
            "a::B@2",
            "c@2",
            "c::d::E@2",
            "g@2",
            "l::M@8",
            "n::o@8",
            "x::h::I@3",
            "x::y::j::K@5"
        ]
    );
}

#[test]
fn a_two_module_cycle_is_found_and_a_child_using_its_parent_is_not() {
    let files = |a: &str, b: &str| {
        vec![
            (
                path(""),
                "lib.rs".to_owned(),
                scan::mask("mod a;\nmod b;\n"),
            ),
            (path("a"), "a.rs".to_owned(), scan::mask(a)),
            (path("b"), "b.rs".to_owned(), scan::mask(b)),
            (
                path("a::child"),
                "a/child.rs".to_owned(),
                scan::mask("use super::Thing;\n"),
            ),
        ]
    };
    let cycle = module_graph(&files(
        "mod child;\npub struct Thing;\nuse crate::b::Reason;\n",
        "//! B.\n\nfn f() -> crate::a::Thing { todo() }\npub struct Reason;\n",
    ));
    assert_eq!(
        describe_cycles(&cycle),
        ["a -> b -> a\n    a -> b at a.rs:3\n    b -> a at b.rs:3"]
    );
    let layered = module_graph(&files(
        "mod child;\npub struct Thing;\nuse crate::b::Reason;\n",
        "pub struct Reason;\n",
    ));
    assert!(describe_cycles(&layered).is_empty(), "{layered:?}");
    assert_eq!(
        scan::target_module(&path("a::child::X"), &layered.keys().cloned().collect()),
        path("a::child")
    );
    assert_eq!(
        scan::target_module(&path("a::inline::X"), &layered.keys().cloned().collect()),
        path("a")
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
const PRODUCTION_CRATES: &[&str] = &["card", "issuer", "document", "audit", "db", "proto", "keys"];

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
