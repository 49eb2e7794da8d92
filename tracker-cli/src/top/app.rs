//! The state of the `pytracker-top` view, updated by samples and commands.
//! Nothing here touches the terminal or the segment, so it is tested
//! directly.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use tracker_shm::{Event, HeaderInfo, WriterState};

use super::columns::{compare, SORTABLE};
use super::keys::{Command, Mode};
use super::sample::Sample;

/// Events kept for the detail pane.
const EVENTS_KEPT: usize = 5000;
/// Rows moved by PgUp/PgDn.
pub const PAGE: i64 = 10;

/// Created and destroyed totals per slot.
type Counts = HashMap<u32, (u64, u64)>;

/// One class as shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Slot in the segment.
    pub slot: u32,
    /// Qualified name.
    pub name: String,
    /// The name was cut by the writer.
    pub truncated: bool,
    /// Live objects.
    pub live: u64,
    /// Change in live since attach.
    pub change: i64,
    /// Creations per second over the last refresh.
    pub created_rate: f64,
    /// Destructions per second over the last refresh.
    pub destroyed_rate: f64,
    /// Created in all.
    pub created: u64,
    /// Destroyed in all.
    pub destroyed: u64,
    /// First serial.
    pub first_serial: u64,
    /// Last serial.
    pub last_serial: u64,
    /// Live-count history, oldest first (from the segment: it reaches back
    /// before attach).
    pub trend: Vec<u32>,
    /// The class is growing: live above attach and its history's robust
    /// trend (see [`rising`]) goes up.
    pub growing: bool,
    /// Live objects at least [`OLD_S`] old (none without ages).
    pub old: Option<u64>,
    /// Highest live count seen, and when (Unix ms, 0 if not stamped).
    pub peak: Option<(u64, u64)>,
    /// Live objects by age.
    pub ages: Option<tracker_core::age::Ages>,
}

/// The OLD column's threshold, seconds.
pub const OLD_S: u64 = 60;

/// Whether `series` goes up, robustly: the median of the slopes between
/// pairs of points (Theil-Sen, on at most 32 points spread over the
/// series) is positive and, over the series, adds at least one object and
/// 1% of its median level. A flat line, a single step long past, or noise
/// around a level are not rising.
pub fn rising(series: &[u32]) -> bool {
    if series.len() < 3 {
        return false;
    }
    // A flat line (most classes, most of the time) needs no slopes.
    if series.iter().all(|&v| v == series[0]) {
        return false;
    }
    let step = series.len().div_ceil(32);
    let points: Vec<(f64, f64)> = series
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, v)| (i as f64, f64::from(*v)))
        .collect();
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            slopes.push((b.1 - a.1) / (b.0 - a.0));
        }
    }
    // The medians need only their middle element in place.
    let mid = slopes.len() / 2;
    let slope = *slopes.select_nth_unstable_by(mid, f64::total_cmp).1;
    let mut levels: Vec<u32> = series.to_vec();
    let mid = levels.len() / 2;
    let median = f64::from(*levels.select_nth_unstable(mid).1);
    let rise = slope * (series.len() - 1) as f64;
    slope > 0.0 && rise >= 1.0 && rise >= 0.01 * median
}

/// Whether the view goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// End the view.
    Quit,
}

/// The process picker shown when several processes are tracked.
#[derive(Debug, Default)]
pub struct Picker {
    /// (pid, program, segment path).
    pub entries: Vec<(u32, String, PathBuf)>,
    /// Selected entry.
    pub selected: usize,
    /// Why the last pick failed.
    pub error: Option<String>,
}

impl Picker {
    /// A picker over `entries`.
    pub fn new(entries: Vec<(u32, String, PathBuf)>) -> Picker {
        Picker {
            entries,
            selected: 0,
            error: None,
        }
    }

    /// The selected entry.
    pub fn selected(&self) -> Option<&(u32, String, PathBuf)> {
        self.entries.get(self.selected)
    }

    /// Moves the selection.
    pub fn apply(&mut self, cmd: Command) {
        let last = self.entries.len().saturating_sub(1) as i64;
        let to = match cmd {
            Command::Move(d) => self.selected as i64 + d,
            Command::Page(d) => self.selected as i64 + d * PAGE,
            Command::Home => 0,
            Command::End => last,
            _ => return,
        };
        self.selected = to.clamp(0, last) as usize;
    }
}

