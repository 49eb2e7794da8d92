//! The segment layout, version 2.2. `docs/segment-format.md` is the prose
//! version of this file; a change to one is a change to both, and to the
//! version numbers below.
//!
//! Everything is little-endian and 8-byte aligned. Every field is read and
//! written at exactly one width, as an atomic, by both sides.

/// `b"PYTRKSHM"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PYTRKSHM");
/// Written as a u32; reads back as this value only on a little-endian host.
pub const ENDIAN_PROBE: u32 = 0x0102_0304;
/// Readers refuse segments with another major version.
pub const MAJOR: u16 = 2;
/// Additive changes only; readers accept any minor version.
pub const MINOR: u16 = 2;

/// Bytes in the header region.
pub const HEADER_SIZE: u64 = 4096;

/// The most class slots a segment may have (overflow slot included). With
/// [`MAX_RING_CAPACITY`] this bounds a segment to about 72 MiB, and so what
/// a reader maps and holds.
pub const MAX_CLASS_CAPACITY: u64 = 1 << 16;
/// The most event slots a segment may have.
pub const MAX_RING_CAPACITY: u64 = 1 << 20;

/// Header field offsets.
pub mod header {
    /// u64 [`super::MAGIC`].
    pub const MAGIC: u64 = 0;
    /// u32 [`super::ENDIAN_PROBE`].
    pub const ENDIAN: u64 = 8;
    /// u32: major (low 16 bits) and minor (high 16 bits) version.
    pub const VERSION: u64 = 12;
    /// u64 size of the whole segment in bytes.
    pub const TOTAL_SIZE: u64 = 16;
    /// u64 size of the header region ([`super::HEADER_SIZE`]).
    pub const HEADER_SIZE: u64 = 24;
    /// u64 offset of the class table.
    pub const CLASS_OFFSET: u64 = 32;
    /// u64 number of class slots, the overflow slot included.
    pub const CLASS_CAPACITY: u64 = 40;
    /// u64 bytes per class slot.
    pub const CLASS_SLOT_SIZE: u64 = 48;
    /// u64 offset of the event ring.
    pub const RING_OFFSET: u64 = 56;
    /// u64 number of event slots (a power of two, or 0 when events are off).
    pub const RING_CAPACITY: u64 = 64;
    /// u64 bytes per event slot.
    pub const RING_SLOT_SIZE: u64 = 72;
    /// u64 number of history samples kept (per class and in totals).
    pub const HISTORY_CAPACITY: u64 = 80;
    /// u64 history sample period in milliseconds.
    pub const HISTORY_PERIOD_MS: u64 = 88;
    /// u64 writer process id.
    pub const PID: u64 = 96;
    /// u64 writer start time, field 22 of `/proc/<pid>/stat` (clock ticks
    /// since boot).
    pub const START_TIME: u64 = 104;
    /// u64 creation time, Unix milliseconds.
    pub const CREATED_UNIX_MS: u64 = 112;
    /// u64 `CLOCK_MONOTONIC` nanoseconds at creation.
    pub const CREATED_MONO_NS: u64 = 120;
    /// u64 `CLOCK_MONOTONIC` nanoseconds of the last heartbeat.
    pub const HEARTBEAT_NS: u64 = 128;
    /// u64 state: [`super::STATE_INIT`], [`super::STATE_LIVE`] or
    /// [`super::STATE_CLOSED`].
    pub const STATE: u64 = 136;
    /// u64 flags: [`super::FLAG_EVENTS`], [`super::FLAG_SERIALIZED_RING`].
    pub const FLAGS: u64 = 144;
    /// u64 class slots claimed so far (may exceed capacity; readers clamp).
    pub const CLASS_COUNT: u64 = 152;
    /// u64 classes folded into the overflow slot.
    pub const CLASSES_DROPPED: u64 = 160;
    /// u64 class names cut to fit.
    pub const NAMES_TRUNCATED: u64 = 168;
    /// u64 event tickets issued (the ring's head).
    pub const RING_HEAD: u64 = 176;
    /// u64 history samples written (the history's head).
    pub const HISTORY_HEAD: u64 = 184;
    /// u64 byte length of the program's command line at [`CMDLINE`].
    pub const CMDLINE_LEN: u64 = 192;
    /// 16 bytes: the kernel's boot id (binary), to tell reboots apart.
    pub const BOOT_ID: u64 = 200;
    /// u64 byte length of the service name at [`SERVICE`].
    pub const SERVICE_LEN: u64 = 216;
    /// u64 worker slot within the service, [`super::NO_WORKER`] if none.
    pub const WORKER: u64 = 224;
    /// u64 role: [`super::ROLE_STANDALONE`], [`super::ROLE_MASTER`] or
    /// [`super::ROLE_WORKER`].
    pub const ROLE: u64 = 232;
    /// u64 parent process id at creation.
    pub const PARENT_PID: u64 = 240;
    /// u64 resident set size of the process at the last sample, bytes.
    pub const RSS_BYTES: u64 = 248;
    /// u64 the epoch the class cohorts are folded to (see
    /// `tracker_core::age`).
    pub const AGE_FOLDED: u64 = 256;
    /// u64 sequence: odd while the writer folds cohorts.
    pub const AGE_SEQ: u64 = 264;
    /// u64 milliseconds per age epoch.
    pub const AGE_EPOCH_MS: u64 = 272;
    /// u64 `CLOCK_MONOTONIC` nanoseconds at epoch 0.
    pub const AGE_ORIGIN_NS: u64 = 280;
    /// u64 samples written to history tier 1 (tier 0's count is
    /// [`HISTORY_HEAD`]).
    pub const TIER1_HEAD: u64 = 288;
    /// u64 samples written to history tier 2.
    pub const TIER2_HEAD: u64 = 296;
    /// u64 tier `k+1` takes one sample every this many of tier `k`'s.
    pub const TIER_FACTOR: u64 = 304;
    /// u64 unit names claimed in the tick table (may exceed
    /// [`super::TICK_MAX`]; readers clamp).
    pub const TICK_COUNT: u64 = 312;
    /// u64 ticks of units that found the table full.
    pub const TICKS_DROPPED: u64 = 320;
    /// u64 site slots claimed (may exceed the capacity; readers clamp).
    pub const SITE_COUNT: u64 = 328;
    /// u64 sampled creations whose site found the table full.
    pub const SITES_DROPPED: u64 = 336;
    /// u64 one creation in this many (on average) records its site; 0:
    /// sites are not sampled.
    pub const SITE_EVERY: u64 = 344;
    /// u64 number of site slots.
    pub const SITE_CAPACITY: u64 = 352;
    /// u64 offset of the site table.
    pub const SITE_OFFSET: u64 = 360;
    /// u64 (since 2.1) class slots backed by the file so far, counted from
    /// slot 0 (the overflow slot is backed from the start). Readers read no
    /// slot at or past it.
    pub const CLASS_BACKED: u64 = 368;
    /// u64 (since 2.1) site slots backed by the file so far.
    pub const SITE_BACKED: u64 = 376;
    /// The service name, UTF-8, [`SERVICE_MAX`] bytes.
    pub const SERVICE: u64 = 384;
    /// Bytes reserved for the service name.
    pub const SERVICE_MAX: u64 = 64;
    /// u64 (since 2.2) events not recorded because the ring is written by
    /// the serialised lane only ([`super::FLAG_SERIALIZED_RING`]) and they
    /// came from another thread.
    pub const EVENTS_SKIPPED: u64 = 448;
    /// The command line, arguments separated by spaces, cut at
    /// [`CMDLINE_MAX`] bytes.
    pub const CMDLINE: u64 = 512;
    /// Bytes reserved for the command line.
    pub const CMDLINE_MAX: u64 = 512;
    /// The tick table: [`super::TICK_MAX`] entries of
    /// [`super::TICK_ENTRY_SIZE`] bytes (see [`super::tick`]).
    pub const TICKS: u64 = 1024;
}

