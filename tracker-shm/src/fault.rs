//! Surviving a segment file that shrinks under its mappings.
//!
//! Touching a page of a shared file mapping beyond the file's end raises
//! `SIGBUS`, which kills the process. A segment's file can shrink under
//! both sides: its owner (or root) may truncate it while the writer keeps
//! counting into it and readers are copying it. Neither side may die of it.
//!
//! Every segment mapping is registered here as a [`Guarded`] range. A
//! process-wide `SIGBUS` handler, installed with the first registration,
//! looks the faulting address up: if it lies in a guarded range, the handler
//! replaces the pages from the faulting one to the end of the range (or to
//! where an earlier fault already replaced them) with anonymous zero pages
//! of the same protection, marks the range *damaged*, and returns. The
//! faulting instruction then runs again on ordinary memory. Readers check
//! [`Guarded::damaged`] after copying and discard what they read; the
//! writer keeps counting in the replaced memory (its counts for the lost
//! pages restart from zero) and reports the loss once.
//!
//! A fault anywhere else goes to the handler that was installed before
//! (a Rust runtime's stack-overflow handler, Python's `faulthandler`), or,
//! if there was none, is made fatal as it would have been.
//!
//! Ordering: a range is published by storing its bounds and then `active`
//! with `Release`; the handler loads `active` with `Acquire` before the
//! bounds. A range is withdrawn (`active` false) before its memory is
//! unmapped, and nothing touches the memory then. Replacements of one range
//! are serialized by a per-range spin flag, so two threads faulting at once
//! never replace pages the other has already replaced and written.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Ranges guarded at once, at most (one per open segment).
pub(crate) const MAX_GUARDED: usize = 1024;

struct Slot {
    active: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    /// Lowest address replaced so far (`end` while intact).
    replaced_from: AtomicUsize,
    writable: AtomicBool,
    busy: AtomicBool,
    claimed: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    active: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    replaced_from: AtomicUsize::new(0),
    writable: AtomicBool::new(false),
    busy: AtomicBool::new(false),
    claimed: AtomicBool::new(false),
};

static SLOTS: [Slot; MAX_GUARDED] = [EMPTY; MAX_GUARDED];
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// A registered mapping; withdrawn when dropped (drop it before unmapping).
pub(crate) struct Guarded {
    slot: &'static Slot,
}

impl Guarded {
    /// Guards `len` bytes at `start`. `None` when [`MAX_GUARDED`] ranges
    /// are guarded already.
    pub(crate) fn new(start: *const u8, len: usize, writable: bool) -> Option<Guarded> {
        install();
        let slot = SLOTS.iter().find(|s| {
            s.claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        let start = start as usize;
        let end = start.saturating_add(len);
        slot.start.store(start, Ordering::Relaxed);
        slot.end.store(end, Ordering::Relaxed);
        slot.replaced_from.store(end, Ordering::Relaxed);
        slot.writable.store(writable, Ordering::Relaxed);
        slot.active.store(true, Ordering::Release);
        Some(Guarded { slot })
    }

    /// Whether some of the range was replaced because its file shrank:
    /// what was read from it may be zeros instead of the segment's data.
    pub(crate) fn damaged(&self) -> bool {
        self.slot.replaced_from.load(Ordering::Acquire) < self.slot.end.load(Ordering::Relaxed)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.slot.active.store(false, Ordering::Release);
        self.slot.claimed.store(false, Ordering::Release);
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: `sigaction` is plain data; all-zero is a valid start. The
        // handler is async-signal-safe (atomics and `mmap` only), and the
        // previous action is saved before ours can run.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous);
            let _ = PREVIOUS.set(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_sigbus;
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, ptr::null_mut());
        }
    });
}

/// Replaces the pages of a guarded range from the one holding `addr`;
/// false if `addr` is in no guarded range or the replacement failed.
fn recover(addr: usize) -> bool {
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &SLOTS {
        if !slot.active.load(Ordering::Acquire) {
            continue;
        }
        let (start, end) = (
            slot.start.load(Ordering::Relaxed),
            slot.end.load(Ordering::Relaxed),
        );
        if addr < start || addr >= end {
            continue;
        }
        while slot
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let from = (addr & !(page - 1)).max(start);
        let upto = slot.replaced_from.load(Ordering::Relaxed);
        let ok = if from >= upto {
            true // another thread replaced it meanwhile
        } else {
            let prot = if slot.writable.load(Ordering::Relaxed) {
                libc::PROT_READ | libc::PROT_WRITE
            } else {
                libc::PROT_READ
            };
            // SAFETY: `from..upto` lies inside a mapping this process owns
            // and keeps mapped while it is guarded; MAP_FIXED replaces those
            // pages only. Every access to them is atomic, so zero pages are
            // as valid as the file's.
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    upto - from,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                false
            } else {
                slot.replaced_from.store(from, Ordering::Release);
                true
            }
        };
        slot.busy.store(false, Ordering::Release);
        return ok;
    }
    false
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only a real fault (si_code > 0), not a SIGBUS sent with kill().
    if code > 0 && recover(addr) {
        return;
    }
    // SAFETY: forwarding the signal exactly as the kernel delivered it.
    unsafe { chain(sig, info, ctx) };
}

/// Hands the signal to the previous action, or makes it fatal.
///
/// # Safety
/// Only from the signal handler, with the arguments it received.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.get();
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Back to the default action: returning re-runs the faulting
        // instruction (or the kill() was already delivered), which is then
        // fatal, as it would have been without pytracker.
        // SAFETY: plain data, valid when zeroed; sigaction is async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, ptr::null_mut());
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
        return;
    }
    let siginfo = previous.is_some_and(|p| p.sa_flags & libc::SA_SIGINFO != 0);
    // SAFETY: the previous handler was installed for this signal with these
    // flags, so it has the matching signature.
    unsafe {
        if siginfo {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_shrunk_file_reads_as_zeros_and_is_reported() {
        let dir = std::env::temp_dir().join(format!("pytracker-fault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(&[7u8; 4 * 4096]).unwrap();
        let len = 4 * 4096;
        // SAFETY: a fresh shared mapping of a file we own, unmapped below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let guard = Guarded::new(p as *const u8, len, true).unwrap();
        let word = |i: usize| {
            // SAFETY: in bounds of the mapping, aligned.
            unsafe { std::sync::atomic::AtomicU64::from_ptr((p as *mut u64).add(i)) }
        };
        assert_eq!(word(0).load(Ordering::Relaxed), 0x0707070707070707);
        file.set_len(4096).unwrap();
        assert!(!guard.damaged());
        // Beyond the new end: zeros instead of SIGBUS, and writable.
        assert_eq!(word(3 * 512).load(Ordering::Relaxed), 0);
        assert!(guard.damaged());
        word(3 * 512).store(5, Ordering::Relaxed);
        assert_eq!(word(3 * 512).load(Ordering::Relaxed), 5);
        // A fault at a lower page replaces only up to what was replaced
        // before: the value written there survives.
        assert_eq!(word(2 * 512).load(Ordering::Relaxed), 0);
        assert_eq!(word(3 * 512).load(Ordering::Relaxed), 5);
        // The page still inside the file is untouched.
        assert_eq!(word(0).load(Ordering::Relaxed), 0x0707070707070707);
        drop(guard);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(p, len) };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