/// The view's state.
#[derive(Debug)]
pub struct App {
    /// Refresh interval.
    pub interval: Duration,
    /// Header of the last sample.
    pub header: Option<HeaderInfo>,
    /// Writer state at the last sample.
    pub state: Option<WriterState>,
    /// Monotonic time of the last sample.
    pub now_ns: u64,
    rows: Vec<Row>,
    attach_live: HashMap<u32, u64>,
    previous: Option<(u64, Counts)>,
    /// Creations per second, all classes.
    pub created_rate: f64,
    /// Destructions per second, all classes.
    pub destroyed_rate: f64,
    /// Sorted column.
    pub sort: usize,
    /// Sort reversed.
    pub reverse: bool,
    /// Filter text.
    pub filter: String,
    filtering: bool,
    /// Selected row among the visible ones.
    pub selected: usize,
    /// Slot shown in the detail pane.
    pub detail: Option<u32>,
    /// Help shown.
    pub help: bool,
    paused: bool,
    /// Recent events.
    pub events: VecDeque<Event>,
    /// Events missed since attach.
    pub lost: u64,
    /// Samples taken.
    pub samples: u64,
    /// Indices into `rows` of the visible rows, filtered and sorted.
    order: Vec<usize>,
    /// The history tier the detail chart shows (0: every sample).
    pub tier: u8,
    /// History tiers 1 and 2 of the last sample (tier 0 is in the rows).
    coarse: [tracker_shm::History; 2],
    /// Sample times of each tier, `CLOCK_MONOTONIC` ns.
    tier_times: [Vec<u64>; 3],
    /// Sampled creation sites of the last sample.
    sites: Vec<tracker_shm::Site>,
    /// For a service: each process's label and live count per class (by
    /// shown name), in the service's order.
    workers: Option<Vec<(String, HashMap<String, u64>)>>,
}

impl App {
    /// An empty view refreshed every `interval`.
    pub fn new(interval: Duration) -> App {
        App {
            interval,
            header: None,
            state: None,
            now_ns: 0,
            rows: Vec::new(),
            attach_live: HashMap::new(),
            previous: None,
            created_rate: 0.0,
            destroyed_rate: 0.0,
            sort: 1,
            reverse: false,
            filter: String::new(),
            filtering: false,
            selected: 0,
            detail: None,
            help: false,
            paused: false,
            events: VecDeque::new(),
            lost: 0,
            samples: 0,
            order: Vec::new(),
            tier: 0,
            coarse: Default::default(),
            tier_times: Default::default(),
            sites: Vec::new(),
            workers: None,
        }
    }

    /// For a service view: each process's label and its live count of
    /// `row`'s class.
    pub fn spread_of(&self, row: &Row) -> Option<Vec<(&str, u64)>> {
        let workers = self.workers.as_ref()?;
        Some(
            workers
                .iter()
                .map(|(label, live)| (label.as_str(), live.get(&row.name).copied().unwrap_or(0)))
                .collect(),
        )
    }

