//! The live view's columns, each described once: its title, what it
//! means, how it may be sized and dropped, how rows sort by it and how a
//! row's cell reads. The table, its layout at any terminal width, the sort
//! keys (1 to the number of sortable columns) and the help overlay are all
//! made from [`COLUMNS`]: a new column is one entry here.

use std::cmp::Ordering;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::Row;
use crate::format::{rate, signed, spark};

/// How wide a column is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// As wide as its widest cell on screen (and its title), at most this.
    Data(u16),
    /// Exactly this many cells.
    Fixed(u16),
    /// What the other columns leave (the class names), at least this.
    Rest(u16),
}

/// One column of the class table.
pub struct Column {
    /// Header text.
    pub title: &'static str,
    /// What it shows, for the help overlay.
    pub about: &'static str,
    /// Its width.
    pub width: Width,
    /// Which columns go first when the terminal is too narrow: the lowest
    /// `keep` is dropped first; 0 is never dropped.
    pub keep: u8,
    /// The row order when sorting by it (largest first for counts), or
    /// `None` if it cannot be sorted by. Ties are broken by name.
    pub order: Option<fn(&Row, &Row) -> Ordering>,
    /// The cell's text for a row, in at most `width` cells (only the
    /// class names need the hint: the others fit their column by
    /// construction).
    pub cell: fn(&Row, usize) -> String,
}

/// Sparkline cells in the trend column.
pub const TREND_WIDTH: u16 = 16;

/// Every column, in display order; the sortable ones come first.
pub const COLUMNS: [Column; 10] = [
    Column {
        title: "CLASS",
        about: "qualified class name (▲ growing, … cut by the writer)",
        width: Width::Rest(24),
        keep: 0,
        order: Some(|a, b| a.name.cmp(&b.name)),
        cell: |r, width| {
            let mark = if r.growing { "▲ " } else { "  " };
            let cut = if r.truncated { "…" } else { "" };
            let name = shorten_left(&format!("{}{cut}", r.name), width.saturating_sub(2));
            format!("{mark}{name}")
        },
    },
    Column {
        title: "LIVE",
        about: "objects alive now",
        width: Width::Data(20),
        keep: 0,
        order: Some(|a, b| b.live.cmp(&a.live)),
        cell: |r, _| r.live.to_string(),
    },
    Column {
        title: "OLD≥1m",
        about: "live objects at least a minute old (survivors, not churn)",
        width: Width::Data(20),
        keep: 7,
        order: Some(|a, b| b.old.cmp(&a.old)),
        cell: |r, _| r.old.map_or_else(|| "-".into(), |n| n.to_string()),
    },
    Column {
        title: "Δ ATTACH",
        about: "change in live objects since this view attached",
        width: Width::Data(21),
        keep: 9,
        order: Some(|a, b| b.change.cmp(&a.change)),
        cell: |r, _| signed(r.change),
    },
    Column {
        title: "CREATED/S",
        about: "creations per second over the last refresh",
        width: Width::Data(12),
        keep: 8,
        order: Some(|a, b| b.created_rate.total_cmp(&a.created_rate)),
        cell: |r, _| rate(r.created_rate),
    },
    Column {
        title: "DESTROYED/S",
        about: "destructions per second over the last refresh",
        width: Width::Data(13),
        keep: 5,
        order: Some(|a, b| b.destroyed_rate.total_cmp(&a.destroyed_rate)),
        cell: |r, _| rate(r.destroyed_rate),
    },
    Column {
        title: "CREATED",
        about: "objects created since the process started tracking",
        width: Width::Data(20),
        keep: 3,
        order: Some(|a, b| b.created.cmp(&a.created)),
        cell: |r, _| r.created.to_string(),
    },
    Column {
        title: "DESTROYED",
        about: "objects destroyed since the process started tracking",
        width: Width::Data(20),
        keep: 2,
        order: Some(|a, b| b.destroyed.cmp(&a.destroyed)),
        cell: |r, _| r.destroyed.to_string(),
    },
    Column {
        title: "SERIALS",
        about: "first..last serial seen (sorts by the last)",
        width: Width::Data(41),
        keep: 4,
        order: Some(|a, b| b.last_serial.cmp(&a.last_serial)),
        cell: |r, _| format!("{}..{}", r.first_serial, r.last_serial),
    },
    Column {
        title: "TREND",
        about: "live objects over the segment's history",
        width: Width::Fixed(TREND_WIDTH),
        keep: 6,
        order: None,
        cell: |r, _| spark(&r.trend, TREND_WIDTH as usize),
    },
];

