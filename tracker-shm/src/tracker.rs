//! [`ShmTracker`]: a native tracker that publishes its counts in a shared
//! memory segment.
//!
//! The tracker owns a [`Region`] (the segment) behind a [`LeakyCell`], so a
//! forked child can swap in a region of its own while other threads still
//! hold the old one; a table of per-class cells assigns each class its slot
//! once; a sampler thread writes the history and the heartbeat and prunes
//! segments of exited processes. What goes into the segment, and in which
//! order, is decided by the protocol modules ([`crate::classes`],
//! [`crate::ring`], [`crate::history`], [`crate::header`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracker_core::age::Epoch;
use tracker_core::{ClassId, ClassSnapshot, ClassTable, EventKind, Serial, Tracker};

use crate::backing::Table;
use crate::leaky::LeakyCell;
use crate::options::ShmOptions;
use crate::region::Region;
use crate::sites::{self, Frame};
use crate::{ages, classes, history, ring, sys, ticks};

/// How often the sampler checks whether it is the process's last thread.
const LAST_THREAD_CHECK: Duration = Duration::from_millis(100);

/// A writer's sampler prunes segments of exited processes every this many
/// samples (every minute with the default period of one second).
const PRUNE_EVERY: u64 = 60;

/// A slot-assignment cell: 0 unassigned, [`CLAIMING`] being assigned, else
/// slot index + 1.
const CLAIMING: u32 = u32::MAX;

struct Inner {
    options: ShmOptions,
    region: LeakyCell<Region>,
    slots: ClassTable<AtomicU32>,
    sampler: Mutex<Option<Sampler>>,
    reported: AtomicBool,
    /// Tick-table entry of each unit of work ticked so far (`None`: the
    /// table was full).
    units: Mutex<HashMap<String, Option<u64>>>,
    /// Site slot of each (class, stack key) seen (`None`: the table was
    /// full).
    sites: Mutex<HashMap<(ClassId, u64), Option<u32>>>,
    /// The segment's truncation was reported on standard error.
    damage_reported: AtomicBool,
    /// Time stamps of the serialised lane's events.
    event_clock: ring::EventClock,
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
        let region = Region::create(&options, generation, false, (0, 0));
        let ticked = options.sampler;
        let inner = Arc::new(Inner {
            options,
            region: LeakyCell::new(region),
            slots: ClassTable::default(),
            sampler: Mutex::new(None),
            reported: AtomicBool::new(false),
            units: Mutex::new(HashMap::new()),
            sites: Mutex::new(HashMap::new()),
            damage_reported: AtomicBool::new(false),
            event_clock: ring::EventClock::new(ticked),
        });
        fork::register(&inner);
        let tracker = ShmTracker { inner };
        tracker.start_sampler();
        // Pruned here, before the application goes on (the work is
        // bounded): a worker that lives for milliseconds still removes its
        // predecessors' leftovers.
        tracker.inner.prune();
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
                            // pruned when a segment is made and then every
                            // PRUNE_EVERY samples, off the application's
                            // threads.
                            if samples % PRUNE_EVERY == PRUNE_EVERY - 1 {
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

    /// The unit of work called `name` (its entry in the segment's tick
    /// table is claimed on first use; names are cut to 24 bytes, and past
    /// eight units ticks are only counted as dropped).
    pub fn unit(&self, name: &str) -> TickUnit {
        let mut units = self.inner.units.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&entry) = units.get(name) {
            return TickUnit(entry);
        }
        let entry = match self.inner.region_for_writing() {
            Some(region) => ticks::claim(region.view(), name),
            None => None,
        };
        units.insert(name.to_string(), entry);
        TickUnit(entry)
    }

    /// Counts `n` units of work of `unit` (any thread; one atomic add).
    #[inline]
    pub fn tick(&self, unit: TickUnit, n: u64) {
        if let Some(region) = self.inner.region_for_writing() {
            ticks::add(region.view(), unit.0, n);
        }
    }

    /// The service this process belongs to, as its segment says.
    pub fn service(&self) -> String {
        self.inner.region.get().service.clone()
    }

