//! [`ShmOptions`]: how a [`crate::ShmTracker`] publishes.

use std::path::PathBuf;
use std::time::Duration;

/// [`ShmOptions::site_every`] by default: the site sampling adds about
/// 0.1 ns per object on average at this rate (see BENCHMARKS.md).
pub const DEFAULT_SITE_EVERY: u64 = 8192;

/// How a [`crate::ShmTracker`] publishes.
#[derive(Clone, Debug)]
pub struct ShmOptions {
    /// Where the segment goes. `None`: `/dev/shm`, else `$XDG_RUNTIME_DIR`
    /// (both memory-backed), else the temporary directory with a warning.
    pub directory: Option<PathBuf>,
    /// Class slots, the overflow slot included.
    pub class_capacity: u64,
    /// Event-ring slots (rounded up to a power of two).
    pub ring_capacity: u64,
    /// Record lifecycle events in the ring.
    pub events: bool,
    /// Every notification worth an event comes through
    /// [`tracker_core::Tracker::notify_serialized`], whose callers hold one
    /// lock (for pytracker, the Python GIL). The ring's head is then
    /// advanced with a plain load and store instead of an atomic
    /// read-modify-write (a locked instruction, a full barrier on x86,
    /// twice per object). Events of [`tracker_core::Tracker::notify`]
    /// calls are then not recorded: they are still counted, and the
    /// segment says how many events were skipped so (readers count them
    /// as missed).
    pub events_serialized: bool,
    /// History samples kept (at most [`crate::layout::HISTORY_MAX`]).
    pub history_capacity: u64,
    /// Time between history samples and heartbeats.
    pub history_period: Duration,
    /// Run a sampler thread for history and heartbeat. Without it, call
    /// [`crate::ShmTracker::sample`] yourself.
    pub sampler: bool,
    /// Segments of this user's exited processes kept in the directory (for
    /// post-mortem reading); older ones are removed when a tracker starts,
    /// so crashed or killed services do not fill `/dev/shm`.
    pub keep_exited: usize,
    /// The service this process belongs to. `None`: `$PYTRACKER_SERVICE`,
    /// else a short name derived from the program (the script or module a
    /// Python interpreter runs).
    pub service: Option<String>,
    /// Site slots: distinct (class, creation stack) pairs the segment
    /// records (0: none).
    pub site_capacity: u64,
    /// One creation in this many, on average, records where it happened
    /// (0: none). The sampling itself is the caller's (see
    /// [`crate::ShmTracker::site`]); the segment states the rate.
    pub site_every: u64,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions {
            directory: None,
            class_capacity: 4096,
            ring_capacity: 512,
            events: true,
            events_serialized: false,
            history_capacity: 96,
            history_period: Duration::from_secs(1),
            sampler: true,
            keep_exited: 8,
            service: None,
            site_capacity: 512,
            site_every: DEFAULT_SITE_EVERY,
        }
    }
}
