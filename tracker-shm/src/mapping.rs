//! The mapped region: a segment's memory and word-level access to it. The
//! only module of the reader and writer that touches raw pointers.
//!
//! Every access is an atomic load or store of an aligned u32 or u64, because
//! the other side of the segment runs concurrently. Readers never form a
//! `&[u8]` over the mapping, never write, and never use read-modify-write
//! instructions (which fault on a read-only mapping).
//!
//! Views borrow their mapping ([`ReadMap::view`], [`WriteMap::view`]): the
//! borrow checker, not a convention, keeps a view from outliving the memory
//! it reads. Every access is bounds- and alignment-checked in every build;
//! an offset the writer computed wrongly panics instead of touching memory
//! outside the segment.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::fault::{Guarded, MAX_GUARDED};
use crate::layout::{class, Geometry, EVENT_SLOT_SIZE, HEADER_SIZE};

/// A read-only view of `len` bytes at `ptr`, shared with a writer in
/// another process, valid for `'m` (the borrow of its mapping). Every load
/// is bounds- and alignment-checked.
#[derive(Copy, Clone)]
pub(crate) struct ReadView<'m> {
    ptr: *const u8,
    len: usize,
    _memory: PhantomData<&'m [AtomicU64]>,
}

// SAFETY: the view only performs atomic loads, on memory that stays mapped
// for `'m`.
unsafe impl Send for ReadView<'_> {}
// SAFETY: as above; loads from several threads are fine.
unsafe impl Sync for ReadView<'_> {}

impl<'m> ReadView<'m> {
    /// # Safety
    /// `ptr..ptr+len` must stay mapped and readable for `'m`, be 8-byte
    /// aligned, and be written by others only atomically.
    unsafe fn new(ptr: *const u8, len: usize) -> ReadView<'m> {
        ReadView {
            ptr,
            len,
            _memory: PhantomData,
        }
    }

    /// A view of words in this process's own memory.
    #[cfg(test)]
    pub(crate) fn of_words(words: &'m [AtomicU64]) -> ReadView<'m> {
        // SAFETY: the slice is borrowed for `'m`, 8-byte aligned, and made
        // of atomics.
        unsafe { ReadView::new(words.as_ptr() as *const u8, words.len() * 8) }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `off` if `len` bytes from it are in bounds and `off` is a multiple
    /// of `align`.
    #[inline]
    fn check(&self, off: u64, len: u64, align: u64) -> Option<usize> {
        let end = off.checked_add(len)?;
        (off % align == 0 && end <= self.len as u64).then_some(off as usize)
    }

    /// The u64 at `off`, or `None` if out of bounds or unaligned.
    #[inline]
    pub(crate) fn u64(&self, off: u64) -> Option<u64> {
        let off = self.check(off, 8, 8)?;
        // SAFETY: in bounds and aligned (checked above; the base is 8-byte
        // aligned); an atomic load is allowed on read-only memory for a
        // natively supported width, and the writer only uses atomics too.
        Some(unsafe { AtomicU64::from_ptr(self.ptr.add(off) as *mut u64).load(Ordering::Relaxed) })
    }

    /// The u32 at `off`, or `None` if out of bounds or unaligned.
    #[inline]
    pub(crate) fn u32(&self, off: u64) -> Option<u32> {
        let off = self.check(off, 4, 4)?;
        // SAFETY: as in `u64`.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.add(off) as *mut u32).load(Ordering::Relaxed) })
    }

    /// The `N` u32 words from `off`, or `None` if out of bounds or
    /// unaligned (one check for all of them).
    #[inline]
    pub(crate) fn u32s<const N: usize>(&self, off: u64) -> Option<&'m [AtomicU32; N]> {
        let off = self.check(off, 4 * N as u64, 4)?;
        // SAFETY: in bounds and 4-aligned (checked; the base is 8-aligned);
        // atomics are valid for any bit pattern, only loaded through this
        // shared reference (allowed on read-only memory), and the view's
        // owner keeps the mapping alive for `'m`.
        Some(unsafe { &*(self.ptr.add(off) as *const [AtomicU32; N]) })
    }

    /// The class counters at `off`, or `None` if out of bounds or unaligned.
    /// Only their loading methods may be used (`ClassCounters::totals`):
    /// the memory may be mapped read-only.
    pub(crate) fn counters(&self, off: u64) -> Option<&'m tracker_core::ClassCounters> {
        let off = self.check(off, 8 * tracker_core::counter_words::COUNT, 8)?;
        // SAFETY: in bounds and 8-aligned (checked; the base is 8-aligned);
        // `ClassCounters` is `repr(C)` atomics valid for any bit pattern,
        // and atomic loads are allowed on read-only memory. The view's
        // owner keeps the mapping alive for the view's (and so the
        // reference's) life.
        Some(unsafe { &*(self.ptr.add(off) as *const tracker_core::ClassCounters) })
    }

    /// The UTF-8 text (lossily decoded) whose byte length is the u64 at
    /// `len_off` (clamped to `max`) and whose bytes start at `off`.
    pub(crate) fn text(&self, len_off: u64, off: u64, max: u64) -> String {
        let len = self.u64(len_off).unwrap_or(0).min(max);
        let bytes = self.bytes(off, len).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `len` bytes at `off` (8-byte aligned), read word by word.
    pub(crate) fn bytes(&self, off: u64, len: u64) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize + 8);
        let mut at = off;
        while (out.len() as u64) < len {
            out.extend_from_slice(&self.u64(at)?.to_le_bytes());
            at += 8;
        }
        out.truncate(len as usize);
        Some(out)
    }
}

