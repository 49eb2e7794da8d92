//! The header protocol: geometry, identity and state.
//!
//! *Writer.* [`write`] stores every field with `Relaxed` stores while the
//! state is [`layout::STATE_INIT`]; the class table's overflow slot is
//! published too (see [`crate::classes`]); then [`publish`] issues a
//! `Release` fence and stores [`layout::STATE_LIVE`]. The file is built
//! under a temporary name and renamed into place after that (see
//! [`crate::naming`]), so a reader normally never meets `STATE_INIT`; the
//! state word is the second line of defence.
//!
//! *Reader.* [`validate`] loads the state, refuses `STATE_INIT`, and after
//! an `Acquire` fence (pairing with the writer's `Release` fence) reads the
//! geometry, which is then immutable: what it read is what was written.
//! The geometry is still untrusted (the file may be forged): it is
//! re-derived from the capacities and every stated offset is compared.
//!
//! The words that change later (heartbeat, counts of dropped classes and
//! cut names, the closed state) are each meaningful alone and read
//! `Relaxed`.

use std::path::Path;
use std::sync::atomic::{fence, Ordering::*};

use crate::error::ReadError;
use crate::layout::{self, header, Geometry};
use crate::mapping::{ReadView, WriteView};

/// What the header says about the writer and the segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Layout version (major, minor).
    pub version: (u16, u16),
    /// Writer pid.
    pub pid: u32,
    /// Writer start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// Writer command line.
    pub program: String,
    /// Creation, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Creation, `CLOCK_MONOTONIC` ns.
    pub created_mono_ns: u64,
    /// Last heartbeat, `CLOCK_MONOTONIC` ns.
    pub heartbeat_ns: u64,
    /// [`layout::STATE_LIVE`] or [`layout::STATE_CLOSED`].
    pub state: u64,
    /// Events are being recorded.
    pub events: bool,
    /// Events from threads other than the serialised lane's were not
    /// recorded (since 2.2; see [`layout::FLAG_SERIALIZED_RING`]).
    pub events_skipped: u64,
    /// Classes folded into the overflow slot.
    pub classes_dropped: u64,
    /// Class names cut to fit.
    pub names_truncated: u64,
    /// History sample period.
    pub history_period_ms: u64,
    /// The service the writer belongs to.
    pub service: String,
    /// Worker slot in the service, [`layout::NO_WORKER`] if none.
    pub worker: u64,
    /// [`layout::ROLE_STANDALONE`], [`layout::ROLE_MASTER`] or
    /// [`layout::ROLE_WORKER`].
    pub role: u64,
    /// The writer's parent pid when the segment was created.
    pub parent_pid: u32,
    /// Resident set size at the last sample, bytes (0 before the first).
    pub rss_bytes: u64,
    /// Milliseconds per age epoch.
    pub age_epoch_ms: u64,
    /// `CLOCK_MONOTONIC` ns at age epoch 0.
    pub age_origin_ns: u64,
    /// Tier `k+1` of the history samples every this many tier-`k` samples.
    pub tier_factor: u64,
    /// One creation in this many (on average) records its site; 0: none.
    pub site_every: u64,
    /// Sampled creations whose site found the table full.
    pub sites_dropped: u64,
}

/// The writer's identity, as the header records it.
pub(crate) struct Identity<'a> {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
    pub(crate) created_unix_ms: u64,
    pub(crate) created_mono_ns: u64,
    /// The command line, already cut to [`header::CMDLINE_MAX`] bytes.
    pub(crate) cmdline: &'a [u8],
    pub(crate) boot_id: [u8; 16],
    pub(crate) history_period_ms: u64,
    pub(crate) events: bool,
    /// Only the serialised lane records events.
    pub(crate) serialized_ring: bool,
    /// The service name, already cut to [`header::SERVICE_MAX`] bytes.
    pub(crate) service: &'a [u8],
    pub(crate) worker: u64,
    pub(crate) role: u64,
    pub(crate) parent_pid: u32,
    pub(crate) age_epoch_ms: u64,
    pub(crate) age_origin_ns: u64,
    pub(crate) age_folded: u64,
    pub(crate) site_every: u64,
}