/// [`header::WORKER`] of a process that is no service's worker.
pub const NO_WORKER: u64 = u64::MAX;
/// [`header::ROLE`]: a process on its own.
pub const ROLE_STANDALONE: u64 = 0;
/// [`header::ROLE`]: the process its service's workers were forked from.
pub const ROLE_MASTER: u64 = 1;
/// [`header::ROLE`]: a worker of its service.
pub const ROLE_WORKER: u64 = 2;

/// Entries in the tick table.
pub const TICK_MAX: u64 = 8;
/// Bytes per tick-table entry.
pub const TICK_ENTRY_SIZE: u64 = 48;

/// Tick-table entry field offsets, relative to the entry.
pub mod tick {
    /// u64 state: [`super::SLOT_FREE`], [`super::SLOT_FILLING`],
    /// [`super::SLOT_PUBLISHED`].
    pub const STATE: u64 = 0;
    /// u64 byte length of the unit's name.
    pub const NAME_LEN: u64 = 8;
    /// UTF-8 name of the unit of work, [`NAME_MAX`] bytes.
    pub const NAME: u64 = 16;
    /// Bytes reserved for the name.
    pub const NAME_MAX: u64 = 24;
    /// u64 units counted so far.
    pub const COUNT: u64 = 40;
}

/// Offset of the history totals: [`HISTORY_TIERS`] tiers of
/// `history_capacity` samples of [`HISTORY_TOTAL_WORDS`] u64 each.
pub const TOTALS_OFFSET: u64 = HEADER_SIZE;
/// History tiers (tier `k` samples every `history_period ×
/// TIER_FACTOR^k`).
pub const HISTORY_TIERS: u64 = 3;
/// [`header::TIER_FACTOR`] as written by this version.
pub const TIER_FACTOR: u64 = 60;

