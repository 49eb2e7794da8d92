"""Class names are untrusted wherever they are printed: a real process names
its classes with terminal escapes, newlines and bidirectional controls, and
every output of the real tools shows them visibly escaped."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tools import run_tool

# (name given by the program, how a text output shows it): the same table as
# tracker_core::HOSTILE_NAMES.
HOSTILE = [
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\nok: 1 rule(s) hold", "a\\nok: 1 rule(s) hold"),
    ("cr\roverwrite", "cr\\roverwrite"),
    ("tab\there", "tab\\there"),
    ("nul\0byte", "nul\\x00byte"),
    ("del\x7f", "del\\x7f"),
    ("csi\x9b2J", "csi\\u{9b}2J"),
    ("osc\x9d0;x\x9c", "osc\\u{9d}0;x\\u{9c}"),
    ("rlo\u202etxt.exe", "rlo\\u{202e}txt.exe"),
    ("isolate\u2066x\u2069", "isolate\\u{2066}x\\u{2069}"),
]

UNSAFE = {chr(c) for c in list(range(0x20)) + list(range(0x7F, 0xA0))} | {
    "\u061c",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
}

PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    import pytracker
    kept = []
    for name in json.loads(sys.argv[1]):
        cls = type("C", (pytracker.Trackable,), {"__module__": "builtins"})
        cls.__qualname__ = name  # may hold what a type name may not (NUL)
        kept.append(cls())
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def hostile_proc(shm_dir):
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir), PYTRACKER_EXPORT="1")
    names = json.dumps([n for n, _ in HOSTILE])
    p = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, names],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = p.stdout.readline().split()
    assert first and first[0] == "ready", p.stderr.read()
    yield int(first[1])
    p.kill()
    p.wait()


def assert_safe(text, allow_newline=True):
    bad = {c for c in text if c in UNSAFE and not (allow_newline and c == "\n")}
    assert not bad, "raw control characters reached the output: %r" % sorted(bad)


def cli(*args):
    return run_tool("pytracker-cli", *args)


def test_every_text_format_escapes_hostile_names(hostile_proc):
    table = cli("dump", "--pid", hostile_proc)
    assert table.returncode == 0, table.stderr
    assert_safe(table.stdout)
    for _, shown in HOSTILE:
        assert any(l.split("  ")[0] == shown for l in table.stdout.splitlines()), shown
    # One line per class: no name can add a line.
    assert len(table.stdout.splitlines()) == 3 + len(HOSTILE)

    csv_out = cli("dump", "--pid", hostile_proc, "--format", "csv")
    assert_safe(csv_out.stdout)
    assert len(csv_out.stdout.splitlines()) == 1 + len(HOSTILE)
    for _, shown in HOSTILE:
        assert shown in csv_out.stdout

    om = cli("dump", "--pid", hostile_proc, "--format", "openmetrics")
    assert_safe(om.stdout)
    samples = [l for l in om.stdout.splitlines() if l.startswith("pytracker_objects_live{")]
    assert len(samples) == len(HOSTILE)
    assert "\r" not in om.stdout
    for _, shown in HOSTILE:
        assert 'class="%s"' % shown.replace("\\", "\\\\") in om.stdout

    js = cli("dump", "--pid", hostile_proc, "--format", "json")
    assert_safe(js.stdout)
    # JSON still round-trips to the real names.
    names = {c["name"] for c in json.loads(js.stdout)["classes"]}
    assert names == {n for n, _ in HOSTILE}


def test_diff_and_check_escape_hostile_names(hostile_proc, tmp_path):
    d = cli("diff", "--pid", hostile_proc, "--interval", "0.1s", "--all")
    assert d.returncode == 0, d.stderr
    assert_safe(d.stdout)
    snap = tmp_path / "s.json"
    snap.write_text(cli("dump", "--pid", hostile_proc, "--format", "json").stdout)
    base = tmp_path / "b.json"
    base.write_text(json.dumps({"schema_version": 1, "taken_unix_ms": 0, "classes": []}))
    c = cli("check", snap, "--max", "*=0")
    assert c.returncode == 1
    assert_safe(c.stdout)
    # The newline in a name cannot forge an `ok` line.
    assert not any(l.startswith("ok") for l in c.stdout.splitlines())
    assert c.stdout.splitlines()[0] == "FAILED: %d rule(s) broken" % len(HOSTILE)
    g = cli("check", snap, "--baseline", base, "--max-growth-pct", "0")
    assert_safe(g.stdout)


def test_hostile_file_names_in_errors(tmp_path):
    evil = tmp_path / "seg\x1b]0;pwned\x07\nok"
    evil.write_bytes(b"not a segment")
    r = cli("dump", "--path", evil)
    assert r.returncode == 2
    assert_safe(r.stderr.rstrip("\n"), allow_newline=False)
    assert "\\x1b]0;pwned\\x07\\nok" in r.stderr


def test_leak_report_escapes_hostile_names():
    import pytracker

    cls = type("evil\x1b[2J\nname", (pytracker.Trackable,), {"__module__": "app"})
    with pytest.raises(pytracker.LeakError) as e, pytracker.leak_check():
        kept = cls()  # noqa: F841
    assert_safe(str(e.value))
    assert "app.evil\\x1b[2J\\nname: 1" in str(e.value)
    # The mapping still holds the real name.
    assert "app.evil\x1b[2J\nname" in e.value.leaks


def test_top_shows_hostile_names_escaped(hostile_proc, tmp_path):
    from test_top import Tmux
    from tools import binary

    tmux = Tmux(tmp_path)
    try:
        tmux.type("%s --pid %d" % (binary("pytracker-top"), hostile_proc), enter=True)
        shown = ("\\x1b[2J", "\\x1b]0;pwned\\x07", "a\\nok: 1 rule(s) hold", "csi\\u{9b}2J", "rlo\\u{202e}txt.exe")
        # The whole frame: a capture may come while it is still being drawn.
        tmux.wait_for(lambda s: "┌ classes 11 " in s and all(n in s for n in shown))
        title = tmux.run("display-message", "-p", "-t", "t", "#{pane_title}").stdout
        assert "pwned" not in title
        tmux.key("q")
        tmux.wait_for(lambda s: "┌ classes 11 " not in s)
        assert tmux.stty_restored()
    finally:
        tmux.close()
