//! Formatting helpers shared by the commands and the live view: how a
//! number, a duration or a program line looks wherever it is shown.

use tracker_core::is_unsafe_char;

/// `text` on one line (control and bidirectional formatting characters and
/// runs of white space become one space), cut to `max` characters with an
/// ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text
        .split(|c: char| c.is_whitespace() || c.is_control() || is_unsafe_char(c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A command line for a narrow column: the program's file name without
/// its directory, then the arguments, on one line and cut to `max`.
pub fn short_program(cmdline: &str, max: usize) -> String {
    let line = one_line(cmdline, usize::MAX);
    let (program, rest) = line.split_once(' ').unwrap_or((&line, ""));
    let base = program.rsplit('/').next().unwrap_or(program);
    let short = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base} {rest}")
    };
    one_line(&short, max)
}

/// Seconds as `3d4h`, `2h5m`, `4m10s` or `12s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// An age in seconds, short and exact where it is round: `45s`, `1m`,
/// `1m30s`, `2h`, `2h5m`, `3d`, `3d4h`.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if d > 0 {
        pair(d, "d", h, "h")
    } else if h > 0 {
        pair(h, "h", m, "m")
    } else if m > 0 {
        pair(m, "m", s, "s")
    } else {
        format!("{s}s")
    }
}

/// A change, with its sign: `+3`, `0`, `-2`.
pub fn signed(v: i64) -> String {
    if v > 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

/// A rate per second: one decimal below 100, none above.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A one-line sparkline of the last `width` values.
pub fn spark(values: &[u32], width: usize) -> String {
    let tail = &values[values.len().saturating_sub(width)..];
    let (Some(min), Some(max)) = (tail.iter().min(), tail.iter().max()) else {
        return String::new();
    };
    let span = (max - min).max(1) as f64;
    tail.iter()
        .map(|v| BARS[(((v - min) as f64 / span) * 7.0).round() as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_programs_drop_the_directory() {
        assert_eq!(
            short_program("/venv/bin/python app.py --port 80", 40),
            "python app.py --port 80"
        );
        assert_eq!(short_program("/usr/bin/gunicorn", 40), "gunicorn");
        assert_eq!(
            short_program("python3 -m celery worker", 12),
            "python3 -m …"
        );
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(
            one_line("python -c \nimport x\n\tx.run()", 100),
            "python -c import x x.run()"
        );
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(250), "4m10s");
        assert_eq!(uptime(7500), "2h5m");
        assert_eq!(uptime(3 * 86400 + 4 * 3600), "3d4h");
    }

    #[test]
    fn numbers_and_sparklines() {
        assert_eq!(
            (signed(3), signed(0), signed(-2)),
            ("+3".into(), "0".into(), "-2".into())
        );
        assert_eq!((rate(2.25), rate(150.4)), ("2.2".into(), "150".into()));
        assert_eq!(spark(&[1, 2, 3], 2), "▁█");
        assert_eq!(spark(&[], 4), "");
    }
}
