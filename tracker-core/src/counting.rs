//! [`CountingTracker`]: the native tracker that counts per class.

use crate::{
    age::Epoch, registry, ClassCounters, ClassId, ClassSnapshot, ClassTable, EventKind, Serial,
    Tracker,
};

/// Counts attach, detach, update and destroy notifications per class and
/// keeps each class's serial range. Lock-free; shareable between threads.
#[derive(Default)]
pub struct CountingTracker {
    classes: ClassTable<ClassCounters>,
}

impl CountingTracker {
    /// A tracker with no counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of one class, if it has been seen.
    pub fn counters(&self, class: ClassId) -> Option<&ClassCounters> {
        self.classes.get(class)
    }

    /// One record per class this tracker has seen, sorted by name.
    pub fn snapshot(&self) -> Vec<ClassSnapshot> {
        let reg = registry();
        let mut out: Vec<ClassSnapshot> = self
            .classes
            .iter(reg.len())
            .map(|(id, c)| (id, c.totals()))
            .filter(|(_, t)| t.created > 0 || t.updated > 0)
            .map(|(id, t)| ClassSnapshot::from_totals(&id.name(), &t))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl Tracker for CountingTracker {
    #[inline]
    fn notify(&self, kind: EventKind, class: ClassId, serial: Serial) {
        if let Some(c) = self.classes.get_or_init(class) {
            c.record(kind, serial);
        }
    }

    #[inline]
    fn notify_serialized(&self, kind: EventKind, class: ClassId, serial: Serial, _born: Epoch) {
        if let Some(c) = self.classes.get_or_init(class) {
            c.record_serialized(kind, serial);
        }
    }

    // The per-object pair, always inlined into its caller (pytracker's
    // creation and destruction slots), whatever the caller's size.
    #[inline(always)]
    fn attached_serialized(&self, class: ClassId, serial: Serial, _born: Epoch) {
        if let Some(c) = self.classes.get_or_init(class) {
            c.record_serialized(EventKind::Attached, serial);
        }
    }

    #[inline(always)]
    fn destroyed_serialized(&self, class: ClassId, serial: Serial, _born: Epoch) {
        if let Some(c) = self.classes.get_or_init(class) {
            c.record_serialized(EventKind::Destroyed, serial);
        }
    }
}
