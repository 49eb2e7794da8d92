//! Finding segments and deciding whether their writers are alive.
//!
//! A writer holds an exclusive `flock` on its segment for its whole life;
//! the kernel drops it when the process dies, however it dies. That is the
//! primary liveness signal, and `/proc/locks` says which process holds it:
//! a writer is alive only when the lock is held by the pid in the header.
//! The pid and the process start time stored in the header tell an exited
//! writer from a reused pid.
//!
//! Segment directories such as `/dev/shm` are writable by every user, so a
//! file there proves nothing by its name. [`provenance`] checks that a
//! segment's owner, name, header and lock agree with the process it claims
//! to describe; [`find_by_pid`] (`--pid`) accepts only segments that pass,
//! so root is never shown counts another user planted.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ReadError;
use crate::header::HeaderInfo;
use crate::naming::{pid_from_name, search_directories, uid_from_name, SegmentName};
use crate::segment::Segment;
use crate::{layout, proc, sys};

/// The state of a segment's writer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterState {
    /// The writer holds its lock: it is running.
    Alive,
    /// The writer process is gone (killed or crashed: a clean exit removes
    /// the segment).
    Exited,
    /// The writer's process still runs but no longer holds the segment.
    Stale,
    /// The pid now belongs to another program.
    PidReused,
    /// The lock is held, but not by the pid in the header: not a writer's
    /// lock (the file may be forged).
    ForeignLock,
}

impl WriterState {
    /// A short label: `alive`, `exited`, `stale segment`, `pid reused`,
    /// `locked by another process`.
    pub fn label(self) -> &'static str {
        match self {
            WriterState::Alive => "alive",
            WriterState::Exited => "exited",
            WriterState::Stale => "stale segment",
            WriterState::PidReused => "pid reused",
            WriterState::ForeignLock => "locked by another process",
        }
    }

    /// Whether the segment can be removed safely.
    pub fn is_gone(self) -> bool {
        !matches!(self, WriterState::Alive | WriterState::ForeignLock)
    }
}

/// Decides the state of a segment's writer.
pub fn writer_state(segment: &Segment) -> WriterState {
    let header = segment.header();
    if header.state != layout::STATE_CLOSED && sys::is_locked(segment.file()).unwrap_or(false) {
        return match lock_holders(segment) {
            // Where /proc/locks cannot be read, the lock alone decides.
            None => WriterState::Alive,
            Some(holders) if holders.contains(&header.pid) => WriterState::Alive,
            // Held by a process this reader cannot see (the writer runs in
            // a pid namespace that is not this one's descendant, as beside
            // a sidecar): the lock alone decides.
            Some(holders) if holders.is_empty() => WriterState::Alive,
            // A writer in a container: the header has its pid there, the
            // lock list the pid seen from here.
            Some(holders)
                if holders
                    .iter()
                    .any(|&h| proc::innermost_pid(h) == Some(header.pid)) =>
            {
                WriterState::Alive
            }
            Some(_) => WriterState::ForeignLock,
        };
    }
    state_without_lock(&header)
}

/// The pid of a live segment's writer as seen from this reader, when it
/// differs from the pid in its header (the writer runs in a container's
/// pid namespace below this one): the holder of its lock whose pid in its
/// own namespace is the header's.
pub fn host_pid(segment: &Segment) -> Option<u32> {
    let pid = segment.header().pid;
    lock_holders(segment)?
        .into_iter()
        .find(|&h| h != pid && proc::innermost_pid(h) == Some(pid))
}

fn lock_holders(segment: &Segment) -> Option<Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let meta = segment.file().metadata().ok()?;
    proc::flock_holders(meta.dev(), meta.ino())
}