    /// The sites of `row`'s class with sampled objects alive, the most
    /// first, at most `limit`.
    pub fn sites_of(&self, row: &Row, limit: usize) -> Vec<&tracker_shm::Site> {
        let mut sites: Vec<&tracker_shm::Site> = self
            .sites
            .iter()
            .filter(|s| s.class_slot == row.slot && s.live > 0)
            .collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.live));
        sites.truncate(limit);
        sites
    }

    /// The detail chart's data for `row`: its live counts in the chosen
    /// tier with their times (`CLOCK_MONOTONIC` ns), oldest first.
    pub fn tier_series(&self, row: &Row) -> (Vec<u64>, Vec<u32>) {
        let times = self.tier_times[usize::from(self.tier.min(2))].clone();
        let series = match self.tier {
            0 => row.trend.clone(),
            t => self.coarse[usize::from(t - 1)]
                .per_class
                .iter()
                .find(|(slot, _)| *slot == row.slot)
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
        };
        (times, series)
    }

    /// Whether the display is frozen.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// What keys mean now.
    pub fn mode(&self) -> Mode {
        if self.filtering {
            Mode::Filter
        } else if self.help || self.detail.is_some() {
            Mode::Overlay
        } else {
            Mode::Table
        }
    }

    /// Takes in a new sample.
    pub fn ingest(&mut self, mut s: Sample) {
        let first = self.samples == 0;
        self.samples += 1;
        let dt = self
            .previous
            .as_ref()
            .map(|(t, _)| s.now_ns.saturating_sub(*t) as f64 / 1e9)
            .filter(|dt| *dt > 0.0);
        // Moved, not copied: a segment may hold tens of thousands of classes.
        let mut trends: HashMap<u32, Vec<u32>> = std::mem::take(&mut s.history.per_class)
            .into_iter()
            .collect();
        let mut counts = HashMap::new();
        let (mut total_c, mut total_d) = (0.0, 0.0);
        self.rows = s
            .classes
            .iter()
            .map(|(slot, c)| {
                if first {
                    self.attach_live.insert(*slot, c.live);
                }
                let base = *self.attach_live.entry(*slot).or_insert(0);
                let (pc, pd) = self
                    .previous
                    .as_ref()
                    .and_then(|(_, m)| m.get(slot).copied())
                    .unwrap_or((c.created, c.destroyed));
                let rate = |now: u64, before: u64| {
                    dt.map_or(0.0, |dt| now.saturating_sub(before) as f64 / dt)
                };
                let (cr, dr) = (rate(c.created, pc), rate(c.destroyed, pd));
                total_c += cr;
                total_d += dr;
                counts.insert(*slot, (c.created, c.destroyed));
                let trend = trends.remove(slot).unwrap_or_default();
                let change = (i128::from(c.live) - i128::from(base))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                    as i64;
                // Only a class that gained objects can be growing.
                let rising = change > 0
                    && if trend.len() >= 3 {
                        rising(&trend)
                    } else {
                        cr > dr
                    };
                Row {
                    slot: *slot,
                    name: tracker_core::escape_control(&c.name).into_owned(),
                    truncated: c.name_truncated,
                    live: c.live,
                    change,
                    created_rate: cr,
                    destroyed_rate: dr,
                    created: c.created,
                    destroyed: c.destroyed,
                    first_serial: c.first_serial,
                    last_serial: c.last_serial,
                    trend,
                    growing: change > 0 && rising,
                    old: c.ages.as_ref().map(|a| a.older_than_ms(OLD_S * 1000)),
                    peak: c.peak_live.map(|p| (p, c.peak_unix_ms.unwrap_or(0))),
                    ages: c.ages.clone(),
                }
            })
            .collect();
        if let Some(coarse) = s.coarse.take() {
            self.coarse = coarse;
            self.tier_times[1] = std::mem::take(&mut self.coarse[0].times_ns);
            self.tier_times[2] = std::mem::take(&mut self.coarse[1].times_ns);
        }
        self.sites = std::mem::take(&mut s.sites);
        self.workers = s.workers.take().map(|ws| {
            ws.into_iter()
                .map(|w| {
                    let live = w
                        .live
                        .into_iter()
                        .map(|(name, n)| (tracker_core::escape_control(&name).into_owned(), n))
                        .collect();
                    (w.label, live)
                })
                .collect()
        });
        self.tier_times[0] = std::mem::take(&mut s.history.times_ns);
        self.created_rate = total_c;
        self.destroyed_rate = total_d;
        self.previous = Some((s.now_ns, counts));
        self.now_ns = s.now_ns;
        self.header = Some(s.header);
        self.state = Some(s.state);
        self.lost += s.lost;
        self.events.extend(s.events);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        self.reorder();
    }

    /// Total live objects.
    pub fn total_live(&self) -> u64 {
        self.rows
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.live))
    }

    /// All rows (unsorted, unfiltered).
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows shown: filtered and sorted.
    pub fn visible(&self) -> impl ExactSizeIterator<Item = &Row> + '_ {
        self.order.iter().map(|&i| &self.rows[i])
    }

    /// How many rows are shown.
    pub fn visible_len(&self) -> usize {
        self.order.len()
    }

    /// The `i`-th row shown.
    pub fn visible_row(&self, i: usize) -> Option<&Row> {
        self.order.get(i).map(|&r| &self.rows[r])
    }

    /// Recomputes the visible order after new data, a new sort or filter.
    fn reorder(&mut self) {
        let f = self.filter.to_lowercase();
        let rows = &self.rows;
        let mut order: Vec<usize> = (0..rows.len())
            .filter(|&i| f.is_empty() || rows[i].name.to_lowercase().contains(&f))
            .collect();
        let sort = self.sort;
        order.sort_by(|&x, &y| compare(sort, &rows[x], &rows[y]));
        if self.reverse {
            order.reverse();
        }
        self.order = order;
        self.clamp_selection();
    }

    /// The row in the detail pane.
    pub fn detail_row(&self) -> Option<&Row> {
        let slot = self.detail?;
        self.rows.iter().find(|r| r.slot == slot)
    }

    /// Recent events of `slot`, newest first.
    pub fn events_of(&self, slot: u32, limit: usize) -> Vec<&Event> {
        self.events
            .iter()
            .rev()
            .filter(|e| e.slot == slot)
            .take(limit)
            .collect()
    }

    fn clamp_selection(&mut self) {
        self.selected = self.selected.min(self.order.len().saturating_sub(1));
    }

    /// Applies a command; says whether the view should end.
    pub fn apply(&mut self, cmd: Command) -> Flow {
        let n = self.order.len() as i64;
        match cmd {
            Command::Quit => return Flow::Quit,
            Command::Escape if self.filter.is_empty() => return Flow::Quit,
            Command::Escape => self.filter.clear(),
            Command::NextSort => self.sort = (self.sort + 1) % SORTABLE,
            Command::SortBy(c) if c < SORTABLE => {
                if self.sort == c {
                    self.reverse = !self.reverse;
                } else {
                    self.sort = c;
                    self.reverse = false;
                }
            }
            Command::SortBy(_) => {}
            Command::Reverse => self.reverse = !self.reverse,
            Command::StartFilter => self.filtering = true,
            Command::FilterChar(c) => self.filter.push(c),
            Command::FilterBackspace => {
                self.filter.pop();
            }
            Command::FilterDone => self.filtering = false,
            Command::FilterCancel => {
                self.filter.clear();
                self.filtering = false;
            }
            Command::Move(d) => {
                self.selected = (self.selected as i64 + d).clamp(0, (n - 1).max(0)) as usize
            }
            Command::Page(d) => {
                self.selected = (self.selected as i64 + d * PAGE).clamp(0, (n - 1).max(0)) as usize
            }
            Command::Home => self.selected = 0,
            Command::End => self.selected = (n - 1).max(0) as usize,
            Command::Open => {
                self.detail = match self.detail {
                    Some(_) => None,
                    None => self.visible_row(self.selected).map(|r| r.slot),
                }
            }
            Command::Back => {
                if self.help {
                    self.help = false;
                } else {
                    self.detail = None;
                }
            }
            Command::Pause => self.paused = !self.paused,
            Command::Help => self.help = !self.help,
            Command::NextTier => self.tier = (self.tier + 1) % 3,
        }
        self.reorder();
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::rising;

    #[test]
    fn the_growth_marker_follows_a_robust_trend() {
        // A flat line, and a pool that filled once early in the window.
        assert!(!rising(&[500; 60]));
        let filled: Vec<u32> = (0..60).map(|i| if i < 5 { i * 100 } else { 500 }).collect();
        assert!(!rising(&filled));
        // Noise around a level.
        let noisy: Vec<u32> = (0..60).map(|i| 1000 + (i * 7919 % 13)).collect();
        assert!(!rising(&noisy));
        // A slow leak, even with a dip, and a leak on a large base.
        let leak: Vec<u32> = (0..60)
            .map(|i| 100 + i / 2 - u32::from(i == 30) * 20)
            .collect();
        assert!(rising(&leak));
        let big: Vec<u32> = (0..96).map(|i| 100_000 + 20 * i).collect();
        assert!(rising(&big));
        // Too short to tell.
        assert!(!rising(&[1, 2]));
    }
}
