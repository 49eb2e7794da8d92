//! pytracker's shared-memory exporter.
//!
//! A tracked process publishes its inventory in a memory-mapped segment
//! (`docs/segment-format.md` describes every byte); other processes map it
//! read-only and read it while the service runs, with no ptrace, signal,
//! socket or lock the writer could wait on.
//!
//! * [`ShmTracker`] (writer) is a [`tracker_core::Tracker`]: per-class
//!   counters live directly in the segment, lifecycle events go to a ring,
//!   and a sampler thread keeps a short history and a heartbeat.
//! * [`Segment`] (reader) validates a segment as untrusted input and reads
//!   snapshots, events and history from it.
//! * [`list_segments`], [`find_by_pid`] and [`writer_state`] find segments
//!   and tell live writers from exited ones and reused pids.
//!
//! ```
//! use tracker_core::{ClassId, EventKind, Tracker};
//! use tracker_shm::{ShmOptions, ShmTracker, Segment, writer_state, WriterState};
//!
//! let dir = std::env::temp_dir().join(format!("pytracker-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let tracker = ShmTracker::new(ShmOptions { directory: Some(dir.clone()), ..Default::default() });
//! let class = ClassId::named("doc.Example");
//! tracker.notify(EventKind::Attached, class, 1);
//!
//! let segment = Segment::open(&tracker.path().unwrap()).unwrap();
//! assert_eq!(writer_state(&segment), WriterState::Alive);
//! let snapshot = segment.snapshot("alive");
//! assert_eq!(snapshot.class("doc.Example").unwrap().live, 1);
//! # drop(tracker);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

// The mapped region, and the naming and directory rules.
mod leaky;
mod mapping;
mod naming;
// One module per shared-memory protocol, each with both of its halves
// (writer and reader) and the argument for its memory orderings.
mod ages;
mod backing;
mod classes;
mod header;
mod history;
mod ring;
mod sites;
mod ticks;
// The writer.
mod options;
mod region;
mod tracker;
mod workers;
// The reader.
mod discovery;
mod mounts;
mod segment;
// Support.
mod error;
mod fault;
pub mod layout;
mod proc;
mod sys;

pub use discovery::{
    find_by_pid, find_by_pid_in, host_pid, list_segments, list_segments_cached, list_segments_in,
    provenance, prune_exited, writer_state, PruneReport, SegmentCache, SegmentEntry, Target,
    WriterState, PRUNE_MAX_ENTRIES, PRUNE_MAX_OPENED, PRUNE_SERVICES_KEPT,
};
pub use error::{ReadError, WriteError};
pub use header::HeaderInfo;
pub use history::History;
pub use mounts::other_namespace_directories;
pub use naming::{
    choose_directory, memory_backed_directories, pid_from_name, search_directories, uid_from_name,
    SegmentName, DIR_ENV, FILE_PREFIX,
};
pub use options::{ShmOptions, DEFAULT_SITE_EVERY};
pub use proc::with_locks_read_once;
pub use region::SERVICE_ENV;
pub use ring::{Event, EventCursor, MAX_EVENTS_PER_POLL};
pub use segment::{ClassAges, Segment};
pub use sites::{Frame, Site};
pub use sys::{monotonic_ns, uid as effective_uid, user_name};
pub use tracker::{ShmTracker, SiteId, TickUnit, WeakShmTracker};