/// Words of one history-totals sample, in order.
pub mod total {
    /// `CLOCK_MONOTONIC` ns of the sample.
    pub const TIME_NS: u64 = 0;
    /// Live objects, all classes.
    pub const LIVE: u64 = 1;
    /// Objects created, all classes.
    pub const CREATED: u64 = 2;
    /// Objects destroyed, all classes.
    pub const DESTROYED: u64 = 3;
    /// Resident set size of the process, bytes.
    pub const RSS: u64 = 4;
    /// Count of tick unit 0 (then units 1 and 2 in the next words).
    pub const TICKS: u64 = 5;
    /// Tick units sampled.
    pub const TICK_UNITS: u64 = 3;
}

/// [`header::STATE`]: being built.
pub const STATE_INIT: u64 = 0;
/// [`header::STATE`]: the writer is publishing.
pub const STATE_LIVE: u64 = 1;
/// [`header::STATE`]: the writer closed it (exit in progress).
pub const STATE_CLOSED: u64 = 2;

/// [`header::FLAGS`]: the writer records events in the ring.
pub const FLAG_EVENTS: u64 = 1;
/// [`header::FLAGS`] (since 2.2): one writer at a time (the holder of the
/// writer's serialising lock) records events, advancing
/// [`header::RING_HEAD`] with a plain store; events from other threads
/// are counted in [`header::EVENTS_SKIPPED`] instead.
pub const FLAG_SERIALIZED_RING: u64 = 2;

/// Words per history-totals sample (see [`total`]).
pub const HISTORY_TOTAL_WORDS: u64 = 8;
/// The most history samples a segment keeps per tier.
pub const HISTORY_MAX: u64 = 96;

/// Class slot field offsets, relative to the slot.
pub mod class {
    /// u64 state: [`super::SLOT_FREE`], [`super::SLOT_FILLING`],
    /// [`super::SLOT_PUBLISHED`].
    pub const STATE: u64 = 0;
    /// u64 flags: [`super::CLASS_TRUNCATED`], [`super::CLASS_OVERFLOW`].
    pub const FLAGS: u64 = 8;
    /// u64 byte length of the name.
    pub const NAME_LEN: u64 = 16;
    /// UTF-8 name, [`NAME_MAX`] bytes, read as u64 words.
    pub const NAME: u64 = 24;
    /// Bytes reserved for the name.
    pub const NAME_MAX: u64 = 120;
    /// The class's counters: `tracker_core::ClassCounters`, nine u64 words
    /// (see `tracker_core::counter_words` for their order).
    pub const COUNTERS: u64 = 144;
    /// u64 highest live count seen.
    pub const PEAK_LIVE: u64 = 216;
    /// u64 Unix ms of the sample that first saw [`PEAK_LIVE`] (0: not
    /// stamped yet).
    pub const PEAK_UNIX_MS: u64 = 224;
    /// u64 the peak value [`PEAK_UNIX_MS`] refers to (the writer's
    /// bookkeeping).
    pub const PEAK_STAMPED: u64 = 232;
    /// Age cohorts: `tracker_core::age::COHORTS` pairs of u32 (born,
    /// died).
    pub const COHORTS: u64 = 256;
    /// Live-count history: [`super::HISTORY_TIERS`] tiers, each one u32
    /// per sample for `history_capacity` samples, a ring indexed by sample
    /// number modulo the history capacity.
    pub const HISTORY: u64 = 832;
}

/// Class slot state: unused.
pub const SLOT_FREE: u64 = 0;
/// Class slot state: claimed, name being written.
pub const SLOT_FILLING: u64 = 1;
/// Class slot state: name final, counters live.
pub const SLOT_PUBLISHED: u64 = 2;

/// Class flag: the name was cut at a character boundary to fit.
pub const CLASS_TRUNCATED: u64 = 1;
/// Class flag: this is the overflow slot, summing classes that did not fit.
pub const CLASS_OVERFLOW: u64 = 2;

