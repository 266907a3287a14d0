//! Files only their owner may read: private keys, card files, the card key cache.
//!
//! Each file is created with mode 0600 and each directory with 0700 by the call that creates
//! it. Writing first and narrowing the mode after would leave a moment in which another user
//! could open the file and keep the descriptor. Files are written to a temporary sibling and
//! moved into place, so a reader never sees half a key.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` and any missing parents with mode 0700. Existing directories are left
/// as they are.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Options that create a new file readable and writable by its owner only.
fn new_private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// A new, empty owner-only file next to `path`, with a name no other writer uses (process
/// id and a counter; `create_new` refuses a leftover of a crashed process with the same id).
fn temp_sibling(path: &Path) -> io::Result<(PathBuf, File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    loop {
        let mut temp = std::ffi::OsString::from(".");
        temp.push(name);
        temp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = path.with_file_name(temp);
        match new_private_file().open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `contents` to `path` (mode 0600), replacing any file there in one step.
pub(crate) fn write_replacing(path: &Path, contents: &[u8]) -> io::Result<()> {
    let (temp, mut file) = temp_sibling(path)?;
    let written = file
        .write_all(contents)
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Writes `contents` to `path` (mode 0600) unless a file is already there; returns whether
/// this call wrote it. Concurrent writers of one path agree on a single winner: the file is
/// synced, then hard-linked into place, which fails when the name exists, where a rename
/// would silently replace what another writer put there and someone may already have read.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> io::Result<bool> {
    let (temp, mut file) = temp_sibling(path)?;
    let linked = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens (creating it with mode 0600 if missing) a file that serves only as a lock.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a failed unwrap in a test is a failed assertion"
    )]

    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_first_new_write_wins_and_replacing_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("a/b");
        create_dir(&keys).unwrap();
        let path = keys.join("key");
        assert!(write_new(&path, b"first").unwrap());
        assert!(!write_new(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_replacing(&path, b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        // Only the file itself: no temporary sibling survives either write.
        assert_eq!(std::fs::read_dir(&keys).unwrap().count(), 1);
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&keys), 0o700);
            assert_eq!(mode(&dir.path().join("a")), 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn replacing_a_readable_file_leaves_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_replacing(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