    /// This process's worker number in its service (`None`: none could be
    /// had, or the segment is not published).
    pub fn worker(&self) -> Option<u64> {
        self.inner.region.get().worker
    }

    /// One creation in this many records its site (0: sites are off).
    pub fn site_every(&self) -> u64 {
        if self.inner.region.get().geo().site_capacity == 0 {
            0
        } else {
            self.inner.options.site_every
        }
    }

    /// Records that a sampled object of `class` was created at the stack
    /// `key` stands for (a hash of it, chosen by the caller); `frames` is
    /// called for the stack's text the first time the site is seen.
    /// Returns the site, to pass to [`ShmTracker::site_left`] when the
    /// object goes, or `None` when sites are off or the table is full.
    /// Serialised callers only (the GIL holder), like the serialised lane.
    pub fn site(
        &self,
        class: ClassId,
        key: u64,
        frames: impl FnOnce() -> Vec<Frame>,
    ) -> Option<SiteId> {
        let region = self.inner.region_for_writing()?;
        let (v, g) = (region.view(), region.geo());
        if g.site_capacity == 0 {
            return None;
        }
        let mut sites = self.inner.sites.lock().unwrap_or_else(|e| e.into_inner());
        let index = match sites.get(&(class, key)) {
            Some(&index) => index,
            None => {
                let slot = match self.inner.slots.get(class).map(|c| c.load(Acquire)) {
                    Some(v) if v != 0 && v != CLAIMING => v - 1,
                    _ => self.inner.claim(region, class),
                };
                let index = sites::claim(v, g, slot, &frames(), |i| region.back(Table::Sites, i));
                sites.insert((class, key), index);
                index
            }
        };
        match index {
            Some(i) => {
                sites::count(v, g, i, true);
                Some(SiteId(i))
            }
            None => {
                sites::dropped(v);
                None
            }
        }
    }

    /// A sampled object of `site` was destroyed (serialised callers only).
    pub fn site_left(&self, site: SiteId) {
        if let Some(region) = self.inner.region_for_writing() {
            sites::count(region.view(), region.geo(), site.0, false);
        }
    }

    /// Writes one history sample and a heartbeat now.
    pub fn sample(&self) {
        self.inner.sample();
    }

    /// The per-class records of this tracker, sorted by name.
    pub fn snapshot(&self) -> Vec<ClassSnapshot> {
        let region = self.inner.region.get();
        let (v, g) = (region.view().reader(), region.geo());
        let mut slots = classes::read(v, g);
        ages::annotate(v, g, &mut slots);
        let mut classes: Vec<ClassSnapshot> = slots.into_iter().map(|(_, c)| c).collect();
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
        let region = Region::create(&self.inner.options, generation, true, old.inheritance());
        region.copy_from(old);
        let problem = region.problem.clone();
        self.inner.region.replace(region);
        self.inner.reported.store(problem.is_some(), Relaxed);
        self.inner.damage_reported.store(false, Relaxed);
        self.start_sampler();
        // A recycled worker removes the leftovers of the workers before it
        // (see `ShmTracker::new`).
        self.inner.prune();
        problem
    }

    #[inline(always)]
    fn record(&self, kind: EventKind, class: ClassId, serial: Serial, lane: Lane) {
        let region = self.inner.region.get();
        if region.generation != sys::fork_generation() {
            return; // a forked child, before reopen_after_fork: never write the parent's segment
        }
        match self.inner.slots.get(class).map(|c| c.load(Acquire)) {
            Some(v) if v != 0 && v != CLAIMING => self.record_in(region, v - 1, kind, serial, lane),
            _ => self.record_claiming(region, kind, class, serial, lane),
        }
    }

    /// [`Self::record`] for a class with no slot yet: claims one, then
    /// records. The whole rest of the notification, out of line, so the
    /// common path keeps nothing across the call.
    #[cold]
    #[inline(never)]
    fn record_claiming(
        &self,
        region: &Region,
        kind: EventKind,
        class: ClassId,
        serial: Serial,
        lane: Lane,
    ) {
        let slot = self.inner.claim(region, class);
        self.record_in(region, slot, kind, serial, lane);
    }

