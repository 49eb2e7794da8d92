//! Services: the live processes that share a service name (a prefork
//! server's master and workers, a pool's children), read as one.

use std::collections::{BTreeMap, HashSet};

use tracker_core::age::Ages;
use tracker_core::{ClassSnapshot, Snapshot};
use tracker_shm::{layout, list_segments, writer_state, SegmentEntry, WriterState};

/// One live process of a service.
#[derive(Debug)]
pub struct Member {
    /// Writer pid.
    pub pid: u32,
    /// The service name.
    pub service: String,
    /// Its worker number (`None`: the writer got none).
    pub worker: Option<u64>,
    /// Workers of the same service were forked from it.
    pub master: bool,
    /// Its parent pid when it published.
    pub parent_pid: u32,
    /// Creation of its segment, Unix ms.
    pub created_unix_ms: u64,
    /// Its inventory.
    pub snapshot: Snapshot,
    /// The label that tells it from the other members of its service:
    /// `master`, the worker number, or `pid-<pid>` for a process without
    /// a number (unique within the service, see [`label_members`]).
    pub label: String,
}

/// Live, trusted segments (their writers hold their locks, and owner,
/// name and header agree) as service members, sorted by service, then
/// label. `service`: only that service's.
pub fn members(service: Option<&str>) -> Vec<Member> {
    tracker_shm::with_locks_read_once(|| {
        let entries = list_segments();
        members_of(&entries, service)
    })
}

/// [`members`], with the segments `cache` keeps mapped between calls.
pub fn members_cached(cache: &mut tracker_shm::SegmentCache, service: Option<&str>) -> Vec<Member> {
    tracker_shm::with_locks_read_once(|| {
        let entries = tracker_shm::list_segments_cached(cache);
        members_of(&entries, service)
    })
}

/// [`members`] of the segments `entries`. Which writers are alive and
/// trusted is decided here, in order (see
/// `tracker_shm::with_locks_read_once`); their inventories are then read
/// in parallel (a service of dozens of processes of hundreds of classes
/// each is megabytes of counters).
pub fn members_of(entries: &[SegmentEntry], service: Option<&str>) -> Vec<Member> {
    use rayon::prelude::*;
    let live: Vec<(&tracker_shm::Segment, tracker_shm::HeaderInfo)> = entries
        .iter()
        .filter_map(|entry| {
            let seg = entry.segment.as_ref().ok()?;
            if writer_state(seg) != WriterState::Alive || entry.provenance().is_err() {
                return None;
            }
            let h = seg.header();
            service.is_none_or(|s| s == h.service).then_some((seg, h))
        })
        .collect();
    let mut out: Vec<Member> = live
        .into_par_iter()
        .filter_map(|(seg, h)| {
            let snapshot = seg.snapshot(WriterState::Alive.label());
            seg.intact().ok()?;
            Some(Member {
                pid: h.pid,
                service: h.service,
                worker: (h.worker != layout::NO_WORKER).then_some(h.worker),
                master: false,
                parent_pid: h.parent_pid,
                created_unix_ms: h.created_unix_ms,
                snapshot,
                label: String::new(),
            })
        })
        .collect();
    label_members(&mut out);
    out
}

/// Marks masters (a member that another member of its service names as
/// its parent, and whose own parent is no member) and gives every member its label, unique within its
/// service: the first of equal labels (oldest segment first) keeps it,
/// the others get `~<pid>` appended.
pub fn label_members(members: &mut [Member]) {
    let parents: HashSet<(String, u32)> = members
        .iter()
        .map(|m| (m.service.clone(), m.parent_pid))
        .collect();
    let pids: HashSet<(String, u32)> = members.iter().map(|m| (m.service.clone(), m.pid)).collect();
    for m in members.iter_mut() {
        // A member that members were forked from, and that was not itself
        // forked from one (a fork server between the master and its
        // workers is a worker of the master).
        m.master = parents.contains(&(m.service.clone(), m.pid))
            && !pids.contains(&(m.service.clone(), m.parent_pid));
        m.label = if m.master {
            "master".to_string()
        } else {
            m.worker
                .map_or_else(|| format!("pid-{}", m.pid), |w| w.to_string())
        };
    }
    members.sort_by(|a, b| {
        (&a.service, a.created_unix_ms, a.pid).cmp(&(&b.service, b.created_unix_ms, b.pid))
    });
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for m in members.iter_mut() {
        if !seen.insert((m.service.clone(), m.label.clone())) {
            m.label = format!("{}~{}", m.label, m.pid);
        }
    }
    members.sort_by(|a, b| {
        (&a.service, label_key(&a.label), a.pid).cmp(&(&b.service, label_key(&b.label), b.pid))
    });
}

/// Orders labels: `master`, then workers by number, then the rest.
fn label_key(label: &str) -> (u8, u64, String) {
    match label.parse::<u64>() {
        _ if label == "master" => (0, 0, String::new()),
        Ok(n) => (1, n, String::new()),
        Err(_) => (2, 0, label.to_string()),
    }
}

/// The error for a service with no live process, naming the services
/// that have one.
pub fn not_found(name: &str) -> crate::error::CliError {
    let known: Vec<String> = services(&members(None))
        .into_iter()
        .map(|(s, n)| format!("{s} ({n})"))
        .collect();
    crate::error::CliError::Usage(if known.is_empty() {
        format!("no live process of service {name}: no tracked process runs (pytracker-cli ps lists them)")
    } else {
        format!(
            "no live process of service {name}; services with live processes: {}",
            known.join(", ")
        )
    })
}