/// A writable view of a segment the writer owns, valid for `'m` (the
/// borrow of its mapping). Offsets come from the writer's own geometry;
/// they are checked all the same, in every build (a wrong one panics).
#[derive(Copy, Clone)]
pub(crate) struct WriteView<'m> {
    ptr: *mut u8,
    len: usize,
    _memory: PhantomData<&'m [AtomicU64]>,
}

// SAFETY: the view only performs atomic operations, on memory that stays
// mapped for `'m`.
unsafe impl Send for WriteView<'_> {}
// SAFETY: as above.
unsafe impl Sync for WriteView<'_> {}

/// The out-of-bounds path of [`WriteView`], kept out of line so the checks
/// cost a compare and a branch on the hot path.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(off: u64, width: u64, len: usize) -> ! {
    panic!("segment access of {width} bytes at offset {off} outside the {len}-byte mapping or misaligned")
}

impl<'m> WriteView<'m> {
    /// # Safety
    /// `ptr..ptr+len` must stay mapped read-write for `'m`, be 8-byte
    /// aligned, and be accessed by others only atomically.
    unsafe fn new(ptr: *mut u8, len: usize) -> WriteView<'m> {
        WriteView {
            ptr,
            len,
            _memory: PhantomData,
        }
    }

    /// The same memory, for reading.
    pub(crate) fn reader(&self) -> ReadView<'m> {
        // SAFETY: same memory and lifetime as `self`.
        unsafe { ReadView::new(self.ptr, self.len) }
    }

    /// `off` as an index, if `width` bytes from it are in bounds and it is
    /// a multiple of `width`; panics otherwise.
    #[inline(always)]
    #[track_caller]
    fn checked(&self, off: u64, width: u64, align: u64) -> usize {
        match off.checked_add(width) {
            Some(end) if end <= self.len as u64 && off % align == 0 => off as usize,
            _ => out_of_bounds(off, width, self.len),
        }
    }

    /// The u64 word at `off`.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn word(&self, off: u64) -> &'m AtomicU64 {
        let off = self.checked(off, 8, 8);
        // SAFETY: in bounds and aligned (checked; the base is 8-aligned);
        // the memory is mapped for `'m` and only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.ptr.add(off) as *mut u64) }
    }

    /// The u32 word at `off`.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn word32(&self, off: u64) -> &'m AtomicU32 {
        let off = self.checked(off, 4, 4);
        // SAFETY: as in `word`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off) as *mut u32) }
    }

    /// Writes `bytes` at `off` (8-byte aligned) word by word, zero-padded
    /// to whole words.
    pub(crate) fn write_bytes(&self, off: u64, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.word(off + 8 * i as u64)
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }
}

