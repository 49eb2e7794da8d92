//! pytracker-top's view drawn onto ratatui's TestBackend.

use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tracker_cli::top::app::App;
use tracker_cli::top::keys::Command;
use tracker_cli::top::sample::Sample;
use tracker_cli::top::view;
use tracker_core::{ClassSnapshot, EventKind};
use tracker_shm::{Event, HeaderInfo, History, WriterState};

const SEC: u64 = 1_000_000_000;
/// The wall clock the view is drawn at: 65 s after the segment was made.
const NOW_UNIX_MS: u64 = 1_700_000_065_000;

fn header() -> HeaderInfo {
    HeaderInfo {
        version: (2, 0),
        pid: 4242,
        start_time: 1,
        program: "python service.py --port 8080".into(),
        created_unix_ms: NOW_UNIX_MS - 65_000,
        created_mono_ns: 0,
        heartbeat_ns: 100 * SEC,
        state: 1,
        events: true,
        classes_dropped: 0,
        names_truncated: 0,
        history_period_ms: 1000,
        service: "service".into(),
        worker: tracker_shm::layout::NO_WORKER,
        age_epoch_ms: 4000,
        tier_factor: 60,
        site_every: 16,
        ..Default::default()
    }
}

fn class(name: &str, live: u64, created: u64) -> ClassSnapshot {
    ClassSnapshot {
        name: name.into(),
        live,
        created,
        destroyed: created - live,
        first_serial: 1,
        last_serial: created,
        ..Default::default()
    }
}

fn sample(
    t: u64,
    classes: &[(u32, ClassSnapshot)],
    trends: &[(u32, Vec<u32>)],
    state: WriterState,
) -> Sample {
    Sample {
        header: header(),
        state,
        now_ns: t * SEC,
        classes: classes.to_vec(),
        history: History {
            // One sample a second, the last one now.
            times_ns: (0..trends.iter().map(|(_, s)| s.len()).max().unwrap_or(0) as u64)
                .rev()
                .map(|ago| (t - ago) * SEC)
                .collect(),
            per_class: trends.to_vec(),
            ..History::default()
        },
        coarse: Some(Default::default()),
        sites: vec![],
        events: vec![],
        lost: 0,
        workers: None,
    }
}

/// `c` with a peak and ages: 10 of its objects at least 2 minutes old,
/// the rest younger than 5 s.
fn aged(mut c: ClassSnapshot) -> ClassSnapshot {
    c.peak_live = Some(c.live + 4);
    c.peak_unix_ms = Some(NOW_UNIX_MS - 30_000);
    c.ages = Some(tracker_core::age::Ages::from_cohorts(
        &[(c.live as u32 - 10, 0)]
            .into_iter()
            .chain(std::iter::repeat_n((0, 0), 40))
            .chain([(10, 0)])
            .collect::<Vec<_>>(),
        60,
        1000,
        61_000,
    ));
    c
}

/// An app after two refreshes one second apart: Cache leaks, Request churns.
fn app() -> App {
    let mut app = App::new(Duration::from_secs(1));
    app.ingest(sample(
        100,
        &[
            (0, class("svc.Request", 3, 1000)),
            (1, class("svc.Cache", 10, 10)),
            (2, class("svc.Session", 5, 9)),
        ],
        &[(0, vec![3, 3, 3]), (1, vec![2, 6, 10]), (2, vec![5, 5, 5])],
        WriterState::Alive,
    ));
    let mut s = sample(
        101,
        &[
            (0, class("svc.Request", 2, 1400)),
            (1, aged(class("svc.Cache", 30, 30))),
            (2, class("svc.Session", 5, 9)),
        ],
        &[
            (0, vec![3, 3, 3, 2]),
            (1, vec![2, 6, 10, 30]),
            (2, vec![5, 5, 5, 5]),
        ],
        WriterState::Alive,
    );
    s.sites = vec![tracker_shm::Site {
        index: 0,
        class_slot: 1,
        live: 3,
        total: 4,
        frames: vec![tracker_shm::Frame {
            file: "/srv/app/cache.py".into(),
            line: 42,
            function: "Cache.put".into(),
        }],
    }];
    s.events = vec![
        Event {
            ticket: 1,
            kind: EventKind::Attached,
            slot: 1,
            serial: 1401,
            time_ns: 100 * SEC + SEC / 2,
        },
        Event {
            ticket: 2,
            kind: EventKind::Destroyed,
            slot: 0,
            serial: 1300,
            time_ns: 100 * SEC + SEC / 2,
        },
    ];
    app.ingest(s);
    app
}