/// Why a segment cannot be trusted to describe the process it names, or
/// `Ok` with the uid owning it. Checks that the file's owner is the uid in
/// its name; that the pid in its name, if given, is the one in its header;
/// that a running process with that pid runs as the file's owner and
/// started when the header says; and that no other process holds the
/// writer's lock.
///
/// # Errors
/// A sentence naming the first disagreement.
pub fn provenance(segment: &Segment, name_pid: Option<u32>) -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt;
    let owner = segment
        .file()
        .metadata()
        .map_err(|e| format!("cannot stat the segment: {e}"))?
        .uid();
    let header = segment.header();
    let file_name = segment
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if let Some(name_uid) = uid_from_name(file_name) {
        if name_uid != owner {
            return Err(format!(
                "its name says uid {name_uid} but the file is owned by uid {owner}"
            ));
        }
    }
    if let Some(pid) = name_pid {
        if header.pid != pid {
            return Err(format!(
                "its name says pid {pid} but its header says pid {}",
                header.pid
            ));
        }
    }
    // A writer holding the segment's lock under the header's pid opened the
    // file, so it is its owner (or root): nothing more to check in /proc.
    let holds_lock = lock_holders(segment).is_some_and(|h| h.contains(&header.pid))
        && sys::is_locked(segment.file()).unwrap_or(false);
    if holds_lock {
        return Ok(owner);
    }
    if let (Some(uids), Some(stat)) = (proc::uids(header.pid), proc::stat(header.pid)) {
        let running = stat.state != 'Z' && stat.state != 'X';
        if running && stat.start_time == header.start_time && !uids.contains(&owner) {
            return Err(format!(
                "process {} runs as uid {} but the file is owned by uid {owner}",
                header.pid, uids[1]
            ));
        }
    }
    if writer_state(segment) == WriterState::ForeignLock {
        let holders = lock_holders(segment).unwrap_or_default();
        return Err(format!(
            "its lock is held by pid {holders:?}, not by its writer (pid {})",
            header.pid
        ));
    }
    Ok(owner)
}

fn state_without_lock(header: &HeaderInfo) -> WriterState {
    match proc::stat(header.pid) {
        None if !sys::pid_exists(header.pid) => WriterState::Exited,
        None => WriterState::Stale,
        Some(s) if s.state == 'Z' || s.state == 'X' => WriterState::Exited,
        Some(s) if header.start_time != 0 && s.start_time != header.start_time => {
            WriterState::PidReused
        }
        Some(_) => WriterState::Stale,
    }
}

/// One segment found on the machine.
#[derive(Debug)]
pub struct SegmentEntry {
    /// Its path.
    pub path: PathBuf,
    /// The pid in its file name.
    pub pid: u32,
    /// The uid owning the file (`None` if it vanished).
    pub owner: Option<u32>,
    /// The opened segment, or why it could not be read.
    pub segment: Result<Segment, ReadError>,
}

impl SegmentEntry {
    /// The writer's state, if the segment could be read.
    pub fn state(&self) -> Option<WriterState> {
        self.segment.as_ref().ok().map(writer_state)
    }

