//! Where segments live and what they are called: the one place both halves
//! (the writer naming its segment, readers recognising one) agree on.
//!
//! A segment is `<dir>/pytracker-<uid>-<pid>-<start>-<n>`: the owner's uid,
//! the writer's pid and start time (field 22 of `/proc/<pid>/stat`), and a
//! per-process sequence number. It is built under a temporary name
//! (`.<name>.tmp`, which readers never match) and renamed into place once
//! its header is complete, so readers never see a half-built segment under
//! a segment name.
//!
//! Directories: writers use the one asked for, else `$PYTRACKER_DIR`, else
//! a memory-backed one (`/dev/shm`, `$XDG_RUNTIME_DIR`), else the temporary
//! directory with a warning. Readers search `$PYTRACKER_DIR` alone when it
//! is set, else the memory-backed directories and the temporary directory.
//!
//! A name proves nothing (the directories are writable by every user):
//! `discovery::provenance` checks it against the file and its header.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::WriteError;

/// The file name prefix of every segment.
pub const FILE_PREFIX: &str = "pytracker-";

/// The environment variable naming the segment directory, for writers and
/// readers alike (overrides the default search).
pub const DIR_ENV: &str = "PYTRACKER_DIR";

/// The parts of a segment's file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentName {
    /// The uid owning the segment.
    pub uid: u32,
    /// The writer's pid.
    pub pid: u32,
    /// The writer's start time (clock ticks after boot).
    pub start_time: u64,
    /// The writer's sequence number for this segment.
    pub seq: u64,
}

impl SegmentName {
    /// Parses a file name; `None` unless it is exactly a segment name.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let mut parts = name.strip_prefix(FILE_PREFIX)?.split('-');
        let parsed = SegmentName {
            uid: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            start_time: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(parsed)
    }

    /// The prefix every segment name of `uid` starts with.
    pub(crate) fn prefix_of_uid(uid: u32) -> String {
        format!("{FILE_PREFIX}{uid}-")
    }

    /// The temporary name the segment is built under, in `dir`.
    pub(crate) fn temp_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!(".{self}.tmp"))
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SegmentName {
            uid,
            pid,
            start_time,
            seq,
        } = self;
        write!(f, "{FILE_PREFIX}{uid}-{pid}-{start_time}-{seq}")
    }
}

/// The uid encoded in a segment file name, if it is one.
pub fn uid_from_name(name: &str) -> Option<u32> {
    SegmentName::parse(name).map(|n| n.uid)
}

/// The pid encoded in a segment file name
/// (`pytracker-<uid>-<pid>-<start>-<n>`), if it is one.
pub fn pid_from_name(name: &str) -> Option<u32> {
    SegmentName::parse(name).map(|n| n.pid)
}

/// Picks the segment directory: the one asked for, else `$PYTRACKER_DIR`,
/// else a memory-backed one, else the temporary directory with a warning.
///
/// # Errors
/// [`WriteError::NoDirectory`] when the directory asked for (or named by
/// the environment) is missing, or when no candidate exists.
pub fn choose_directory(asked: Option<&Path>) -> Result<(PathBuf, Option<String>), WriteError> {
    let from_env = std::env::var_os(DIR_ENV).map(PathBuf::from);
    if let Some(dir) = asked.or(from_env.as_deref()) {
        if !dir.is_dir() {
            return Err(WriteError::NoDirectory(format!(
                "{} does not exist or is not a directory",
                dir.display()
            )));
        }
        return Ok((dir.to_path_buf(), None));
    }
    for dir in memory_backed_directories() {
        if dir.is_dir() {
            return Ok((dir, None));
        }
    }
    let tmp = std::env::temp_dir();
    if tmp.is_dir() {
        let warning = format!(
            "no memory-backed directory (/dev/shm, $XDG_RUNTIME_DIR): the segment is in {}, which may be disk-backed",
            tmp.display()
        );
        return Ok((tmp, Some(warning)));
    }
    Err(WriteError::NoDirectory(
        "/dev/shm, $XDG_RUNTIME_DIR and the temporary directory are all missing".into(),
    ))
}

/// The memory-backed directories segments are looked for in, in order.
pub fn memory_backed_directories() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/dev/shm")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(PathBuf::from(x));
    }
    dirs
}

/// The directories readers search, in order: `$PYTRACKER_DIR` alone when
/// it is set, else the memory-backed directories and the temporary
/// directory (where writers fall back to), then those of processes in
/// other mount namespaces, through `/proc/PID/root` (see
/// [`crate::other_namespace_directories`]; root can look there).
pub fn search_directories() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os(DIR_ENV) {
        return vec![PathBuf::from(d)];
    }
    let mut dirs = memory_backed_directories();
    dirs.push(std::env::temp_dir());
    dirs.dedup();
    dirs.extend(crate::mounts::other_namespace_directories());
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        let name = SegmentName {
            uid: 1000,
            pid: 42,
            start_time: 12345,
            seq: 0,
        };
        assert_eq!(name.to_string(), "pytracker-1000-42-12345-0");
        assert_eq!(SegmentName::parse(&name.to_string()), Some(name));
        assert_eq!(pid_from_name("pytracker-1000-42-12345-0"), Some(42));
        assert_eq!(uid_from_name("pytracker-1000-42-12345-0"), Some(1000));
        assert_eq!(pid_from_name("pytracker-1000-42-12345"), None);
        assert_eq!(pid_from_name(".pytracker-1000-42-12345-0.tmp"), None);
        assert_eq!(pid_from_name("pytracker-x-42-1-0"), None);
        assert_eq!(pid_from_name("pytracker-1-42-1-0-9"), None);
        let tmp = name.temp_path(Path::new("/d"));
        assert_eq!(tmp, Path::new("/d/.pytracker-1000-42-12345-0.tmp"));
        assert_eq!(
            SegmentName::parse(tmp.file_name().unwrap().to_str().unwrap()),
            None
        );
    }
}