fn inputs(no_color: bool) -> view::Inputs {
    view::Inputs {
        now_unix_ms: NOW_UNIX_MS,
        palette: view::Palette::new(no_color),
    }
}

fn render(app: &App, w: u16, h: u16) -> Vec<String> {
    render_with(app, w, h, false)
}

fn render_with(app: &App, w: u16, h: u16, no_color: bool) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut scroll = view::Scroll::default();
    term.draw(|f| view::draw(f, app, &mut scroll, &inputs(no_color)))
        .unwrap();
    let buf = term.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn table_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix('│'))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("svc."))
                .map(String::from)
        })
        .collect()
}

#[test]
fn header_and_table() {
    let lines = render(&app(), 140, 16);
    assert!(
        lines[0].starts_with(
            "pid 4242  python service.py --port 8080  up 1m5s  writer alive (heartbeat 1.0s ago)"
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "live 37  created 420/s  destroyed 401/s  classes 3"
    );
    assert!(lines[2].starts_with("┌ classes 3 "));
    let head: Vec<&str> = lines[3].trim_matches('│').split_whitespace().collect();
    assert_eq!(&head[..5], &["CLASS", "LIVE", "↓", "OLD≥1m", "Δ"]);
    // sorted by live, descending; the leaking class is marked
    assert_eq!(
        table_names(&lines),
        vec!["svc.Cache", "svc.Session", "svc.Request"]
    );
    let cache = &lines[4];
    assert!(cache.contains("▲ svc.Cache"), "{cache}");
    let cells: Vec<&str> = cache.trim_matches('│').split_whitespace().collect();
    assert_eq!(
        &cells[..10],
        &[
            "▲",
            "svc.Cache",
            "30",
            "10",
            "+20",
            "20.0",
            "0.0",
            "30",
            "0",
            "1..30"
        ]
    );
    assert!(cells[10].ends_with('█'), "trend sparkline: {}", cells[10]);
    // Classes without ages show a dash in OLD.
    let session: Vec<&str> = lines[5].trim_matches('│').split_whitespace().collect();
    assert_eq!(session[2], "-");
    assert!(lines[5].contains("  svc.Session") && !lines[5].contains('▲'));
    assert!(lines[15].starts_with("q quit"));
}

#[test]
fn sorting_by_columns_and_reverse() {
    let mut app = app();
    app.apply(Command::SortBy(0));
    assert_eq!(
        table_names(&render(&app, 140, 12)),
        vec!["svc.Cache", "svc.Request", "svc.Session"]
    );
    app.apply(Command::SortBy(0)); // again: reversed
    assert_eq!(
        table_names(&render(&app, 140, 12)),
        vec!["svc.Session", "svc.Request", "svc.Cache"]
    );
    app.apply(Command::SortBy(4)); // created/s
    let lines = render(&app, 140, 12);
    assert_eq!(
        table_names(&lines),
        vec!["svc.Request", "svc.Cache", "svc.Session"]
    );
    assert!(lines[3].contains("CREATED/S ↓"));
    app.apply(Command::Reverse);
    let lines = render(&app, 140, 12);
    assert!(lines[3].contains("CREATED/S ↑"));
    // ▲ marks growing classes only, never the sort direction.
    assert!(!lines[3].contains('▲') && !lines[3].contains('▼'));
    assert_eq!(table_names(&lines)[0], "svc.Session");
}

#[test]
fn filter_typing_and_clearing() {
    let mut app = app();
    app.apply(Command::StartFilter);
    for c in "cach".chars() {
        app.apply(Command::FilterChar(c));
    }
    let lines = render(&app, 140, 12);
    assert_eq!(table_names(&lines), vec!["svc.Cache"]);
    assert!(lines[2].starts_with("┌ 1 of 3 classes "), "{}", lines[2]);
    assert!(lines[11].starts_with("filter: cach"), "{}", lines[11]);
    assert!(lines[11].contains("1 of 3 classes"), "{}", lines[11]);
    app.apply(Command::FilterDone);
    let footer = &render(&app, 140, 12)[11];
    assert!(
        footer.contains("filter \"cach\": 1 of 3 classes"),
        "{footer}"
    );
    app.apply(Command::StartFilter);
    app.apply(Command::FilterCancel);
    assert_eq!(table_names(&render(&app, 140, 12)).len(), 3);
}

#[test]
fn esc_clears_the_filter_first_and_quits_only_from_the_plain_table() {
    use tracker_cli::top::app::Flow;
    use tracker_cli::top::keys::{command_for, Mode};
    let esc = || {
        ratatui::crossterm::event::KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Esc,
            ratatui::crossterm::event::KeyModifiers::NONE,
        )
    };
    let mut app = app();
    let press = |app: &mut App| app.apply(command_for(esc(), app.mode()).unwrap());
    app.apply(Command::StartFilter);
    app.apply(Command::FilterChar('c'));
    app.apply(Command::FilterDone);
    assert_eq!(press(&mut app), Flow::Continue, "Esc clears the filter");
    assert!(app.filter.is_empty());
    app.apply(Command::Open);
    assert_eq!(press(&mut app), Flow::Continue, "Esc closes the pane");
    assert!(app.detail.is_none());
    app.apply(Command::Help);
    assert_eq!(press(&mut app), Flow::Continue, "Esc closes the help");
    assert_eq!(app.mode(), Mode::Table);
    assert_eq!(press(&mut app), Flow::Quit, "then Esc quits");
}

