//! The few operating-system calls the segment needs beyond `std`.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes an exclusive lock on `file` for as long as it stays open.
pub(crate) fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid open descriptor.
    check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
}

/// Whether some process holds an exclusive lock on `file` (the writer is
/// alive). Takes and drops a shared lock without waiting when none does.
pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
    // SAFETY: plain syscall on a valid open descriptor.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if r == 0 {
        // SAFETY: as above; releases the shared lock just taken.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return Ok(false);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(true)
    } else {
        Err(err)
    }
}

/// Reserves backing store for `len` bytes at `offset` now, so a full file
/// system fails here and not as SIGBUS on a later write.
pub(crate) fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: plain call on a valid open descriptor.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock ids used exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` in nanoseconds: system-wide, so comparable between
/// the writer and readers.
pub fn monotonic_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// The coarse monotonic clock (a few milliseconds' resolution, a fraction
/// of the cost), for event time stamps.
#[inline]
pub(crate) fn coarse_monotonic_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC_COARSE)
}

/// Whether a process with this pid exists (zombies included).
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The effective user id.
pub fn uid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() }
}

/// The login name of `uid` (through the system's user database), if it
/// has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `passwd` is plain data; all-zero is a valid value to be
    // overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, `buf` for its length;
    // on success `result` points at `pwd`, whose strings live in `buf`.
    let r = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: `pw_name` is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// This process's parent's id.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    u32::try_from(unsafe { libc::getppid() }).unwrap_or(0)
}

/// The memory page size in bytes.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Starts counting forks (once per process) and returns the current fork
/// generation. A writer remembers the generation it created its segment in
/// and stops writing when it changes, so a forked child never writes into
/// its parent's segment (whose pages it shares).
pub(crate) fn watch_forks() -> u64 {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic add.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    fork_generation()
}

/// Registers fork handlers (`pthread_atfork`). Registered after
/// [`watch_forks`]'s, so in a child the generation is bumped before
/// `child` runs.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    watch_forks();
    // SAFETY: registers plain function pointers; their own safety in a
    // forked child is argued where they are defined.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// How many forks since [`watch_forks`] was first called.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}
