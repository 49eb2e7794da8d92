"""`make demo`'s script without a terminal: periodic dumps of a real process."""

import os
import subprocess
import sys

from tools import REPO


def test_demo_without_terminal_prints_dumps_and_cleans_up(tmp_path):
    env = dict(os.environ, PYTRACKER_DIR=str(tmp_path))
    r = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "demo.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("$ pytracker-cli dump --pid") == 3
    rows = [l.split() for l in out.splitlines() if l.startswith("workload.CacheEntry ")]
    live = [int(r[1]) for r in rows if r[1].isdigit()]
    assert len(live) == 4 and live[0] < live[1] < live[2], out
    assert "workload.Request" in out and "that is the leak" in out
    assert os.listdir(tmp_path) == [], "the workload's segment is removed when it stops"