/// `name` in at most `width` cells: cut from the left (the module part),
/// keeping the class part, marked with `…`.
pub fn shorten_left(name: &str, width: usize) -> String {
    if name.width() <= width {
        return name.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut kept = Vec::new();
    let mut used = 1; // the ellipsis
    for c in name.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        kept.push(c);
    }
    let mut out = String::from("…");
    out.extend(kept.into_iter().rev());
    out
}

/// The widest the class column asks for before other columns give way:
/// a longer name is cut rather than drop every other column.
pub const NAME_WANTED_MAX: usize = 60;

/// The columns shown and their widths, for a table `width` cells wide
/// (borders included) whose rows on screen are `rows`. Every column is as
/// wide as its content; the class column wants its longest name (up to
/// [`NAME_WANTED_MAX`]). When that does not fit, columns are dropped, least
/// useful first (never the class, the live count or the sorted column),
/// and only then are names cut (from the left), down to the class
/// column's minimum.
pub fn layout(rows: &[&Row], width: u16, sort: usize) -> Vec<(usize, u16)> {
    // Borders, and one space between columns.
    let room = usize::from(width).saturating_sub(2);
    let content = |c: &Column| {
        rows.iter()
            .map(|r| (c.cell)(r, usize::MAX).width())
            .max()
            .unwrap_or(0)
    };
    let (needed, wanted): (Vec<usize>, Vec<usize>) = COLUMNS
        .iter()
        .map(|c| {
            let title = c.title.width() + 2; // the sort mark
            match c.width {
                Width::Fixed(n) => {
                    let n = usize::from(n).max(title);
                    (n, n)
                }
                Width::Data(max) => {
                    let n = content(c).max(title).min(usize::from(max));
                    (n, n)
                }
                Width::Rest(min) => {
                    let min = usize::from(min).max(title);
                    (min, content(c).clamp(min, NAME_WANTED_MAX.max(min)))
                }
            }
        })
        .unzip();
    let mut shown: Vec<usize> = (0..COLUMNS.len()).collect();
    let total = |shown: &[usize], sizes: &[usize]| -> usize {
        shown.iter().map(|&i| sizes[i]).sum::<usize>() + shown.len().saturating_sub(1)
    };
    while total(&shown, &wanted) > room {
        let droppable = shown
            .iter()
            .copied()
            .filter(|&i| COLUMNS[i].keep > 0 && i != sort)
            .min_by_key(|&i| COLUMNS[i].keep);
        match droppable {
            Some(i) => shown.retain(|&j| j != i),
            None => break,
        }
    }
    let rest = room.saturating_sub(total(&shown, &needed));
    shown
        .into_iter()
        .map(|i| {
            let w = match COLUMNS[i].width {
                Width::Rest(_) => needed[i] + rest,
                _ => needed[i],
            };
            (i, u16::try_from(w).unwrap_or(u16::MAX))
        })
        .collect()
}

/// How many columns can be sorted by (the first ones).
pub const SORTABLE: usize = {
    let mut n = 0;
    while n < COLUMNS.len() && COLUMNS[n].order.is_some() {
        n += 1;
    }
    n
};

/// Orders two rows by column `sort` (by name if it is not sortable), ties
/// by name.
pub fn compare(sort: usize, a: &Row, b: &Row) -> Ordering {
    let by = COLUMNS
        .get(sort)
        .and_then(|c| c.order)
        .map_or(Ordering::Equal, |order| order(a, b));
    by.then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_columns_come_first() {
        assert_eq!(SORTABLE, 9);
        assert!(COLUMNS[SORTABLE..].iter().all(|c| c.order.is_none()));
    }

    #[test]
    fn names_are_cut_from_the_left() {
        assert_eq!(shorten_left("app.models.Catalog", 30), "app.models.Catalog");
        assert_eq!(shorten_left("app.models.Catalog", 10), "…s.Catalog");
        assert_eq!(shorten_left("app.模型.Catalog", 11), "…型.Catalog");
        assert_eq!(shorten_left("app.模型.Catalog", 10), "….Catalog");
        assert_eq!(shorten_left("abc", 0), "");
    }
}
