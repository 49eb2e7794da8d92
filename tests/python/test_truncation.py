"""A segment file that shrinks under its mappings (someone truncates it)
kills nobody: not the tracked application writing it, not the readers
copying it (pytracker-cli, read_snapshot in this very process,
pytracker-top, which also gives the terminal back)."""

import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import pytracker
from test_top import Tmux
from tools import binary, run_tool

WRITER = textwrap.dedent(
    """
    import os, sys, threading
    import pytracker
    t = pytracker.start_exporter(history_period=0.01)
    class Busy(pytracker.Trackable):
        pass
    stop = threading.Event()
    def churn():
        kept = []
        while not stop.is_set():
            for _ in range(1000):
                kept.append(Busy())
            del kept[:900]
            if len(kept) > 50000:
                del kept[:]
    threading.Thread(target=churn).start()
    print(t.path, flush=True)
    sys.stdin.readline()
    stop.set()
    print("problem:", t.problem, flush=True)
    """
)


def start_writer(shm_dir):
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTRACKER_DIR=str(shm_dir)),
    )
    path = p.stdout.readline().strip()
    assert path, p.stderr.read()
    return p, path


def truncate_repeatedly(path, full, stop, counter):
    rng = random.Random(7)
    while not stop.is_set():
        try:
            os.truncate(path, rng.choice([0, 4096, full // 2, full - 4096]))
            time.sleep(rng.random() * 0.003)
            os.truncate(path, full)
            counter[0] += 1
        except FileNotFoundError:
            return
        time.sleep(rng.random() * 0.003)


def test_writer_and_readers_survive_truncation_races(shm_dir):
    writer, path = start_writer(shm_dir)
    full = os.path.getsize(path)
    stop = threading.Event()
    truncations = [0]
    truncator = threading.Thread(target=truncate_repeatedly, args=(path, full, stop, truncations))
    in_process = {"ok": 0, "refused": 0}

    def read_in_this_process():
        while not stop.is_set():
            try:
                pytracker.read_snapshot(path=path)
                in_process["ok"] += 1
            except pytracker.SegmentError as e:
                assert e.kind in ("shrunk", "truncated", "corrupt", "not_ready", "bad_magic", "version", "endian"), e
                in_process["refused"] += 1

    reader = threading.Thread(target=read_in_this_process)
    truncator.start()
    reader.start()
    codes = []
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            for args in (
                ("dump", "--path", path),
                ("diff", "--path", path, "--interval", "20ms", "--all"),
                ("dump", "--path", path, "--format", "json"),
                ("ps",),
            ):
                r = run_tool("pytracker-cli", *args, timeout=30)
                codes.append(r.returncode)
                assert r.returncode in (0, 2), (args, r.returncode, r.stderr)
                if r.returncode == 2:
                    assert "pytracker-cli: error:" in r.stderr, r.stderr
    finally:
        stop.set()
        truncator.join()
        reader.join()
    assert writer.poll() is None, "the writer died: %s" % writer.stderr.read()
    out, err = writer.communicate("exit\n", timeout=30)
    assert writer.returncode == 0, err
    assert "truncated by another process" in out, out
    assert err.count("truncated by another process") == 1, err
    assert truncations[0] > 100
    assert in_process["ok"] + in_process["refused"] > 100
    assert len(codes) > 20 and 2 in codes


def test_top_reports_a_truncated_segment_and_restores_the_terminal(shm_dir, tmp_path):
    writer, path = start_writer(shm_dir)
    tmux = Tmux(tmp_path)
    try:
        tmux.type("%s --path %s --interval 100ms; echo top-exited-$?" % (binary("pytracker-top"), path), enter=True)
        tmux.wait_for(lambda s: "Busy" in s)
        full = os.path.getsize(path)
        os.truncate(path, 4096)
        # The echo's output, not the typed command that contains it.
        screen = tmux.wait_for(lambda s: any(l.startswith("top-exited-") for l in s.splitlines()))
        assert "top-exited-2" in screen.splitlines()
        assert "shrank while it was being read" in screen
        assert tmux.stty_restored()
        os.truncate(path, full)
    finally:
        tmux.close()
        writer.kill()
        writer.wait()
