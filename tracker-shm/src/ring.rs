//! The event ring: lifecycle events pushed by the writer's threads and
//! polled by readers in other processes, without either side waiting.
//!
//! *Writer* ([`push`]). A thread takes ticket `t` with a `fetch_add` on
//! [`header::RING_HEAD`]; its slot is `t mod capacity`. When one lock
//! serialises every writer ([`push_serialized`], flagged
//! [`crate::layout::FLAG_SERIALIZED_RING`]), the ticket is taken with a
//! plain load and store of the head instead: the lock orders the writers
//! as the `fetch_add` would, and readers see the same sequence of stores
//! (head, then the slot), so nothing below changes for them. It stores the
//! slot's sequence word `2t+1` ("being written"), issues a `Release` fence
//! so that store is ordered before the payload stores, writes the payload
//! (`Relaxed`), and stores `2t+2` ("ticket `t` published") with `Release`.
//! Two writers on one slot are a lap apart; the later one's sequence wins.
//!
//! *Reader* ([`poll`]). It loads the head, then for each ticket `t` below
//! it loads the slot's sequence `s1`: below `2t+2` means not yet written
//! (read it next time). Otherwise, after an `Acquire` fence (pairing with
//! the writer's final `Release` store) it loads the payload, then after
//! another `Acquire` fence loads the sequence again as `s2`. The event is
//! kept only if `s1 == s2 == 2t+2`: had a later lap started writing the
//! slot during the read, its `2t'+1` store (ordered before its payload by
//! the writer's fence) would show in `s2`. This is the classic seqlock
//! argument; every access is atomic, so a torn read is discarded, never
//! undefined.
//!
//! A reader never writes: lost events (lapped, overwritten or garbage) are
//! counted in its own [`EventCursor`].

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};

use tracker_core::{EventKind, Serial};

use crate::layout::{event, header, Geometry};
use crate::mapping::{ReadView, SegmentMap};

/// Records one event (writer). The ring must have slots.
#[inline(always)]
pub(crate) fn push(seg: &SegmentMap, kind: EventKind, slot: u32, serial: Serial, time_ns: u64) {
    let t = seg.header_word(header::RING_HEAD).fetch_add(1, Relaxed);
    write(seg, t, kind, slot, serial, time_ns);
}

/// Records one event (writer) for a caller that holds the lock
/// serialising every `push_serialized` on this ring, in a ring no
/// [`push`] writes. The ring must have slots.
#[inline(always)]
pub(crate) fn push_serialized(
    seg: &SegmentMap,
    kind: EventKind,
    slot: u32,
    serial: Serial,
    time_ns: u64,
) {
    let head = seg.header_word(header::RING_HEAD);
    let t = head.load(Relaxed);
    head.store(t.wrapping_add(1), Relaxed);
    write(seg, t, kind, slot, serial, time_ns);
}

/// Writes ticket `t`'s slot (see the module documentation).
#[inline(always)]
fn write(seg: &SegmentMap, t: u64, kind: EventKind, slot: u32, serial: Serial, time_ns: u64) {
    let words = seg.event_slot(t);
    let word = |off: u64| &words[(off / 8) as usize];
    let seq = word(event::SEQ);
    seq.store(t.wrapping_mul(2).wrapping_add(1), Relaxed);
    fence(Release);
    word(event::META).store(u64::from(kind.code()) | u64::from(slot) << 8, Relaxed);
    word(event::SERIAL).store(serial, Relaxed);
    word(event::TIME_NS).store(time_ns, Relaxed);
    seq.store(t.wrapping_mul(2).wrapping_add(2), Release);
}

