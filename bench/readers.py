"""What readers cost the tracked program, and how fast they read.

A writer process registers 10,000 Trackable classes, exports with
ShmTracker, and then creates and drops objects as fast as it can, reporting
its throughput. Phases of a few seconds alternate: no reader, a reader
taking 20 snapshots a second (another process), pytracker-top at its default
1 s interval (in tmux), and the throughput of each phase is compared with
the no-reader phases around it. Also timed: one snapshot of the 10,000-class
segment, and `pytracker-cli dump --format json` end to end.

Run with ``make bench``.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PYTRACKER_BIN_DIR") or os.path.join(REPO, "target", "release")
EXAMPLES = os.path.join(REPO, "target", "release", "examples")
CLASSES = 10_000
PHASE = 3.0

WRITER = textwrap.dedent(
    """
    import os, sys, time
    import pytracker
    pytracker.start_exporter(class_capacity=16384)
    classes = [type("C%05d" % i, (pytracker.Trackable,), {}) for i in range(CLASSES)]
    keep = [c() for c in classes]
    class Hot(pytracker.Trackable):
        pass
    print(os.getpid(), pytracker.get_exporter().path, flush=True)
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
).replace("CLASSES", str(CLASSES))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    env = dict(os.environ, PYTRACKER_DIR=tempfile.mkdtemp(prefix="pytracker-bench-"))
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True, env=env)
    pid, path = writer.stdout.readline().split()
    pid = int(pid)

    def collect(seconds):
        end = time.monotonic() + seconds
        out = []
        while time.monotonic() < end:
            t, rate = writer.stdout.readline().split()
            out.append(float(rate))
        return statistics.median(out[1:] or out)

    try:
        collect(3.0)  # warm up (the first seconds run slower)
        # One snapshot of 10,000 classes, in-process reader.
        import pytracker

        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            snap = pytracker.read_snapshot(path=path)
            times.append(time.perf_counter() - t0)
        assert len(snap["classes"]) >= CLASSES, len(snap["classes"])
        # pytracker-cli dump --format json, end to end.
        cli = [os.path.join(BIN, "pytracker-cli"), "dump", "--path", path, "--format", "json"]
        cli_times = []
        for _ in range(15):
            t0 = time.perf_counter()
            r = subprocess.run(cli, stdout=subprocess.PIPE)
            cli_times.append(time.perf_counter() - t0)
            assert r.returncode == 0
        assert len(json.loads(r.stdout)["classes"]) >= CLASSES

        phases = []
        order = ["no reader", "20 snapshots/s", "no reader", "pytracker-top"] * 3 + ["no reader"]
        for label in order:
            helper = None
            if label == "20 snapshots/s":
                # A reader process that keeps the segment mapped and takes a
                # full snapshot 20 times a second (tracker-shm's
                # examples/poll_reader.rs).
                helper = subprocess.Popen([os.path.join(EXAMPLES, "poll_reader"), path, "20"], env=env)
            elif label == "pytracker-top":
                assert shutil.which("tmux"), "tmux is needed for the pytracker-top phase"
                subprocess.run(
                    [
                        "tmux",
                        "-L",
                        "pytracker-bench",
                        "new-session",
                        "-d",
                        "-x",
                        "150",
                        "-y",
                        "45",
                        "env PYTRACKER_DIR=%s %s/pytracker-top --pid %d" % (env["PYTRACKER_DIR"], BIN, pid),
                    ],
                    check=True,
                )
                time.sleep(1.0)
                top_pid = int(
                    subprocess.run(
                        ["pgrep", "-n", "-f", "pytracker-top --pid %d" % pid], capture_output=True, text=True
                    ).stdout.split()[0]
                )
                top_cpu0, top_t0 = cpu_seconds(top_pid), time.monotonic()
            rate = collect(PHASE)
            if label == "pytracker-top":
                top_cpu = (cpu_seconds(top_pid) - top_cpu0) / (time.monotonic() - top_t0)
                subprocess.run(["tmux", "-L", "pytracker-bench", "kill-server"])
            if helper:
                helper.kill()
                helper.wait()
            phases.append((label, rate))

        base = statistics.mean(r for l, r in phases if l == "no reader")
        print("writer: %d classes registered; Trackable create+drop with ShmTracker (events on)" % CLASSES)
        print("phases of %.0f s, in this order: %s" % (PHASE, ", ".join(order)))
        print()
        print("| reader | objects/s, each phase (median of 0.25 s windows) | mean vs no reader |")
        print("|---|---|---:|")
        for label in ("no reader", "20 snapshots/s", "pytracker-top"):
            rates = [r for l, r in phases if l == label]
            print(
                "| %s | %s | %+.1f%% |"
                % (label, ", ".join("%.0f" % r for r in rates), (statistics.mean(rates) / base - 1) * 100)
            )
        print()
        rust = subprocess.run([os.path.join(EXAMPLES, "snapshot_timing")], capture_output=True, text=True, check=True)
        print("Rust reader, %d classes (tracker-shm examples/snapshot_timing):" % CLASSES)
        print(textwrap.indent(rust.stdout.strip(), "    "))
        print(
            "Python read_snapshot, %d classes (open + read + build dicts): median %.2f ms, max %.2f ms"
            % (CLASSES, statistics.median(times) * 1e3, max(times) * 1e3)
        )
        print(
            "pytracker-cli dump --format json, %d classes, end to end: median %.1f ms, max %.1f ms"
            % (CLASSES, statistics.median(cli_times) * 1e3, max(cli_times) * 1e3)
        )
        print(
            "pytracker-top CPU at the default 1 s interval, %d classes: %.2f%% of one core" % (CLASSES, top_cpu * 100)
        )
    finally:
        writer.kill()
        writer.wait()
        shutil.rmtree(env["PYTRACKER_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
