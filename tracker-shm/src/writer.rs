//! [`ShmTracker`]: a native tracker that publishes its counts in a shared
//! memory segment.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracker_core::{ClassCounters, ClassId, ClassSnapshot, ClassTable, EventKind, Serial, Tracker};

use crate::error::WriteError;
use crate::layout::{self, class, event, header, Geometry};
use crate::raw::{LeakyCell, WriteMap, WriteView};
use crate::{proc, reader, sys};

/// How a [`ShmTracker`] publishes.
#[derive(Clone, Debug)]
pub struct ShmOptions {
    /// Where the segment goes. `None`: `/dev/shm`, else `$XDG_RUNTIME_DIR`
    /// (both memory-backed), else the temporary directory with a warning.
    pub directory: Option<PathBuf>,
    /// Class slots, the overflow slot included.
    pub class_capacity: u64,
    /// Event-ring slots (rounded up to a power of two).
    pub ring_capacity: u64,
    /// Record lifecycle events in the ring.
    pub events: bool,
    /// History samples kept (at most [`layout::HISTORY_MAX`]).
    pub history_capacity: u64,
    /// Time between history samples and heartbeats.
    pub history_period: Duration,
    /// Run a sampler thread for history and heartbeat. Without it, call
    /// [`ShmTracker::sample`] yourself.
    pub sampler: bool,
    /// Segments of this user's exited processes kept in the directory (for
    /// post-mortem reading); older ones are removed when a tracker starts,
    /// so crashed or killed services do not fill `/dev/shm`.
    pub keep_exited: usize,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions {
            directory: None,
            class_capacity: 4096,
            ring_capacity: 65536,
            events: true,
            history_capacity: 64,
            history_period: Duration::from_secs(1),
            sampler: true,
            keep_exited: 8,
        }
    }
}

/// The file name prefix of every segment.
pub const FILE_PREFIX: &str = "pytracker-";

/// Memory behind a region.
enum Backing {
    /// A published segment: the mapping, and the open file whose exclusive
    /// lock says the writer is alive.
    File {
        _map: WriteMap,
        file: Mutex<Option<File>>,
        path: PathBuf,
    },
    /// Nothing could be published; counts are kept privately.
    Private(#[allow(dead_code)] WriteMap),
}

/// One segment's memory and geometry.
struct Region {
    view: WriteView,
    geo: Geometry,
    events: bool,
    generation: u64,
    backing: Backing,
    problem: Option<String>,
    /// A private copy taken at a fork, counting in the child until the
    /// child publishes a segment of its own (see the fork protocol below).
    forked_image: bool,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// How often the sampler checks whether it is the process's last thread.
const LAST_THREAD_CHECK: Duration = Duration::from_millis(100);

/// A writer's sampler prunes segments of exited processes every this many
/// samples (every minute with the default period of one second).
const PRUNE_EVERY: u64 = 60;

impl Region {
    fn create(options: &ShmOptions, generation: u64) -> Region {
        let ring = if options.events {
            options.ring_capacity
        } else {
            0
        };
        let mut geo = Geometry::new(options.class_capacity, ring, options.history_capacity);
        let (backing, view, problem) = match create_file(options, &geo) {
            Ok((map, view, file, path, warning)) => {
                let backing = Backing::File {
                    _map: map,
                    file: Mutex::new(Some(file)),
                    path,
                };
                (backing, view, warning)
            }
            Err(e) => match WriteMap::private(geo.total_size as usize) {
                Ok((map, view)) => (Backing::Private(map), view, Some(e.to_string())),
                Err(oom) => {
                    // Not even private memory of that size: the smallest
                    // geometry, everything folded into the overflow slot.
                    geo = Geometry::new(2, 0, 1);
                    let (map, view) =
                        WriteMap::private(geo.total_size as usize).unwrap_or_else(|_| {
                            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u64; 1024]>())
                        });
                    (
                        Backing::Private(map),
                        view,
                        Some(format!(
                            "{e}; and cannot allocate private counters either: {oom}"
                        )),
                    )
                }
            },
        };
        let region = Region {
            view,
            geo,
            events: options.events && geo.ring_capacity > 0,
            generation,
            backing,
            problem: None,
            forked_image: false,
        };
        region.init_header(options);
        let Region { backing, .. } = &region;
        let failed = match backing {
            Backing::File { path, .. } => {
                let tmp = temp_name(path);
                fs::rename(&tmp, path).err().map(|e| {
                    let _ = fs::remove_file(&tmp);
                    format!("cannot publish segment {}: {e}", path.display())
                })
            }
            Backing::Private(_) => None,
        };
        let Some(failed) = failed else {
            return Region { problem, ..region };
        };
        // Nothing was published: the path names no segment of ours (another
        // process may own what is there), so the tracker forgets it and
        // counts privately in the memory it already has.
        let backing = match region.backing {
            Backing::File { _map, .. } => Backing::Private(_map),
            private => private,
        };
        Region {
            backing,
            problem: Some(failed),
            ..region
        }
    }

