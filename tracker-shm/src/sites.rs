//! The site protocol: where sampled objects were created, and how many of
//! them are still alive.
//!
//! *Writer.* A sampled creation whose (class, stack) the tracker has not
//! seen claims the next site slot with a `fetch_add` on
//! [`header::SITE_COUNT`] (past the capacity the creation is only counted
//! in [`header::SITES_DROPPED`]); it stores the slot's state
//! [`layout::SLOT_FILLING`], the class slot, the frames and their count
//! (`Relaxed`), then [`layout::SLOT_PUBLISHED`] with `Release`. The slot's
//! `live` and `total` counts are then changed by the serialising lock's
//! holder only (sampled objects are Python objects: sampled at creation,
//! counted out at destruction, both under the GIL), with plain loads and
//! stores. The tracker keeps the (class, stack) to slot map, so one thread
//! claims per site.
//!
//! *Reader* ([`read`]). Loads the count (clamped to the capacity), then
//! each slot's state; for a published slot an `Acquire` fence pairs with
//! the writer's `Release` store, so the frames read after it are final.
//! Counts are single words; `live` is a wrapping difference, and a value
//! past 2^63 (a torn or forged one) reads as 0.

use std::sync::atomic::{fence, Ordering::*};

use crate::classes::cut_utf8;
use crate::layout::{self, header, site, Geometry};
use crate::mapping::{ReadView, WriteView};

/// One frame of a creation stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// Source file (its last 88 bytes).
    pub file: String,
    /// Line number.
    pub line: u64,
    /// Function name (its first 32 bytes).
    pub function: String,
}

/// Claims and fills a site slot for objects of class slot `class_slot`
/// created by `frames` (writer); `None` when the table is full.
pub(crate) fn claim(
    v: WriteView<'_>,
    g: &Geometry,
    class_slot: u32,
    frames: &[Frame],
    back: impl FnOnce(u64) -> bool,
) -> Option<u32> {
    let index = v.word(header::SITE_COUNT).fetch_add(1, Relaxed);
    if index >= g.site_capacity || !back(index) {
        return None;
    }
    let base = g.site_slot(index);
    v.word(base + site::STATE)
        .store(layout::SLOT_FILLING, Relaxed);
    v.word(base + site::CLASS_SLOT)
        .store(u64::from(class_slot), Relaxed);
    let n = frames.len().min(layout::SITE_FRAMES as usize);
    for (i, f) in frames[..n].iter().enumerate() {
        let at = base + site::FRAMES + i as u64 * site::FRAME_SIZE;
        v.word(at + site::LINE).store(f.line, Relaxed);
        let file = tail_utf8(f.file.as_bytes(), site::FILE_MAX as usize);
        v.word(at + site::FILE_LEN)
            .store(file.len() as u64, Relaxed);
        v.write_bytes(at + site::FILE, file);
        let mut func = f.function.as_bytes().to_vec();
        cut_utf8(&mut func, site::FUNC_MAX as usize);
        v.word(at + site::FUNC_LEN)
            .store(func.len() as u64, Relaxed);
        v.write_bytes(at + site::FUNC, &func);
    }
    v.word(base + site::FRAME_COUNT).store(n as u64, Relaxed);
    v.word(base + site::STATE)
        .store(layout::SLOT_PUBLISHED, Release);
    u32::try_from(index).ok()
}

/// The last `max` bytes of `bytes`, starting at a character boundary.
fn tail_utf8(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut start = bytes.len() - max;
    // Skip UTF-8 continuation bytes.
    while start < bytes.len() && bytes[start] & 0xC0 == 0x80 {
        start += 1;
    }
    &bytes[start..]
}

/// A sampled object of site `index` was created (`+1`) or destroyed
/// (`-1`) (writer, serialised lane).
pub(crate) fn count(v: WriteView<'_>, g: &Geometry, index: u32, born: bool) {
    if u64::from(index) >= g.site_capacity {
        return;
    }
    let base = g.site_slot(u64::from(index));
    let live = v.word(base + site::LIVE);
    if born {
        live.store(live.load(Relaxed).wrapping_add(1), Relaxed);
        let total = v.word(base + site::TOTAL);
        total.store(total.load(Relaxed).wrapping_add(1), Relaxed);
    } else {
        live.store(live.load(Relaxed).wrapping_sub(1), Relaxed);
    }
}