/// A read-only mapping of a segment file, guarded against the file
/// shrinking (see [`crate::fault`]).
pub(crate) struct ReadMap {
    // Declared before the mapping: withdrawn before it is unmapped.
    guard: Guarded,
    map: MmapRaw,
}

fn too_many() -> io::Error {
    io::Error::other(format!(
        "more than {MAX_GUARDED} segments are mapped at once in this process"
    ))
}

impl ReadMap {
    /// Maps the first `len` bytes of `file` read-only.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<ReadMap> {
        let map = MmapOptions::new().len(len).map_raw_read_only(file)?;
        let guard = Guarded::new(map.as_ptr(), len, false).ok_or_else(too_many)?;
        Ok(ReadMap { guard, map })
    }

    /// The mapped bytes, for as long as the mapping is borrowed.
    pub(crate) fn view(&self) -> ReadView<'_> {
        // SAFETY: `len` bytes mapped read-only at a page-aligned address,
        // for as long as `self` (borrowed by the view) lives. If the file
        // shrinks, the guard replaces the lost pages with zero pages: they
        // stay mapped. The writer only writes atomically.
        unsafe { ReadView::new(self.map.as_ptr(), self.map.len()) }
    }

    /// Whether the file shrank under the mapping: what was read may be
    /// zeros instead of the writer's data.
    pub(crate) fn damaged(&self) -> bool {
        self.guard.damaged()
    }
}

/// The writer's memory: a shared file mapping, or private words when
/// nothing could be published.
pub(crate) struct WriteMap {
    ptr: *mut u8,
    len: usize,
    backing: WriteBacking,
}

// SAFETY: the raw pointer is the mapping's own, owned by `backing`; the
// memory is only accessed atomically through views.
unsafe impl Send for WriteMap {}
// SAFETY: as above.
unsafe impl Sync for WriteMap {}