/// The name of the overflow slot.
pub const OVERFLOW_NAME: &str = "<other classes>";

/// Event slot field offsets, relative to the slot.
pub mod event {
    /// u64 sequence: `2t+1` while ticket `t` is written, `2t+2` once
    /// published.
    pub const SEQ: u64 = 0;
    /// u64: kind code (low 8 bits) and class slot index (bits 8..40).
    pub const META: u64 = 8;
    /// u64 serial of the object.
    pub const SERIAL: u64 = 16;
    /// u64 `CLOCK_MONOTONIC` nanoseconds (coarse clock).
    pub const TIME_NS: u64 = 24;
}

/// Bytes per event slot.
pub const EVENT_SLOT_SIZE: u64 = 32;

/// The most site slots a segment may have.
pub const MAX_SITE_CAPACITY: u64 = 1 << 14;
/// Bytes per site slot.
pub const SITE_SLOT_SIZE: u64 = 640;
/// Frames a site records at most (the creating call first).
pub const SITE_FRAMES: u64 = 4;

/// Site slot field offsets, relative to the slot.
pub mod site {
    /// u64 state: [`super::SLOT_FREE`], [`super::SLOT_FILLING`],
    /// [`super::SLOT_PUBLISHED`].
    pub const STATE: u64 = 0;
    /// u64 the class slot the site's objects belong to.
    pub const CLASS_SLOT: u64 = 8;
    /// u64 sampled objects from this site still alive (wrapping; a
    /// difference of births and deaths).
    pub const LIVE: u64 = 16;
    /// u64 sampled objects created here.
    pub const TOTAL: u64 = 24;
    /// u64 frames recorded (at most [`super::SITE_FRAMES`]).
    pub const FRAME_COUNT: u64 = 32;
    /// The frames, [`FRAME_SIZE`] bytes each, the creating call first.
    pub const FRAMES: u64 = 48;
    /// Bytes per frame.
    pub const FRAME_SIZE: u64 = 144;
    /// Frame field: u64 line number.
    pub const LINE: u64 = 0;
    /// Frame field: u64 byte length of the file name.
    pub const FILE_LEN: u64 = 8;
    /// Frame field: u64 byte length of the function name.
    pub const FUNC_LEN: u64 = 16;
    /// Frame field: the file name's last [`FILE_MAX`] bytes, UTF-8.
    pub const FILE: u64 = 24;
    /// Bytes kept of a file name (its end).
    pub const FILE_MAX: u64 = 88;
    /// Frame field: the function name's first [`FUNC_MAX`] bytes, UTF-8.
    pub const FUNC: u64 = 112;
    /// Bytes kept of a function name.
    pub const FUNC_MAX: u64 = 32;
}

/// Bytes per class slot for a history of `history` samples per tier.
pub const fn class_slot_size(history: u64) -> u64 {
    let end = class::HISTORY + 4 * HISTORY_TIERS * history;
    end.div_ceil(64) * 64
}

/// Bytes of the history totals for `history` samples per tier, rounded up
/// to whole pages.
pub const fn totals_size(history: u64) -> u64 {
    (HISTORY_TIERS * history * 8 * HISTORY_TOTAL_WORDS).div_ceil(4096) * 4096
}

/// Sizes and offsets of a segment, derived from its capacities.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Class slots, the overflow slot included.
    pub class_capacity: u64,
    /// Site slots (may be 0).
    pub site_capacity: u64,
    /// Offset of the site table (after the class table).
    pub site_offset: u64,
    /// Bytes per class slot.
    pub class_slot_size: u64,
    /// Event slots (0 or a power of two).
    pub ring_capacity: u64,
    /// History samples.
    pub history_capacity: u64,
    /// Offset of the class table.
    pub class_offset: u64,
    /// Offset of the event ring.
    pub ring_offset: u64,
    /// Total bytes.
    pub total_size: u64,
    /// The header states how much of the class and site tables is backed
    /// ([`header::CLASS_BACKED`], [`header::SITE_BACKED`]; version 2.1 and
    /// later). Without it every slot is.
    pub states_backing: bool,
}

impl Geometry {
    /// The geometry for the given capacities (clamped to sane ranges: at
    /// least two class slots, a power-of-two ring, at most
    /// [`HISTORY_MAX`] samples).
    pub fn new(class_capacity: u64, ring_capacity: u64, history_capacity: u64) -> Geometry {
        Geometry::with_sites(class_capacity, ring_capacity, history_capacity, 0)
    }