/// Writes every header field but the state (writer, before [`publish`]).
pub(crate) fn write(v: WriteView<'_>, g: &Geometry, id: &Identity<'_>) {
    let put = |off: u64, value: u64| v.word(off).store(value, Relaxed);
    put(header::MAGIC, layout::MAGIC);
    v.word32(header::ENDIAN)
        .store(layout::ENDIAN_PROBE, Relaxed);
    v.word32(header::VERSION).store(
        u32::from(layout::MAJOR) | u32::from(layout::MINOR) << 16,
        Relaxed,
    );
    put(header::TOTAL_SIZE, g.total_size);
    put(header::HEADER_SIZE, layout::HEADER_SIZE);
    put(header::CLASS_OFFSET, g.class_offset);
    put(header::CLASS_CAPACITY, g.class_capacity);
    put(header::CLASS_SLOT_SIZE, g.class_slot_size);
    put(header::RING_OFFSET, g.ring_offset);
    put(header::RING_CAPACITY, g.ring_capacity);
    put(header::RING_SLOT_SIZE, layout::EVENT_SLOT_SIZE);
    put(header::HISTORY_CAPACITY, g.history_capacity);
    put(header::HISTORY_PERIOD_MS, id.history_period_ms);
    put(header::PID, u64::from(id.pid));
    put(header::START_TIME, id.start_time);
    put(header::CREATED_UNIX_MS, id.created_unix_ms);
    put(header::CREATED_MONO_NS, id.created_mono_ns);
    put(header::HEARTBEAT_NS, id.created_mono_ns);
    put(
        header::FLAGS,
        (if id.events { layout::FLAG_EVENTS } else { 0 })
            | if id.serialized_ring {
                layout::FLAG_SERIALIZED_RING
            } else {
                0
            },
    );
    let cmdline = &id.cmdline[..id.cmdline.len().min(header::CMDLINE_MAX as usize)];
    put(header::CMDLINE_LEN, cmdline.len() as u64);
    v.write_bytes(header::CMDLINE, cmdline);
    v.write_bytes(header::BOOT_ID, &id.boot_id);
    let service = &id.service[..id.service.len().min(header::SERVICE_MAX as usize)];
    put(header::SERVICE_LEN, service.len() as u64);
    v.write_bytes(header::SERVICE, service);
    put(header::WORKER, id.worker);
    put(header::ROLE, id.role);
    put(header::PARENT_PID, u64::from(id.parent_pid));
    put(header::AGE_EPOCH_MS, id.age_epoch_ms);
    put(header::AGE_ORIGIN_NS, id.age_origin_ns);
    put(header::AGE_FOLDED, id.age_folded);
    put(header::TIER_FACTOR, layout::TIER_FACTOR);
    put(header::SITE_CAPACITY, g.site_capacity);
    put(header::SITE_OFFSET, g.site_offset);
    put(header::SITE_EVERY, id.site_every);
}

/// Makes everything written so far visible to readers that see the state
/// (writer, once).
pub(crate) fn publish(v: WriteView<'_>) {
    fence(Release);
    v.word(header::STATE).store(layout::STATE_LIVE, Relaxed);
}

/// Marks the segment closed (the writer is exiting).
pub(crate) fn close(v: WriteView<'_>) {
    v.word(header::STATE).store(layout::STATE_CLOSED, Release);
}

/// Records a heartbeat at `now_ns` (`CLOCK_MONOTONIC`).
pub(crate) fn beat(v: WriteView<'_>, now_ns: u64) {
    v.word(header::HEARTBEAT_NS).store(now_ns, Relaxed);
}

