//! Snapshot types shared by every tracker and every export format.

use serde::{Deserialize, Serialize};

use crate::{Serial, Totals};

/// The version of the JSON snapshot schema ([`Snapshot`]). Bumped when a
/// field changes meaning or disappears; new optional fields do not bump it.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// One class's state at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSnapshot {
    /// Qualified name: `module.QualName` for Python classes, the type path
    /// for Rust types.
    pub name: String,
    /// Objects alive now (`created - destroyed`).
    pub live: u64,
    /// Objects attached to the tracker so far.
    pub created: u64,
    /// Objects that left the tracker (destroyed or detached).
    pub destroyed: u64,
    /// Data-bundle updates.
    pub updated: u64,
    /// Lowest serial seen, 0 if none.
    pub first_serial: Serial,
    /// Highest serial seen, 0 if none.
    pub last_serial: Serial,
    /// The name was cut to fit a fixed-size slot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub name_truncated: bool,
    /// This record sums classes that did not fit in the class table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
    /// A count overflowed and is shown held at its maximum: the source
    /// (a segment or a snapshot file) is corrupt or forged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saturated: bool,
    /// Highest live count seen (segments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_live: Option<u64>,
    /// Unix ms of the sample that first saw `peak_live` (segments only;
    /// absent until a sample saw it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_unix_ms: Option<u64>,
    /// Live objects by age (segments only; objects counted from threads
    /// other than the interpreter's are in no cohort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ages: Option<crate::age::Ages>,
    /// Change of the live count over the snapshot's [`UnitWindow`]
    /// (segments whose process counts units of work only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<i64>,
}

impl ClassSnapshot {
    /// Objects retained per 1,000 units of work over `window`.
    pub fn retained_per_1k(&self, window: &UnitWindow) -> Option<f64> {
        let r = self.retained?;
        (window.units > 0).then(|| r as f64 * 1000.0 / window.units as f64)
    }
}

/// A unit of work a process counts (`pytracker.tick`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCount {
    /// The unit's name (`requests`, `jobs`, ...).
    pub name: String,
    /// Units counted so far.
    pub count: u64,
}

/// The stretch of history over which [`ClassSnapshot::retained`] is
/// measured: the first unit of work's count grew by `units` in `seconds`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitWindow {
    /// The unit counted.
    pub unit: String,
    /// Units of work done in the window.
    pub units: u64,
    /// Length of the window in seconds.
    pub seconds: u64,
}

impl ClassSnapshot {
    /// A record for `name` from counter totals.
    pub fn from_totals(name: &str, t: &Totals) -> Self {
        ClassSnapshot {
            name: name.to_owned(),
            live: t.live(),
            created: t.created,
            destroyed: t.destroyed,
            updated: t.updated,
            first_serial: t.first_serial,
            last_serial: t.last_serial,
            saturated: t.saturated,
            ..ClassSnapshot::default()
        }
    }
}

/// Where a snapshot came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id of the tracked program (in its own pid namespace).
    pub pid: u32,
    /// Its process id as seen by the reader, when that differs (it runs in
    /// a container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<u32>,
    /// Program name or command line.
    pub program: String,
    /// When the tracked program started tracking, Unix time in milliseconds.
    pub started_unix_ms: u64,
    /// State of the writer when the snapshot was taken (`alive`, `exited`, ...).
    pub writer_state: String,
    /// The service the process belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// Its worker slot in the service, if it is a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
    /// Resident memory at the last sample, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// The writer's last heartbeat, Unix ms (for an exited process: about
    /// when it stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_unix_ms: Option<u64>,
    /// Units of work counted with `pytracker.tick`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitCount>,
    /// The window [`ClassSnapshot::retained`] covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<UnitWindow>,
}

/// A whole inventory at one moment: the document `pytracker-cli dump
/// --format json` writes and `diff`/`check` read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_SCHEMA_VERSION`] of the writer of this document.
    pub schema_version: u32,
    /// When the snapshot was taken, Unix time in milliseconds.
    pub taken_unix_ms: u64,
    /// The process, when the snapshot came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
    /// Classes folded into the overflow record because the table was full.
    #[serde(default)]
    pub classes_dropped: u64,
    /// One record per class.
    pub classes: Vec<ClassSnapshot>,
}

impl Snapshot {
    /// A snapshot of `classes` taken now.
    pub fn new(classes: Vec<ClassSnapshot>) -> Self {
        Snapshot {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            taken_unix_ms: now_unix_ms(),
            process: None,
            classes_dropped: 0,
            classes,
        }
    }

    /// Live objects over all classes, held at `u64::MAX` rather than
    /// wrapping around (see [`Snapshot::saturated`]).
    pub fn total_live(&self) -> u64 {
        self.classes
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.live))
    }

    /// Whether any count shown is held at its maximum: a class's own
    /// counters overflowed, or the classes' live objects do not add up in
    /// 64 bits. Either means corrupt or forged input; tools say so.
    pub fn saturated(&self) -> bool {
        self.classes.iter().any(|c| c.saturated)
            || self
                .classes
                .iter()
                .try_fold(0u64, |sum, c| sum.checked_add(c.live))
                .is_none()
    }

    /// The record of the class called `name`.
    pub fn class(&self, name: &str) -> Option<&ClassSnapshot> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// Unix time now in milliseconds (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_field_names() {
        let mut s = Snapshot::new(vec![ClassSnapshot {
            name: "m.A".into(),
            live: 1,
            created: 3,
            destroyed: 2,
            updated: 0,
            first_serial: 4,
            last_serial: 9,
            ..Default::default()
        }]);
        s.taken_unix_ms = 1;
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"schema_version":1,"taken_unix_ms":1,"classes_dropped":0,"classes":[{"name":"m.A","live":1,"created":3,"destroyed":2,"updated":0,"first_serial":4,"last_serial":9}]}"#
        );
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.total_live(), 1);
    }
}
