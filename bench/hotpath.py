"""Create-and-drop cost of tracked objects, as ratios to a plain class.

All variants run in one process, interleaved round by round, and each
figure is the best round of that variant, divided by the best round of a
plain ``class P: pass`` from the same run. Run with ``make bench``.
"""

import gc
import platform
import sys
import time
import tracemalloc
import weakref

import pytracker

N = 200_000
ROUNDS = 9


class P:
    pass


class T(pytracker.Trackable):
    pass


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
    """(label, setup, teardown, class, scale) for every row."""
    rows = []
    rows.append(("plain class", None, None, P, 1))
    rows.append(("Trackable, no tracker", None, None, T, 1))
    counting = pytracker.CountingTracker()
    rows.append(("Trackable + CountingTracker", lambda: pytracker.set_global_tracker(counting), None, T, 1))
    shm = getattr(pytracker, "ShmTracker", None)
    if shm is not None:
        quiet = shm(events=False)
        loud = shm(events=True)
        rows.append(("Trackable + ShmTracker, events off", lambda: pytracker.set_global_tracker(quiet), None, T, 1))
        rows.append(("Trackable + ShmTracker, events on", lambda: pytracker.set_global_tracker(loud), None, T, 1))
    py_tracker = pytracker.Tracker()
    rows.append(("Trackable + Python Tracker", lambda: pytracker.set_global_tracker(py_tracker), None, T, 10))
    fc = FinalizeCounter()
    rows.append(("weakref.finalize counter", None, None, fc.track(P), 10))
    rows.append(("tracemalloc (plain class)", tracemalloc.start, tracemalloc.stop, P, 10))
    try:
        from pympler.classtracker import ClassTracker

        class PT:
            pass

        ct = ClassTracker()
        ct.track_class(PT)
        rows.append(("Pympler ClassTracker", None, None, PT, 100))
    except ImportError:
        print("(pympler not installed: its row is left out)", file=sys.stderr)
    return rows


def main():
    rows = variants()
    best = {label: float("inf") for label, *_ in rows}
    gc.disable()
    for _ in range(ROUNDS):
        for label, setup, teardown, cls, scale in rows:
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
    base = best["plain class"]
    print("python %s, %s, %d objects per round, best of %d rounds" % (
        platform.python_version(), platform.machine(), N, ROUNDS))
    print()
    print("| variant | ns per create+drop | ratio to plain |")
    print("|---|---:|---:|")
    for label, *_ in rows:
        print("| %s | %.1f | %.2fx |" % (label, best[label] / N * 1e9, best[label] / base))
    plain_size = sys.getsizeof(P())
    print()
    print("sys.getsizeof: plain %d bytes, Trackable subclass %d bytes (+%d)" % (
        plain_size, sys.getsizeof(T()), sys.getsizeof(T()) - plain_size))


if __name__ == "__main__":
    main()