/// Counts a sampled creation whose site found the table full (writer).
pub(crate) fn dropped(v: WriteView<'_>) {
    v.word(header::SITES_DROPPED).fetch_add(1, Relaxed);
}

/// A creation site as a reader sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    /// Slot index in the site table.
    pub index: u32,
    /// The class slot its objects belong to.
    pub class_slot: u32,
    /// Sampled objects created here and still alive.
    pub live: u64,
    /// Sampled objects created here.
    pub total: u64,
    /// The creation stack, the creating call first.
    pub frames: Vec<Frame>,
}

/// The published sites (reader).
pub(crate) fn read(v: ReadView<'_>, g: &Geometry) -> Vec<Site> {
    let n = v
        .u64(header::SITE_COUNT)
        .unwrap_or(0)
        .min(g.site_capacity)
        .min(crate::backing::backed(v, g, crate::backing::Table::Sites));
    let mut out = Vec::new();
    for i in 0..n {
        let base = g.site_slot(i);
        if v.u64(base + site::STATE) != Some(layout::SLOT_PUBLISHED) {
            continue;
        }
        fence(Acquire);
        let count = v
            .u64(base + site::FRAME_COUNT)
            .unwrap_or(0)
            .min(layout::SITE_FRAMES);
        let frames = (0..count)
            .map(|f| {
                let at = base + site::FRAMES + f * site::FRAME_SIZE;
                Frame {
                    file: v.text(at + site::FILE_LEN, at + site::FILE, site::FILE_MAX),
                    line: v.u64(at + site::LINE).unwrap_or(0),
                    function: v.text(at + site::FUNC_LEN, at + site::FUNC, site::FUNC_MAX),
                }
            })
            .collect();
        let live = v.u64(base + site::LIVE).unwrap_or(0);
        out.push(Site {
            index: i as u32,
            class_slot: u32::try_from(v.u64(base + site::CLASS_SLOT).unwrap_or(0))
                .unwrap_or(u32::MAX),
            live: if live > i64::MAX as u64 { 0 } else { live },
            total: v.u64(base + site::TOTAL).unwrap_or(0),
            frames,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::WriteMap;

    #[test]
    fn sites_claim_count_read_and_fill_up() {
        let g = Geometry::with_sites(4, 0, 1, 2);
        let map = WriteMap::private(g.total_size as usize).unwrap();
        let v = map.view();
        crate::backing::Backing::everything(v, &g);
        let long = format!("/srv/{}/handlers.py", "é".repeat(60));
        let frames = vec![
            Frame {
                file: long.clone(),
                line: 42,
                function: "handle_request_with_a_rather_long_name".into(),
            },
            Frame {
                file: "app/server.py".into(),
                line: 7,
                function: "dispatch".into(),
            },
        ];
        let a = claim(v, &g, 1, &frames, |_| true).unwrap();
        count(v, &g, a, true);
        count(v, &g, a, true);
        count(v, &g, a, false);
        let b = claim(v, &g, 2, &frames[1..], |_| true).unwrap();
        count(v, &g, b, true);
        assert_eq!(claim(v, &g, 3, &frames, |_| true), None);
        assert_eq!(v.reader().u64(header::SITE_COUNT), Some(3));
        let sites = read(v.reader(), &g);
        assert_eq!(sites.len(), 2);
        assert_eq!(
            (sites[0].class_slot, sites[0].live, sites[0].total),
            (1, 1, 2)
        );
        let f = &sites[0].frames[0];
        assert!(
            f.file.ends_with("/handlers.py") && f.file.len() <= 88,
            "{}",
            f.file
        );
        assert!(long.ends_with(&f.file));
        assert_eq!(f.line, 42);
        assert_eq!(f.function, "handle_request_with_a_rather_lon");
        assert_eq!(sites[1].frames, frames[1..]);
        // A death without a birth (never for a real object) reads as 0.
        count(v, &g, b, false);
        count(v, &g, b, false);
        assert_eq!(read(v.reader(), &g)[1].live, 0);
    }
}
