//! Drawing the view with ratatui.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Clear, Dataset, GraphType, List, ListItem, ListState, Paragraph,
    Row as TableRow, Table, TableState,
};
use ratatui::Frame;
use tracker_shm::WriterState;

use super::app::{App, Picker, Row};
use super::columns::{layout, COLUMNS, SORTABLE};
use crate::format::{age, one_line, rate, signed, uptime};
use tracker_core::age::BUCKET_BOUNDS_S;

/// What the event loop keeps between frames: the first row drawn, moved
/// just enough to keep the selection on screen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scroll {
    /// Index among the visible rows of the first one drawn.
    pub offset: usize,
}

impl Scroll {
    /// Moves the window of `height` rows over `total` so that `selected`
    /// is in it.
    pub fn follow(&mut self, selected: usize, height: usize, total: usize) {
        let mut offset = self.offset.min(total.saturating_sub(1));
        if selected < offset {
            offset = selected;
        } else if height > 0 && selected >= offset + height {
            offset = selected + 1 - height;
        }
        self.offset = offset;
    }
}

fn header_lines(app: &App, inputs: &Inputs) -> Vec<Line<'static>> {
    let (now_unix_ms, style) = (inputs.now_unix_ms, &inputs.palette);
    let Some(h) = &app.header else {
        return vec![Line::from("attaching…")];
    };
    let state = app.state.unwrap_or(WriterState::Alive);
    let up = now_unix_ms.saturating_sub(h.created_unix_ms) / 1000;
    let beat = app.now_ns.saturating_sub(h.heartbeat_ns) as f64 / 1e9;
    let state_style = if state == WriterState::Alive {
        style.alive
    } else {
        style.gone
    };
    let program = one_line(&h.program, 60);
    let mut first = vec![
        Span::styled(
            format!("pid {}", h.pid),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {program}  up {}  writer ", uptime(up))),
        Span::styled(state.label().to_string(), state_style),
        Span::raw(format!(" (heartbeat {beat:.1}s ago)")),
    ];
    if app.paused() {
        first.push(Span::styled("  PAUSED", style.paused));
    }
    let mut lines = vec![
        Line::from(first),
        Line::from(format!(
            "live {}  created {}/s  destroyed {}/s  classes {}{}",
            app.total_live(),
            rate(app.created_rate),
            rate(app.destroyed_rate),
            app.rows().len(),
            if app.lost > 0 {
                format!("  ({} events missed)", app.lost)
            } else {
                String::new()
            }
        )),
    ];
    if state != WriterState::Alive {
        lines.push(Line::styled(
            format!("target {}: showing its last data", state.label()),
            style.gone,
        ));
    }
    lines
}

fn table_row(r: &Row, shown: &[(usize, u16)], style: &Palette) -> TableRow<'static> {
    let cells: Vec<Cell> = shown
        .iter()
        .map(|&(i, w)| Cell::from((COLUMNS[i].cell)(r, usize::from(w))))
        .collect();
    let row = TableRow::new(cells);
    if r.growing {
        row.style(style.growing)
    } else {
        row
    }
}

/// The styles in use: colours, or none when `NO_COLOR` is set (then only
/// bold, dim and reverse video mark things, and the selected row also
/// gets a pointer).
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    growing: Style,
    alive: Style,
    gone: Style,
    paused: Style,
    prompt: Style,
    chart: Style,
    chart_growing: Style,
    /// Colours in use.
    pub colour: bool,
}

impl Palette {
    /// Colours unless `no_color` (the `NO_COLOR` convention: set and not
    /// empty).
    pub fn new(no_color: bool) -> Palette {
        if no_color {
            let bold = Style::new().add_modifier(Modifier::BOLD);
            Palette {
                growing: bold,
                alive: Style::new(),
                gone: bold,
                paused: bold,
                prompt: bold,
                chart: Style::new(),
                chart_growing: Style::new(),
                colour: false,
            }
        } else {
            Palette {
                growing: Style::new().fg(Color::Red),
                alive: Style::new().fg(Color::Green),
                gone: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                paused: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                prompt: Style::new().fg(Color::Yellow),
                chart: Style::new().fg(Color::Cyan),
                chart_growing: Style::new().fg(Color::Red),
                colour: true,
            }
        }
    }

