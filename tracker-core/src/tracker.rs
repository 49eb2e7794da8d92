//! The [`Tracker`] trait: what a tracker is told about an object's life.

use std::sync::{Arc, RwLock};

use crate::{age::Epoch, ClassId, Serial};

/// The four lifecycle notifications.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum EventKind {
    /// The object was given this tracker (at creation, or by `_set_tracker`).
    Attached = 1,
    /// The object was given another tracker, or none.
    Detached = 2,
    /// The object's data bundle was set.
    Updated = 3,
    /// The object was destroyed while this tracker was assigned.
    Destroyed = 4,
}

impl EventKind {
    /// All kinds, in code order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Attached,
        EventKind::Detached,
        EventKind::Updated,
        EventKind::Destroyed,
    ];

    /// The numeric code used in exported formats.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// A lower-case name: `attached`, `detached`, `updated`, `destroyed`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Attached => "attached",
            EventKind::Detached => "detached",
            EventKind::Updated => "updated",
            EventKind::Destroyed => "destroyed",
        }
    }
}

/// Receives lifecycle notifications for tracked objects.
///
/// Implementations must be cheap: `notify` runs inside object creation and
/// destruction. They are shared between threads.
pub trait Tracker: Send + Sync {
    /// One notification, from any thread.
    fn notify(&self, kind: EventKind, class: ClassId, serial: Serial);

    /// One notification from a caller that holds a process-wide lock which
    /// serialises *every* `notify_serialized` call on this tracker (for
    /// pytracker, the Python GIL). Trackers may then update their state
    /// without atomic read-modify-write instructions. Calls to
    /// [`Tracker::notify`] may still run concurrently with these; counts stay
    /// exact as long as the serialising lock is really held.
    ///
    /// `born` is the epoch the object was born in (see [`crate::age`]);
    /// trackers that keep ages count it there.
    ///
    /// The default forwards to [`Tracker::notify`].
    fn notify_serialized(&self, kind: EventKind, class: ClassId, serial: Serial, born: Epoch) {
        let _ = born;
        self.notify(kind, class, serial);
    }

    /// [`Tracker::notify_serialized`] for [`EventKind::Attached`]. Object
    /// creation calls this with the kind known statically, so trackers can
    /// implement it without a branch on the kind.
    #[inline]
    fn attached_serialized(&self, class: ClassId, serial: Serial, born: Epoch) {
        self.notify_serialized(EventKind::Attached, class, serial, born);
    }

    /// [`Tracker::notify_serialized`] for [`EventKind::Destroyed`] (see
    /// [`Tracker::attached_serialized`]).
    #[inline]
    fn destroyed_serialized(&self, class: ClassId, serial: Serial, born: Epoch) {
        self.notify_serialized(EventKind::Destroyed, class, serial, born);
    }
}

static GLOBAL: RwLock<Option<Arc<dyn Tracker>>> = RwLock::new(None);

/// Sets (or with `None` clears) the tracker that new Rust handles attach to.
///
/// This is the Rust side's global tracker; Python objects use the one set
/// with `pytracker.set_global_tracker`.
pub fn set_global_tracker(tracker: Option<Arc<dyn Tracker>>) {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = tracker;
}

/// The tracker set with [`set_global_tracker`], if any.
pub fn global_tracker() -> Option<Arc<dyn Tracker>> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
        }
        assert_eq!(EventKind::from_code(0), None);
        assert_eq!(EventKind::from_code(9), None);
    }
}