/// Classes with long nested names and six-digit serial ranges.
fn wide_app() -> App {
    let mut app = App::new(Duration::from_secs(1));
    let classes: Vec<(u32, ClassSnapshot)> = [
        "warehouse.inventory.models.Catalog.Record",
        "warehouse.inventory.models.Catalog.Index",
        "warehouse.http.handlers.RequestContext",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| {
        let mut c = class(n, 16_000 + i as u64, 16_588 + i as u64);
        c.first_serial = 11;
        c.last_serial = 165_980 + i as u64;
        (i as u32, c)
    })
    .collect();
    app.ingest(sample(100, &classes, &[], WriterState::Alive));
    app
}

#[test]
fn readable_at_80_100_and_120_columns() {
    let app = wide_app();
    for width in [80u16, 100, 120] {
        let lines = render(&app, width, 12);
        let rows: Vec<&String> = lines[4..7].iter().collect();
        for row in &rows {
            assert_eq!(row.chars().filter(|c| *c == '│').count(), 2, "{row}");
            // The class part of every name survives.
            assert!(
                row.contains(".Record") || row.contains(".Index") || row.contains("RequestContext"),
                "width {width}: {row}"
            );
            // Live counts are never cut.
            assert!(row.contains("1600"), "width {width}: {row}");
        }
        let header = &lines[3];
        assert!(
            header.contains("CLASS") && header.contains("LIVE"),
            "{header}"
        );
        // Serial ranges are whole when shown at all.
        for row in &rows {
            if let Some(at) = row.find("11..") {
                assert!(row[at..].starts_with("11..16598"), "width {width}: {row}");
            }
        }
        if width == 80 {
            // Low-priority columns went first; the names still have room.
            assert!(!header.contains("DESTROYED "), "{header}");
            assert!(
                rows.iter().any(|r| r.contains("Catalog.Record")),
                "{rows:?}"
            );
        }
        if width == 120 {
            assert!(
                rows.iter()
                    .any(|r| r.contains("warehouse.inventory.models.Catalog.Record")),
                "{rows:?}"
            );
        }
    }
}

