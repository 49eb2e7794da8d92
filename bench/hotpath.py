"""Create-and-drop cost of tracked objects, as ratios to a plain class.

All variants run in one process, interleaved round by round, and each
figure is the best round of that variant, divided by the best round of a
plain ``class P: pass`` from the same run. Such a run is repeated in
PROCESSES fresh interpreters (each lays out its memory differently, which
moves these ratios by several percent on this machine kind): the table
gives each variant's median over the processes and the range of its
ratios. Run with ``make bench``.
"""

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
import weakref

import pytracker

N = 200_000
ROUNDS = 9
PROCESSES = 5


class P:
    pass


class T(pytracker.Trackable):
    pass


class PR:
    """A realistic plain class: three attributes set in __init__."""

    def __init__(self):
        self.host = "db"
        self.port = 5432
        self.open = True


class TR(pytracker.Trackable):
    """The same, trackable."""

    def __init__(self):
        self.host = "db"
        self.port = 5432
        self.open = True


def loop(cls, n):
    t0 = time.perf_counter()
    for _ in range(n):
        cls()
    return time.perf_counter() - t0


class FinalizeCounter:
    """What people hand-roll: a weakref.finalize per object."""

    def __init__(self):
        self.live = 0

    def _gone(self):
        self.live -= 1

    def track(self, cls):
        counter = self

        class Counted(cls):
            def __init__(self):
                counter.live += 1
                weakref.finalize(self, counter._gone)

        return Counted


def variants():
    """(label, setup, teardown, class, scale, baseline label) for every row."""
    rows = []
    counting = pytracker.CountingTracker()
    quiet = pytracker.ShmTracker(events=False)
    loud = pytracker.ShmTracker(events=True)
    py_tracker = pytracker.Tracker()
    # Site sampling at other rates than the default (1 in 8192).
    by_rate = {n: pytracker.ShmTracker(events=False, site_every=n) for n in (0, 1024, 65536)}

    def use(tracker):
        return lambda: pytracker.set_global_tracker(tracker)

    for suffix, plain, tracked, base in (
        ("", P, T, "plain class"),
        (", 3-attribute __init__", PR, TR, "plain class, 3-attribute __init__"),
    ):
        rows.append((base, None, None, plain, 1, base))
        rows.append(("Trackable, no tracker" + suffix, None, None, tracked, 1, base))
        rows.append(("Trackable + CountingTracker" + suffix, use(counting), None, tracked, 1, base))
        rows.append(("Trackable + ShmTracker, events off" + suffix, use(quiet), None, tracked, 1, base))
        rows.append(("Trackable + ShmTracker, events on" + suffix, use(loud), None, tracked, 1, base))
        if not suffix:
            for n, tracker in by_rate.items():
                label = "sites off" if n == 0 else "sites 1 in %d" % n
                rows.append(("Trackable + ShmTracker, events off, %s" % label, use(tracker), None, tracked, 1, base))
        rows.append(("Trackable + Python Tracker" + suffix, use(py_tracker), None, tracked, 10, base))
    base = "plain class"
    fc = FinalizeCounter()
    rows.append(("weakref.finalize counter", None, None, fc.track(P), 10, base))
    rows.append(("tracemalloc (plain class)", tracemalloc.start, tracemalloc.stop, P, 10, base))
    try:
        from pympler.classtracker import ClassTracker

        class PT:
            pass

        ct = ClassTracker()
        ct.track_class(PT)
        rows.append(("Pympler ClassTracker", None, None, PT, 100, base))
    except ImportError:
        print("(pympler not installed: its row is left out)", file=sys.stderr)
    return rows


def quiet_for_ticks():
    return pytracker.ShmTracker(events=False)


def _time_calls(f, n):
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - t0


def one_process():
    """One interleaved run: the best round of each variant, in seconds."""
    rows = variants()
    best = {label: float("inf") for label, *_ in rows}
    gc.disable()
    for _ in range(ROUNDS):
        for label, setup, teardown, cls, scale, _ in rows:
            if setup:
                setup()
            n = N // scale
            elapsed = loop(cls, n) * scale
            pytracker.set_global_tracker(None)
            if teardown:
                teardown()
            best[label] = min(best[label], elapsed)
            gc.collect()
    gc.enable()
    return best


def main():
    rows = variants()
    runs = []
    for _ in range(PROCESSES):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one-process"], check=True, capture_output=True, text=True
        ).stdout
        runs.append(json.loads(out))
    print(
        "python %s (%s), %s, %d objects per round, best of %d rounds per process, median of %d processes"
        % (platform.python_version(), sys.executable, platform.machine(), N, ROUNDS, PROCESSES)
    )
    print()
    print("| variant | ns per create+drop | ratio to its plain class | ratios' range |")
    print("|---|---:|---:|---:|")
    for label, *_, baseline in rows:
        ns = statistics.median(r[label] for r in runs) / N * 1e9
        ratios = [r[label] / r[baseline] for r in runs]
        print("| %s | %.1f | %.2fx | %.2f-%.2f |" % (label, ns, statistics.median(ratios), min(ratios), max(ratios)))
    # pytracker.tick() against a builtin that does nothing (gc.isenabled:
    # no arguments, no allocation), same loop: the difference is what
    # tick() adds to a call.
    pytracker.set_global_tracker(quiet_for_ticks())
    n = 1_000_000
    is_enabled = gc.isenabled
    timings = {}
    for name, f in (
        ("tick()", pytracker.tick),
        ("gc.isenabled()", is_enabled),
        ("tick('jobs')", lambda: pytracker.tick("jobs")),
        ("lambda", lambda: is_enabled()),
    ):
        timings[name] = min(_time_calls(f, n) for _ in range(ROUNDS)) / n * 1e9
    pytracker.set_global_tracker(None)
    print()
    print(
        "pytracker.tick(): %.1f ns per call with the loop, %.1f ns more than gc.isenabled() (%.1f ns)"
        % (timings["tick()"], timings["tick()"] - timings["gc.isenabled()"], timings["gc.isenabled()"])
    )
    print(
        "pytracker.tick('jobs') in a lambda: %.1f ns per call, %.1f ns more than gc.isenabled() in a lambda"
        % (timings["tick('jobs')"], timings["tick('jobs')"] - timings["lambda"])
    )
    plain_size = sys.getsizeof(P())
    print()
    print(
        "sys.getsizeof: plain %d bytes, Trackable subclass %d bytes (+%d)"
        % (plain_size, sys.getsizeof(T()), sys.getsizeof(T()) - plain_size)
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--one-process"]:
        print(json.dumps(one_process()))
    else:
        main()
