//! TEST ONLY: the RSA-2048 keys of software cards, generated on first need and kept in a
//! per-user cache.
//!
//! ring cannot generate RSA keys; the pure-Rust `rsa` crate (already the software card's
//! signer) can, at 15–75 ms a key on one core of the development machine. A deployment of
//! 200 residents needs about 190 keys and every end-to-end test mints its own deployment, so
//! the keys are made once per user and kept as numbered PKCS#8 files,
//! `<cache>/card-rsa-<index>.pem`. Deployments share the cache; within one deployment each
//! index serves one card (the parent module's `reserve_key_indices`).
//!
//! Several test processes and threads use the cache at once (cargo runs test binaries in
//! parallel, and each test spawns its own deployment). Generation takes an exclusive lock on
//! `generate.lock`, so a cold cache is filled once rather than by every test at the same time,
//! while readers of a warm cache take no lock. A key is written to a private temporary file
//! and hard-linked into place, so a reader sees a whole key or none, and an index once
//! written never changes.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rcgen::{KeyPair, PKCS_RSA_SHA256};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::{PkiError, io};
use crate::private_file;

/// The variable naming the cache directory (an absolute path); without it the cache is
/// `$XDG_CACHE_HOME/kiosk-devkit/card-keys`, else `$HOME/.cache/kiosk-devkit/card-keys`.
pub const KEY_CACHE_ENV: &str = "KIOSK_KEY_CACHE";

const CACHE_SUBDIR: &str = "kiosk-devkit/card-keys";

/// The lock file held by whoever is generating keys into the cache.
pub const GENERATE_LOCK: &str = "generate.lock";

/// The size of every card key: the JPKI card's user-authentication key is RSA-2048.
const CARD_KEY_BITS: usize = 2048;

/// A directory of cached card keys.
#[derive(Debug, Clone)]
pub struct KeyCache {
    dir: PathBuf,
}

/// One cached key.
pub struct CardKey {
    path: PathBuf,
    pem: String,
}

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CardKey {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private key, PKCS#8 PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The key parsed for signing certificates; an error names the file, which may have
    /// been damaged outside this module (delete it and it is generated again).
    pub(super) fn key_pair(&self) -> Result<KeyPair, PkiError> {
        KeyPair::from_pkcs8_pem_and_sign_algo(&self.pem, &PKCS_RSA_SHA256)
            .map_err(|_| PkiError::CachedKey(self.path.clone()))
    }
}

impl KeyCache {
    /// The cache the environment names (see [`KEY_CACHE_ENV`]), created if missing.
    pub fn from_env() -> Result<Self, PkiError> {
        Self::open(&Self::location(|name| std::env::var_os(name))?)
    }

    /// Where the cache is, given the environment `var`: `$KIOSK_KEY_CACHE`, else
    /// `$XDG_CACHE_HOME/kiosk-devkit/card-keys`, else `$HOME/.cache/kiosk-devkit/card-keys`.
    /// As the XDG base directory specification asks, a relative `XDG_CACHE_HOME` is
    /// ignored; a relative `KIOSK_KEY_CACHE` is refused, because cargo runs each package's
    /// tests in its own directory and a relative cache would be a different one in each.
    pub fn location(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, PkiError> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = set(KEY_CACHE_ENV) {
            if dir.is_absolute() {
                return Ok(dir);
            }
            return Err(PkiError::KeyCache(format!(
                "{KEY_CACHE_ENV} must be an absolute path, not {}",
                dir.display()
            )));
        }
        if let Some(cache) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
            return Ok(cache.join(CACHE_SUBDIR));
        }
        if let Some(home) = set("HOME").filter(|p| p.is_absolute()) {
            return Ok(home.join(".cache").join(CACHE_SUBDIR));
        }
        Err(PkiError::KeyCache(format!(
            "no cache directory: set {KEY_CACHE_ENV}, XDG_CACHE_HOME or HOME to an absolute path"
        )))
    }

    /// Opens the cache in `dir`, creating it (mode 0700) if missing. A directory other
    /// users can open is refused: they could read the keys or plant their own.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        private_file::create_dir(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)
                .map_err(io(dir))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(PkiError::KeyCacheExposed(dir.to_owned()));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of key `index`.
    pub fn key_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("card-rsa-{index}.pem"))
    }

    /// The keys `indices`, in order. Missing ones are generated first, on every core.
    pub fn keys(&self, indices: Range<u64>) -> Result<Vec<CardKey>, PkiError> {
        if !self.missing(indices.clone()).is_empty() {
            // One generator at a time: the tests of one binary run in parallel threads and
            // each spawns a deployment, so on a cold cache they would all generate the same
            // keys. The others wait, then find the keys there.
            let lock_path = self.dir.join(GENERATE_LOCK);
            let lock = private_file::open_lock(&lock_path).map_err(io(&lock_path))?;
            lock.lock().map_err(io(&lock_path))?;
            self.generate(&self.missing(indices.clone()))?;
        }
        indices
            .map(|index| {
                let path = self.key_path(index);
                let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
                Ok(CardKey { path, pem })
            })
            .collect()
    }

    fn missing(&self, indices: Range<u64>) -> Vec<u64> {
        indices.filter(|i| !self.key_path(*i).exists()).collect()
    }

    /// Generates `indices` on as many threads as there are cores (key generation is CPU
    /// work with no shared state). The first failure stops the other threads.
    fn generate(&self, indices: &[u64]) -> Result<(), PkiError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(indices.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || -> Result<(), PkiError> {
            while !failed.load(Ordering::Relaxed) {
                let Some(index) = indices.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok(());
                };
                if let Err(e) = self.generate_one(*index) {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            // Every worker is joined before the first error is returned.
            let results: Vec<Result<(), PkiError>> = workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|_| {
                        Err(PkiError::KeyGeneration(
                            "a key generation thread panicked".into(),
                        ))
                    })
                })
                .collect();
            results.into_iter().collect()
        })
    }

    /// Generates key `index` unless another thread or process got there first (then its
    /// key stays, and this one is dropped unused).
    fn generate_one(&self, index: u64) -> Result<(), PkiError> {
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, CARD_KEY_BITS)
            .map_err(|e| PkiError::KeyGeneration(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::KeyGeneration(e.to_string()))?;
        let path = self.key_path(index);
        private_file::write_new(&path, pem.as_bytes()).map_err(io(&path))?;
        Ok(())
    }
}
