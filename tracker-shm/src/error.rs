//! Typed errors of the writer and the reader. Messages say what was wrong
//! and what to do.

use std::path::PathBuf;

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No process has this pid.
    #[error("no process with pid {pid}: check the pid (pytracker-cli ps lists tracked processes)")]
    NoSuchProcess {
        /// The pid asked for.
        pid: u32,
    },
    /// The only segments naming this pid disagree with the process (owner,
    /// header or lock): they may have been planted by another user.
    #[error(
        "refusing {path} for pid {pid}: {reason}. It may have been planted by another user; \
         `pytracker-cli ps` shows each segment's owner"
    )]
    Untrusted {
        /// The segment refused.
        path: PathBuf,
        /// The pid asked for.
        pid: u32,
        /// What disagrees.
        reason: String,
    },
    /// The process runs but publishes no segment.
    #[error(
        "process {pid} is running but is not exporting a pytracker segment: call pytracker.start_exporter() \
         in it, or start it with PYTRACKER_EXPORT=1"
    )]
    NotTracked {
        /// The pid asked for.
        pid: u32,
    },
    /// No segment at this path.
    #[error("no segment at {path}: it may have been removed when its process exited (pytracker-cli ps lists segments)")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file cannot be opened by this user.
    #[error("permission denied reading {path}: segments are private to the user who runs the tracked process; run as that user (or root)")]
    Permission {
        /// The segment.
        path: PathBuf,
    },
    /// Not a regular file, or a link.
    #[error("{path} is not a regular file: refusing to read it")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The file does not start with the segment magic.
    #[error("{path} is not a pytracker segment (bad magic number)")]
    BadMagic {
        /// The path.
        path: PathBuf,
    },
    /// Written by a host of the other byte order.
    #[error("{path} was written with a different byte order and cannot be read here")]
    EndianMismatch {
        /// The path.
        path: PathBuf,
    },
    /// A layout this reader does not know.
    #[error(
        "{path} uses segment layout version {found}, this reader supports version {supported}: \
         use a pytracker-cli matching the tracked program's pytracker"
    )]
    Version {
        /// The path.
        path: PathBuf,
        /// Major version in the file.
        found: u16,
        /// Major version this reader reads.
        supported: u16,
    },
    /// Shorter than its header says.
    #[error("{path} is truncated: {size} bytes, the header says {expected}; the segment is damaged, remove it with pytracker-cli clean")]
    Truncated {
        /// The path.
        path: PathBuf,
        /// Bytes in the file.
        size: u64,
        /// Bytes the header declares.
        expected: u64,
    },
    /// The file shrank while it was being read: what was read is discarded.
    #[error("{path} shrank while it was being read (it was truncated by another process): nothing read from it can be trusted; read it again, or remove it with pytracker-cli clean if it stays damaged")]
    Shrunk {
        /// The path.
        path: PathBuf,
    },
    /// Still being created.
    #[error("{path} is still being initialised by its writer: try again in a moment")]
    NotReady {
        /// The path.
        path: PathBuf,
    },
    /// A header field is out of range.
    #[error("{path} is corrupt ({what}); remove it with pytracker-cli clean")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Any other I/O error.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Why a writer could not create its segment. The tracker keeps counting in
/// private memory; this says why nothing is published.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No usable directory.
    #[error("no directory for the segment: {0}")]
    NoDirectory(String),
    /// Creating or sizing the file failed.
    #[error("cannot create segment in {dir}: {source}")]
    Create {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
