//! The live view's columns, each described once: its title, what it
//! means, its width, how rows sort by it and how a row's cell reads. The
//! table, the sort keys (1 to the number of sortable columns) and the help
//! overlay are all made from [`COLUMNS`]: a new column is one entry here.

use std::cmp::Ordering;

use super::app::Row;
use crate::format::{rate, signed, spark};

/// How wide a column is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// At least this many cells; takes what the others leave.
    Min(u16),
    /// Exactly this many cells.
    Fixed(u16),
}

/// One column of the class table.
pub struct Column {
    /// Header text.
    pub title: &'static str,
    /// What it shows, for the help overlay.
    pub about: &'static str,
    /// Its width.
    pub width: Width,
    /// The row order when sorting by it (largest first for counts), or
    /// `None` if it cannot be sorted by. Ties are broken by name.
    pub order: Option<fn(&Row, &Row) -> Ordering>,
    /// The cell's text for a row.
    pub cell: fn(&Row) -> String,
}

/// Sparkline cells in the trend column.
pub const TREND_WIDTH: u16 = 16;

/// Every column, in display order; the sortable ones come first.
pub const COLUMNS: [Column; 9] = [
    Column {
        title: "CLASS",
        about: "qualified class name (▲ growing, … cut by the writer)",
        width: Width::Min(20),
        order: Some(|a, b| a.name.cmp(&b.name)),
        cell: |r| {
            let mark = if r.growing { "▲ " } else { "  " };
            let cut = if r.truncated { "…" } else { "" };
            format!("{mark}{}{cut}", r.name)
        },
    },
    Column {
        title: "LIVE",
        about: "objects alive now",
        width: Width::Fixed(9),
        order: Some(|a, b| b.live.cmp(&a.live)),
        cell: |r| r.live.to_string(),
    },
    Column {
        title: "Δ ATTACH",
        about: "change in live objects since this view attached",
        width: Width::Fixed(10),
        order: Some(|a, b| b.change.cmp(&a.change)),
        cell: |r| signed(r.change),
    },
    Column {
        title: "CREATED/S",
        about: "creations per second over the last refresh",
        width: Width::Fixed(11),
        order: Some(|a, b| b.created_rate.total_cmp(&a.created_rate)),
        cell: |r| rate(r.created_rate),
    },
    Column {
        title: "DESTROYED/S",
        about: "destructions per second over the last refresh",
        width: Width::Fixed(13),
        order: Some(|a, b| b.destroyed_rate.total_cmp(&a.destroyed_rate)),
        cell: |r| rate(r.destroyed_rate),
    },
    Column {
        title: "CREATED",
        about: "objects created since the process started tracking",
        width: Width::Fixed(10),
        order: Some(|a, b| b.created.cmp(&a.created)),
        cell: |r| r.created.to_string(),
    },
    Column {
        title: "DESTROYED",
        about: "objects destroyed since the process started tracking",
        width: Width::Fixed(11),
        order: Some(|a, b| b.destroyed.cmp(&a.destroyed)),
        cell: |r| r.destroyed.to_string(),
    },
    Column {
        title: "SERIALS",
        about: "first..last serial seen (sorts by the last)",
        width: Width::Fixed(17),
        order: Some(|a, b| b.last_serial.cmp(&a.last_serial)),
        cell: |r| format!("{}..{}", r.first_serial, r.last_serial),
    },
    Column {
        title: "TREND",
        about: "live objects over the segment's history",
        width: Width::Fixed(TREND_WIDTH),
        order: None,
        cell: |r| spark(&r.trend, TREND_WIDTH as usize),
    },
];

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
        assert_eq!(SORTABLE, 8);
        assert!(COLUMNS[SORTABLE..].iter().all(|c| c.order.is_none()));
    }
}
