//! Key presses to commands, as a pure function of the key and the mode.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Leave.
    Quit,
    /// Sort by the next column.
    NextSort,
    /// Sort by column `n` (0-based).
    SortBy(usize),
    /// Reverse the sort order.
    Reverse,
    /// Start typing a filter.
    StartFilter,
    /// Add a character to the filter.
    FilterChar(char),
    /// Delete the last filter character.
    FilterBackspace,
    /// Keep the filter and stop typing.
    FilterDone,
    /// Clear the filter and stop typing.
    FilterCancel,
    /// Move the selection by this many rows.
    Move(i64),
    /// Move a page up (-1) or down (1).
    Page(i64),
    /// Jump to the first row.
    Home,
    /// Jump to the last row.
    End,
    /// Open (or close) the detail pane, or open the picked process.
    Open,
    /// Close the detail pane or help.
    Back,
    /// Esc on the table: clears the filter if there is one, else quits.
    Escape,
    /// Freeze or unfreeze the display.
    Pause,
    /// Show or hide help.
    Help,
    /// Show the detail chart's next history tier (every sample, minute,
    /// hour).
    NextTier,
}

/// What keys mean right now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The class table.
    Table,
    /// Typing a filter.
    Filter,
    /// A detail pane or help is open.
    Overlay,
}

fn is_ctrl_c(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}

fn movement(key: &KeyEvent) -> Option<Command> {
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('k') => Command::Move(-1),
        KeyCode::Down | KeyCode::Char('j') => Command::Move(1),
        KeyCode::PageUp => Command::Page(-1),
        KeyCode::PageDown => Command::Page(1),
        KeyCode::Home | KeyCode::Char('g') => Command::Home,
        KeyCode::End | KeyCode::Char('G') => Command::End,
        _ => return None,
    })
}

/// The command for `key` in `mode`.
pub fn command_for(key: KeyEvent, mode: Mode) -> Option<Command> {
    if is_ctrl_c(&key) {
        return Some(Command::Quit);
    }
    match mode {
        Mode::Filter => Some(match key.code {
            KeyCode::Enter => Command::FilterDone,
            KeyCode::Esc => Command::FilterCancel,
            KeyCode::Backspace => Command::FilterBackspace,
            KeyCode::Char(c) => Command::FilterChar(c),
            _ => return movement(&key),
        }),
        Mode::Overlay => Some(match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?') => Command::Back,
            KeyCode::Char('q') => Command::Quit,
            KeyCode::Char('p') => Command::Pause,
            KeyCode::Char('t') => Command::NextTier,
            _ => return movement(&key),
        }),
        Mode::Table => Some(match key.code {
            KeyCode::Char('q') => Command::Quit,
            KeyCode::Esc => Command::Escape,
            KeyCode::Char('s') | KeyCode::Tab => Command::NextSort,
            KeyCode::Char('r') | KeyCode::Char('S') => Command::Reverse,
            // Digits name the sortable columns; the view ignores the others.
            KeyCode::Char(c @ '1'..='9') => Command::SortBy(c as usize - '1' as usize),
            KeyCode::Char('/') => Command::StartFilter,
            KeyCode::Enter => Command::Open,
            KeyCode::Char('p') | KeyCode::Char(' ') => Command::Pause,
            KeyCode::Char('?') | KeyCode::Char('h') => Command::Help,
            _ => return movement(&key),
        }),
    }
}

/// Keys in the process picker.
pub fn picker_command(key: KeyEvent) -> Option<Command> {
    if is_ctrl_c(&key) {
        return Some(Command::Quit);
    }
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => Some(Command::Quit),
        KeyCode::Enter => Some(Command::Open),
        _ => movement(&key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn table_keys() {
        assert_eq!(
            command_for(k(KeyCode::Char('q')), Mode::Table),
            Some(Command::Quit)
        );
        assert_eq!(
            command_for(k(KeyCode::Esc), Mode::Table),
            Some(Command::Escape)
        );
        assert_eq!(
            command_for(
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Mode::Filter
            ),
            Some(Command::Quit)
        );
        assert_eq!(
            command_for(k(KeyCode::Char('3')), Mode::Table),
            Some(Command::SortBy(2))
        );
        assert_eq!(
            command_for(k(KeyCode::Char('/')), Mode::Table),
            Some(Command::StartFilter)
        );
        assert_eq!(
            command_for(k(KeyCode::PageDown), Mode::Table),
            Some(Command::Page(1))
        );
        assert_eq!(command_for(k(KeyCode::Char('x')), Mode::Table), None);
    }

    #[test]
    fn filter_mode_takes_letters() {
        assert_eq!(
            command_for(k(KeyCode::Char('q')), Mode::Filter),
            Some(Command::FilterChar('q'))
        );
        assert_eq!(
            command_for(k(KeyCode::Esc), Mode::Filter),
            Some(Command::FilterCancel)
        );
        assert_eq!(
            command_for(k(KeyCode::Enter), Mode::Filter),
            Some(Command::FilterDone)
        );
    }

    #[test]
    fn overlay_esc_goes_back() {
        assert_eq!(
            command_for(k(KeyCode::Esc), Mode::Overlay),
            Some(Command::Back)
        );
        assert_eq!(
            command_for(k(KeyCode::Char('q')), Mode::Overlay),
            Some(Command::Quit)
        );
    }
}
