//! Making untrusted text safe to print.
//!
//! Class names and program names come from the tracked process, and a
//! segment may have been written by anyone: every tool that prints them
//! passes them through [`escape_control`] first, so that no name can move
//! the cursor, retitle or clear a terminal, forge a line in a CI log, or
//! reorder what is shown around it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for the characters [`escape_control`] rewrites: C0 controls
/// (U+0000–U+001F, newline and tab included), DEL, C1 controls
/// (U+0080–U+009F, such as the one-character CSI U+009B), and the Unicode
/// bidirectional formatting characters that reorder the text displayed
/// after them (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069).
pub fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `text` with every character [`is_unsafe_char`] accepts written visibly:
/// `\n`, `\r` and `\t` as such, other ASCII controls as `\xNN`, and the rest
/// as `\u{NNNN}`. Text without such characters is returned as it is,
/// without copying.
///
/// ```
/// use tracker_core::escape_control;
/// assert_eq!(escape_control("app.Session"), "app.Session");
/// assert_eq!(escape_control("a\x1b[2Jb\nok"), "a\\x1b[2Jb\\nok");
/// assert_eq!(escape_control("x\u{9b}31m"), "x\\u{9b}31m");
/// ```
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Names a hostile or careless program may give its classes, and what
/// every tool must print for them: the table the tests of every output
/// format share.
#[doc(hidden)]
pub const HOSTILE_NAMES: &[(&str, &str)] = &[
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\nok: 1 rule(s) hold", "a\\nok: 1 rule(s) hold"),
    ("cr\roverwrite", "cr\\roverwrite"),
    ("tab\there", "tab\\there"),
    ("nul\0byte", "nul\\x00byte"),
    ("del\x7f", "del\\x7f"),
    ("csi\u{9b}2J", "csi\\u{9b}2J"),
    ("osc\u{9d}0;x\u{9c}", "osc\\u{9d}0;x\\u{9c}"),
    ("rlo\u{202e}txt.exe", "rlo\\u{202e}txt.exe"),
    ("isolate\u{2066}x\u{2069}", "isolate\\u{2066}x\\u{2069}"),
    ("app.Séance", "app.Séance"),
    ("日本.クラス", "日本.クラス"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_written_visibly() {
        for (name, shown) in HOSTILE_NAMES {
            let got = escape_control(name);
            assert_eq!(&got, shown, "{name:?}");
            assert!(!got.chars().any(is_unsafe_char), "{got:?}");
        }
    }

    #[test]
    fn safe_text_is_not_copied() {
        assert!(matches!(escape_control("app.Session"), Cow::Borrowed(_)));
    }
}
