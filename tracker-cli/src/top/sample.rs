//! One refresh's worth of data from a segment.

use tracker_core::ClassSnapshot;
use tracker_shm::{
    monotonic_ns, writer_state, Event, EventCursor, HeaderInfo, History, ReadError, Segment,
    WriterState,
};

/// Everything the view needs from one read of the segment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The header.
    pub header: HeaderInfo,
    /// The writer's state.
    pub state: WriterState,
    /// This host's `CLOCK_MONOTONIC` at the read, ns.
    pub now_ns: u64,
    /// Published classes with their slots.
    pub classes: Vec<(u32, ClassSnapshot)>,
    /// The history kept in the segment: tier 0 (every sample).
    pub history: History,
    /// Tiers 1 and 2 (every minute and every hour at the default period),
    /// when read again with this sample (`None`: unchanged, see
    /// [`COARSE_EVERY_NS`]).
    pub coarse: Option<[History; 2]>,
    /// Sampled creation sites.
    pub sites: Vec<tracker_shm::Site>,
    /// Events published since the previous read.
    pub events: Vec<Event>,
    /// Events missed since the previous read.
    pub lost: u64,
    /// For a service: each process's live counts.
    pub workers: Option<Vec<WorkerLive>>,
}

/// Reads samples, following the event ring between reads.
pub struct Reader {
    cursor: EventCursor,
    /// Tiers 1 and 2 as last read, and when: they gain a sample a minute
    /// and an hour at the default period, so they are read again only
    /// every [`COARSE_EVERY_NS`] (with 10,000 classes they are most of a
    /// refresh's reading).
    coarse_read_ns: Option<u64>,
}

/// How often the coarse history tiers are read again.
pub const COARSE_EVERY_NS: u64 = 10_000_000_000;

impl Reader {
    /// Starts at the oldest event still in the ring.
    pub fn new(segment: &Segment) -> Reader {
        Reader {
            cursor: segment.events_from_oldest(),
            coarse_read_ns: None,
        }
    }

    /// Reads one sample.
    ///
    /// # Errors
    /// [`ReadError::Shrunk`] when the segment's file shrank while it was
    /// read: the sample is discarded, and so is the segment.
    pub fn read(&mut self, segment: &Segment) -> Result<Sample, ReadError> {
        let mut events = Vec::new();
        let lost = segment.poll_events(&mut self.cursor, &mut events);
        let now_ns = monotonic_ns();
        let coarse = match self.coarse_read_ns {
            Some(at) if now_ns.saturating_sub(at) < COARSE_EVERY_NS => None,
            _ => {
                self.coarse_read_ns = Some(now_ns);
                Some([segment.history_tier(1), segment.history_tier(2)])
            }
        };
        let sample = Sample {
            header: segment.header(),
            state: writer_state(segment),
            now_ns,
            classes: segment.classes(),
            history: segment.history(),
            coarse,
            sites: segment.sites(),
            events,
            lost,
            workers: None,
        };
        segment.intact()?;
        Ok(sample)
    }
}

/// One worker's live counts, for the detail pane of a service view.
#[derive(Clone, Debug, Default)]
pub struct WorkerLive {
    /// Its label in the service (`master`, `0`, `1`, ...).
    pub label: String,
    /// Live objects per class name.
    pub live: std::collections::HashMap<String, u64>,
}

/// Reads samples of a whole service: each class summed over the service's
/// live processes (see `crate::service`), with each process's share.
pub struct ServiceReader {
    /// The service.
    pub service: String,
    /// Slot given to each class name (stable across reads).
    slots: std::collections::HashMap<String, u32>,
}

impl ServiceReader {
    /// Reads the service `service`.
    pub fn new(service: &str) -> ServiceReader {
        ServiceReader {
            service: service.to_string(),
            slots: std::collections::HashMap::new(),
        }
    }

    fn slot(&mut self, name: &str) -> u32 {
        let next = self.slots.len() as u32;
        *self.slots.entry(name.to_string()).or_insert(next)
    }