/// The header fields (reader). Fields out of bounds read as 0.
pub(crate) fn read(v: ReadView<'_>) -> HeaderInfo {
    let get = |off| v.u64(off).unwrap_or(0);
    let version = v.u32(header::VERSION).unwrap_or(0);
    HeaderInfo {
        version: ((version & 0xffff) as u16, (version >> 16) as u16),
        pid: u32::try_from(get(header::PID)).unwrap_or(0),
        start_time: get(header::START_TIME),
        program: v.text(header::CMDLINE_LEN, header::CMDLINE, header::CMDLINE_MAX),
        created_unix_ms: get(header::CREATED_UNIX_MS),
        created_mono_ns: get(header::CREATED_MONO_NS),
        heartbeat_ns: get(header::HEARTBEAT_NS),
        state: get(header::STATE),
        events: get(header::FLAGS) & layout::FLAG_EVENTS != 0,
        events_skipped: get(header::EVENTS_SKIPPED),
        classes_dropped: get(header::CLASSES_DROPPED),
        names_truncated: get(header::NAMES_TRUNCATED),
        history_period_ms: get(header::HISTORY_PERIOD_MS),
        service: v.text(header::SERVICE_LEN, header::SERVICE, header::SERVICE_MAX),
        worker: get(header::WORKER),
        role: get(header::ROLE),
        parent_pid: u32::try_from(get(header::PARENT_PID)).unwrap_or(0),
        rss_bytes: get(header::RSS_BYTES),
        age_epoch_ms: get(header::AGE_EPOCH_MS),
        age_origin_ns: get(header::AGE_ORIGIN_NS),
        tier_factor: get(header::TIER_FACTOR),
        site_every: get(header::SITE_EVERY),
        sites_dropped: get(header::SITES_DROPPED),
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> ReadError {
    ReadError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Checks the header of the segment mapped at `v` (reader) and returns its
/// geometry, which is then known to fit the mapping.
///
/// # Errors
/// [`ReadError`] naming the first thing wrong: magic, byte order, version,
/// state, or a geometry that is not the one the capacities imply or does
/// not fit the file.
pub(crate) fn validate(path: &Path, v: ReadView<'_>) -> Result<Geometry, ReadError> {
    let get = |off| {
        v.u64(off)
            .ok_or_else(|| corrupt(path, "header out of bounds"))
    };
    if get(header::MAGIC)? != layout::MAGIC {
        return Err(ReadError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    if v.u32(header::ENDIAN) != Some(layout::ENDIAN_PROBE) {
        return Err(ReadError::EndianMismatch {
            path: path.to_path_buf(),
        });
    }
    let version = v.u32(header::VERSION).unwrap_or(0);
    let major = (version & 0xffff) as u16;
    if major != layout::MAJOR {
        return Err(ReadError::Version {
            path: path.to_path_buf(),
            found: major,
            supported: layout::MAJOR,
        });
    }
    let state = get(header::STATE)?;
    if state == layout::STATE_INIT {
        return Err(ReadError::NotReady {
            path: path.to_path_buf(),
        });
    }
    if state > layout::STATE_CLOSED {
        return Err(corrupt(path, format!("unknown state {state}")));
    }
    fence(Acquire);
    let total = get(header::TOTAL_SIZE)?;
    if total > v.len() as u64 {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            size: v.len() as u64,
            expected: total,
        });
    }
    if get(header::HEADER_SIZE)? != layout::HEADER_SIZE {
        return Err(corrupt(path, "header size"));
    }
    let class_capacity = get(header::CLASS_CAPACITY)?;
    let ring_capacity = get(header::RING_CAPACITY)?;
    let history_capacity = get(header::HISTORY_CAPACITY)?;
    let site_capacity = get(header::SITE_CAPACITY)?;
    if site_capacity > layout::MAX_SITE_CAPACITY {
        return Err(corrupt(
            path,
            format!(
                "site capacity {site_capacity} (at most {} allowed)",
                layout::MAX_SITE_CAPACITY
            ),
        ));
    }
    if !(2..=layout::MAX_CLASS_CAPACITY).contains(&class_capacity) {
        return Err(corrupt(
            path,
            format!(
                "class capacity {class_capacity} (2 to {} allowed)",
                layout::MAX_CLASS_CAPACITY
            ),
        ));
    }
    if ring_capacity != 0
        && (!ring_capacity.is_power_of_two() || ring_capacity > layout::MAX_RING_CAPACITY)
    {
        return Err(corrupt(
            path,
            format!(
                "ring capacity {ring_capacity} (0, or a power of two up to {} allowed)",
                layout::MAX_RING_CAPACITY
            ),
        ));
    }
    if !(1..=layout::HISTORY_MAX).contains(&history_capacity) {
        return Err(corrupt(
            path,
            format!("history capacity {history_capacity}"),
        ));
    }
    // The writer derives the geometry from the capacities; so does the
    // reader, then checks the header agrees. Any other layout is refused.
    let mut geo = Geometry::with_sites(
        class_capacity,
        ring_capacity,
        history_capacity,
        site_capacity,
    );
    // Version 2.1 states which slots have storage (see `crate::backing`).
    geo.states_backing = version >> 16 >= 1;
    let claims = [
        (header::SITE_OFFSET, geo.site_offset, "site table offset"),
        (header::CLASS_OFFSET, geo.class_offset, "class table offset"),
        (
            header::CLASS_SLOT_SIZE,
            geo.class_slot_size,
            "class slot size",
        ),
        (header::RING_OFFSET, geo.ring_offset, "ring offset"),
        (
            header::RING_SLOT_SIZE,
            layout::EVENT_SLOT_SIZE,
            "event slot size",
        ),
        (header::TOTAL_SIZE, geo.total_size, "total size"),
    ];
    for (off, expected, what) in claims {
        if get(off)? != expected {
            return Err(corrupt(path, what));
        }
    }
    if geo.total_size > v.len() as u64 {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            size: v.len() as u64,
            expected: geo.total_size,
        });
    }
    Ok(geo)
}