    /// From the environment (`NO_COLOR`).
    pub fn from_env() -> Palette {
        Palette::new(std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()))
    }
}

/// What a frame is drawn from besides the view's state and scroll window:
/// the wall clock and the styles (both inputs, so a frame is a function of
/// its arguments).
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    /// Wall-clock time, Unix milliseconds.
    pub now_unix_ms: u64,
    /// Styles.
    pub palette: Palette,
}

/// Draws the main view; `scroll` is the event loop's, carried from frame
/// to frame.
pub fn draw(f: &mut Frame<'_>, app: &App, scroll: &mut Scroll, inputs: &Inputs) {
    let header = header_lines(app, inputs);
    let [top, body, footer] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header), top);

    let (table_area, detail_area) = if app.detail.is_some() && body.height >= 12 {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        (a, Some(b))
    } else if app.detail.is_some() {
        (Rect::default(), Some(body))
    } else {
        (body, None)
    };
    if table_area.height > 0 {
        draw_table(f, app, scroll, &inputs.palette, table_area);
    }
    if let Some(area) = detail_area {
        draw_detail(f, app, &inputs.palette, inputs.now_unix_ms, area);
    }
    let hint = if app.mode() == super::keys::Mode::Filter {
        Line::from(vec![
            Span::styled("filter: ", inputs.palette.prompt),
            Span::raw(format!("{}▏  {}", app.filter, matching(app))),
        ])
    } else {
        if app.filter.is_empty() {
            Line::from(format!("q quit  s/1-{SORTABLE} sort  r reverse  / filter  ↑↓ scroll  Enter details  p pause  ? help"))
        } else {
            Line::from(format!(
                "filter \"{}\": {}  Esc clears  / edits  q quit",
                app.filter,
                matching(app)
            ))
        }
    };
    f.render_widget(
        Paragraph::new(hint).style(Style::new().add_modifier(Modifier::DIM)),
        footer,
    );
    if app.help {
        draw_help(f);
    }
}

/// "n of m classes" for the filter.
fn matching(app: &App) -> String {
    format!("{} of {} classes", app.visible_len(), app.rows().len())
}