    fn init_header(&self, options: &ShmOptions) {
        let v = &self.view;
        let g = &self.geo;
        let pid = sys::pid();
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
        put(
            header::HISTORY_PERIOD_MS,
            options.history_period.as_millis() as u64,
        );
        put(header::PID, u64::from(pid));
        put(
            header::START_TIME,
            proc::stat(pid).map_or(0, |s| s.start_time),
        );
        put(header::CREATED_UNIX_MS, tracker_core::now_unix_ms());
        let now = sys::monotonic_ns();
        put(header::CREATED_MONO_NS, now);
        put(header::HEARTBEAT_NS, now);
        put(
            header::FLAGS,
            if self.events { layout::FLAG_EVENTS } else { 0 },
        );
        let mut cmd = proc::cmdline(pid).into_bytes();
        cut_utf8(&mut cmd, layout::header::CMDLINE_MAX as usize);
        put(header::CMDLINE_LEN, cmd.len() as u64);
        v.write_bytes(header::CMDLINE, &cmd);
        v.write_bytes(header::BOOT_ID, &proc::boot_id());
        // The overflow slot is the last one, published from the start.
        let overflow = g.class_slot(g.class_capacity - 1);
        self.write_name(
            overflow,
            layout::OVERFLOW_NAME.as_bytes(),
            layout::CLASS_OVERFLOW,
        );
        fence(Release);
        put(header::STATE, layout::STATE_LIVE);
    }

    fn write_name(&self, slot: u64, name: &[u8], flags: u64) {
        let v = &self.view;
        v.word(slot + class::STATE)
            .store(layout::SLOT_FILLING, Relaxed);
        v.word(slot + class::FLAGS).store(flags, Relaxed);
        v.word(slot + class::NAME_LEN)
            .store(name.len() as u64, Relaxed);
        v.write_bytes(slot + class::NAME, name);
        v.word(slot + class::STATE)
            .store(layout::SLOT_PUBLISHED, Release);
    }

    #[inline(always)]
    fn counters(&self, slot: u32) -> &ClassCounters {
        self.view
            .counters(self.geo.class_slot(u64::from(slot)) + class::COUNTERS)
    }

    /// Copies class slots, header counts and history from `old` (the
    /// parent's segment, seen from a forked child).
    /// Copies `old`'s classes (the claimed slots and the overflow slot:
    /// names, counters, history) and counts into this region, which has
    /// the same geometry.
    fn copy_from(&self, old: &Region) {
        let (o, n) = (old.view.reader(), &self.view);
        let capacity = old.geo.class_capacity.min(self.geo.class_capacity);
        let used = o.u64(header::CLASS_COUNT).unwrap_or(0).min(capacity - 1);
        let slot_size = old.geo.class_slot_size.min(self.geo.class_slot_size);
        for i in (0..used).chain([capacity - 1]) {
            let (from, to) = (old.geo.class_slot(i), self.geo.class_slot(i));
            for w in (0..slot_size).step_by(8) {
                n.word(to + w).store(o.u64(from + w).unwrap_or(0), Relaxed);
            }
        }
        for f in [
            header::CLASS_COUNT,
            header::CLASSES_DROPPED,
            header::NAMES_TRUNCATED,
            header::HISTORY_HEAD,
        ] {
            n.word(f).store(o.u64(f).unwrap_or(0), Relaxed);
        }
        for w in (header::HISTORY_TOTALS..layout::HEADER_SIZE).step_by(8) {
            n.word(w).store(o.u64(w).unwrap_or(0), Relaxed);
        }
        fence(Release);
    }

    fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::File { path, .. } => Some(path),
            Backing::Private(_) => None,
        }
    }

    /// Why the segment no longer shows this process's counts, if its file
    /// shrank under the mapping (see the `fault` module).
    fn damage(&self) -> Option<String> {
        match &self.backing {
            Backing::File { _map, path, .. } if _map.damaged() => Some(format!(
                "segment {} was truncated by another process: readers can no longer see this \
                 process's counts, and the counts kept in the lost pages restarted from zero",
                path.display()
            )),
            _ => None,
        }
    }

    /// A private copy of this region's classes and counts, for the child
    /// of a fork about to happen (whose fork generation is `generation`).
    /// Only the pages of claimed slots are touched.
    fn image(&self, generation: u64) -> Option<Region> {
        let (map, view) = WriteMap::private(self.geo.total_size as usize).ok()?;
        let image = Region {
            view,
            geo: self.geo,
            events: self.events,
            generation,
            backing: Backing::Private(map),
            problem: None,
            forked_image: true,
        };
        image.copy_from(self);
        Some(image)
    }

    /// Marks the segment closed and removes its file.
    fn close(&self) {
        self.view
            .word(header::STATE)
            .store(layout::STATE_CLOSED, Release);
        if let Backing::File { file, path, .. } = &self.backing {
            let _ = fs::remove_file(path);
            if let Ok(mut f) = file.lock() {
                f.take();
            }
        }
    }

    /// In a forked child: lets go of the parent's file without touching it.
    fn abandon(&self) {
        if let Backing::File { file, .. } = &self.backing {
            // Closing our duplicate of the descriptor leaves the parent's
            // lock in place (flock locks belong to the open file, which the
            // parent still holds). try_lock: a thread that held the mutex
            // at fork time does not exist here.
            if let Ok(mut f) = file.try_lock() {
                f.take();
            }
        }
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Cuts `bytes` to at most `max` bytes at a UTF-8 character boundary.
/// Returns whether it cut.
pub(crate) fn cut_utf8(bytes: &mut Vec<u8>, max: usize) -> bool {
    if bytes.len() <= max {
        return false;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    bytes.truncate(end);
    true
}

/// Picks the segment directory: the one asked for, else `$PYTRACKER_DIR`,
/// else a memory-backed one, else the temporary directory with a warning.
pub fn choose_directory(asked: Option<&Path>) -> Result<(PathBuf, Option<String>), WriteError> {
    let from_env = std::env::var_os(crate::DIR_ENV).map(PathBuf::from);
    if let Some(dir) = asked.or(from_env.as_deref()) {
        if !dir.is_dir() {
            return Err(WriteError::NoDirectory(format!(
                "{} does not exist or is not a directory",
                dir.display()
            )));
        }
        return Ok((dir.to_path_buf(), None));
    }
    for dir in memory_backed_directories() {
        if dir.is_dir() {
            return Ok((dir, None));
        }
    }
    let tmp = std::env::temp_dir();
    if tmp.is_dir() {
        let warning = format!(
            "no memory-backed directory (/dev/shm, $XDG_RUNTIME_DIR): the segment is in {}, which may be disk-backed",
            tmp.display()
        );
        return Ok((tmp, Some(warning)));
    }
    Err(WriteError::NoDirectory(
        "/dev/shm, $XDG_RUNTIME_DIR and the temporary directory are all missing".into(),
    ))
}

/// The memory-backed directories segments are looked for in, in order.
pub fn memory_backed_directories() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/dev/shm")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(PathBuf::from(x));
    }
    dirs
}

type Created = (WriteMap, WriteView, File, PathBuf, Option<String>);

