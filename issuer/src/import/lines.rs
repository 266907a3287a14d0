//! Reading a JSON Lines file one line at a time, with its line number, in bounded memory:
//! a line longer than [`MAX_LINE`] is refused rather than buffered.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::fields::Bad;
use super::{Fail, ImportError, redacted};

/// The longest line accepted, bytes (a seal impression in base64 is the largest field).
pub const MAX_LINE: u64 = 1024 * 1024;

/// One open file.
pub struct Lines {
    reader: BufReader<File>,
    file: String,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl Lines {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Lines, ImportError> {
        let file = path.display().to_string();
        let f = File::open(path).map_err(|source| ImportError::Read {
            file: file.clone(),
            source,
        })?;
        Ok(Lines {
            reader: BufReader::with_capacity(256 * 1024, f),
            file,
            line: 0,
            bytes: 0,
            buf: Vec::new(),
        })
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next line without its line ending, `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<&str>, ImportError> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ImportError::Read {
                file: self.file.clone(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes += read as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if read as u64 > MAX_LINE {
            return Err(self.refuse(Bad::new("line", "longer than 1 MiB")));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok(Some(text)),
            Err(_) => Err(self.refuse(Bad::new("line", "is not UTF-8"))),
        }
    }

    /// The current line number (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Line `line` of `path` failed (for refusals found after the line was read).
    pub fn fail_at(path: &Path, line: u64, fail: Fail) -> ImportError {
        let file = path.display().to_string();
        match fail {
            Fail::Bad(bad) => ImportError::Line {
                file,
                line,
                field: bad.field,
                reason: bad.reason,
            },
            Fail::Db(e) => ImportError::Database(format!("{file}:{line}: {}", redacted(&e))),
            Fail::Issuer(e) => ImportError::Issuer(e),
        }
    }

    /// The current line refused for `bad`.
    pub fn refuse(&self, bad: Bad) -> ImportError {
        ImportError::Line {
            file: self.file.clone(),
            line: self.line,
            field: bad.field,
            reason: bad.reason,
        }
    }

    /// The current line failed in the database.
    pub fn fail(&self, fail: Fail) -> ImportError {
        match fail {
            Fail::Bad(bad) => self.refuse(bad),
            Fail::Db(e) => {
                ImportError::Database(format!("{}:{}: {}", self.file, self.line, redacted(&e)))
            }
            Fail::Issuer(e) => ImportError::Issuer(e),
        }
    }
}

/// The file and line of the first record of `kind` whose `key` is `id` (only used to name
/// the line of a refusal found after the whole load, so reading again is cheap enough).
pub fn find(
    files: &[PathBuf],
    kind: &str,
    key: &str,
    id: &str,
) -> Result<(String, u64), ImportError> {
    for path in files {
        let mut lines = Lines::open(path)?;
        while let Some(text) = lines.next_line()? {
            let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) else {
                continue;
            };
            let is = |f: &str, v: &str| map.get(f).and_then(|x| x.as_str()) == Some(v);
            if is("kind", kind) && is(key, id) {
                return Ok((lines.file.clone(), lines.line));
            }
        }
    }
    Ok((format!("{kind} {id}"), 0))
}
