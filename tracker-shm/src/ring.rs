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

use std::sync::atomic::{fence, Ordering::*};

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
    /// `CLOCK_MONOTONIC` ns (coarse).
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
}