enum WriteBacking {
    /// The guard comes first: withdrawn before the mapping is unmapped.
    Shared(Guarded, #[allow(dead_code)] MmapRaw),
    Private(#[allow(dead_code)] memmap2::MmapMut),
}

impl WriteMap {
    /// Maps `len` bytes of `file` read-write, shared, guarded against the
    /// file shrinking (see [`crate::fault`]).
    pub(crate) fn shared(file: &File, len: usize) -> io::Result<WriteMap> {
        let map = MmapOptions::new().len(len).map_raw(file)?;
        let guard = Guarded::new(map.as_ptr(), len, true).ok_or_else(too_many)?;
        Ok(WriteMap {
            ptr: map.as_mut_ptr(),
            len,
            backing: WriteBacking::Shared(guard, map),
        })
    }

    /// `len` bytes (a multiple of 8) of private zeroed memory: anonymous
    /// pages, so only those written to take memory.
    pub(crate) fn private(len: usize) -> io::Result<WriteMap> {
        let mut map = MmapOptions::new().len(len.max(8)).map_anon()?;
        Ok(WriteMap {
            ptr: map.as_mut_ptr(),
            len,
            backing: WriteBacking::Private(map),
        })
    }

    /// The mapped bytes, for as long as the mapping is borrowed.
    #[inline(always)]
    pub(crate) fn view(&self) -> WriteView<'_> {
        // SAFETY: `len` bytes mapped read-write at a page-aligned address,
        // owned by `self` (borrowed by the view); pages lost to a shrinking
        // file are replaced by the guard, so they stay mapped. Readers and
        // other writer threads access them only atomically.
        unsafe { WriteView::new(self.ptr, self.len) }
    }

    /// The u64 word at `off`, unchecked.
    ///
    /// # Safety
    /// `off + 8 <= len` and `off` is a multiple of 8.
    #[inline(always)]
    unsafe fn word_unchecked(&self, off: u64) -> &AtomicU64 {
        // SAFETY: in bounds and aligned (caller); mapped for as long as
        // `self`, accessed only atomically.
        unsafe { AtomicU64::from_ptr(self.ptr.add(off as usize) as *mut u64) }
    }

    /// The `N` u64 words from `off`, unchecked. Made from the mapping's own
    /// pointer, so the reference covers all `N` words (a reference to one
    /// word may not be widened to its neighbours).
    ///
    /// # Safety
    /// `off + 8 * N <= len` and `off` is a multiple of 8.
    #[inline(always)]
    unsafe fn words_unchecked<const N: usize>(&self, off: u64) -> &[AtomicU64; N] {
        // SAFETY: in bounds and aligned (caller); mapped for as long as
        // `self`, accessed only atomically; `[AtomicU64; N]` is N atomics.
        unsafe { &*(self.ptr.add(off as usize) as *const [AtomicU64; N]) }
    }

    /// The class counters at `off`, unchecked.
    ///
    /// # Safety
    /// `off + 8 * counter_words::COUNT <= len` and `off` a multiple of 8.
    #[inline(always)]
    unsafe fn counters_unchecked(&self, off: u64) -> &tracker_core::ClassCounters {
        // SAFETY: as in `word_unchecked`; `ClassCounters` is `repr(C)`
        // atomics, valid for any bit pattern.
        unsafe { &*(self.ptr.add(off as usize) as *const tracker_core::ClassCounters) }
    }

    /// Whether the file shrank under the mapping and pages were replaced.
    pub(crate) fn damaged(&self) -> bool {
        match &self.backing {
            WriteBacking::Shared(guard, _) => guard.damaged(),
            WriteBacking::Private(_) => false,
        }
    }
}

/// A writer's mapping together with the geometry it was made for, checked
/// once to fit: the hot-path accessors below ([`SegmentMap::counters`],
/// [`SegmentMap::event_slot`], [`SegmentMap::header_word`]) then need no
/// check per word, their offsets being in bounds by construction. The
/// fields are private, so the geometry cannot change after the check.
pub(crate) struct SegmentMap {
    map: WriteMap,
    geo: Geometry,
}

impl SegmentMap {
    /// Pairs `map` with `geo`.
    ///
    /// # Panics
    /// If the geometry does not fit the mapping or is misaligned (a bug in
    /// the writer: geometries come from `Geometry::new`).
    pub(crate) fn new(map: WriteMap, geo: Geometry) -> SegmentMap {
        let fits = geo.total_size <= map.len as u64
            && geo.class_offset >= HEADER_SIZE
            && geo.class_capacity >= 2
            && geo.class_slot_size >= class::HISTORY
            && geo
                .class_capacity
                .checked_mul(geo.class_slot_size)
                .and_then(|t| t.checked_add(geo.class_offset))
                .is_some_and(|end| end <= geo.ring_offset)
            && (geo.ring_capacity == 0 || geo.ring_capacity.is_power_of_two())
            && geo
                .ring_capacity
                .checked_mul(EVENT_SLOT_SIZE)
                .and_then(|t| t.checked_add(geo.ring_offset))
                .is_some_and(|end| end <= geo.total_size)
            && [geo.class_offset, geo.class_slot_size, geo.ring_offset]
                .iter()
                .all(|v| v % 8 == 0);
        assert!(
            fits,
            "segment geometry {geo:?} does not fit a {}-byte mapping",
            map.len
        );
        SegmentMap { map, geo }
    }

    /// The geometry.
    #[inline(always)]
    pub(crate) fn geo(&self) -> &Geometry {
        &self.geo
    }

    /// The whole mapping, with checked word access.
    #[inline(always)]
    pub(crate) fn view(&self) -> WriteView<'_> {
        self.map.view()
    }

    /// Whether the file shrank under the mapping.
    pub(crate) fn damaged(&self) -> bool {
        self.map.damaged()
    }