    /// [`provenance`] of the segment (with the pid of its file name).
    ///
    /// # Errors
    /// Why it cannot be trusted, or why it could not be read.
    pub fn provenance(&self) -> Result<u32, String> {
        match &self.segment {
            Ok(seg) => provenance(seg, Some(self.pid)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Every segment in `dirs`, sorted by pid then path.
pub fn list_segments_in(dirs: &[PathBuf]) -> Vec<SegmentEntry> {
    list(dirs, None)
}

/// Segments kept mapped from one listing to the next, by file identity,
/// for a reader that lists again and again (a metrics endpoint scraped
/// every few seconds): a segment is opened, validated and mapped once,
/// and its pages stay mapped. A file is known by device and inode; since
/// the cache holds it open, its inode cannot be reused by another file
/// meanwhile.
#[derive(Debug, Default)]
pub struct SegmentCache {
    open: std::collections::HashMap<(u64, u64), Segment>,
}

/// [`list_segments`], reusing the segments `cache` holds and keeping in it
/// those found now (and only those).
pub fn list_segments_cached(cache: &mut SegmentCache) -> Vec<SegmentEntry> {
    list(&search_directories(), Some(cache))
}

fn list(dirs: &[PathBuf], cache: Option<&mut SegmentCache>) -> Vec<SegmentEntry> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(pid_from_name) else {
                continue;
            };
            let path = entry.path();
            // One file seen through two directories (a container's
            // directory shared with the host's) is listed once.
            let meta = {
                use std::os::unix::fs::MetadataExt;
                fs::symlink_metadata(&path)
                    .ok()
                    .map(|m| (m.dev(), m.ino(), m.uid()))
            };
            if let Some((dev, ino, _)) = meta {
                if !seen.insert((dev, ino)) {
                    continue;
                }
            }
            let owner = meta.map(|(_, _, uid)| uid);
            let key = meta.map(|(dev, ino, _)| (dev, ino));
            let cached = cache
                .as_deref()
                .zip(key)
                .and_then(|(c, key)| c.open.get(&key))
                .filter(|seg| seg.path() == path && seg.intact().is_ok());
            let segment = match cached {
                Some(seg) => Ok(seg.clone()),
                None => Segment::open(&path),
            };
            out.push(SegmentEntry {
                path,
                pid,
                owner,
                segment,
            });
        }
    }
    if let Some(cache) = cache {
        cache.open = out
            .iter()
            .filter_map(|e| {
                let seg = e.segment.as_ref().ok()?;
                let meta = seg.file().metadata().ok()?;
                use std::os::unix::fs::MetadataExt;
                Some(((meta.dev(), meta.ino()), seg.clone()))
            })
            .collect();
    }
    out.sort_by(|a, b| (a.pid, &a.path).cmp(&(b.pid, &b.path)));
    out
}

/// Every segment in the default directories.
pub fn list_segments() -> Vec<SegmentEntry> {
    list_segments_in(&search_directories())
}

/// Directory entries one [`prune_exited`] call looks at, at most.
pub const PRUNE_MAX_ENTRIES: usize = 1 << 16;
/// Files one [`prune_exited`] call opens, at most.
pub const PRUNE_MAX_OPENED: usize = 256;

/// What one [`prune_exited`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Directory entries looked at.
    pub entries: usize,
    /// Files opened as segments (named and owned like this user's).
    pub opened: usize,
    /// Segments removed.
    pub removed: usize,
}

/// Removes this user's segments in `dir` whose writers are gone, except the
/// `keep` most recently created and the most recent of each service (for
/// at most [`PRUNE_SERVICES_KEPT`] services), so a busy service recycling
/// its workers cannot push another service's last inventory out: at most
/// `keep + PRUNE_SERVICES_KEPT` remain. Errors are ignored: pruning is
/// housekeeping.
///
/// The work is bounded whatever the directory holds (it is writable by
/// every user): at most [`PRUNE_MAX_ENTRIES`] names are read, only files
/// named with this user's prefix and owned by this user are opened, and at
/// most [`PRUNE_MAX_OPENED`] of them. What is left is pruned by a later
/// call (writers prune again from their sampler thread).
pub fn prune_exited(dir: &Path, keep: usize) -> PruneReport {
    use std::os::unix::fs::MetadataExt;
    let me = sys::uid();
    let own = SegmentName::prefix_of_uid(me);
    let mut report = PruneReport::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return report;
    };
    let mut gone: Vec<(u64, PathBuf, String)> = Vec::new();
    for entry in entries.flatten().take(PRUNE_MAX_ENTRIES) {
        report.entries += 1;
        if report.opened == PRUNE_MAX_OPENED {
            break;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&own) || pid_from_name(name).is_none() {
            continue;
        }
        // The entry's own metadata (no link followed): cheap, and a file
        // another user planted under our prefix is never opened.
        match entry.metadata() {
            Ok(m) if m.is_file() && m.uid() == me => {}
            _ => continue,
        }
        report.opened += 1;
        let Ok(seg) = Segment::open(&entry.path()) else {
            continue;
        };
        if writer_state(&seg).is_gone() {
            let h = seg.header();
            gone.push((h.created_unix_ms, entry.path(), h.service));
        }
    }
    gone.sort_by(|a, b| b.cmp(a)); // newest first
    let mut services_kept = std::collections::HashSet::new();
    report.removed = gone
        .into_iter()
        .enumerate()
        .filter(|(i, (_, _, service))| {
            // The newest of each service stays for a post-mortem, for a
            // bounded number of services; the others past `keep` go.
            let newest_of_service =
                services_kept.len() < PRUNE_SERVICES_KEPT && services_kept.insert(service.clone());
            *i >= keep && !newest_of_service
        })
        .filter(|(_, (_, path, _))| fs::remove_file(path).is_ok())
        .count();
    report
}

