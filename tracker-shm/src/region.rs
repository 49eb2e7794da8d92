//! [`Region`]: one writer's segment — its memory, geometry and file — from
//! creation to removal.
//!
//! Creation builds the file under a temporary name, sizes it, reserves
//! storage for what is written from the start (see [`crate::backing`]),
//! takes the exclusive lock that tells readers the writer is alive,
//! maps it, writes the header (see [`crate::header`]) and renames it into
//! place. When any of that fails, the region counts in private memory
//! instead and says why ([`Region::problem`]).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering::*};
use std::sync::Mutex;

use tracker_core::ClassCounters;

use crate::backing::{self, Backing, Table};
use crate::error::WriteError;
use crate::layout::{self, header, Geometry};
use crate::mapping::{SegmentMap, WriteMap, WriteView};
use crate::naming::{choose_directory, SegmentName};
use crate::options::ShmOptions;
use crate::workers::Claim;
use crate::{classes, proc, sys};

/// A published segment's file: the open file whose exclusive lock says the
/// writer is alive, and its path.
struct Published {
    file: Mutex<Option<File>>,
    path: PathBuf,
}

/// One segment's memory and geometry.
pub(crate) struct Region {
    /// The memory and the geometry it was checked to fit.
    seg: SegmentMap,
    /// Events are recorded in the ring.
    pub(crate) events: bool,
    /// Only the serialised lane records events (see
    /// [`ShmOptions::events_serialized`]).
    pub(crate) serialized_ring: bool,
    /// The fork generation (see `sys::fork_generation`) it belongs to.
    pub(crate) generation: u64,
    /// `None` when nothing could be published: counts are kept privately.
    published: Option<Published>,
    /// Why it is not published (or is somewhere unexpected).
    pub(crate) problem: Option<String>,
    /// A private copy taken at a fork, counting in the child until the
    /// child publishes a segment of its own (see the tracker's fork
    /// protocol).
    pub(crate) forked_image: bool,
    /// The service name in the header.
    pub(crate) service: String,
    /// The worker number in the header.
    pub(crate) worker: Option<u64>,
    /// How much of the class and site tables has storage.
    backing: Backing,
}

/// The environment variable naming the service (see
/// [`ShmOptions::service`]).
pub const SERVICE_ENV: &str = "PYTRACKER_SERVICE";

