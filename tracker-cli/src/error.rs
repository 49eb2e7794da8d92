//! Errors of the command-line tools and their exit codes.

use std::path::PathBuf;

/// Exit code: every check held / the command succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code: `check` found a broken rule.
pub const EXIT_BROKEN: i32 = 1;
/// Exit code: bad usage or unreadable input.
pub const EXIT_USAGE: i32 = 2;

/// What went wrong, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading a segment failed (the message says what to do).
    #[error("{0}")]
    Segment(#[from] tracker_shm::ReadError),
    /// A snapshot file could not be read or parsed.
    #[error("{path}: {message}")]
    SnapshotFile {
        /// The file.
        path: PathBuf,
        /// What was wrong, with line and column for JSON errors.
        message: String,
    },
    /// A command-line value is malformed.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// The terminal could not be used.
    #[error("{0}")]
    Terminal(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        EXIT_USAGE
    }
}

impl From<csv::Error> for CliError {
    fn from(e: csv::Error) -> Self {
        CliError::Output(std::io::Error::other(e))
    }
}

/// Result of a command.
pub type CliResult<T> = Result<T, CliError>;