fn create_file(options: &ShmOptions, geo: &Geometry) -> Result<Created, WriteError> {
    let (dir, warning) = choose_directory(options.directory.as_deref())?;
    let pid = sys::pid();
    let start = proc::stat(pid).map_or(0, |s| s.start_time);
    let seq = SEQUENCE.fetch_add(1, Relaxed);
    let path = dir.join(format!("{FILE_PREFIX}{}-{pid}-{start}-{seq}", sys::uid()));
    let tmp = temp_name(&path);
    let err = |source| WriteError::Create {
        dir: dir.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(err)?;
    let built = (|| {
        file.set_len(geo.total_size)?;
        sys::allocate(&file, geo.total_size)?;
        sys::lock_exclusive(&file)?;
        WriteMap::shared(&file, geo.total_size as usize)
    })();
    match built {
        Ok((map, view)) => Ok((map, view, file, path, warning)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(err(e))
        }
    }
}

/// A slot-assignment cell: 0 unassigned, [`CLAIMING`] being assigned, else
/// slot index + 1.
const CLAIMING: u32 = u32::MAX;

struct Inner {
    options: ShmOptions,
    region: LeakyCell<Region>,
    slots: ClassTable<AtomicU32>,
    sampler: Mutex<Option<Sampler>>,
    reported: AtomicBool,
    /// The segment's truncation was reported on standard error.
    damage_reported: AtomicBool,
}

struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A tracker that publishes per-class counts, serial ranges, recent events
/// and a short history in a shared-memory segment, for `pytracker-cli` and
/// `pytracker-top` to read from another process.
///
/// Cheap to clone (clones share one segment). The segment is removed when
/// the last clone is dropped or [`ShmTracker::close`] is called; after a
/// crash it stays behind, and readers report its writer as gone.
#[derive(Clone)]
pub struct ShmTracker {
    inner: Arc<Inner>,
}

impl ShmTracker {
    /// Creates the segment. Never fails: when nothing can be published,
    /// counts are kept privately and [`ShmTracker::problem`] says why.
    pub fn new(mut options: ShmOptions) -> ShmTracker {
        // The period the header can state and the sampler can wait.
        options.history_period = options
            .history_period
            .clamp(Duration::from_millis(10), Duration::from_secs(86_400));
        let generation = sys::watch_forks();
        let region = Region::create(&options, generation);
        let inner = Arc::new(Inner {
            options,
            region: LeakyCell::new(region),
            slots: ClassTable::default(),
            sampler: Mutex::new(None),
            reported: AtomicBool::new(false),
            damage_reported: AtomicBool::new(false),
        });
        fork::register(&inner);
        let tracker = ShmTracker { inner };
        tracker.start_sampler();
        if !tracker.inner.options.sampler {
            // Without a sampler thread, prune here (the work is bounded).
            tracker.inner.prune();
        }
        tracker
    }

    /// The segment's path, if one was published.
    pub fn path(&self) -> Option<PathBuf> {
        self.inner.region.get().path().map(Path::to_path_buf)
    }

    /// Why the segment is not published (or is somewhere unexpected); `None`
    /// when all is well.
    pub fn problem(&self) -> Option<String> {
        let region = self.inner.region.get();
        region.damage().or_else(|| region.problem.clone())
    }

    /// Returns [`ShmTracker::problem`] the first time only, so callers can
    /// report it once.
    pub fn take_problem_report(&self) -> Option<String> {
        let p = self.problem()?;
        (!self.inner.reported.swap(true, Relaxed)).then_some(p)
    }

    /// The options it was created with.
    pub fn options(&self) -> &ShmOptions {
        &self.inner.options
    }

    fn start_sampler(&self) {
        if !self.inner.options.sampler {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = self
            .inner
            .options
            .history_period
            .clamp(Duration::from_millis(10), Duration::from_secs(86_400));
        let flag = stop.clone();
        let spawned = thread::Builder::new()
            .name("pytracker-sampler".into())
            .spawn(move || {
                let mut next = Instant::now();
                let mut samples: u64 = 0;
                let mut checked = Instant::now();
                while !flag.load(Relaxed) {
                    // The sampler never keeps a process alive: when every
                    // other thread has ended (a child forked from a thread
                    // whose only thread returned, a main thread that
                    // called pthread_exit), it ends too, and so does the
                    // process.
                    if checked.elapsed() >= LAST_THREAD_CHECK {
                        checked = Instant::now();
                        if crate::proc::own_running_threads() == Some(1) {
                            break;
                        }
                    }
                    match weak.upgrade() {
                        Some(inner) => {
                            inner.sample();
                            // Segments of exited processes (forked children
                            // that left by os._exit or exec included) are
                            // pruned at start and then every PRUNE_EVERY
                            // samples, off the application's threads.
                            if samples % PRUNE_EVERY == 0 {
                                inner.prune();
                            }
                            samples += 1;
                        }
                        None => break,
                    }
                    let now = Instant::now();
                    next = next.checked_add(period).unwrap_or(now);
                    if next > now {
                        thread::park_timeout(next - now);
                    } else {
                        next = now;
                    }
                }
            });
        if let Ok(thread) = spawned {
            if let Ok(mut s) = self.inner.sampler.try_lock() {
                *s = Some(Sampler { stop, thread });
            }
        }
    }

    /// Writes one history sample and a heartbeat now.
    pub fn sample(&self) {
        self.inner.sample();
    }

    /// The per-class records of this tracker, sorted by name.
    pub fn snapshot(&self) -> Vec<ClassSnapshot> {
        let region = self.inner.region.get();
        let mut classes: Vec<ClassSnapshot> =
            reader::read_classes(region.view.reader(), &region.geo)
                .into_iter()
                .map(|(_, c)| c)
                .collect();
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        classes
    }

    /// Stops the sampler, marks the segment closed and removes its file.
    /// Counting goes on in the (now private) memory.
    pub fn close(&self) {
        self.inner.close();
    }

    /// A handle that does not keep the segment open.
    pub fn downgrade(&self) -> WeakShmTracker {
        WeakShmTracker(Arc::downgrade(&self.inner))
    }

    /// In a process created by `fork()`: publishes a new segment for this
    /// process, with the counts it had at the fork and those it made since,
    /// and lets go of the parent's segment without writing to it. Does
    /// nothing in the process that created the tracker. Returns the new
    /// segment's problem, if it has one (to be reported once, as at
    /// creation).
    ///
    /// From the fork until this call, the child counts in a private copy
    /// taken at the fork (see the fork protocol below); if no copy could be
    /// taken, its notifications are dropped until this call.
    pub fn reopen_after_fork(&self) -> Option<String> {
        let generation = sys::fork_generation();
        let old = self.inner.region.get();
        if old.generation == generation && !old.forked_image {
            return None;
        }
        old.abandon();
        // The parent's sampler thread does not exist in the child.
        if let Ok(mut s) = self.inner.sampler.try_lock() {
            if let Some(parent) = s.take() {
                std::mem::forget(parent.thread);
            }
        }
        let region = Region::create(&self.inner.options, generation);
        region.copy_from(old);
        let problem = region.problem.clone();
        self.inner.region.replace(region);
        self.inner.reported.store(problem.is_some(), Relaxed);
        self.inner.damage_reported.store(false, Relaxed);
        self.start_sampler();
        problem
    }

    #[inline(always)]
    fn record(&self, kind: EventKind, class: ClassId, serial: Serial, serialized: bool) {
        let region = self.inner.region.get();
        if region.generation != sys::fork_generation() {
            return; // a forked child, before reopen_after_fork: never write the parent's segment
        }
        let slot = match self.inner.slots.get(class).map(|c| c.load(Acquire)) {
            Some(v) if v != 0 && v != CLAIMING => v - 1,
            _ => self.inner.claim(region, class),
        };
        let counters = region.counters(slot);
        if serialized {
            counters.record_serialized(kind, serial);
        } else {
            counters.record(kind, serial);
        }
        if region.events {
            push_event(region, kind, slot, serial);
        }
    }
}

/// A [`ShmTracker`] handle that does not keep it alive.
#[derive(Clone)]
pub struct WeakShmTracker(Weak<Inner>);

impl WeakShmTracker {
    /// The tracker, if it is still alive.
    pub fn upgrade(&self) -> Option<ShmTracker> {
        self.0.upgrade().map(|inner| ShmTracker { inner })
    }
}

#[inline(always)]
fn push_event(region: &Region, kind: EventKind, slot: u32, serial: Serial) {
    let v = &region.view;
    let t = v.word(header::RING_HEAD).fetch_add(1, Relaxed);
    let at = region.geo.event_slot(t);
    let seq = v.word(at + event::SEQ);
    seq.store(t.wrapping_mul(2).wrapping_add(1), Relaxed);
    fence(Release);
    v.word(at + event::META)
        .store(u64::from(kind.code()) | u64::from(slot) << 8, Relaxed);
    v.word(at + event::SERIAL).store(serial, Relaxed);
    v.word(at + event::TIME_NS)
        .store(sys::coarse_monotonic_ns(), Relaxed);
    seq.store(t.wrapping_mul(2).wrapping_add(2), Release);
}

impl Inner {
    /// Assigns a class slot (first event of a class in this segment).
    #[cold]
    #[inline(never)]
    fn claim(&self, region: &Region, class: ClassId) -> u32 {
        let overflow = (region.geo.class_capacity - 1) as u32;
        let Some(cell) = self.slots.get_or_init(class) else {
            return self.fold(region, overflow);
        };
        match cell.compare_exchange(0, CLAIMING, Acquire, Acquire) {
            Ok(_) => {
                let v = &region.view;
                let index = v.word(header::CLASS_COUNT).fetch_add(1, Relaxed);
                let slot = if index < region.geo.class_capacity - 1 {
                    let mut name = class.name().as_bytes().to_vec();
                    if name == layout::OVERFLOW_NAME.as_bytes() {
                        // A class may be called that (in `builtins`): its
                        // qualified name keeps it apart from the overflow
                        // slot's.
                        name = format!("builtins.{}", layout::OVERFLOW_NAME).into_bytes();
                    }
                    let mut flags = 0;
                    if cut_utf8(&mut name, class::NAME_MAX as usize) {
                        flags |= layout::CLASS_TRUNCATED;
                        v.word(header::NAMES_TRUNCATED).fetch_add(1, Relaxed);
                    }
                    region.write_name(region.geo.class_slot(index), &name, flags);
                    index as u32
                } else {
                    self.fold(region, overflow)
                };
                cell.store(slot + 1, Release);
                slot
            }
            Err(_) => {
                // Another thread is assigning it: wait briefly, then count
                // into the overflow slot rather than block.
                for _ in 0..10_000 {
                    let v = cell.load(Acquire);
                    if v != CLAIMING && v != 0 {
                        return v - 1;
                    }
                    thread::yield_now();
                }
                overflow
            }
        }
    }

    fn fold(&self, region: &Region, overflow: u32) -> u32 {
        region
            .view
            .word(header::CLASSES_DROPPED)
            .fetch_add(1, Relaxed);
        overflow
    }

    /// Removes this user's segments of exited processes in the segment's
    /// directory beyond the `keep_exited` newest (bounded work).
    fn prune(&self) {
        let region = self.region.get();
        if let Some(dir) = region.path().and_then(Path::parent) {
            crate::discovery::prune_exited(dir, self.options.keep_exited);
        }
    }

    fn sample(&self) {
        let region = self.region_for_writing();
        let Some(region) = region else { return };
        if let Some(damage) = region.damage() {
            // Once, from the sampler: the application's own threads never
            // see more than the `problem` property changing.
            if !self.damage_reported.swap(true, Relaxed) {
                eprintln!("pytracker: {damage}");
            }
        }
        let (v, g) = (&region.view, &region.geo);
        let head = v.word(header::HISTORY_HEAD).load(Relaxed);
        let index = head % g.history_capacity;
        let used = v
            .word(header::CLASS_COUNT)
            .load(Relaxed)
            .min(g.class_capacity - 1);
        let (mut live, mut created, mut destroyed) = (0u64, 0u64, 0u64);
        for slot in (0..used).chain([g.class_capacity - 1]) {
            let base = g.class_slot(slot);
            let t = v.counters(base + class::COUNTERS).totals();
            let (l, c, d) = (t.live(), t.created, t.destroyed);
            v.word32(base + class::HISTORY + 4 * index)
                .store(l.min(u64::from(u32::MAX)) as u32, Relaxed);
            live += l;
            created += c;
            destroyed += d;
        }
        let at = header::HISTORY_TOTALS + index * 8 * layout::HISTORY_TOTAL_WORDS;
        let now = sys::monotonic_ns();
        for (i, value) in [now, live, created, destroyed].into_iter().enumerate() {
            v.word(at + 8 * i as u64).store(value, Relaxed);
        }
        v.word(header::HISTORY_HEAD).store(head + 1, Release);
        v.word(header::HEARTBEAT_NS).store(now, Relaxed);
    }

    fn region_for_writing(&self) -> Option<&Region> {
        let region = self.region.get();
        (region.generation == sys::fork_generation()).then_some(region)
    }

    fn close(&self) {
        let sampler = self.sampler.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = sampler {
            s.stop.store(true, Relaxed);
            s.thread.thread().unpark();
            if s.thread.thread().id() != thread::current().id() {
                let _ = s.thread.join();
            }
        }
        if let Some(region) = self.region_for_writing() {
            region.close();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

impl Tracker for ShmTracker {
    #[inline]
    fn notify(&self, kind: EventKind, class: ClassId, serial: Serial) {
        self.record(kind, class, serial, false);
    }

    #[inline]
    fn notify_serialized(&self, kind: EventKind, class: ClassId, serial: Serial) {
        self.record(kind, class, serial, true);
    }

    #[inline]
    fn attached_serialized(&self, class: ClassId, serial: Serial) {
        self.record(EventKind::Attached, class, serial, true);
    }

    #[inline]
    fn destroyed_serialized(&self, class: ClassId, serial: Serial) {
        self.record(EventKind::Destroyed, class, serial, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_at_char_boundary() {
        let mut b = "aé".as_bytes().to_vec(); // 3 bytes
        assert!(cut_utf8(&mut b, 2));
        assert_eq!(b, b"a");
        let mut b = b"abc".to_vec();
        assert!(!cut_utf8(&mut b, 3));
    }
}

/// The fork protocol: a child's counts are exactly those of its parent at
/// the fork, whatever the parent's other threads do meanwhile.
///
/// The segment is a shared mapping, so after `fork()` the child sees the
/// parent's pages change as the parent's threads go on counting. Three
/// `pthread_atfork` handlers fix the child's starting point:
///
/// * *prepare* (parent, in the forking thread, before the fork): for every
///   live writer, [`Region::image`] copies the claimed slots and counts into
///   private memory. A Python fork holds the GIL from here to the fork, so
///   no Python object is created or destroyed in between: the image is the
///   state at the fork.
/// * *child* (child, right after the fork, before any Python code, even
///   before the interpreter frees the frames of the threads that did not
///   survive the fork): the fork generation is bumped by `sys` (registered
///   first, so its handler runs first), then each writer's region is
///   replaced by its image, so everything the child does from its first
///   instruction is counted, privately, with no file touched.
/// * *parent* (parent, after the fork): the images are dropped.
///
/// The child publishes a segment of its own later, from Python's
/// `after_in_child` hook ([`ShmTracker::reopen_after_fork`]), copying the
/// image. Locks: the registry and the pending images are locked normally
/// in *prepare* (before the fork, where waiting is allowed) and only
/// `try_lock`ed in *child*, where a lock held by a thread that did not
/// survive the fork would never be released; a failed `try_lock` leaves
/// that writer on the generation check alone (its notifications are
/// dropped until it publishes).
mod fork {
    use std::sync::{Arc, Mutex, Once, Weak};

    use super::{Inner, Region};
    use crate::sys;

    static WRITERS: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
    static IMAGES: Mutex<Vec<(Weak<Inner>, Region)>> = Mutex::new(Vec::new());

    /// Makes `inner` part of the protocol (installing it once).
    pub(super) fn register(inner: &Arc<Inner>) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| sys::at_fork(prepare, parent, child));
        let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        writers.retain(|w| w.strong_count() > 0);
        writers.push(Arc::downgrade(inner));
    }

    extern "C" fn prepare() {
        let writers: Vec<Arc<Inner>> = WRITERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let next = sys::fork_generation() + 1;
        let images: Vec<(Weak<Inner>, Region)> = writers
            .iter()
            .filter_map(|inner| {
                let region = inner.region_for_writing()?;
                Some((Arc::downgrade(inner), region.image(next)?))
            })
            .collect();
        *IMAGES.lock().unwrap_or_else(|e| e.into_inner()) = images;
    }

    extern "C" fn parent() {
        IMAGES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    extern "C" fn child() {
        let Ok(mut images) = IMAGES.try_lock() else {
            return;
        };
        for (weak, image) in images.drain(..) {
            if let Some(inner) = weak.upgrade() {
                if image.generation == sys::fork_generation() {
                    inner.region.get().abandon();
                    inner.region.replace(image);
                }
            }
        }
    }
}