    /// The header word at `off`, a header field offset.
    ///
    /// # Panics
    /// If `off` is not a word inside the header (compile-time constant
    /// offsets fold this check away).
    #[inline(always)]
    pub(crate) fn header_word(&self, off: u64) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= HEADER_SIZE);
        // SAFETY: inside the header, which the geometry check put inside
        // the mapping (class_offset >= HEADER_SIZE, total_size <= len);
        // aligned (checked, the base is page-aligned).
        unsafe { self.map.word_unchecked(off) }
    }

    /// The counters of class slot `slot`.
    ///
    /// # Panics
    /// If `slot` is not a slot of the table (slot indices come from the
    /// writer's own claims, which never exceed it).
    #[inline(always)]
    pub(crate) fn counters(&self, slot: u32) -> &tracker_core::ClassCounters {
        let slot = u64::from(slot);
        assert!(slot < self.geo.class_capacity);
        let off = self.geo.class_offset + slot * self.geo.class_slot_size + class::COUNTERS;
        // SAFETY: slot < class_capacity, and the table ends before
        // ring_offset <= total_size <= len (checked in `new`); the counters
        // end before the slot's history (layout's compile-time check),
        // inside the slot (class_slot_size >= class::HISTORY); offsets are
        // multiples of 8 (checked in `new`; COUNTERS is 144).
        unsafe { self.map.counters_unchecked(off) }
    }

    /// The counters, peak and age cohorts of class slot `slot`: the words
    /// the hot path writes, from one address computation.
    ///
    /// # Panics
    /// If `slot` is not a slot of the table.
    #[inline(always)]
    pub(crate) fn hot(&self, slot: u32) -> &crate::ages::SlotHot {
        let slot = u64::from(slot);
        assert!(slot < self.geo.class_capacity);
        let off = self.geo.class_offset + slot * self.geo.class_slot_size + class::COUNTERS;
        // SAFETY: slot < class_capacity and the table ends inside the
        // mapping (checked in `new`); `SlotHot` (counters, then peak and
        // cohorts) ends before the slot's history (layout's compile-time
        // checks), inside the slot (class_slot_size >= class::HISTORY);
        // 8-aligned (COUNTERS is 144). `SlotHot` is `repr(C)` atomics,
        // valid for any bits.
        unsafe { &*(self.map.ptr.add(off as usize) as *const crate::ages::SlotHot) }
    }

    /// The peak and age cohorts of class slot `slot`.
    ///
    /// # Panics
    /// If `slot` is not a slot of the table.
    #[inline(always)]
    pub(crate) fn ages(&self, slot: u32) -> &crate::ages::SlotAges {
        &self.hot(slot).ages
    }

    /// The four words of the event slot of ticket `t` (sequence, meta,
    /// serial, time: `layout::event` offsets divided by 8). The ring must
    /// have slots.
    ///
    /// # Panics
    /// If the segment has no event ring.
    #[inline(always)]
    pub(crate) fn event_slot(&self, t: u64) -> &[AtomicU64; 4] {
        assert!(self.geo.ring_capacity != 0);
        let off = self.geo.ring_offset + (t & (self.geo.ring_capacity - 1)) * EVENT_SLOT_SIZE;
        // SAFETY: the masked index is below ring_capacity, and the ring
        // ends at or before total_size <= len (checked in `new`); 8-aligned
        // (ring_offset checked, EVENT_SLOT_SIZE is 32). `[AtomicU64; 4]`
        // has the layout of four atomics.
        unsafe { self.map.words_unchecked::<4>(off) }
    }
}

const _: () = assert!(EVENT_SLOT_SIZE == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let mem: [AtomicU64; 4] = Default::default();
        let v = ReadView::of_words(&mem);
        assert_eq!(v.u64(0), Some(0));
        assert_eq!(v.u64(24), Some(0));
        assert_eq!(v.u64(32), None);
        assert_eq!(v.u64(4), None);
        assert_eq!(v.u64(u64::MAX - 3), None);
        assert_eq!(v.u32(28), Some(0));
        assert_eq!(v.bytes(0, 40), None);
    }

    #[test]
    fn writes_are_checked_in_every_build() {
        let map = WriteMap::private(64).unwrap();
        let v = map.view();
        v.word(56).store(7, Ordering::Relaxed);
        assert_eq!(v.reader().u64(56), Some(7));
        for (off, width) in [(64, 8), (64, 4), (62, 4), (4, 8), (u64::MAX - 3, 8)] {
            let hit = std::panic::catch_unwind(|| {
                if width == 8 {
                    v.word(off);
                } else {
                    v.word32(off);
                }
            });
            assert!(hit.is_err(), "offset {off} width {width} was accepted");
        }
    }
}
