//! Drawing the view with ratatui.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, Clear, List, ListItem, ListState, Paragraph, Row as TableRow, Sparkline, Table,
    TableState,
};
use ratatui::Frame;
use tracker_shm::WriterState;

use super::app::{App, Picker, Row};
use super::columns::{Width, COLUMNS, SORTABLE};
use crate::format::{one_line, rate, signed, uptime};

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

fn header_lines(app: &App, now_unix_ms: u64) -> Vec<Line<'static>> {
    let Some(h) = &app.header else {
        return vec![Line::from("attaching…")];
    };
    let state = app.state.unwrap_or(WriterState::Alive);
    let up = now_unix_ms.saturating_sub(h.created_unix_ms) / 1000;
    let beat = app.now_ns.saturating_sub(h.heartbeat_ns) as f64 / 1e9;
    let state_style = if state == WriterState::Alive {
        Style::new().fg(Color::Green)
    } else {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
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
        first.push(Span::styled(
            "  PAUSED",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
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
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    lines
}

fn table_row(r: &Row) -> TableRow<'static> {
    let cells: Vec<Cell> = COLUMNS.iter().map(|c| Cell::from((c.cell)(r))).collect();
    let style = if r.growing {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    TableRow::new(cells).style(style)
}

/// Draws the main view at wall-clock time `now_unix_ms`; `scroll` is the
/// event loop's, carried from frame to frame.
pub fn draw(f: &mut Frame<'_>, app: &App, scroll: &mut Scroll, now_unix_ms: u64) {
    let header = header_lines(app, now_unix_ms);
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
        draw_table(f, app, scroll, table_area);
    }
    if let Some(area) = detail_area {
        draw_detail(f, app, area);
    }
    let hint = if app.mode() == super::keys::Mode::Filter {
        Line::from(vec![
            Span::styled("filter: ", Style::new().fg(Color::Yellow)),
            Span::raw(format!("{}▏", app.filter)),
        ])
    } else {
        let filter = if app.filter.is_empty() {
            String::new()
        } else {
            format!("  filter \"{}\"", app.filter)
        };
        Line::from(format!("q quit  s/1-{SORTABLE} sort  r reverse  / filter  ↑↓ scroll  Enter details  p pause  ? help{filter}"))
    };
    f.render_widget(
        Paragraph::new(hint).style(Style::new().add_modifier(Modifier::DIM)),
        footer,
    );
    if app.help {
        draw_help(f);
    }
}

fn draw_table(f: &mut Frame<'_>, app: &App, scroll: &mut Scroll, area: Rect) {
    let headers: Vec<Cell> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mark = if i == app.sort {
                if app.reverse {
                    " ▲"
                } else {
                    " ▼"
                }
            } else {
                ""
            };
            Cell::from(format!("{}{mark}", c.title))
        })
        .collect();
    // Only the rows on screen are formatted: with 10,000 classes, building
    // every row each frame would cost more than reading the segment.
    let height = area.height.saturating_sub(3) as usize;
    let total = app.visible_len();
    scroll.follow(app.selected, height, total);
    let offset = scroll.offset;
    let rows: Vec<TableRow> = app
        .visible()
        .skip(offset)
        .take(height)
        .map(table_row)
        .collect();
    let widths = COLUMNS.iter().map(|c| match c.width {
        Width::Min(n) => Constraint::Min(n),
        Width::Fixed(n) => Constraint::Length(n),
    });
    let title = format!(" classes {}/{} ", total, app.rows().len());
    let table = Table::new(rows, widths)
        .header(
            TableRow::new(headers)
                .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((total > 0).then_some(app.selected - offset));
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(f: &mut Frame<'_>, app: &App, area: Rect) {
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
    let [stats, chart, events] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(5),
        Constraint::Min(1),
    ])
    .areas(inner);
    f.render_widget(
        Paragraph::new(vec![
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
                "serials {}..{}  history: {} samples",
                row.first_serial,
                row.last_serial,
                row.trend.len()
            )),
        ]),
        stats,
    );
    let data: Vec<u64> = row.trend.iter().map(|v| u64::from(*v)).collect();
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(" live count history "))
            .data(&data)
            .style(Style::new().fg(if row.growing { Color::Red } else { Color::Cyan })),
        chart,
    );
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

fn draw_help(f: &mut Frame<'_>) {
    let sort_keys = format!("1 … {SORTABLE}            sort by that column (again: reverse)");
    let mut text: Vec<String> = [
        "q, Esc, Ctrl-C   quit",
        "s, Tab           sort by the next column",
        sort_keys.as_str(),
        "r                reverse the sort",
        "/                filter by name (Enter keeps, Esc clears)",
        "↑ ↓ j k          move",
        "PgUp PgDn        move a page",
        "Home End         first / last class",
        "Enter            details of the class (history, events)",
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
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(Some(p.selected));
    f.render_stateful_widget(list, list_area, &mut state);
    let hint = p
        .error
        .clone()
        .unwrap_or_else(|| "↑↓ choose  Enter open  q quit".into());
    f.render_widget(Paragraph::new(hint), footer);
}