/// Time stamps for the serialised lane without a clock read per event.
///
/// Reading even the coarse clock costs about as much as everything else an
/// event does. While events come fast, one reading serves a run of them:
/// after a reading within [`EventClock::BURST_NS`] of the one before, the
/// next `grant` events take it too, `grant` doubling with each such reading
/// up to [`EventClock::MAX_GRANT`], and dropping to none after a slower
/// one. The clock's own resolution (a few milliseconds) dominates a run's
/// spread at steady rates. A run cut short by a pause would stamp the first
/// events after it with the time before it: every sampler tick
/// ([`EventClock::tick`]) ends the run, so that lag is at most one history
/// period. A writer without a sampler reads the clock for every event.
///
/// Private to the writing process; only the serialised lane calls
/// [`EventClock::now`] (plain loads and stores), the sampler only `tick`.
pub(crate) struct EventClock {
    /// [`EventClock::MAX_GRANT`], or 0 when no sampler ticks.
    max_grant: u32,
    /// The last reading.
    ns: AtomicU64,
    /// Events that may still take `ns`.
    left: AtomicU32,
    /// What the last reading granted.
    grant: AtomicU32,
    /// [`EventClock::ticks`] when `ns` was read.
    seen: AtomicU64,
    /// Sampler ticks so far.
    ticks: AtomicU64,
}

impl EventClock {
    /// Readings closer than this continue a run.
    pub(crate) const BURST_NS: u64 = 5_000_000;
    /// The most events one reading serves after its own.
    pub(crate) const MAX_GRANT: u32 = 32;