    /// Records a notification in class slot `slot` of `region`.
    #[inline(always)]
    fn record_in(&self, region: &Region, slot: u32, kind: EventKind, serial: Serial, lane: Lane) {
        match lane {
            Lane::Serialized(born) => {
                let hot = region.seg().hot(slot);
                hot.counters.record_serialized(kind, serial);
                // A measurement build (`bare-counts`) leaves ages and peaks out.
                #[cfg(feature = "bare-counts")]
                let _ = born;
                #[cfg(not(feature = "bare-counts"))]
                match kind {
                    EventKind::Attached => ages::attached(region.seg(), hot, born),
                    EventKind::Detached | EventKind::Destroyed => {
                        ages::left(region.seg(), &hot.ages, born)
                    }
                    EventKind::Updated => {}
                }
            }
            Lane::Shared => region.counters(slot).record(kind, serial),
        }
        if region.events {
            match lane {
                Lane::Serialized(_) if region.serialized_ring => {
                    let now = self.inner.event_clock.now(sys::coarse_monotonic_ns);
                    ring::push_serialized(region.seg(), kind, slot, serial, now)
                }
                Lane::Shared if region.serialized_ring => {
                    region
                        .seg()
                        .header_word(crate::layout::header::EVENTS_SKIPPED)
                        .fetch_add(1, Relaxed);
                }
                _ => ring::push(region.seg(), kind, slot, serial, sys::coarse_monotonic_ns()),
            }
        }
    }
}

/// A creation site in one [`ShmTracker`]'s segment (see
/// [`ShmTracker::site`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteId(u32);

/// A unit of work of one [`ShmTracker`] (see [`ShmTracker::unit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickUnit(Option<u64>);

/// Which lane a notification counts in.
#[derive(Clone, Copy)]
enum Lane {
    /// Any thread: atomic read-modify-write, no ages.
    Shared,
    /// The serialising lock's holder, with the object's birth epoch.
    Serialized(Epoch),
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

impl Inner {
    /// Assigns a class slot (first event of a class in this segment).
    #[cold]
    #[inline(never)]
    fn claim(&self, region: &Region, class: ClassId) -> u32 {
        let (v, g) = (region.view(), region.geo());
        let Some(cell) = self.slots.get_or_init(class) else {
            return classes::fold(v, g);
        };
        match cell.compare_exchange(0, CLAIMING, Acquire, Acquire) {
            Ok(_) => {
                let slot = classes::claim(v, g, &class.name(), |i| region.back(Table::Classes, i));
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
                classes::overflow_slot(g)
            }
        }
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
        self.event_clock.tick();
        let region = self.region_for_writing();
        let Some(region) = region else { return };
        if let Some(damage) = region.damage() {
            // Once, from the sampler: the application's own threads never
            // see more than the `problem` property changing.
            if !self.damage_reported.swap(true, Relaxed) {
                eprintln!("pytracker: {damage}");
            }
        }
        let now = sys::monotonic_ns();
        tracker_core::age::advance(now);
        let measures = history::Measures {
            now_ns: now,
            now_unix_ms: tracker_core::now_unix_ms(),
            rss_bytes: crate::proc::own_rss_bytes(),
        };
        history::sample(region.seg(), measures);
        crate::header::beat(region.view(), now);
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
        self.record(kind, class, serial, Lane::Shared);
    }

    #[inline]
    fn notify_serialized(&self, kind: EventKind, class: ClassId, serial: Serial, born: Epoch) {
        self.record(kind, class, serial, Lane::Serialized(born));
    }

    #[inline(always)]
    fn attached_serialized(&self, class: ClassId, serial: Serial, born: Epoch) {
        self.record(EventKind::Attached, class, serial, Lane::Serialized(born));
    }

    #[inline(always)]
    fn destroyed_serialized(&self, class: ClassId, serial: Serial, born: Epoch) {
        self.record(EventKind::Destroyed, class, serial, Lane::Serialized(born));
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
