//! The contract as a product: `buf lint` passes under proto/buf.yaml, `buf breaking` finds no
//! break against the newest released contract in proto/released/, that release is the newest
//! one CHANGELOG.md names, and the comparison does catch a break (a renumbered field, made in
//! a copy). buf is the `@bufbuild/buf` npm package (scripts/install-deps.sh installs it).
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `buf <args>` in `dir`.
fn buf(dir: &Path, args: &[&str]) -> Output {
    Command::new("buf")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("buf (npm @bufbuild/buf; scripts/install-deps.sh installs it)")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The newest image in released/ (by its version), as a path relative to proto/.
fn newest_release() -> (String, String) {
    let mut versions: Vec<(Vec<u32>, String)> = std::fs::read_dir(proto_dir().join("released"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let version = name.strip_prefix("kiosk.v1-")?.strip_suffix(".binpb")?;
            let parts = version.split('.').map(|p| p.parse().unwrap()).collect();
            Some((parts, version.to_owned()))
        })
        .collect();
    versions.sort();
    let (_, version) = versions
        .pop()
        .expect("a released contract in proto/released");
    let path = format!("released/kiosk.v1-{version}.binpb");
    (version, path)
}

#[test]
fn the_contract_passes_buf_lint() {
    let output = buf(&proto_dir(), &["lint"]);
    assert!(output.status.success(), "buf lint:\n{}", text(&output));
}

#[test]
fn the_contract_does_not_break_the_last_release() {
    let (version, image) = newest_release();
    let changelog = std::fs::read_to_string(proto_dir().join("CHANGELOG.md")).unwrap();
    let newest_named = changelog
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .find(|heading| !heading.starts_with("Unreleased"))
        .expect("a released version in CHANGELOG.md");
    assert!(
        newest_named.starts_with(&format!("{version} ")),
        "CHANGELOG.md's newest release is {newest_named:?}, released/ holds {version}"
    );
    let output = buf(&proto_dir(), &["breaking", "--against", &image]);
    assert!(
        output.status.success(),
        "buf breaking against {image}: declare the change in CHANGELOG.md and release a new \
         package version instead:\n{}",
        text(&output)
    );
}

#[test]
fn a_renumbered_field_is_caught_as_breaking() {
    let copy = tempfile::tempdir().unwrap();
    let root = copy.path();
    std::fs::copy(proto_dir().join("buf.yaml"), root.join("buf.yaml")).unwrap();
    std::fs::create_dir_all(root.join("kiosk/v1")).unwrap();
    for entry in std::fs::read_dir(proto_dir().join("kiosk/v1")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "proto") {
            std::fs::copy(&path, root.join("kiosk/v1").join(path.file_name().unwrap())).unwrap();
        }
    }
    let common = root.join("kiosk/v1/common.proto");
    let source = std::fs::read_to_string(&common).unwrap();
    let field = "  string ja = 1;\n";
    assert!(source.contains(field), "LocalizedText.ja is field 1");
    std::fs::write(&common, source.replace(field, "  string ja = 15;\n")).unwrap();
    let (_, image) = newest_release();
    let against = proto_dir().join(image);
    let output = buf(root, &["breaking", "--against", against.to_str().unwrap()]);
    assert!(!output.status.success(), "the break went unnoticed");
    let said = text(&output);
    assert!(said.contains("LocalizedText"), "{said}");
}