fn draw_table(f: &mut Frame<'_>, app: &App, scroll: &mut Scroll, style: &Palette, area: Rect) {
    // Only the rows on screen are formatted: with 10,000 classes, building
    // every row each frame would cost more than reading the segment.
    let height = area.height.saturating_sub(3) as usize;
    let total = app.visible_len();
    scroll.follow(app.selected, height, total);
    let offset = scroll.offset;
    let on_screen: Vec<&Row> = app.visible().skip(offset).take(height).collect();
    // Without colour a one-cell pointer marks the selection, beside the rows.
    let pointer = u16::from(!style.colour);
    let shown = layout(&on_screen, area.width.saturating_sub(pointer), app.sort);
    let headers: Vec<Cell> = shown
        .iter()
        .map(|&(i, _)| {
            // Arrows for the sort direction (▲ marks growing classes).
            let mark = match (i == app.sort, app.reverse) {
                (false, _) => "",
                (true, false) => " ↓",
                (true, true) => " ↑",
            };
            Cell::from(format!("{}{mark}", COLUMNS[i].title))
        })
        .collect();
    let rows: Vec<TableRow> = on_screen
        .iter()
        .map(|r| table_row(r, &shown, style))
        .collect();
    let widths = shown.iter().map(|&(_, w)| Constraint::Length(w));
    let title = if app.filter.is_empty() {
        format!(" classes {} ", total)
    } else {
        format!(" {} ", matching(app))
    };
    let mut table = Table::new(rows, widths)
        .header(
            TableRow::new(headers)
                .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    if !style.colour {
        // Reverse video may be all a colourless terminal shows: a pointer
        // marks the selection too.
        table = table.highlight_symbol("›");
    }
    let mut state =
        TableState::default().with_selected((total > 0).then_some(app.selected - offset));
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(f: &mut Frame<'_>, app: &App, style: &Palette, now_unix_ms: u64, area: Rect) {
    let Some(row) = app.detail_row() else {
        f.render_widget(
            Paragraph::new("class no longer present").block(Block::bordered()),
            area,
        );
        return;
    };
    let block = Block::bordered().title(format!(" {} ", row.name));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let sites = app.sites_of(row, 3);
    let spread = app.spread_of(row);
    let [stats, site_lines, chart, events] = Layout::vertical([
        Constraint::Length(if spread.is_some() { 4 } else { 3 }),
        Constraint::Length(sites.len() as u16),
        Constraint::Length(8),
        Constraint::Min(1),
    ])
    .areas(inner);
    let every = app.header.as_ref().map_or(0, |h| h.site_every);
    let lines: Vec<Line> = sites
        .iter()
        .map(|s| {
            let at = s.frames.first().map_or_else(String::new, |f| {
                format!("{}:{} in {}", shorten_path(&f.file), f.line, f.function)
            });
            Line::from(format!(
                "site ~{} ({} sampled)  {}",
                s.live.saturating_mul(every),
                s.live,
                tracker_core::escape_control(&at)
            ))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), site_lines);
    let peak = match row.peak {
        Some((p, at)) if at > 0 => format!(
            "  peak {p} ({} ago)",
            age(now_unix_ms.saturating_sub(at) / 1000)
        ),
        Some((p, _)) => format!("  peak {p}"),
        None => String::new(),
    };
    let oldest = match &row.ages {
        Some(a) if !a.cohorts.is_empty() => format!("  oldest ≥{}", age(a.oldest_s)),
        _ => String::new(),
    };
    f.render_widget(
        Paragraph::new(
            vec![
                Line::from(format!(
                    "live {} ({} since attach)  created {} ({}/s)  destroyed {} ({}/s)",
                    row.live,
                    signed(row.change),
                    row.created,
                    rate(row.created_rate),
                    row.destroyed,
                    rate(row.destroyed_rate)
                )),
                Line::from(format!(
                    "serials {}..{}{peak}{oldest}",
                    row.first_serial, row.last_serial
                )),
                Line::from(age_histogram(row)),
            ]
            .into_iter()
            .chain(spread.map(|sp| Line::from(spread_line(&sp))))
            .collect::<Vec<_>>(),
        ),
        stats,
    );
    draw_chart(f, app, row, style, chart);
    let items: Vec<ListItem> = app
        .events_of(row.slot, events.height as usize)
        .into_iter()
        .map(|e| {
            let age = app.now_ns.saturating_sub(e.time_ns) as f64 / 1e9;
            ListItem::new(format!(
                "{age:>8.1}s ago  {:<9}  #{}",
                e.kind.name(),
                e.serial
            ))
        })
        .collect();
    let title = if items.is_empty() {
        " recent events: none in the ring "
    } else {
        " recent events "
    };
    f.render_widget(
        List::new(items).block(Block::bordered().title(title)),
        events,
    );
}

/// A class's live count per process of a service:
/// `workers (min 0, max 30): master 0 · 1 10 · 2 20 · 3 30`.
fn spread_line(spread: &[(&str, u64)]) -> String {
    let min = spread.iter().map(|(_, n)| *n).min().unwrap_or(0);
    let max = spread.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let parts: Vec<String> = spread
        .iter()
        .map(|(label, n)| format!("{} {n}", tracker_core::escape_control(label)))
        .collect();
    format!("workers (min {min}, max {max}): {}", parts.join(" · "))
}

/// A file path's last two components.
fn shorten_path(path: &str) -> String {
    let parts: Vec<&str> = path.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The age buckets of `row` on one line: `ages <5s 12 · 5s+ 3 · 1m+ 40`
/// (empty buckets left out).
fn age_histogram(row: &Row) -> String {
    let Some(a) = &row.ages else {
        return "ages: not recorded by this writer".into();
    };
    let mut parts = Vec::new();
    for (i, &n) in a.buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let label = match i {
            0 => format!("<{}", age(BUCKET_BOUNDS_S[0])),
            _ => format!("{}+", age(BUCKET_BOUNDS_S[i - 1])),
        };
        parts.push(format!("{label} {n}"));
    }
    if parts.is_empty() {
        "ages: none alive (or all counted outside the interpreter)".into()
    } else {
        format!("ages  {}", parts.join(" · "))
    }
}

/// The names of the history tiers at the writer's period.
fn tier_label(app: &App) -> String {
    let period_ms = app.header.as_ref().map_or(1000, |h| h.history_period_ms);
    let factor = app.header.as_ref().map_or(60, |h| h.tier_factor.max(1));
    let every = period_ms.saturating_mul(factor.saturating_pow(u32::from(app.tier)));
    format!("every {}", age_ms(every))
}

fn age_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        age(ms / 1000)
    }
}

