//! Tracking Rust values: [`TrackHandle`] and [`Tracked`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::{global_tracker, next_serial, ClassId, EventKind, Serial, Tracker};

/// The tracking identity of one Rust object: its creation notifies
/// `Attached` to the tracker and its drop notifies `Destroyed`.
///
/// Embed one in a struct (or wrap a value in [`Tracked`]) to make that
/// struct's instances show up in the inventory.
pub struct TrackHandle {
    class: ClassId,
    serial: Serial,
    tracker: Option<Arc<dyn Tracker>>,
}

impl TrackHandle {
    /// A handle of `class` attached to the global tracker (if one is set).
    pub fn new(class: ClassId) -> Self {
        Self::with_tracker(class, global_tracker())
    }

    /// A handle of `class` attached to `tracker`.
    pub fn with_tracker(class: ClassId, tracker: Option<Arc<dyn Tracker>>) -> Self {
        let serial = next_serial();
        if let Some(t) = &tracker {
            t.notify(EventKind::Attached, class, serial);
        }
        TrackHandle {
            class,
            serial,
            tracker,
        }
    }

    /// This object's serial.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// This object's class.
    pub fn class(&self) -> ClassId {
        self.class
    }

    /// Tells the tracker that the object's data changed.
    pub fn updated(&self) {
        if let Some(t) = &self.tracker {
            t.notify(EventKind::Updated, self.class, self.serial);
        }
    }

    /// Moves the object to another tracker (or none): the old one is told
    /// `Detached`, the new one `Attached`.
    pub fn set_tracker(&mut self, tracker: Option<Arc<dyn Tracker>>) {
        if let Some(old) = self.tracker.take() {
            old.notify(EventKind::Detached, self.class, self.serial);
        }
        if let Some(new) = &tracker {
            new.notify(EventKind::Attached, self.class, self.serial);
        }
        self.tracker = tracker;
    }
}

impl Drop for TrackHandle {
    fn drop(&mut self) {
        if let Some(t) = &self.tracker {
            t.notify(EventKind::Destroyed, self.class, self.serial);
        }
    }
}

impl std::fmt::Debug for TrackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackHandle")
            .field("class", &self.class.name())
            .field("serial", &self.serial)
            .field("tracked", &self.tracker.is_some())
            .finish()
    }
}

/// A value of type `T` tracked under `T`'s type name.
///
/// ```
/// use std::sync::Arc;
/// use tracker_core::{set_global_tracker, CountingTracker, Tracked};
///
/// struct Connection;
/// let counting = Arc::new(CountingTracker::new());
/// set_global_tracker(Some(counting.clone()));
/// let conn = Tracked::new(Connection);
/// assert!(counting.snapshot().iter().any(|c| c.name.ends_with("Connection") && c.live == 1));
/// drop(conn);
/// # set_global_tracker(None);
/// ```
#[derive(Debug)]
pub struct Tracked<T: 'static> {
    value: T,
    handle: TrackHandle,
}

impl<T: 'static> Tracked<T> {
    /// Tracks `value` with the global tracker.
    pub fn new(value: T) -> Self {
        Tracked {
            value,
            handle: TrackHandle::new(ClassId::of::<T>()),
        }
    }

    /// The tracking handle (serial, class, updates).
    pub fn handle(&self) -> &TrackHandle {
        &self.handle
    }

    /// Stops tracking and returns the value (the tracker is told `Destroyed`).
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Tracked<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}
