"""Instructions per create-and-drop, counted by valgrind's callgrind.

Unlike wall-clock timings these counts repeat exactly for the same build,
whatever else the machine does, so they show small hot-path changes that
timing noise hides. Each variant runs in its own interpreter twice (0 and N
objects); the difference divided by N is the per-object count, loop
included. Run with ``make bench``.
"""

import os
import re
import shutil
import subprocess
import sys

N = 100_000

PROGRAM = """
import gc, sys, pytracker
class P: pass
class T(pytracker.Trackable): pass
mode = sys.argv[1]
if mode == "counting": pytracker.set_global_tracker(pytracker.CountingTracker())
if mode == "shm": pytracker.set_global_tracker(pytracker.ShmTracker(sampler=False, events=False))
if mode == "shm-events": pytracker.set_global_tracker(pytracker.ShmTracker(sampler=False, events=True))
cls = P if mode == "plain" else T
gc.disable()
for _ in range(int(sys.argv[2])):
    cls()
"""

VARIANTS = [
    ("plain class", "plain"),
    ("Trackable, no tracker", "none"),
    ("Trackable + CountingTracker", "counting"),
    ("Trackable + ShmTracker, events off", "shm"),
    ("Trackable + ShmTracker, events on", "shm-events"),
]


def instructions(mode, n):
    # A fixed hash seed: string hashing (and so dict probing) otherwise
    # changes from run to run.
    env = dict(os.environ, PYTHONHASHSEED="0")
    r = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", PROGRAM, mode, str(n)],
        capture_output=True,
        text=True,
        env=env,
    )
    m = re.search(r"Collected : (\d+)", r.stderr)
    assert m, r.stderr[-2000:]
    return int(m.group(1))


def main():
    if shutil.which("valgrind") is None:
        print("valgrind not found: instruction counts skipped (apt-get install valgrind)")
        return
    import platform

    print(
        "python %s (%s): instructions per create+drop (callgrind, %d objects, loop included)"
        % (platform.python_version(), sys.executable, N)
    )
    print()
    print("| variant | instructions | ratio to plain |")
    print("|---|---:|---:|")
    base = None
    for label, mode in VARIANTS:
        per = (instructions(mode, N) - instructions(mode, 0)) / N
        base = base or per
        print("| %s | %.0f | %.2fx |" % (label, per, per / base))


if __name__ == "__main__":
    os.environ.setdefault("PYTRACKER_DIR", "/dev/shm")
    main()
