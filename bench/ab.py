"""Two builds of pytracker side by side: what a change costs per object.

    python bench/ab.py PYTHON_A PYTHON_B

Each PYTHON is an interpreter whose ``pytracker`` is one of the two builds
(``make bench-ab BASE=<rev>`` builds the base revision for Debian's 3.11 and
runs this against the working tree's build for the same interpreter;
``make bench-ages`` runs it against the working tree built with the
measurement-only feature ``bare-counts``, which counts objects but not their
ages, peaks or creation sites). Two
builds cannot share a process, so the processes alternate, A B A B ..., and
each one measures its own ratio of ShmTracker (events off) to a plain class,
rounds interleaved as in ``hotpath.py``: machine drift moves both builds
alike. The median ratio per build is reported, then callgrind's
instructions per create-and-drop, which repeat exactly.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys

PAIRS = 12

TIMING = r"""
import gc, sys, time, pytracker
class P: pass
class T(pytracker.Trackable): pass
def loop(cls, n):
    t0 = time.perf_counter()
    for _ in range(n):
        cls()
    return time.perf_counter() - t0
quiet = pytracker.ShmTracker(events=False)
best = {"plain": float("inf"), "shm": float("inf")}
gc.disable()
for _ in range(7):
    best["plain"] = min(best["plain"], loop(P, 200_000))
    pytracker.set_global_tracker(quiet)
    best["shm"] = min(best["shm"], loop(T, 200_000))
    pytracker.set_global_tracker(None)
print(best["shm"] / best["plain"], best["plain"] / 200_000 * 1e9)
"""

COUNTING = r"""
import gc, sys, pytracker
class P: pass
class T(pytracker.Trackable): pass
if sys.argv[1] == "shm":
    pytracker.set_global_tracker(pytracker.ShmTracker(sampler=False, events=False))
cls = P if sys.argv[1] == "plain" else T
gc.disable()
for _ in range(int(sys.argv[2])):
    cls()
"""


def ratio(python):
    r = subprocess.run(
        [python, "-c", TIMING],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTRACKER_DIR=os.environ.get("PYTRACKER_DIR", "/dev/shm")),
    )
    shm, plain_ns = r.stdout.split()
    return float(shm), float(plain_ns)


def instructions(python, mode, n):
    env = dict(os.environ, PYTHONHASHSEED="0", PYTRACKER_DIR=os.environ.get("PYTRACKER_DIR", "/dev/shm"))
    r = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, "-c", COUNTING, mode, str(n)],
        capture_output=True,
        text=True,
        env=env,
    )
    m = re.search(r"Collected : (\d+)", r.stderr)
    if not m:
        sys.exit("callgrind failed for %s:\n%s" % (python, r.stderr[-2000:]))
    return int(m.group(1))


def per_object(python, mode):
    n = 100_000
    return (instructions(python, mode, n) - instructions(python, mode, 0)) / n


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/ab.py PYTHON_A PYTHON_B (each with its own pytracker build)")
    a, b = sys.argv[1], sys.argv[2]
    ratios = {a: [], b: []}
    for _ in range(PAIRS):
        for python in (a, b):
            ratios[python].append(ratio(python)[0])
    print("ShmTracker (events off) / plain class, %d alternating processes per build, best of 7 rounds each" % PAIRS)
    print()
    print("| build | median ratio | all ratios |")
    print("|---|---:|---|")
    for name, python in (("A", a), ("B", b)):
        rs = ratios[python]
        print("| %s `%s` | %.3fx | %s |" % (name, python, statistics.median(rs), " ".join("%.3f" % r for r in rs)))
    ma, mb = statistics.median(ratios[a]), statistics.median(ratios[b])
    print()
    print("B against A: %+.1f%% per create-and-drop (ratio of medians %.3f)" % ((mb / ma - 1) * 100, mb / ma))
    if shutil.which("valgrind") is None:
        print("valgrind not found: instruction counts left out (apt-get install valgrind)")
        return
    print()
    print("| build | plain | ShmTracker, events off | difference |")
    print("|---|---:|---:|---:|")
    counts = {}
    for name, python in (("A", a), ("B", b)):
        plain, shm = per_object(python, "plain"), per_object(python, "shm")
        counts[name] = shm
        print("| %s | %.0f | %.0f | %+.0f |" % (name, plain, shm, shm - plain))
    print()
    print(
        "B against A: %+.0f instructions per create-and-drop (%+.1f%%)"
        % (counts["B"] - counts["A"], (counts["B"] / counts["A"] - 1) * 100)
    )


if __name__ == "__main__":
    main()