#[test]
fn without_colour_the_selection_is_still_visible() {
    let app = wide_app();
    let mut term = Terminal::new(TestBackend::new(100, 12)).unwrap();
    let mut scroll = view::Scroll::default();
    term.draw(|f| view::draw(f, &app, &mut scroll, &inputs(true)))
        .unwrap();
    let buf = term.backend().buffer().clone();
    let colours: Vec<_> = buf
        .content()
        .iter()
        .filter(|c| c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset)
        .collect();
    assert!(
        colours.is_empty(),
        "NO_COLOR drew colours: {:?}",
        colours.first()
    );
    let selected: String = (0..100).map(|x| buf[(x, 4)].symbol().to_string()).collect();
    assert!(selected.contains('›'), "{selected}");
    assert!(buf[(3, 4)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn detail_pane_shows_history_and_events() {
    let mut app = app();
    app.apply(Command::Open); // the selected (first) row: svc.Cache
    let lines = render(&app, 120, 40);
    let text = lines.join("\n");
    assert!(text.contains("┌ svc.Cache "), "{text}");
    assert!(text.contains("live 30 (+20 since attach)  created 30 (20.0/s)  destroyed 0 (0.0/s)"));
    assert!(
        text.contains("live objects, every 1s (t: tier 1 of 3), growing"),
        "{text}"
    );
    // The chart's axes: how long ago, and the lowest and highest count.
    assert!(text.contains("-3s") && text.contains("now"), "{text}");
    assert!(text.contains("30") && text.contains('2'), "{text}");
    assert!(text.contains("peak 34 (30s ago)  oldest ≥"), "{text}");
    assert!(text.contains("ages  <5s 20 · 1m+ 10"), "{text}");
    assert!(
        text.contains("site ~48 (3 sampled)  app/cache.py:42 in Cache.put"),
        "{text}"
    );
    assert!(text.contains("0.5s ago  attached   #1401"), "{text}");
    assert!(
        !text.contains("#1300"),
        "events of other classes are not listed"
    );
    // t: the minute tier, which has no samples in this short history.
    app.apply(Command::NextTier);
    let text = render(&app, 120, 30).join("\n");
    assert!(text.contains("every 1m (t: tier 2 of 3)"), "{text}");
    assert!(
        text.contains("not enough samples in this tier yet"),
        "{text}"
    );
    app.apply(Command::Back);
    assert!(!render(&app, 120, 30)
        .join("\n")
        .contains("live objects, every"));
}

#[test]
fn a_service_detail_pane_shows_each_process_share() {
    use tracker_cli::top::sample::WorkerLive;
    let mut app = App::new(Duration::from_secs(1));
    let mut s = sample(
        100,
        &[(0, class("svc.Leak", 60, 60))],
        &[(0, vec![20, 40, 60])],
        WriterState::Alive,
    );
    let worker = |label: &str, n: u64| WorkerLive {
        label: label.into(),
        live: [("svc.Leak".to_string(), n)].into_iter().collect(),
    };
    s.workers = Some(vec![
        WorkerLive {
            label: "master".into(),
            live: Default::default(),
        },
        worker("1", 10),
        worker("2", 50),
    ]);
    app.ingest(s);
    app.apply(Command::Open);
    let text = render(&app, 120, 40).join("\n");
    assert!(
        text.contains("workers (min 0, max 50): master 0 · 1 10 · 2 50"),
        "{text}"
    );
}

#[test]
fn scrolling_selects_rows() {
    let mut app = app();
    app.apply(Command::End);
    assert_eq!(app.selected, 2);
    app.apply(Command::Move(5));
    assert_eq!(app.selected, 2);
    app.apply(Command::Page(-1));
    assert_eq!(app.selected, 0);
    app.apply(Command::Move(1));
    app.apply(Command::Open);
    assert_eq!(app.detail_row().unwrap().name, "svc.Session");
}

#[test]
fn exited_target_keeps_last_data() {
    let mut app = app();
    app.ingest(sample(
        102,
        &[
            (0, class("svc.Request", 2, 1400)),
            (1, class("svc.Cache", 30, 30)),
            (2, class("svc.Session", 5, 9)),
        ],
        &[],
        WriterState::Exited,
    ));
    let lines = render(&app, 140, 12);
    assert!(lines[0].contains("writer exited"));
    assert_eq!(lines[2], "target exited: showing its last data");
    assert_eq!(table_names(&lines).len(), 3);
}

#[test]
fn paused_and_help() {
    let mut app = app();
    app.apply(Command::Pause);
    assert!(app.paused());
    assert!(render(&app, 140, 12)[0].contains("PAUSED"));
    app.apply(Command::Pause);
    app.apply(Command::Help);
    let text = render(&app, 140, 24).join("\n");
    assert!(text.contains("┌ keys "));
    assert!(text.contains("freeze the display"));
}

#[test]
fn small_terminals_do_not_break() {
    let mut app = app();
    for (w, h) in [(20, 5), (40, 8), (80, 6), (1, 1), (10, 3)] {
        let lines = render(&app, w, h);
        assert_eq!(lines.len(), h as usize);
    }
    app.apply(Command::Open);
    app.apply(Command::Help);
    for (w, h) in [(30, 6), (80, 10)] {
        render(&app, w, h);
    }
}

#[test]
fn only_rows_on_screen_are_drawn_and_the_selection_stays_visible() {
    let mut app = App::new(Duration::from_secs(1));
    let classes: Vec<(u32, ClassSnapshot)> = (0..500u32)
        .map(|i| {
            (
                i,
                class(&format!("svc.C{i:03}"), u64::from(i), u64::from(i) + 1),
            )
        })
        .collect();
    app.ingest(sample(100, &classes, &[], WriterState::Alive));
    app.apply(Command::SortBy(0)); // by name: svc.C000 first
    let lines = render(&app, 120, 15);
    let names = table_names(&lines);
    assert_eq!(names.first().map(String::as_str), Some("svc.C000"));
    assert_eq!(
        names.len(),
        15 - 3 - 3,
        "header lines, borders and the column header take the rest"
    );
    app.apply(Command::End);
    let names = table_names(&render(&app, 120, 15));
    assert_eq!(names.last().map(String::as_str), Some("svc.C499"));
    app.apply(Command::Page(-1));
    let names = table_names(&render(&app, 120, 15));
    assert!(names.contains(&"svc.C489".to_string()), "{names:?}");
    assert!(lines[2].starts_with("┌ classes 500 "));
}

#[test]
fn help_lists_every_column_from_the_one_description() {
    let mut app = app();
    app.apply(Command::Help);
    let text = render(&app, 140, 40).join("\n");
    for (i, c) in tracker_cli::top::columns::COLUMNS.iter().enumerate() {
        assert!(text.contains(c.title), "{} missing from help", c.title);
        assert!(text.contains(c.about), "{} missing from help", c.about);
        if i < tracker_cli::top::columns::SORTABLE {
            assert!(text.contains(&format!("{} {:<12}", i + 1, c.title)));
        }
    }
    // A digit past the sortable columns changes nothing.
    let mut app = self::app();
    let before = app.sort;
    app.apply(Command::SortBy(tracker_cli::top::columns::SORTABLE));
    assert_eq!(app.sort, before);
}

#[test]
fn the_scroll_window_belongs_to_the_caller_and_moves_only_as_needed() {
    let mut app = App::new(Duration::from_secs(1));
    let classes: Vec<(u32, ClassSnapshot)> = (0..100u32)
        .map(|i| (i, class(&format!("svc.C{i:03}"), 1, 1)))
        .collect();
    app.ingest(sample(100, &classes, &[], WriterState::Alive));
    app.apply(Command::SortBy(0));
    let mut term = Terminal::new(TestBackend::new(120, 15)).unwrap();
    let mut scroll = view::Scroll::default();
    let mut frame = |app: &App, scroll: &mut view::Scroll| {
        term.draw(|f| view::draw(f, app, scroll, &inputs(false)))
            .unwrap();
    };
    app.apply(Command::End);
    frame(&app, &mut scroll);
    let at_end = scroll.offset;
    assert_eq!(at_end, 100 - 9, "the last 9 rows are shown");
    // One up stays in the window: the window does not move.
    app.apply(Command::Move(-1));
    frame(&app, &mut scroll);
    assert_eq!(scroll.offset, at_end);
    // Above the window: it follows the selection.
    app.apply(Command::Page(-1));
    frame(&app, &mut scroll);
    assert_eq!(scroll.offset, app.selected);
}
