"""pytracker-top in a real terminal (tmux) against a real tracked process."""

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from tools import TrackedProcess, binary, run_tool


class Tmux:
    """A private tmux server with one shell in a 150x40 window."""

    def __init__(self, tmp_path):
        assert shutil.which("tmux"), "tmux is required: `make test` installs it"
        self.socket = "pytracker-test-%s" % uuid.uuid4().hex[:8]
        self.tmp = tmp_path
        self.run("new-session", "-d", "-s", "t", "-x", "150", "-y", "40", "bash --norc --noprofile")
        self.type("stty -g > %s/stty.before; clear" % tmp_path, enter=True)
        self.wait_for(lambda s: True)

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args), capture_output=True, text=True, timeout=30)

    def type(self, text, enter=False):
        self.run("send-keys", "-t", "t", "-l", text)
        if enter:
            self.run("send-keys", "-t", "t", "Enter")

    def key(self, name):
        self.run("send-keys", "-t", "t", name)

    def screen(self):
        # -J joins lines the terminal wrapped, so long messages stay whole.
        return self.run("capture-pane", "-p", "-J", "-t", "t").stdout

    def wait_for(self, predicate, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if predicate(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("screen did not show what was expected:\n" + s)
            time.sleep(0.1)

    def stty_restored(self):
        self.type("stty -g > %s/stty.after" % self.tmp, enter=True)
        path = self.tmp / "stty.after"
        deadline = time.monotonic() + 10
        while not (path.exists() and path.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        return (self.tmp / "stty.before").read_text() == path.read_text()

    def close(self):
        self.run("kill-server")


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.close()


@pytest.fixture
def proc(shm_dir):
    p = TrackedProcess(shm_dir)
    p.make("Order", 500, 40)
    p.make("Line", 25, 25)
    p.make("Audit", 3, 0)
    yield p
    p.kill()


def start_top(tmux, shm_dir, args):
    tmux.type("env PYTRACKER_DIR=%s %s %s" % (shm_dir, binary("pytracker-top"), args), enter=True)


def rows(screen):
    """(name, live) of each table row on the screen."""
    out = []
    for line in screen.splitlines():
        cells = line.strip("│ ").split()
        if cells and cells[0] == "›":  # the selection pointer (without colour)
            cells = cells[1:]
        if cells and cells[0] == "▲":
            cells = cells[1:]
        if cells and cells[0].startswith("__main__."):
            out.append((cells[0], int(cells[1])))
    return out


def test_live_view_keys_and_restore(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "--pid %d --interval 200ms" % proc.pid)
    screen = tmux.wait_for(lambda s: "__main__.Audit" in s)
    assert "pid %d" % proc.pid in screen and "writer alive" in screen
    assert rows(screen) == [("__main__.Order", 40), ("__main__.Line", 25), ("__main__.Audit", 0)]
    assert "live 65" in screen

    proc.make("Line", 30, 30)
    screen = tmux.wait_for(lambda s: ("__main__.Line", 55) in rows(s))
    assert rows(screen)[0] == ("__main__.Line", 55), "re-sorted by live count"
    assert "+30" in screen

    tmux.key("1")  # sort by name
    screen = tmux.wait_for(lambda s: [r[0] for r in rows(s)] == ["__main__.Audit", "__main__.Line", "__main__.Order"])
    tmux.key("1")  # again: reversed
    tmux.wait_for(lambda s: [r[0] for r in rows(s)] == ["__main__.Order", "__main__.Line", "__main__.Audit"])

    tmux.key("/")
    tmux.type("ord")
    screen = tmux.wait_for(lambda s: "filter: ord" in s and [r[0] for r in rows(s)] == ["__main__.Order"])
    tmux.key("Enter")
    tmux.key("Enter")  # open the detail pane of the selected class
    screen = tmux.wait_for(lambda s: "live objects, every" in s)
    assert "┌ __main__.Order" in screen
    # Its peak, ages and, once two samples are in, the chart's time axis;
    # t moves to the minute tier.
    assert "peak 4" in screen and "ages  <5s 40" in screen, screen
    tmux.wait_for(lambda s: "now│" in s.replace(" ", ""))
    tmux.key("t")
    tmux.wait_for(lambda s: "every 1m (t: tier 2 of 3)" in s)
    tmux.key("Escape")
    tmux.wait_for(lambda s: "live objects, every" not in s)
    tmux.key("?")
    tmux.wait_for(lambda s: "┌ keys" in s)
    tmux.key("Escape")
    tmux.wait_for(lambda s: "┌ keys" not in s)
    screen = tmux.wait_for(lambda s: 'filter "ord": 1 of 3 classes' in s)
    assert "┌ 1 of 3 classes" in screen

    # Esc clears the kept filter first; only then does it quit.
    tmux.key("Escape")
    screen = tmux.wait_for(lambda s: len(rows(s)) == 3)
    assert "CREATED/S" in screen and 'filter "' not in screen
    tmux.key("Escape")
    tmux.wait_for(lambda s: "CREATED/S" not in s)
    assert tmux.stty_restored(), "the terminal settings are back as they were"


def test_narrow_terminal_and_no_color(tmux, shm_dir, proc):
    tmux.run("resize-window", "-t", "t", "-x", "80", "-y", "24")
    tmux.type("export NO_COLOR=1", enter=True)
    start_top(tmux, shm_dir, "--pid %d --interval 200ms" % proc.pid)
    screen = tmux.wait_for(lambda s: "__main__.Audit" in s)
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert [r[0] for r in rows(screen)] == ["__main__.Order", "__main__.Line", "__main__.Audit"]
    assert "›" in screen, "the selection is marked without colour"
    tmux.key("q")
    tmux.wait_for(lambda s: "CREATED/S" not in s)


def test_target_exit_is_shown_and_ctrl_c_quits(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "--pid %d --interval 200ms" % proc.pid)
    tmux.wait_for(lambda s: "__main__.Order" in s)
    proc.kill()
    screen = tmux.wait_for(lambda s: "target exited" in s)
    assert ("__main__.Order", 40) in rows(screen), "the last data stays on screen"
    tmux.key("C-c")
    tmux.wait_for(lambda s: "CREATED/S" not in s)
    assert tmux.stty_restored()


def test_sigterm_restores_terminal(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "--pid %d" % proc.pid)
    tmux.wait_for(lambda s: "__main__.Order" in s)
    pids = subprocess.run(
        ["pgrep", "-f", "pytracker-top --pid %d" % proc.pid], capture_output=True, text=True
    ).stdout.split()
    assert pids
    for p in pids:
        os.kill(int(p), signal.SIGTERM)
    tmux.wait_for(lambda s: "CREATED/S" not in s)
    assert tmux.stty_restored()


def test_without_pid_attaches_to_the_only_process(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "")
    screen = tmux.wait_for(lambda s: "__main__.Order" in s)
    assert "pid %d" % proc.pid in screen
    tmux.key("q")
    tmux.wait_for(lambda s: "CREATED/S" not in s)


def test_picker_with_several_processes(tmux, shm_dir, proc):
    other = TrackedProcess(shm_dir)
    try:
        other.make("Audit", 9, 9)
        start_top(tmux, shm_dir, "")
        screen = tmux.wait_for(lambda s: "tracked processes: pick one" in s)
        assert str(proc.pid) in screen and str(other.pid) in screen
        first = min(proc.pid, other.pid)
        tmux.key("Enter")
        screen = tmux.wait_for(lambda s: "CREATED/S" in s)
        assert "pid %d" % first in screen
        tmux.key("q")
        tmux.wait_for(lambda s: "CREATED/S" not in s)
    finally:
        other.kill()


def test_errors_match_the_cli(shm_dir, tmux):
    start_top(tmux, shm_dir, "--pid %d" % (2**31 - 3))
    screen = tmux.wait_for(lambda s: "check the pid" in s)
    assert "pytracker-top: error: no process with pid %d" % (2**31 - 3) in screen
    start_top(tmux, shm_dir, "")
    screen = tmux.wait_for(lambda s: "no tracked process is running" in s)
    assert tmux.stty_restored()


def test_refuses_without_a_terminal(proc):
    r = run_tool("pytracker-top", "--pid", proc.pid)
    assert r.returncode == 2
    assert "needs an interactive terminal" in r.stderr and "pytracker-cli dump" in r.stderr


def test_exits_when_the_terminal_goes_away(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "--pid %d" % proc.pid)
    tmux.wait_for(lambda s: "__main__.Order" in s)

    def top_pids():
        out = subprocess.run(["pgrep", "-f", "pytracker-top --pid %d" % proc.pid], capture_output=True, text=True)
        return out.stdout.split()

    assert top_pids()
    tmux.close()  # the terminal hangs up
    deadline = time.monotonic() + 10
    while top_pids():
        assert time.monotonic() < deadline, "pytracker-top kept running without its terminal"
        time.sleep(0.1)


def test_follows_terminal_resizes(tmux, shm_dir, proc):
    start_top(tmux, shm_dir, "--pid %d" % proc.pid)
    screen = tmux.wait_for(lambda s: "__main__.Order" in s)
    assert max(len(l) for l in screen.splitlines()) == 150
    tmux.run("resize-window", "-t", "t", "-x", "100", "-y", "20")
    screen = tmux.wait_for(lambda s: max(len(l) for l in s.splitlines()) == 100 and "__main__.Order" in s)
    borders = [l for l in screen.splitlines() if l.startswith("┌ classes")]
    assert len(borders) == 1 and borders[0].endswith("┐") and len(borders[0]) == 100
    assert len(screen.splitlines()) == 20
    tmux.key("q")
    tmux.wait_for(lambda s: "CREATED/S" not in s)


def test_a_service_is_shown_summed_with_each_process_share(tmux, shm_dir, tmp_path):
    from test_service import start_pool, stop

    p = start_pool(tmp_path, "fork", "export")
    try:
        assert p.stdout.readline()
        start_top(tmux, shm_dir, "--service pool-fork --interval 200ms")
        screen = tmux.wait_for(lambda s: ("__main__.Job", 60) in rows(s))
        assert "service pool-fork: 4 processes (master, 1, 2, 3)" in screen, screen
        tmux.key("Enter")
        screen = tmux.wait_for(lambda s: "workers (min 0, max 30)" in s)
        # Which worker took which task is the pool's choice: the shares,
        # not their order, are known.
        (line,) = [l for l in screen.splitlines() if "workers (min 0, max 30): " in l]
        shares = line.split("workers (min 0, max 30): ")[1].strip(" │").split(" · ")
        assert shares[0] == "master 0", line
        assert sorted(w.split()[0] for w in shares[1:]) == ["1", "2", "3"], line
        assert sorted(int(w.split()[1]) for w in shares[1:]) == [10, 20, 30], line
        tmux.key("Escape")
        tmux.key("Escape")
        tmux.wait_for(lambda s: "CREATED/S" not in s)
    finally:
        stop(p)
    start_top(tmux, shm_dir, "--service no-such-service; echo rc=$?")
    tmux.wait_for(lambda s: "no live process of service no-such-service" in s and "rc=2" in s)
