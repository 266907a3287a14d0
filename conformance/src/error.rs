//! The kit's one error type: what stopped it from judging the terminal at all. A terminal that
//! misbehaves is not an error here; it is a failed rule in the report.

use std::path::PathBuf;

/// Why the kit could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The development gateway did not start or refused an operator change.
    #[error("development gateway: {0}")]
    Gateway(String),
    /// The kit's front server (the terminal's side of the kit) failed.
    #[error("the kit's front server: {0}")]
    Front(String),
    /// The terminal command could not be started.
    #[error("terminal command: {0}")]
    Terminal(String),
    /// A file the kit needs could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The kit's card reader (`--pcsc`) could not be set up.
    #[error("the kit's card reader: {0}")]
    Reader(String),
    /// An unknown scenario was asked for.
    #[error("no scenario named {0:?} (`kiosk-conformance list` names them)")]
    UnknownScenario(String),
}

impl ConformanceError {
    /// A file error from an I/O error.
    pub fn file(path: &std::path::Path, error: impl std::fmt::Display) -> Self {
        ConformanceError::File {
            path: path.to_owned(),
            message: error.to_string(),
        }
    }
}