/// The live-count chart of the detail pane: the chosen tier, with a time
/// axis (how long ago) and a value axis (lowest and highest count).
fn draw_chart(f: &mut Frame<'_>, app: &App, row: &Row, style: &Palette, area: Rect) {
    let (times, series) = app.tier_series(row);
    let n = times.len().min(series.len());
    let (times, series) = (&times[times.len() - n..], &series[series.len() - n..]);
    let title = format!(
        " live objects, {} (t: tier {} of 3){} ",
        tier_label(app),
        app.tier + 1,
        if row.growing { ", growing" } else { "" }
    );
    let block = Block::bordered().title(title);
    if n < 2 {
        f.render_widget(
            Paragraph::new("not enough samples in this tier yet").block(block),
            area,
        );
        return;
    }
    let end = *times.last().unwrap_or(&0);
    let points: Vec<(f64, f64)> = times
        .iter()
        .zip(series)
        .map(|(&t, &v)| (-(end.saturating_sub(t) as f64) / 1e9, f64::from(v)))
        .collect();
    let span = -points[0].0;
    let (lo, hi) = series
        .iter()
        .fold((u32::MAX, 0u32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (f64::from(lo), f64::from(hi.max(lo + 1)));
    let dataset = Dataset::default()
        .marker(symbols::Marker::Braille)
        .graph_type(GraphType::Line)
        .style(if row.growing {
            style.chart_growing
        } else {
            style.chart
        })
        .data(&points);
    let chart = Chart::new(vec![dataset])
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([-span, 0.0])
                .labels([format!("-{}", age(span as u64)), "now".to_string()]),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([format!("{lo:.0}"), format!("{hi:.0}")]),
        );
    f.render_widget(chart, area);
}

fn draw_help(f: &mut Frame<'_>) {
    let sort_keys = format!("1 … {SORTABLE}            sort by that column (again: reverse)");
    let mut text: Vec<String> = [
        "q, Ctrl-C        quit (Esc too, once no filter or pane is open)",
        "s, Tab           sort by the next column",
        sort_keys.as_str(),
        "r                reverse the sort",
        "/                filter by name (Enter keeps it, Esc clears it)",
        "↑ ↓ j k          move",
        "PgUp PgDn        move a page",
        "Home End         first / last class",
        "Enter            details of the class (ages, history, events)",
        "t                in details: next history tier (every sample, minute, hour)",
        "p, Space         freeze the display (the target keeps running)",
        "?                this help",
        "",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    text.extend(COLUMNS.iter().enumerate().map(|(i, c)| {
        let key = if i < SORTABLE {
            format!("{}", i + 1)
        } else {
            " ".into()
        };
        format!("{key} {:<12} {}", c.title, c.about)
    }));
    text.push(String::new());
    text.push("▲ red rows: live count above attach time and rising".into());
    let area = f.area();
    let w = 76.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(text.into_iter().map(Line::from).collect::<Vec<_>>())
            .block(Block::bordered().title(" keys ")),
        rect,
    );
}

/// Draws the process picker.
pub fn draw_picker(f: &mut Frame<'_>, p: &Picker) {
    let [list_area, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(f.area());
    let items: Vec<ListItem> = p
        .entries
        .iter()
        .map(|(pid, program, _)| ListItem::new(format!("{pid:>8}  {}", one_line(program, 100))))
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title(" tracked processes: pick one "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("› ");
    let mut state = ListState::default().with_selected(Some(p.selected));
    f.render_stateful_widget(list, list_area, &mut state);
    let hint = p
        .error
        .clone()
        .unwrap_or_else(|| "↑↓ choose  Enter open  q quit".into());
    f.render_widget(Paragraph::new(hint), footer);
}
