"""pytracker-cli serve at fleet size: 64 tracked processes of one service,
200 classes each. Times GET /metrics (Prometheus text and OpenMetrics),
then compares a tracked process's create-and-drop throughput with no
scrape and while serve is scraped every second.

Run with ``make bench`` (or ``python bench/serve.py``).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PYTRACKER_BIN_DIR") or os.path.join(REPO, "target", "release")
PROCESSES = 64
CLASSES = 200
PHASE = 3.0

IDLE = textwrap.dedent(
    """
    import sys, time
    import pytracker
    pytracker.start_exporter(service="fleet", events=False)
    classes = [type("C%03d" % i, (pytracker.Trackable,), {}) for i in range(CLASSES)]
    keep = [c() for c in classes for _ in range(3)]
    print("ready", flush=True)
    sys.stdin.readline()
    """
).replace("CLASSES", str(CLASSES))

BUSY = textwrap.dedent(
    """
    import time
    import pytracker
    pytracker.start_exporter(service="busy")
    class Hot(pytracker.Trackable):
        pass
    window = 0.25
    while True:
        n = 0
        end = time.perf_counter() + window
        while True:
            for _ in range(1000):
                Hot()
            n += 1000
            if time.perf_counter() >= end:
                break
        print(time.monotonic(), n / window, flush=True)
    """
)


def fetch(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def main():
    directory = tempfile.mkdtemp(prefix="pytracker-bench-serve-", dir="/dev/shm")
    env = dict(os.environ, PYTRACKER_DIR=directory)
    env.pop("PYTRACKER_SERVICE", None)
    procs = []
    serve = busy = None
    try:
        for _ in range(PROCESSES):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", IDLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                )
            )
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        serve = subprocess.Popen(
            [os.path.join(BIN, "pytracker-cli"), "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        url = serve.stdout.readline().split()[1]
        print("pytracker-cli serve: %d processes x %d classes, one service" % (PROCESSES, CLASSES))
        print()
        print("| format | scrape median | scrape max | body |")
        print("|---|---:|---:|---:|")
        for name, accept in (("Prometheus text", None), ("OpenMetrics", "application/openmetrics-text")):
            fetch(url, accept)
            times = []
            for _ in range(20):
                t, body = fetch(url, accept)
                times.append(t)
            print(
                "| %s | %.1f ms | %.1f ms | %d KiB |"
                % (name, statistics.median(times) * 1e3, max(times) * 1e3, len(body) // 1024)
            )
        for p in procs:
            p.stdin.close()
            p.wait()
        procs = []

        busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True, env=env)

        def rates(seconds, scrape):
            out, end, next_scrape = [], time.monotonic() + seconds, time.monotonic()
            while time.monotonic() < end:
                if scrape and time.monotonic() >= next_scrape:
                    fetch(url)
                    next_scrape += 1.0
                out.append(float(busy.stdout.readline().split()[1]))
            return out

        rates(1.0, False)  # warm-up
        phases = []
        for label, scrape in (("no scrape", False), ("scraped every 1 s", True)) * 3:
            phases.append((label, statistics.mean(rates(PHASE, scrape))))
        base = statistics.mean(r for l, r in phases if l == "no scrape")
        print()
        print("A tracked process's create-and-drop throughput (objects/s), phases of %.0f s alternating:" % PHASE)
        print()
        print("| phase | throughput per phase | against no scrape |")
        print("|---|---|---:|")
        for label in ("no scrape", "scraped every 1 s"):
            rs = [r for l, r in phases if l == label]
            print(
                "| %s | %s | %+.1f%% |"
                % (label, ", ".join("%.0f" % r for r in rs), (statistics.mean(rs) / base - 1) * 100)
            )
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for p in (serve, busy):
            if p:
                p.kill()
                p.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
