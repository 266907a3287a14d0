//! Build-time inputs of the gateway.
//!
//! `sqlx::migrate!` embeds the migration files at compile time but does not register the
//! folder for rebuilds on stable Rust; without the rerun line a new migration is silently left
//! out.
//!
//! The build identity: `KIOSK_BUILD_COMMIT` names the commit the binary was built from, so a
//! fix can be shown to run everywhere (the STARTED audit event, the logs and the health
//! metadata carry it). Set it explicitly to override; otherwise it is `git rev-parse HEAD` of
//! the repository around this crate, and `unknown` when there is no repository or no git: a
//! source tarball still builds.
//!
//! No `-dirty` suffix: telling a modified tree apart would mean re-running this script on
//! every source change, and a flag that goes stale between builds would claim a clean tree
//! that is not. CI builds from a clean clone.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=KIOSK_BUILD_COMMIT");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match std::env::var("KIOSK_BUILD_COMMIT") {
        Ok(explicit) => {
            // The commit becomes an audit identifier at start (STARTED event); a value that
            // cannot be one would make every start fail, so it fails here, where it is clear.
            if !is_identifier(&explicit) {
                panic!(
                    "KIOSK_BUILD_COMMIT={explicit:?} is not 1 to 64 ASCII letters, digits or ._:/-"
                );
            }
            explicit
        }
        Err(_) => {
            let git_dir = find_git_dir(&manifest_dir);
            if let Some(git_dir) = &git_dir {
                watch_head(git_dir);
            }
            match git_head(&manifest_dir) {
                Some(commit) => commit,
                None => {
                    if git_dir.is_some() {
                        println!(
                            "cargo:warning=git rev-parse HEAD failed: build commit is `unknown`"
                        );
                    }
                    "unknown".to_owned()
                }
            }
        }
    };
    println!("cargo:rustc-env=KIOSK_BUILD_COMMIT={commit}");
}

/// The audit log's identifier set (`audit::event::Ident`): `[A-Za-z0-9._:/-]{1,64}`.
fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// The commit checked out, as full hex, or `None` when git is missing or fails.
fn git_head(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    // SHA-1 or SHA-256 object names; anything else is not a commit we can vouch for.
    let hex = commit.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && (commit.len() == 40 || commit.len() == 64)).then_some(commit)
}

/// The git directory of the repository containing `start`: a `.git` directory, or a `.git`
/// file pointing at one (worktrees, submodules).
fn find_git_dir(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        let dot_git = dir.join(".git");
        if dot_git.is_dir() {
            return Some(dot_git);
        }
        if dot_git.is_file() {
            let text = std::fs::read_to_string(&dot_git).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return Some(dir.join(target));
        }
    }
    None
}

/// Re-runs this script when HEAD moves: a checkout changes `HEAD`, a commit changes the
/// branch's ref (a loose file, or `packed-refs` after `git pack-refs`). Only existing paths are
/// registered: cargo re-runs on every build for a path that does not exist.
fn watch_head(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    watch(&head);
    // A worktree keeps its HEAD here and its refs in the common directory.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .map(|rel| git_dir.join(rel.trim()))
        .unwrap_or_else(|_| git_dir.to_owned());
    watch(&common.join("packed-refs"));
    let Ok(text) = std::fs::read_to_string(&head) else {
        return;
    };
    if let Some(reference) = text.trim().strip_prefix("ref:") {
        let path = common.join(reference.trim());
        if path.exists() {
            watch(&path);
        } else if let Some(parent) = path.parent() {
            // The branch is packed or unborn: its loose file appears in this directory.
            watch(parent);
        }
    }
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