/// Services whose newest exited segment [`prune_exited`] keeps beyond its
/// `keep` newest overall.
pub const PRUNE_SERVICES_KEPT: usize = 32;

/// The segment of process `pid`: its live one, the newest if it has
/// several.
///
/// # Errors
/// [`ReadError::NoSuchProcess`] when no such process runs and it left no
/// segment, [`ReadError::NotTracked`] when it runs without a segment, or
/// the error of opening its segment.
pub fn find_by_pid(pid: u32) -> Result<Segment, ReadError> {
    find_by_pid_in(pid, &search_directories())
}

/// [`find_by_pid`] in the given directories.
///
/// # Errors
/// As [`find_by_pid`].
pub fn find_by_pid_in(pid: u32, dirs: &[PathBuf]) -> Result<Segment, ReadError> {
    let mut best: Option<(bool, u64, Segment)> = None;
    let mut first_error = None;
    // A process in a container's pid namespace names its segment with its
    // pid there: that one is taken too, when its writer's lock is held by
    // `pid` as seen from here.
    let inner = proc::innermost_pid(pid).filter(|&p| p != pid);
    let entries = list_segments_in(dirs)
        .into_iter()
        .filter(|e| e.pid == pid || Some(e.pid) == inner);
    for entry in entries {
        match entry.segment {
            Ok(seg) => {
                let seen_from_here = host_pid(&seg);
                let other = match seen_from_here {
                    // A writer in a container whose pid there is `pid`,
                    // but which is another process here.
                    Some(h) => h != pid,
                    None => entry.pid != pid,
                };
                if other {
                    continue;
                }
                if let Err(reason) = provenance(&seg, Some(entry.pid)) {
                    first_error.get_or_insert(ReadError::Untrusted {
                        path: entry.path.clone(),
                        pid,
                        reason,
                    });
                    continue;
                }
                let alive = writer_state(&seg) == WriterState::Alive;
                let created = seg.header().created_mono_ns;
                if best
                    .as_ref()
                    .is_none_or(|(a, c, _)| (alive, created) > (*a, *c))
                {
                    best = Some((alive, created, seg));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some((_, _, seg)) = best {
        return Ok(seg);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if sys::pid_exists(pid) {
        Err(ReadError::NotTracked { pid })
    } else {
        Err(ReadError::NoSuchProcess { pid })
    }
}

/// The segment a reader asks for: a process's, or one file's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The segment of this process (see [`find_by_pid`]).
    Pid(u32),
    /// This segment file.
    Path(PathBuf),
}

impl Target {
    /// The target named by optional `--pid`/`--path` style arguments (a
    /// path wins over a pid); `None` when neither is given.
    pub fn from_options(pid: Option<u32>, path: Option<&Path>) -> Option<Target> {
        match (pid, path) {
            (_, Some(p)) => Some(Target::Path(p.to_path_buf())),
            (Some(pid), None) => Some(Target::Pid(pid)),
            (None, None) => None,
        }
    }

    /// Opens the segment.
    ///
    /// # Errors
    /// As [`find_by_pid`] and [`Segment::open`].
    pub fn open(&self) -> Result<Segment, ReadError> {
        match self {
            Target::Pid(pid) => find_by_pid(*pid),
            Target::Path(path) => Segment::open(path),
        }
    }
}
