//! Word-level access to segment memory. The only module of the reader and
//! writer that touches raw pointers.
//!
//! Every access is an atomic load or store of an aligned u32 or u64, because
//! the other side of the segment runs concurrently. Readers never form a
//! `&[u8]` over the mapping, never write, and never use read-modify-write
//! instructions (which fault on a read-only mapping).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::fault::{Guarded, MAX_GUARDED};

/// A read-only view of `len` bytes at `ptr`, shared with a writer in
/// another process. Every load is bounds- and alignment-checked.
#[derive(Copy, Clone)]
pub(crate) struct ReadView {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the view only performs atomic loads; the memory it points to is
// kept mapped by its owner for the view's whole life.
unsafe impl Send for ReadView {}
// SAFETY: as above; loads from several threads are fine.
unsafe impl Sync for ReadView {}

impl ReadView {
    /// # Safety
    /// `ptr..ptr+len` must stay mapped and readable while the view (or a
    /// copy) is used, and be 8-byte aligned.
    pub(crate) unsafe fn new(ptr: *const u8, len: usize) -> ReadView {
        ReadView { ptr, len }
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

    /// The class counters at `off`, or `None` if out of bounds or unaligned.
    /// Only their loading methods may be used (`ClassCounters::totals`):
    /// the memory may be mapped read-only.
    pub(crate) fn counters(&self, off: u64) -> Option<&tracker_core::ClassCounters> {
        let off = self.check(off, 8 * tracker_core::counter_words::COUNT, 8)?;
        // SAFETY: in bounds and 8-aligned (checked; the base is 8-aligned);
        // `ClassCounters` is `repr(C)` atomics valid for any bit pattern,
        // and atomic loads are allowed on read-only memory. The view's
        // owner keeps the mapping alive for the view's (and so the
        // reference's) life.
        Some(unsafe { &*(self.ptr.add(off) as *const tracker_core::ClassCounters) })
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

/// A writable view of a segment the writer owns. Offsets come from the
/// writer's own geometry and are checked in debug builds.
#[derive(Copy, Clone)]
pub(crate) struct WriteView {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the view only performs atomic operations on memory its owner
// keeps mapped for the view's whole life.
unsafe impl Send for WriteView {}
// SAFETY: as above.
unsafe impl Sync for WriteView {}

impl WriteView {
    /// # Safety
    /// `ptr..ptr+len` must stay mapped read-write while the view is used,
    /// be 8-byte aligned, and be accessed by others only atomically.
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> WriteView {
        WriteView { ptr, len }
    }

    /// The same memory, for reading.
    pub(crate) fn reader(&self) -> ReadView {
        // SAFETY: same memory and lifetime guarantee as `self`.
        unsafe { ReadView::new(self.ptr, self.len) }
    }

    /// The u64 word at `off`.
    #[inline(always)]
    pub(crate) fn word(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len as u64);
        // SAFETY: the writer computes `off` from the geometry it created the
        // segment with, so it is aligned and in bounds; the memory is only
        // ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.ptr.add(off as usize) as *mut u64) }
    }

    /// The u32 word at `off`.
    #[inline(always)]
    pub(crate) fn word32(&self, off: u64) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.len as u64);
        // SAFETY: as in `word`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off as usize) as *mut u32) }
    }

    /// The class counters placed at `off`.
    #[inline(always)]
    pub(crate) fn counters(&self, off: u64) -> &tracker_core::ClassCounters {
        debug_assert!(
            off % 8 == 0 && off + 8 * tracker_core::counter_words::COUNT <= self.len as u64
        );
        // SAFETY: `ClassCounters` is `repr(C)`, made only of `AtomicU64`s
        // (valid for any bit pattern, alignment 8); `off` is aligned and in
        // bounds (writer geometry), and the memory is only accessed
        // atomically.
        unsafe { &*(self.ptr.add(off as usize) as *const tracker_core::ClassCounters) }
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

/// A pointer to a `T` that can be replaced but whose old values are never
/// freed: readers may hold `&T` for as long as the cell lives. Used for the
/// writer's region, which is replaced only in a forked child.
pub(crate) struct LeakyCell<T> {
    ptr: std::sync::atomic::AtomicPtr<T>,
    /// Owns `T`s; opts out of the `Send`/`Sync` an `AtomicPtr` would give
    /// for any `T` (the impls below state the real requirements).
    _owns: std::marker::PhantomData<*const T>,
}

// SAFETY: moving the cell to another thread moves its `T`s there.
unsafe impl<T: Send> Send for LeakyCell<T> {}
// SAFETY: `get` hands `&T` to any thread sharing the cell (`T: Sync`), and
// `replace` installs a `T` made on another thread (`T: Send`).
unsafe impl<T: Send + Sync> Sync for LeakyCell<T> {}

impl<T> LeakyCell<T> {
    pub(crate) fn new(value: T) -> Self {
        LeakyCell {
            ptr: std::sync::atomic::AtomicPtr::new(Box::into_raw(Box::new(value))),
            _owns: std::marker::PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the pointer always comes from `Box::into_raw` and is freed
        // only in `drop`, which needs `&mut self`; `Acquire` pairs with the
        // `Release` in `replace`, so the pointee is fully initialised.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Installs `value`; the previous value is leaked (it stays valid).
    pub(crate) fn replace(&self, value: T) {
        self.ptr
            .store(Box::into_raw(Box::new(value)), Ordering::Release);
    }
}

impl<T> Drop for LeakyCell<T> {
    fn drop(&mut self) {
        // SAFETY: exclusive access; the current pointer came from
        // `Box::into_raw` and no reference to it can outlive `self`.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}

/// A read-only mapping of a segment file and its view, guarded against the
/// file shrinking (see [`crate::fault`]).
pub(crate) struct ReadMap {
    // Declared before the mapping: withdrawn before it is unmapped.
    guard: Guarded,
    _map: MmapRaw,
    view: ReadView,
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
        // SAFETY: `len` bytes mapped read-only at a page-aligned address;
        // the mapping lives in `_map` as long as `self`, and views handed
        // out by `view` are used only while their `ReadMap` lives (crate
        // rule: they are stored only next to it). If the file shrinks, the
        // guard replaces the lost pages with zero pages: they stay mapped.
        let view = unsafe { ReadView::new(map.as_ptr(), len) };
        Ok(ReadMap {
            guard,
            _map: map,
            view,
        })
    }

    pub(crate) fn view(&self) -> ReadView {
        self.view
    }

    /// Whether the file shrank under the mapping: what was read may be
    /// zeros instead of the writer's data.
    pub(crate) fn damaged(&self) -> bool {
        self.guard.damaged()
    }
}

/// The writer's memory: a shared file mapping, or private words when
/// nothing could be published.
pub(crate) enum WriteMap {
    /// The guard comes first: withdrawn before the mapping is unmapped.
    Shared(Guarded, #[allow(dead_code)] MmapRaw),
    Private(#[allow(dead_code)] memmap2::MmapMut),
}

impl WriteMap {
    /// Maps `len` bytes of `file` read-write, shared, guarded against the
    /// file shrinking (see [`crate::fault`]).
    pub(crate) fn shared(file: &File, len: usize) -> io::Result<(WriteMap, WriteView)> {
        let map = MmapOptions::new().len(len).map_raw(file)?;
        let guard = Guarded::new(map.as_ptr(), len, true).ok_or_else(too_many)?;
        // SAFETY: `len` bytes mapped read-write, page-aligned; the mapping
        // is owned by the returned `WriteMap`, which the writer keeps next
        // to the view for as long as it uses the view. Pages lost to a
        // shrinking file are replaced by the guard, so they stay mapped.
        let view = unsafe { WriteView::new(map.as_mut_ptr(), len) };
        Ok((WriteMap::Shared(guard, map), view))
    }

    /// Whether the file shrank under the mapping and pages were replaced.
    pub(crate) fn damaged(&self) -> bool {
        match self {
            WriteMap::Shared(guard, _) => guard.damaged(),
            WriteMap::Private(_) => false,
        }
    }

    /// `len` bytes (a multiple of 8) of private zeroed memory: anonymous
    /// pages, so only those written to take memory.
    pub(crate) fn private(len: usize) -> io::Result<(WriteMap, WriteView)> {
        let mut map = MmapOptions::new().len(len.max(8)).map_anon()?;
        // SAFETY: page-aligned, `len` bytes, accessed only atomically, owned
        // by the returned `WriteMap` kept next to the view.
        let view = unsafe { WriteView::new(map.as_mut_ptr(), len) };
        Ok((WriteMap::Private(map), view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let mem = [0u64; 4];
        // SAFETY: `mem` outlives the view and is 8-byte aligned.
        let v = unsafe { ReadView::new(mem.as_ptr() as *const u8, 32) };
        assert_eq!(v.u64(0), Some(0));
        assert_eq!(v.u64(24), Some(0));
        assert_eq!(v.u64(32), None);
        assert_eq!(v.u64(4), None);
        assert_eq!(v.u64(u64::MAX - 3), None);
        assert_eq!(v.u32(28), Some(0));
        assert_eq!(v.bytes(0, 40), None);
    }
}
