//! The core of pytracker: object-lifecycle tracking for long-running
//! services.
//!
//! Every tracked object gets a process-wide [`Serial`]. Its class is
//! registered once in the [`registry`] and named by a dense [`ClassId`]. A
//! [`Tracker`] is told when an object is attached to it, detached from it,
//! updated, and destroyed; [`CountingTracker`] turns that into per-class
//! counts and serial ranges, and [`Snapshot`] is the serialisable inventory
//! every exporter and tool shares.
//!
//! Python objects reach this crate through `pytracker` (the `tracker-py`
//! crate); Rust programs track their own values with [`Tracked`] or
//! [`TrackHandle`]:
//!
//! ```
//! use std::sync::Arc;
//! use tracker_core::{set_global_tracker, CountingTracker, TrackHandle, ClassId};
//!
//! let counting = Arc::new(CountingTracker::new());
//! set_global_tracker(Some(counting.clone()));
//! let class = ClassId::named("shop.Order");
//! let mut orders: Vec<TrackHandle> = (0..3).map(|_| TrackHandle::new(class)).collect();
//! orders.pop(); // one order is dropped
//! let order = counting.snapshot().into_iter().find(|c| c.name == "shop.Order").unwrap();
//! assert_eq!((order.created, order.destroyed, order.live), (3, 1, 2));
//! # set_global_tracker(None);
//! ```

pub mod age;
mod counters;
mod counting;
mod handle;
mod registry;
mod serial;
mod snapshot;
mod table;
mod text;
mod tracker;

pub use counters::{counter_words, ClassCounters, Totals};
pub use counting::CountingTracker;
pub use handle::{TrackHandle, Tracked};
pub use registry::{registry, ClassId, Registry};
pub use serial::{last_issued, next_serial, Serial, SerialLane, LANE_BLOCK};
pub use snapshot::{
    now_unix_ms, ClassSnapshot, ProcessInfo, Snapshot, UnitCount, UnitWindow,
    SNAPSHOT_SCHEMA_VERSION,
};
pub use table::ClassTable;
pub use text::{escape_control, is_unsafe_char, HOSTILE_NAMES};
pub use tracker::{global_tracker, set_global_tracker, EventKind, Tracker};
