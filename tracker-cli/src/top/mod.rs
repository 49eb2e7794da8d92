//! `pytracker-top`: a live terminal view of a tracked process.
//!
//! * [`app`]: the view's state, fed with samples and commands (pure);
//! * [`keys`]: key presses to commands (pure);
//! * [`view`]: drawing the state with ratatui;
//! * [`sample`]: reading one refresh's worth of data from a segment;
//! * this module: the terminal and the event loop.

pub mod app;
pub mod columns;
pub mod keys;
pub mod sample;
pub mod view;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;
use tracker_shm::{list_segments, writer_state, Segment, WriterState};

use crate::cli::TopCli;
use crate::error::{CliError, CliResult};
use app::{App, Picker};
use keys::Command;

/// Runs the TUI until the user quits.
pub fn run(cli: &TopCli) -> CliResult<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CliError::Terminal(
            "pytracker-top needs an interactive terminal; for a scripted or one-off view use \
             `pytracker-cli dump --pid PID` (or `pytracker-cli ps` to find the pid)"
                .into(),
        ));
    }
    // Attach before touching the terminal, so errors print normally.
    let mut service = None;
    let segment = if let Some(name) = &cli.service {
        let mut reader = sample::ServiceReader::new(name);
        if reader.read().is_none() {
            return Err(crate::service::not_found(name));
        }
        service = Some(reader);
        None
    } else {
        match tracker_shm::Target::from_options(cli.pid, cli.path.as_deref()) {
            Some(target) => Some(target.open()?),
            // None when several processes are tracked: pick one in the TUI.
            None => only_live_segment()?,
        }
    };
    let terminate = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, terminate.clone())
            .map_err(|e| CliError::Terminal(format!("cannot watch for signals: {e}")))?;
    }
    // The event loop may be blocked inside crossterm when the terminal goes
    // away (a hung-up terminal reads as endless end-of-file), so a watchdog
    // acts on SIGTERM/SIGHUP: restore what can be restored, and leave.
    let watched = terminate.clone();
    std::thread::Builder::new()
        .name("pytracker-top-signals".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if watched.load(Ordering::Relaxed) {
                let _ = ratatui::try_restore();
                std::process::exit(0);
            }
        })
        .map_err(|e| CliError::Terminal(format!("cannot start the signal watchdog: {e}")))?;
    // ratatui::try_init enters raw mode and the alternate screen, and
    // installs a panic hook that restores the terminal before the message.
    let mut terminal = ratatui::try_init()
        .map_err(|e| CliError::Terminal(format!("cannot set up the terminal: {e}")))?;
    let result = event_loop(&mut terminal, segment, service, cli.interval, &terminate);
    ratatui::try_restore()
        .map_err(|e| CliError::Terminal(format!("cannot restore the terminal: {e}")))?;
    result
}

/// The single live segment, `None` when there are several, an error when
/// there is none.
fn only_live_segment() -> CliResult<Option<Segment>> {
    let mut live: Vec<Segment> = list_segments()
        .into_iter()
        .filter_map(|e| e.segment.ok())
        .filter(|s| writer_state(s) == WriterState::Alive)
        .collect();
    match live.len() {
        0 => Err(CliError::Terminal(
            "no tracked process is running: start one with PYTRACKER_EXPORT=1 or pytracker.start_exporter(), \
             or give --pid"
                .into(),
        )),
        1 => Ok(live.pop()),
        _ => Ok(None),
    }
}

fn picker_entries() -> Vec<(u32, String, std::path::PathBuf)> {
    list_segments()
        .into_iter()
        .filter_map(|e| {
            let seg = e.segment.ok()?;
            (writer_state(&seg) == WriterState::Alive)
                .then(|| (seg.header().pid, seg.header().program, e.path))
        })
        .collect()
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    mut segment: Option<Segment>,
    mut service: Option<sample::ServiceReader>,
    interval: Duration,
    terminate: &AtomicBool,
) -> CliResult<i32> {
    let mut picker =
        (segment.is_none() && service.is_none()).then(|| Picker::new(picker_entries()));
    let mut app = App::new(interval);
    let mut reader = segment.as_ref().map(sample::Reader::new);
    let mut next_refresh = Instant::now();
    let mut scroll = view::Scroll::default();
    let palette = view::Palette::from_env();
    let draw_err = |e: std::io::Error| CliError::Terminal(format!("cannot draw: {e}"));
    let (mut drawn_samples, mut drawn_at, mut input_seen) = (u64::MAX, Instant::now(), true);
    loop {
        if terminate.load(Ordering::Relaxed) {
            return Ok(0);
        }
        if let Some(r) = &mut service {
            if Instant::now() >= next_refresh {
                if !app.paused() {
                    // A service whose processes are all gone keeps its
                    // last view until one comes back.
                    if let Some(s) = r.read() {
                        app.ingest(s);
                    }
                }
                next_refresh = Instant::now() + interval;
            }
        }
        if let (Some(seg), Some(r)) = (&segment, &mut reader) {
            if Instant::now() >= next_refresh {
                if !app.paused() {
                    // A segment that shrank under the reader ends the view
                    // with its error (the terminal is restored by `run`).
                    app.ingest(r.read(seg)?);
                }
                next_refresh = Instant::now() + interval;
            }
        }
        // Drawn after new data or input, and once a second for the clocks
        // on screen; a pass that only checks the termination flag draws
        // nothing.
        if app.samples != drawn_samples
            || input_seen
            || drawn_at.elapsed() >= Duration::from_secs(1)
        {
            terminal
                .draw(|f| match &picker {
                    Some(p) => view::draw_picker(f, p),
                    None => {
                        let inputs = view::Inputs {
                            now_unix_ms: tracker_core::now_unix_ms(),
                            palette,
                        };
                        view::draw(f, &app, &mut scroll, &inputs)
                    }
                })
                .map_err(draw_err)?;
            drawn_samples = app.samples;
            drawn_at = Instant::now();
            input_seen = false;
        }
        let wait = next_refresh
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        if !event::poll(wait).map_err(draw_err)? {
            continue;
        }
        input_seen = true;
        let key = match event::read().map_err(draw_err)? {
            Event::Key(k) if k.kind != KeyEventKind::Release => k,
            _ => continue, // resize and others: redrawn on the next pass
        };
        if let Some(p) = &mut picker {
            match keys::picker_command(key) {
                Some(Command::Quit) => return Ok(0),
                Some(Command::Open) => {
                    if let Some((_, _, path)) = p.selected() {
                        match Segment::open(path) {
                            Ok(seg) => {
                                reader = Some(sample::Reader::new(&seg));
                                segment = Some(seg);
                                picker = None;
                                next_refresh = Instant::now();
                            }
                            Err(e) => p.error = Some(e.to_string()),
                        }
                    }
                }
                Some(c) => p.apply(c),
                None => {}
            }
            continue;
        }
        if let Some(cmd) = keys::command_for(key, app.mode()) {
            if app.apply(cmd) == app::Flow::Quit {
                return Ok(0);
            }
        }
    }
}
