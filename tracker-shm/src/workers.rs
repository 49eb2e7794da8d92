//! The worker-slot protocol: each live writer of a service holds a small
//! number, the lowest that no other live writer of that service held when
//! it published, so that a recycled worker takes its predecessor's number
//! and readers can label workers with values that stay stable across
//! recycling.
//!
//! *Writer* ([`Claim::take`]). Before publishing, a writer takes an
//! exclusive `flock` on the segment directory itself, lists the segments
//! there that belong to its user and service and whose writers hold their
//! lock (they are alive), picks the lowest number none of them has, writes
//! it into its own header, renames its segment into place and only then
//! drops the directory lock. Two writers of one directory therefore choose
//! one after the other, each seeing the other's published segment. A
//! writer that dies frees its number with its segment's lock, whatever
//! ends it (exit, `os._exit`, SIGTERM, SIGKILL); nothing is left behind
//! to clean and no file is added to the directory.
//!
//! The directory lock is shared with every user of the directory, so it is
//! only waited for briefly ([`WAIT`]): a process that holds it longer
//! (stuck, or hostile) makes a writer choose without it, at the risk of
//! sharing a number with a writer starting at the same moment, never of
//! not starting. Segments of other users are not looked at: their files
//! prove nothing, and numbers are per user and service.
//!
//! *Readers* take the number from the header (`header::WORKER`); a
//! process whose workers were forked from it is told by their
//! `header::PARENT_PID`.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::layout;
use crate::naming::SegmentName;
use crate::segment::Segment;
use crate::sys;

/// How long a writer waits for the directory lock before choosing
/// without it.
pub(crate) const WAIT: Duration = Duration::from_secs(2);

/// Numbers tried at most (a process beyond them has no worker number).
pub(crate) const MAX_WORKERS: u64 = 1 << 16;

/// The directory lock, held from choosing a number until the segment is
/// published (dropping it unlocks).
pub(crate) struct Claim {
    _dir: Option<File>,
    /// The number chosen, if any.
    pub(crate) number: Option<u64>,
}

impl Claim {
    /// Locks `dir` (waiting at most [`WAIT`]) and chooses the lowest
    /// number that no live segment of this user's `service` in `dir` has.
    pub(crate) fn take(dir: &Path, service: &[u8]) -> Claim {
        let lock = lock_directory(dir);
        let taken = taken(dir, service);
        let number = (0..MAX_WORKERS).find(|n| !taken.contains(n));
        Claim { _dir: lock, number }
    }
}

fn lock_directory(dir: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if sys::lock_exclusive(&file).is_ok() {
            return Some(file);
        }
        if start.elapsed() >= WAIT {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The numbers held by live segments of this user's `service` in `dir`.
fn taken(dir: &Path, service: &[u8]) -> BTreeSet<u64> {
    let uid = sys::uid();
    let mut taken = BTreeSet::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return taken;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(parsed) = name.to_str().and_then(SegmentName::parse) else {
            continue;
        };
        if parsed.uid != uid {
            continue;
        }
        let Ok(segment) = Segment::open(&entry.path()) else {
            continue;
        };
        let owned = segment.file().metadata().is_ok_and(|m| m.uid() == uid);
        let h = segment.header();
        let alive =
            h.state != layout::STATE_CLOSED && sys::is_locked(segment.file()).unwrap_or(false);
        if owned && alive && h.worker != layout::NO_WORKER && h.service.as_bytes() == service {
            taken.insert(h.worker);
        }
    }
    taken
}
