"""`make demo`: run the built-in workload and show its live inventory."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytracker  # noqa: E402
import workload  # noqa: E402


def main():
    tracker = pytracker.CountingTracker()
    pytracker.set_global_tracker(tracker)
    service = workload.Service()
    print("pytracker demo: a service with requests, pooled sessions and a leaking cache\n")
    for round_ in range(1, 4):
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            service.step()
            time.sleep(0.01)
        print("after %d s (%d steps):" % (round_, service.steps))
        tracker.dump()
        print()
    print("CacheEntry keeps growing: that is the leak.")


if __name__ == "__main__":
    main()