/// Each class summed over `members`: counts add up, the ages' buckets
/// and cohorts add up and the oldest is the oldest of any member; the peak
/// is the sum of the members' peaks (at least the service's peak, which
/// no one sample saw). Sorted by name.
pub fn sum(members: &[Member]) -> Vec<ClassSnapshot> {
    let mut by_name: BTreeMap<&str, ClassSnapshot> = BTreeMap::new();
    for m in members {
        for c in &m.snapshot.classes {
            let entry = by_name
                .entry(c.name.as_str())
                .or_insert_with(|| ClassSnapshot {
                    name: c.name.clone(),
                    peak_live: Some(0),
                    ..ClassSnapshot::default()
                });
            entry.live = entry.live.saturating_add(c.live);
            entry.created = entry.created.saturating_add(c.created);
            entry.destroyed = entry.destroyed.saturating_add(c.destroyed);
            entry.updated = entry.updated.saturating_add(c.updated);
            entry.name_truncated |= c.name_truncated;
            entry.overflow |= c.overflow;
            entry.saturated |= c.saturated;
            entry.peak_live = match (entry.peak_live, c.peak_live) {
                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                _ => None,
            };
            entry.peak_unix_ms = entry.peak_unix_ms.max(c.peak_unix_ms);
            entry.ages = match (entry.ages.take(), &c.ages) {
                (None, b) => b.clone(),
                (Some(a), None) => Some(a),
                (Some(a), Some(b)) => Some(add_ages(a, b)),
            };
        }
    }
    by_name.into_values().collect()
}

fn add_ages(mut a: Ages, b: &Ages) -> Ages {
    if a.buckets.len() < b.buckets.len() {
        a.buckets.resize(b.buckets.len(), 0);
    }
    for (x, y) in a.buckets.iter_mut().zip(&b.buckets) {
        *x = x.saturating_add(*y);
    }
    a.oldest_s = a.oldest_s.max(b.oldest_s);
    let mut merged: BTreeMap<u64, u64> = BTreeMap::new();
    for [age, n] in a.cohorts.iter().chain(&b.cohorts) {
        let e = merged.entry(*age).or_insert(0);
        *e = e.saturating_add(*n);
    }
    a.cohorts = merged.into_iter().map(|(age, n)| [age, n]).collect();
    a
}

/// Each member's live count of the class `name` (0 where it has none), in
/// `members`' order.
pub fn spread(members: &[Member], name: &str) -> Vec<u64> {
    members
        .iter()
        .map(|m| {
            m.snapshot
                .classes
                .iter()
                .filter(|c| c.name == name)
                .map(|c| c.live)
                .sum()
        })
        .collect()
}

/// The names of the services with a live member, with their member
/// counts, sorted.
pub fn services(members: &[Member]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members {
        *counts.entry(m.service.as_str()).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(service: &str, pid: u32, parent: u32, worker: Option<u64>, created: u64) -> Member {
        Member {
            pid,
            service: service.into(),
            worker,
            master: false,
            parent_pid: parent,
            created_unix_ms: created,
            snapshot: Snapshot::new(vec![ClassSnapshot {
                name: "app.Conn".into(),
                live: u64::from(pid),
                created: u64::from(pid),
                peak_live: Some(u64::from(pid)),
                ..ClassSnapshot::default()
            }]),
            label: String::new(),
        }
    }

    #[test]
    fn masters_workers_and_duplicates_get_unique_labels() {
        let mut ms = vec![
            member("web", 10, 1, Some(0), 1),
            member("web", 11, 10, Some(1), 2),
            member("web", 12, 10, Some(2), 3),
            member("web", 13, 10, Some(2), 4),
            member("jobs", 20, 1, None, 1),
            // A fork server (21, forked from the master 22) and its worker.
            member("pool", 22, 1, Some(0), 1),
            member("pool", 21, 22, Some(1), 2),
            member("pool", 23, 21, Some(2), 3),
        ];
        label_members(&mut ms);
        let labels: Vec<(&str, &str)> = ms
            .iter()
            .map(|m| (m.service.as_str(), m.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("jobs", "pid-20"),
                ("pool", "master"),
                ("pool", "1"),
                ("pool", "2"),
                ("web", "master"),
                ("web", "1"),
                ("web", "2"),
                ("web", "2~13")
            ]
        );
        let web: Vec<Member> = ms.into_iter().filter(|m| m.service == "web").collect();
        let total = sum(&web);
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].live, 10 + 11 + 12 + 13);
        assert_eq!(total[0].peak_live, Some(46));
        assert_eq!(spread(&web, "app.Conn"), vec![10, 11, 12, 13]);
        assert_eq!(spread(&web, "app.Other"), vec![0, 0, 0, 0]);
    }

    #[test]
    fn ages_add_up() {
        let a = Ages {
            buckets: vec![1, 2],
            oldest_s: 10,
            cohorts: vec![[0, 1], [5000, 2]],
        };
        let b = Ages {
            buckets: vec![3, 0, 4],
            oldest_s: 70,
            cohorts: vec![[5000, 1], [70000, 4]],
        };
        let s = add_ages(a, &b);
        assert_eq!(s.buckets, vec![4, 2, 4]);
        assert_eq!(s.oldest_s, 70);
        assert_eq!(s.cohorts, vec![[0, 1], [5000, 3], [70000, 4]]);
    }
}