/// Segments this process created so far (the last part of their names).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Region {
    /// Creates and publishes a segment for `options`, or private counters
    /// when that fails.
    ///
    /// `forked`: the region replaces the segment of the process this one
    /// was forked from, and the process is that service's worker
    /// ([`layout::ROLE_WORKER`]). Either way it takes the lowest free
    /// worker number of its service (see `crate::workers`).
    ///
    /// `inherit`: class and site slots (counted from the first) that get
    /// storage at once, for the classes a forked child copies from its
    /// parent.
    pub(crate) fn create(
        options: &ShmOptions,
        generation: u64,
        forked: bool,
        inherit: (u64, u64),
    ) -> Region {
        let ring = if options.events {
            options.ring_capacity
        } else {
            0
        };
        let sites = if options.site_every == 0 {
            0
        } else {
            options.site_capacity
        };
        let mut geo = Geometry::with_sites(
            options.class_capacity,
            ring,
            options.history_capacity,
            sites,
        );
        let (map, published, mut problem, tmp) = match create_file(options, &geo, inherit) {
            Ok(Created {
                map,
                file,
                path,
                tmp,
                warning,
            }) => {
                let file = Mutex::new(Some(file));
                (map, Some(Published { file, path }), warning, Some(tmp))
            }
            Err(e) => match WriteMap::private(geo.total_size as usize) {
                Ok(map) => (map, None, Some(e.to_string()), None),
                Err(oom) => {
                    // Not even private memory of that size: the smallest
                    // geometry, everything folded into the overflow slot.
                    geo = Geometry::new(2, 0, 1);
                    let map = WriteMap::private(geo.total_size as usize).unwrap_or_else(|_| {
                        std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u64; 1024]>())
                    });
                    let why = format!("{e}; and cannot allocate private counters either: {oom}");
                    (map, None, Some(why), None)
                }
            },
        };
        let seg = SegmentMap::new(map, geo);
        let backing = if published.is_some() {
            Backing::new(seg.view(), &geo, inherit.0, inherit.1)
        } else {
            Backing::everything(seg.view(), &geo)
        };
        let mut region = Region {
            seg,
            events: options.events && geo.ring_capacity > 0,
            serialized_ring: options.events_serialized,
            generation,
            published,
            problem: None,
            forked_image: false,
            service: String::new(),
            worker: None,
            backing,
        };
        let service = service_name(options);
        // Held until the segment is published (see `crate::workers`).
        let claim = region
            .published
            .as_ref()
            .and_then(|p| p.path.parent())
            .map(|dir| Claim::take(dir, &service));
        let worker = claim.as_ref().and_then(|c| c.number);
        region.init_header(options, &service, worker, forked);
        region.service = String::from_utf8_lossy(&service).into_owned();
        region.worker = worker;
        if let (Some(Published { path, .. }), Some(tmp)) = (&region.published, tmp) {
            if let Err(e) = fs::rename(&tmp, path) {
                let _ = fs::remove_file(&tmp);
                // Nothing was published: the path names no segment of ours
                // (another process may own what is there), so the region
                // forgets it and counts privately in the memory it has.
                problem = Some(format!("cannot publish segment {}: {e}", path.display()));
                // It keeps counting in the unlinked file's memory: all of
                // it gets storage now if it can (else `crate::fault` keeps
                // the process alive when a write finds none).
                if let Some(Published { file, .. }) = region.published.take() {
                    if let Ok(Some(f)) = file.lock().as_deref().map(Option::as_ref) {
                        let _ = sys::allocate(f, 0, region.geo().total_size);
                    }
                }
                region.backing = Backing::everything(region.view(), region.geo());
            }
        }
        drop(claim);
        region.problem = problem;
        region
    }

    /// The segment's memory, for as long as the region is borrowed.
    #[inline(always)]
    pub(crate) fn view(&self) -> WriteView<'_> {
        self.seg.view()
    }

    /// The memory with the hot-path accessors (see [`SegmentMap`]).
    #[inline(always)]
    pub(crate) fn seg(&self) -> &SegmentMap {
        &self.seg
    }

    /// The geometry.
    #[inline(always)]
    pub(crate) fn geo(&self) -> &Geometry {
        self.seg.geo()
    }

    /// The counters of class slot `slot`.
    #[inline(always)]
    pub(crate) fn counters(&self, slot: u32) -> &ClassCounters {
        self.seg.counters(slot)
    }

    fn init_header(&self, options: &ShmOptions, service: &[u8], worker: Option<u64>, forked: bool) {
        let pid = sys::pid();
        let mut cmdline = proc::cmdline(pid).into_bytes();
        classes::cut_utf8(&mut cmdline, header::CMDLINE_MAX as usize);
        let now_ns = sys::monotonic_ns();
        tracker_core::age::start(now_ns);
        let identity = crate::header::Identity {
            pid,
            start_time: proc::stat(pid).map_or(0, |s| s.start_time),
            created_unix_ms: tracker_core::now_unix_ms(),
            created_mono_ns: now_ns,
            cmdline: &cmdline,
            boot_id: proc::boot_id(),
            history_period_ms: options.history_period.as_millis() as u64,
            events: self.events,
            serialized_ring: self.serialized_ring,
            service,
            worker: worker.unwrap_or(crate::layout::NO_WORKER),
            role: if forked {
                crate::layout::ROLE_WORKER
            } else {
                crate::layout::ROLE_STANDALONE
            },
            parent_pid: sys::parent_pid(),
            age_epoch_ms: tracker_core::age::epoch_ms(),
            age_origin_ns: tracker_core::age::origin_mono_ns(),
            age_folded: u64::from(tracker_core::age::now()),
            site_every: if self.geo().site_capacity == 0 {
                0
            } else {
                options.site_every
            },
        };
        crate::header::write(self.view(), self.geo(), &identity);
        classes::publish_overflow(self.view(), self.geo());
        crate::header::publish(self.view());
    }

    /// Gives slot `index` of `table` storage if it has none yet; false when
    /// the file system has no room (see [`crate::backing`]).
    pub(crate) fn back(&self, table: Table, index: u64) -> bool {
        let file = self.published.as_ref().map(|p| p.file.lock());
        let file = match &file {
            None => None,
            Some(Ok(guard)) => guard.as_ref(),
            Some(Err(poisoned)) => poisoned.get_ref().as_ref(),
        };
        if self.published.is_some() && file.is_none() {
            return false; // closed
        }
        match file {
            Some(f) => self
                .backing
                .reserve(self.view(), self.geo(), table, index, Some(f)),
            // Private memory: every slot is backed.
            None => index < backing::backed(self.view().reader(), self.geo(), table),
        }
    }

    /// The class and site slots a child forked now copies (see
    /// [`Region::copy_from`]), for [`Region::create`]'s `inherit`.
    pub(crate) fn inheritance(&self) -> (u64, u64) {
        let (v, g) = (self.view().reader(), self.geo());
        (
            classes::claimed(v, g),
            v.u64(header::SITE_COUNT)
                .unwrap_or(0)
                .min(backing::backed(v, g, Table::Sites)),
        )
    }

    /// Copies `old`'s classes (the claimed slots and the overflow slot:
    /// names, counters, history), its sites and counts into this region,
    /// which has the same geometry and storage for what `old`'s
    /// [`Region::inheritance`] names (a forked child's copy of its parent's
    /// segment).
    pub(crate) fn copy_from(&self, old: &Region) {
        let (o, n) = (old.view().reader(), self.view());
        let (og, ng) = (old.geo(), self.geo());
        let capacity = og.class_capacity.min(ng.class_capacity);
        let (used, sites) = old.inheritance();
        let used = used.min(backing::backed(n.reader(), ng, Table::Classes));
        let sites = sites
            .min(backing::backed(n.reader(), ng, Table::Sites))
            .min(og.site_capacity.min(ng.site_capacity));
        let slot_size = og.class_slot_size.min(ng.class_slot_size);
        for i in (0..used).chain([capacity - 1]) {
            let (from, to) = (og.class_slot(i), ng.class_slot(i));
            for w in (0..slot_size).step_by(8) {
                n.word(to + w).store(o.u64(from + w).unwrap_or(0), Relaxed);
            }
        }
        for i in 0..sites {
            let (from, to) = (og.site_slot(i), ng.site_slot(i));
            for w in (0..layout::SITE_SLOT_SIZE).step_by(8) {
                n.word(to + w).store(o.u64(from + w).unwrap_or(0), Relaxed);
            }
        }
        for f in [
            header::CLASS_COUNT,
            header::CLASSES_DROPPED,
            header::NAMES_TRUNCATED,
            header::HISTORY_HEAD,
            header::TIER1_HEAD,
            header::TIER2_HEAD,
            header::AGE_FOLDED,
            header::RSS_BYTES,
            header::TICK_COUNT,
            header::TICKS_DROPPED,
            header::SITE_COUNT,
            header::SITES_DROPPED,
        ] {
            n.word(f).store(o.u64(f).unwrap_or(0), Relaxed);
        }
        // The tick table, and the history totals of every tier.
        let ticks_end = header::TICKS + layout::TICK_MAX * layout::TICK_ENTRY_SIZE;
        let totals_end = og.class_offset.min(ng.class_offset);
        for w in (header::TICKS..ticks_end)
            .chain(layout::TOTALS_OFFSET..totals_end)
            .step_by(8)
        {
            n.word(w).store(o.u64(w).unwrap_or(0), Relaxed);
        }
        fence(Release);
    }

    /// The published segment's path.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.published.as_ref().map(|p| p.path.as_path())
    }

    /// Why the segment no longer shows this process's counts, if its file
    /// shrank under the mapping (see the `fault` module).
    pub(crate) fn damage(&self) -> Option<String> {
        let path = self.path()?;
        self.seg.damaged().then(|| {
            format!(
                "segment {} was truncated by another process: readers can no longer see this \
                 process's counts, and the counts kept in the lost pages restarted from zero",
                path.display()
            )
        })
    }

    /// A private copy of this region's classes and counts, for the child
    /// of a fork about to happen (whose fork generation is `generation`).
    /// Only the pages of claimed slots are touched.
    pub(crate) fn image(&self, generation: u64) -> Option<Region> {
        let geo = *self.geo();
        let map = WriteMap::private(geo.total_size as usize).ok()?;
        let seg = SegmentMap::new(map, geo);
        let backing = Backing::everything(seg.view(), &geo);
        let image = Region {
            seg,
            events: self.events,
            serialized_ring: self.serialized_ring,
            generation,
            published: None,
            problem: None,
            forked_image: true,
            service: self.service.clone(),
            worker: None,
            backing,
        };
        image.copy_from(self);
        Some(image)
    }

    /// Marks the segment closed and removes its file.
    pub(crate) fn close(&self) {
        crate::header::close(self.view());
        if let Some(Published { file, path }) = &self.published {
            let _ = fs::remove_file(path);
            if let Ok(mut f) = file.lock() {
                f.take();
            }
        }
    }

    /// In a forked child: lets go of the parent's file without touching it.
    pub(crate) fn abandon(&self) {
        if let Some(Published { file, .. }) = &self.published {
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

/// The service name: the option, else [`SERVICE_ENV`], else one derived
/// from the program, cut to what the header holds.
fn service_name(options: &ShmOptions) -> Vec<u8> {
    let mut service = options
        .service
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var(SERVICE_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| proc::default_service(&proc::own_args()))
        .into_bytes();
    classes::cut_utf8(&mut service, header::SERVICE_MAX as usize);
    service
}

/// A segment file built under its temporary name, not yet renamed.
struct Created {
    map: WriteMap,
    file: File,
    path: PathBuf,
    tmp: PathBuf,
    warning: Option<String>,
}

fn create_file(
    options: &ShmOptions,
    geo: &Geometry,
    inherit: (u64, u64),
) -> Result<Created, WriteError> {
    let (dir, warning) = choose_directory(options.directory.as_deref())?;
    let pid = sys::pid();
    let name = SegmentName {
        uid: sys::uid(),
        pid,
        start_time: proc::stat(pid).map_or(0, |s| s.start_time),
        seq: SEQUENCE.fetch_add(1, Relaxed),
    };
    let path = dir.join(name.to_string());
    let tmp = name.temp_path(&dir);
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
        for (start, end) in backing::initial_ranges(geo, inherit.0, inherit.1) {
            sys::allocate(&file, start, end - start)?;
        }
        sys::lock_exclusive(&file)?;
        WriteMap::shared(&file, geo.total_size as usize)
    })();
    match built {
        Ok(map) => Ok(Created {
            map,
            file,
            path,
            tmp,
            warning,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(err(e))
        }
    }
}