    /// [`Geometry::new`] with a site table of `site_capacity` slots (at
    /// most [`MAX_SITE_CAPACITY`]).
    pub fn with_sites(
        class_capacity: u64,
        ring_capacity: u64,
        history_capacity: u64,
        site_capacity: u64,
    ) -> Geometry {
        let site_capacity = site_capacity.min(MAX_SITE_CAPACITY);
        let class_capacity = class_capacity.clamp(2, MAX_CLASS_CAPACITY);
        let ring_capacity = if ring_capacity == 0 {
            0
        } else {
            ring_capacity
                .clamp(16, MAX_RING_CAPACITY)
                .next_power_of_two()
        };
        let history_capacity = history_capacity.clamp(1, HISTORY_MAX);
        let class_slot_size = class_slot_size(history_capacity);
        let class_offset = TOTALS_OFFSET + totals_size(history_capacity);
        let site_offset = class_offset + class_capacity * class_slot_size;
        let ring_offset = site_offset + site_capacity * SITE_SLOT_SIZE;
        let total_size = ring_offset + ring_capacity * EVENT_SLOT_SIZE;
        Geometry {
            class_capacity,
            site_capacity,
            site_offset,
            class_slot_size,
            ring_capacity,
            history_capacity,
            class_offset,
            ring_offset,
            total_size,
            states_backing: true,
        }
    }

    /// Offset of class slot `i`.
    pub fn class_slot(&self, i: u64) -> u64 {
        self.class_offset + i * self.class_slot_size
    }

    /// Offset of site slot `i`.
    pub fn site_slot(&self, i: u64) -> u64 {
        self.site_offset + i * SITE_SLOT_SIZE
    }

    /// Offset of history-totals sample `index` of tier `tier`.
    pub fn total_sample(&self, tier: u64, index: u64) -> u64 {
        TOTALS_OFFSET + (tier * self.history_capacity + index) * 8 * HISTORY_TOTAL_WORDS
    }

    /// Offset, inside a class slot, of the live count of sample `index` of
    /// tier `tier`.
    pub fn class_history(&self, tier: u64, index: u64) -> u64 {
        class::HISTORY + 4 * (tier * self.history_capacity + index)
    }

    /// Offset of the event slot of ticket `t` (ring must be non-empty).
    pub fn event_slot(&self, t: u64) -> u64 {
        self.ring_offset + (t & (self.ring_capacity - 1)) * EVENT_SLOT_SIZE
    }
}

// Compile-time checks that the regions do not overlap.
const _: () = assert!(header::BOOT_ID + 16 <= header::CMDLINE);
const _: () = assert!(header::SITE_OFFSET + 8 <= header::SERVICE);
const _: () = assert!(header::SERVICE + header::SERVICE_MAX <= header::CMDLINE);
const _: () = assert!(header::CMDLINE + header::CMDLINE_MAX <= header::TICKS);
const _: () = assert!(header::TICKS + TICK_MAX * TICK_ENTRY_SIZE <= HEADER_SIZE);
const _: () = assert!(tick::NAME + tick::NAME_MAX == tick::COUNT);
const _: () = assert!(class::COUNTERS + 8 * tracker_core::counter_words::COUNT <= class::PEAK_LIVE);
const _: () = assert!(class::PEAK_STAMPED + 8 <= class::COHORTS);
const _: () = assert!(class::COHORTS + 8 * tracker_core::age::COHORTS as u64 <= class::HISTORY);
const _: () = assert!(site::FUNC + site::FUNC_MAX == site::FRAME_SIZE);
const _: () = assert!(site::FILE + site::FILE_MAX == site::FUNC);
const _: () = assert!(site::FRAMES + SITE_FRAMES * site::FRAME_SIZE <= SITE_SLOT_SIZE);
const _: () = assert!(class::NAME + class::NAME_MAX == class::COUNTERS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_aligned_and_in_bounds() {
        let g = Geometry::new(4096, 65536, 64);
        assert_eq!(g.class_slot_size % 64, 0);
        assert!(g.class_slot_size >= class::HISTORY + 3 * 4 * 64);
        assert_eq!(g.class_offset % 4096, 0);
        assert!(g.total_sample(2, 63) + 64 <= g.class_offset);
        assert_eq!(g.ring_offset % 8, 0);
        assert_eq!(g.total_size, g.ring_offset + 65536 * 32);
        assert_eq!(Geometry::new(10, 100, 10).ring_capacity, 128);
        assert_eq!(Geometry::new(10, 0, 10).ring_capacity, 0);
        assert_eq!(HISTORY_MAX, 96);
    }
}