    /// A clock for a writer whose sampler calls [`EventClock::tick`]
    /// (`ticked`), or one that reads the clock for every event.
    pub(crate) fn new(ticked: bool) -> EventClock {
        EventClock {
            max_grant: if ticked { Self::MAX_GRANT } else { 0 },
            ns: AtomicU64::new(0),
            left: AtomicU32::new(0),
            grant: AtomicU32::new(0),
            seen: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    /// The time stamp of the next event; `read` reads the clock (writer,
    /// serialised lane only).
    #[inline(always)]
    pub(crate) fn now(&self, read: impl FnOnce() -> u64) -> u64 {
        let left = self.left.load(Relaxed);
        let ticks = self.ticks.load(Relaxed);
        if left != 0 && ticks == self.seen.load(Relaxed) {
            self.left.store(left - 1, Relaxed);
            return self.ns.load(Relaxed);
        }
        if self.max_grant == 0 {
            return read();
        }
        self.refresh(read(), ticks)
    }

    #[inline(never)]
    fn refresh(&self, now: u64, ticks: u64) -> u64 {
        let prev = self.ns.load(Relaxed);
        let grant = if now.wrapping_sub(prev) < Self::BURST_NS {
            (self.grant.load(Relaxed).saturating_mul(2))
                .max(1)
                .min(self.max_grant)
        } else {
            0
        };
        self.ns.store(now, Relaxed);
        self.seen.store(ticks, Relaxed);
        self.grant.store(grant, Relaxed);
        self.left.store(grant, Relaxed);
        now
    }

    /// Ends the current run: the next event reads the clock (sampler).
    pub(crate) fn tick(&self) {
        self.ticks.fetch_add(1, Relaxed);
    }
}

/// One lifecycle event from the ring.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Ticket number (position in the writer's event sequence).
    pub ticket: u64,
    /// What happened.
    pub kind: EventKind,
    /// Class slot index (see [`crate::Segment::classes`]).
    pub slot: u32,
    /// The object's serial.
    pub serial: Serial,
    /// `CLOCK_MONOTONIC` ns (coarse; in a serialised ring possibly the
    /// reading of a slightly earlier event, see docs/segment-format.md).
    pub time_ns: u64,
}

/// The most events one [`crate::Segment::poll_events`] call returns; older
/// unread events are skipped and counted as lost.
pub const MAX_EVENTS_PER_POLL: u64 = 1 << 16;

/// A reader's position in the event ring.
#[derive(Clone, Debug, Default)]
pub struct EventCursor {
    /// Next ticket to read.
    pub next: u64,
    /// Events missed so far.
    pub lost: u64,
    /// The writer's count of skipped events (see
    /// [`crate::layout::FLAG_SERIALIZED_RING`]) when last polled.
    pub skipped: u64,
}

/// A cursor at the oldest event still in the ring (reader).
pub(crate) fn from_oldest(v: ReadView<'_>, g: &Geometry) -> EventCursor {
    let head = v.u64(header::RING_HEAD).unwrap_or(0);
    EventCursor {
        next: head.saturating_sub(g.ring_capacity),
        lost: 0,
        skipped: v.u64(header::EVENTS_SKIPPED).unwrap_or(0),
    }
}

/// A cursor after the newest event (reader).
pub(crate) fn from_now(v: ReadView<'_>) -> EventCursor {
    EventCursor {
        next: v.u64(header::RING_HEAD).unwrap_or(0),
        lost: 0,
        skipped: v.u64(header::EVENTS_SKIPPED).unwrap_or(0),
    }
}

/// Reads the events published since the cursor into `out` (reader);
/// returns how many were lost (also added to `cursor.lost`).
pub(crate) fn poll(
    v: ReadView<'_>,
    geo: &Geometry,
    cursor: &mut EventCursor,
    out: &mut Vec<Event>,
) -> u64 {
    // Events the writer skipped since the last poll are missed too (a
    // hostile count only inflates the figure).
    let skipped = v.u64(header::EVENTS_SKIPPED).unwrap_or(0);
    let mut lost = skipped.saturating_sub(cursor.skipped);
    cursor.skipped = cursor.skipped.max(skipped);
    if geo.ring_capacity == 0 {
        cursor.lost = cursor.lost.saturating_add(lost);
        return lost;
    }
    let head = v.u64(header::RING_HEAD).unwrap_or(0);
    fence(Acquire);
    // Never more than the ring holds, nor more than one poll's worth: a
    // huge (or hostile) ring must not make one poll take seconds or
    // gigabytes. What is skipped counts as lost.
    let window = geo.ring_capacity.min(MAX_EVENTS_PER_POLL);
    if head.saturating_sub(cursor.next) > window {
        lost = lost.saturating_add(head - window - cursor.next);
        cursor.next = head - window;
    }
    while cursor.next < head {
        let t = cursor.next;
        let at = geo.event_slot(t);
        let published = t.wrapping_mul(2).wrapping_add(2);
        let s1 = v.u64(at + event::SEQ).unwrap_or(0);
        if s1 < published {
            break; // not yet written: read it next time
        }
        fence(Acquire);
        let meta = v.u64(at + event::META).unwrap_or(0);
        let serial = v.u64(at + event::SERIAL).unwrap_or(0);
        let time_ns = v.u64(at + event::TIME_NS).unwrap_or(0);
        fence(Acquire);
        let s2 = v.u64(at + event::SEQ).unwrap_or(0);
        cursor.next += 1;
        let kind = EventKind::from_code((meta & 0xff) as u8);
        match kind {
            Some(kind) if s1 == published && s2 == published => out.push(Event {
                ticket: t,
                kind,
                slot: ((meta >> 8) & 0xffff_ffff) as u32,
                serial,
                time_ns,
            }),
            _ => lost = lost.saturating_add(1), // overwritten by a newer lap, or garbage
        }
    }
    cursor.lost = cursor.lost.saturating_add(lost);
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::WriteMap;

    fn segment(g: Geometry) -> SegmentMap {
        SegmentMap::new(WriteMap::private(g.total_size as usize).unwrap(), g)
    }

    #[test]
    fn a_lapped_reader_counts_what_it_lost() {
        let g = Geometry::new(2, 16, 1);
        let seg = segment(g);
        let v = seg.view();
        let mut cursor = from_now(v.reader());
        for serial in 0..20 {
            push(&seg, EventKind::Attached, 0, serial, 0);
        }
        let mut out = Vec::new();
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), 4);
        let serials: Vec<u64> = out.iter().map(|e| e.serial).collect();
        assert_eq!(serials, (4..20).collect::<Vec<_>>());
        assert_eq!(from_oldest(v.reader(), &g).next, 4);
    }

    #[test]
    fn a_slot_being_rewritten_is_not_read() {
        let g = Geometry::new(2, 16, 1);
        let seg = segment(g);
        let v = seg.view();
        push(&seg, EventKind::Attached, 0, 1, 0);
        // Ticket 1 taken but its slot not published yet.
        v.word(header::RING_HEAD).fetch_add(1, Relaxed);
        let (mut cursor, mut out) = (EventCursor::default(), Vec::new());
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), 0);
        assert_eq!(out.len(), 1);
        assert_eq!(cursor.next, 1, "ticket 1 is read next time");
    }

    #[test]
    fn the_serialised_lane_writes_what_readers_read_and_skips_are_missed() {
        let g = Geometry::new(2, 16, 1);
        let seg = segment(g);
        let v = seg.view();
        let mut cursor = from_now(v.reader());
        for serial in 1..=20 {
            push_serialized(&seg, EventKind::Destroyed, 0, serial, serial * 10);
        }
        v.word(header::EVENTS_SKIPPED).store(3, Relaxed);
        let mut out = Vec::new();
        // 4 lapped plus 3 skipped by the writer.
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), 7);
        let serials: Vec<u64> = out.iter().map(|e| e.serial).collect();
        assert_eq!(serials, (5..=20).collect::<Vec<_>>());
        assert!(out
            .iter()
            .all(|e| e.kind == EventKind::Destroyed && e.time_ns == e.serial * 10));
        assert_eq!(out[0].ticket, 4);
        // Nothing new: nothing more missed; a hostile count saturates.
        out.clear();
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), 0);
        v.word(header::EVENTS_SKIPPED).store(u64::MAX, Relaxed);
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), u64::MAX - 3);
        assert_eq!(poll(v.reader(), &g, &mut cursor, &mut out), 0);
        assert_eq!(cursor.lost, u64::MAX);
        // A new reader does not count what was skipped before it came.
        assert_eq!(from_now(v.reader()).skipped, u64::MAX);
        assert_eq!(from_oldest(v.reader(), &g).skipped, u64::MAX);
    }

    /// Feeds an [`EventClock`] events at the given true times (ns), with a
    /// clock of 4 ms resolution and a sampler tick every `tick_ns`; returns
    /// (clock reads, the largest lag of a stamp behind the clock's reading
    /// at the event).
    fn stamp(times: &[u64], tick_ns: u64) -> (usize, u64) {
        let clock = EventClock::new(true);
        let coarse = |t: u64| t / 4_000_000 * 4_000_000;
        let (mut reads, mut lag, mut next_tick) = (0, 0, tick_ns);
        for &t in times {
            while t >= next_tick {
                clock.tick();
                next_tick += tick_ns;
            }
            let stamp = clock.now(|| {
                reads += 1;
                coarse(t)
            });
            assert!(stamp <= coarse(t), "a stamp is never ahead of the clock");
            lag = lag.max(coarse(t) - stamp);
        }
        (reads, lag)
    }

    #[test]
    fn fast_events_share_readings_and_slow_ones_read_the_clock() {
        let second = 1_000_000_000;
        // 100,000 events 25 ns apart: about one reading per 33 events,
        // stamps behind by at most the clock's own resolution step.
        let fast: Vec<u64> = (0..100_000).map(|i| second + i * 25).collect();
        let (reads, lag) = stamp(&fast, second);
        assert!(reads < 100_000 / 30, "{reads} readings");
        assert!(lag <= 4_000_000, "lag {lag}");
        // One event every 10 ms: every event reads the clock.
        let slow: Vec<u64> = (0..500).map(|i| second + i * 10_000_000).collect();
        assert_eq!(stamp(&slow, second), (500, 0));
        // One event per millisecond: runs stay short, stamps within two
        // resolution steps.
        let steady: Vec<u64> = (0..10_000).map(|i| second + i * 1_000_000).collect();
        let (_, lag) = stamp(&steady, second);
        assert!(lag <= 8_000_000, "lag {lag}");
    }

    #[test]
    fn a_pause_after_a_run_lags_by_at_most_one_sampler_tick() {
        let second = 1_000_000_000;
        // A run, then 3 s of nothing, then a few events.
        let mut times: Vec<u64> = (0..1_000).map(|i| second + i * 25).collect();
        times.extend((0..5).map(|i| 4 * second + i * 25));
        let (_, lag) = stamp(&times, second);
        assert_eq!(
            lag, 0,
            "the sampler's ticks ended the run before the pause ended"
        );
        // Were there no ticks, the first events after the pause would carry
        // the run's time: the sampler's ticks are what bound the lag.
        let (_, lag) = stamp(&times, u64::MAX);
        assert!(lag > 2 * second, "lag {lag}");
    }

    #[test]
    fn a_writer_without_sampler_reads_the_clock_for_every_event() {
        let clock = EventClock::new(false);
        let mut reads = 0;
        for t in 0..1_000u64 {
            let stamp = clock.now(|| {
                reads += 1;
                t * 25
            });
            assert_eq!(stamp, t * 25);
        }
        assert_eq!(reads, 1_000);
    }
}