    /// Reads one sample; `None` when no process of the service is alive.
    ///
    /// Histories are summed sample by sample from the newest: the
    /// processes sample on their own clocks, so a summed point mixes
    /// samples up to one period apart.
    pub fn read(&mut self) -> Option<Sample> {
        let (entries, members) = tracker_shm::with_locks_read_once(|| {
            let entries = tracker_shm::list_segments();
            let members = crate::service::members_of(&entries, Some(&self.service));
            (entries, members)
        });
        let first = members.first()?;
        let segments: Vec<&Segment> = members
            .iter()
            .filter_map(|m| {
                entries.iter().find_map(|e| {
                    let seg = e.segment.as_ref().ok()?;
                    let h = seg.header();
                    (h.pid == m.pid && h.created_unix_ms == m.created_unix_ms).then_some(seg)
                })
            })
            .collect();
        let mut header = segments.first()?.header();
        let labels: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
        header.program = format!(
            "service {}: {} processes ({})",
            self.service,
            members.len(),
            labels.join(", ")
        );
        header.pid = first.pid;
        let summed = crate::service::sum(&members);
        let classes: Vec<(u32, ClassSnapshot)> = summed
            .into_iter()
            .map(|c| (self.slot(&c.name), c))
            .collect();
        let mut tiers: [History; 3] = Default::default();
        for (tier, out) in tiers.iter_mut().enumerate() {
            out.tier = tier as u8;
            for seg in &segments {
                let names: std::collections::HashMap<u32, String> = seg
                    .classes()
                    .into_iter()
                    .map(|(s, c)| (s, c.name))
                    .collect();
                let h = seg.history_tier(tier as u8);
                if h.times_ns.len() > out.times_ns.len() {
                    out.times_ns = h.times_ns.clone();
                }
                add_from_end(&mut out.total_live, &h.total_live);
                add_from_end(&mut out.rss_bytes, &h.rss_bytes);
                for (slot, series) in &h.per_class {
                    let Some(name) = names.get(slot) else {
                        continue;
                    };
                    let s = self.slot(name);
                    match out.per_class.iter_mut().find(|(x, _)| *x == s) {
                        Some((_, sum)) => add_from_end(sum, series),
                        None => out.per_class.push((s, series.clone())),
                    }
                }
            }
        }
        let [history, t1, t2] = tiers;
        let workers = members
            .iter()
            .map(|m| WorkerLive {
                label: m.label.clone(),
                live: m
                    .snapshot
                    .classes
                    .iter()
                    .map(|c| (c.name.clone(), c.live))
                    .collect(),
            })
            .collect();
        Some(Sample {
            header,
            state: WriterState::Alive,
            now_ns: monotonic_ns(),
            classes,
            history,
            coarse: Some([t1, t2]),
            sites: Vec::new(),
            events: Vec::new(),
            lost: 0,
            workers: Some(workers),
        })
    }
}

/// Adds `b` into `a`, aligned at their ends (newest samples last),
/// growing `a` to the longer length.
fn add_from_end<T: Copy + Default + std::ops::Add<Output = T>>(a: &mut Vec<T>, b: &[T]) {
    if b.len() > a.len() {
        let mut grown = vec![T::default(); b.len() - a.len()];
        grown.append(a);
        *a = grown;
    }
    let offset = a.len() - b.len();
    for (x, y) in a[offset..].iter_mut().zip(b) {
        *x = *x + *y;
    }
}

#[cfg(test)]
mod tests {
    use super::add_from_end;

    #[test]
    fn histories_add_from_their_newest_sample() {
        let mut a = vec![1u32, 2, 3];
        add_from_end(&mut a, &[10, 20]);
        assert_eq!(a, [1, 12, 23]);
        add_from_end(&mut a, &[100, 100, 100, 100]);
        assert_eq!(a, [100, 101, 112, 123]);
    }
}
