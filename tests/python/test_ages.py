"""Ages, peaks, units of work, history tiers and post-mortems, read from
the segment of real processes by the real pytracker-cli.

The processes run with 100 ms age epochs (PYTRACKER_AGE_EPOCH_MS) and
short sampling periods, so that what takes minutes in production takes a
second or two here."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from tools import run_tool

SERVICE = textwrap.dedent(
    """
    import os, time
    import pytracker

    class Pooled(pytracker.Trackable): pass
    class Leaky(pytracker.Trackable): pass
    class Cached(pytracker.Trackable): pass

    pytracker.start_exporter(history_period=0.05)
    pool = [Pooled() for _ in range(200)]
    leak, cache = [], []
    requests = 0
    print("ready", os.getpid(), flush=True)
    while True:
        # One request: a cache entry that lives about 0.3 s, a leaked
        # object every second request, one unit of work.
        cache.append(Cached())
        del cache[:-6]
        if requests % 2 == 0:
            leak.append(Leaky())
        requests += 1
        pytracker.tick()
        time.sleep(0.05)
    """
)


def start(shm_dir, code=SERVICE, service=None):
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir), PYTRACKER_AGE_EPOCH_MS="100")
    if service:
        env["PYTRACKER_SERVICE"] = service
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = proc.stdout.readline().split()
    assert first and first[0] == "ready", proc.stderr.read()
    return proc, int(first[1])


def dump_json(pid, *extra):
    r = run_tool("pytracker-cli", "dump", "--pid", pid, "--format", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def classes(doc):
    return {c["name"].split(".")[-1]: c for c in doc["classes"]}


def old(record, seconds):
    return sum(n for age_ms, n in record["ages"]["cohorts"] if age_ms >= seconds * 1000)


def test_old_survivors_are_told_from_churn_and_a_filled_pool(shm_dir):
    proc, pid = start(shm_dir)
    try:
        time.sleep(2.5)
        first = classes(dump_json(pid))
        time.sleep(1.5)
        second = classes(dump_json(pid))
        # The pool filled once: all 200 are old, and stay 200.
        assert old(first["Pooled"], 1) == 200
        assert old(second["Pooled"], 1) == 200
        # The cache churns: many live, none old.
        assert second["Cached"]["live"] >= 5
        assert old(second["Cached"], 1) == 0
        assert second["Cached"]["ages"]["buckets"][0] == second["Cached"]["live"]
        # The leak's old objects keep growing.
        assert old(second["Leaky"], 1) > old(first["Leaky"], 1) > 0
        assert second["Leaky"]["ages"]["oldest_s"] >= 3
        # Without --older-than the cache trips a tight rule; with it, only
        # the leak does.
        r = run_tool("pytracker-cli", "check", "--pid", pid, "--max", "Cached=2")
        assert r.returncode == 1, r.stdout + r.stderr
        r = run_tool(
            "pytracker-cli",
            "check",
            "--pid",
            pid,
            "--older-than",
            "1s",
            "--max",
            "Cached=2",
            "--max",
            "Pooled=200",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        r = run_tool(
            "pytracker-cli",
            "check",
            "--pid",
            pid,
            "--older-than",
            "1s",
            "--max",
            "Cached=2",
            "--max",
            "Leaky=5",
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Leaky" in r.stdout and "at least 1s old" in r.stdout
        assert "Cached" not in r.stdout
        # The table shows the OLD and OLDEST columns.
        r = run_tool("pytracker-cli", "dump", "--pid", pid, "--older-than", "2s")
        assert r.returncode == 0, r.stderr
        header = next(line for line in r.stdout.splitlines() if line.startswith("CLASS"))
        assert header.split()[:5] == ["CLASS", "LIVE", "PEAK", "OLD>=2s", "OLDEST"]
    finally:
        proc.kill()
        proc.wait()


def test_retained_per_unit_of_work(shm_dir):
    # A 1 s window (20 samples of 50 ms), so the pool filled at start is
    # out of it after 2 s.
    code = SERVICE.replace("history_period=0.05)", "history_period=0.05, history_capacity=20)")
    proc, pid = start(shm_dir, code)
    try:
        time.sleep(2.0)
        doc = dump_json(pid)
        window = doc["process"]["window"]
        assert window["unit"] == "requests" and window["units"] > 10
        leaky = classes(doc)["Leaky"]
        per_1k = leaky["retained"] * 1000 / window["units"]
        assert 350 <= per_1k <= 650, (leaky, window)
        assert classes(doc)["Pooled"]["retained"] == 0
        r = run_tool("pytracker-cli", "check", "--pid", pid, "--max-per-1k", "Leaky=300")
        assert r.returncode == 1 and "retained per 1,000 requests" in r.stdout, r.stdout + r.stderr
        r = run_tool("pytracker-cli", "check", "--pid", pid, "--max-per-1k", "Leaky=800")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run_tool("pytracker-cli", "dump", "--pid", pid)
        assert "PER 1K" in r.stdout and "requests in the last" in r.stdout
    finally:
        proc.kill()
        proc.wait()


def test_per_1k_without_units_says_what_to_do(shm_dir):
    code = textwrap.dedent(
        """
        import os, time, pytracker
        class A(pytracker.Trackable): pass
        pytracker.start_exporter(history_period=0.05)
        keep = [A()]
        print("ready", os.getpid(), flush=True)
        time.sleep(60)
        """
    )
    proc, pid = start(shm_dir, code)
    try:
        time.sleep(0.3)
        r = run_tool("pytracker-cli", "check", "--pid", pid, "--max-per-1k", "A=1")
        assert r.returncode == 2
        assert "pytracker.tick()" in r.stderr
    finally:
        proc.kill()
        proc.wait()


KILLED = textwrap.dedent(
    """
    import os, time, pytracker
    class Job(pytracker.Trackable): pass
    class Buffer(pytracker.Trackable): pass
    pytracker.start_exporter(history_period=0.05)
    jobs = [Job() for _ in range(500)]
    time.sleep(0.3)          # a sample sees the peak
    del jobs[100:]
    buffers = []
    print("ready", os.getpid(), flush=True)
    while True:
        buffers.append(Buffer())
        time.sleep(0.02)
    """
)


def test_last_reads_what_a_killed_worker_held(shm_dir):
    proc, pid = start(shm_dir, KILLED, service="billing")
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = run_tool("pytracker-cli", "last", "--service", "billing", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["process"]["pid"] == pid
    assert doc["process"]["writer_state"] == "exited"
    assert doc["process"]["service"] == "billing"
    assert doc["process"]["rss_bytes"] > 1 << 20
    by_name = {c["name"].split(".")[-1]: c for c in doc["classes"]}
    assert by_name["Job"]["live"] == 100
    assert by_name["Job"]["peak_live"] == 500
    assert by_name["Job"]["peak_unix_ms"] <= doc["process"]["last_seen_unix_ms"]
    # The buffers grew until the end: the trend says so.
    assert by_name["Buffer"]["trend"] > 10
    assert doc["classes"][0]["name"].endswith("Job")
    r = run_tool("pytracker-cli", "last", "--pid", pid)
    assert r.returncode == 0, r.stderr
    assert "service billing" in r.stdout and "exited" in r.stdout
    job_row = next(line for line in r.stdout.splitlines() if line.startswith("__main__.Job")).split()
    assert job_row[1:3] == ["100", "500"]
    # A live process is not a post-mortem.
    proc2, pid2 = start(shm_dir, KILLED, service="alive-one")
    try:
        r = run_tool("pytracker-cli", "last", "--service", "alive-one")
        assert r.returncode == 2 and "still running" in r.stderr
    finally:
        proc2.kill()
        proc2.wait()


def test_history_tiers_export(shm_dir):
    code = textwrap.dedent(
        """
        import os, time, pytracker
        class A(pytracker.Trackable): pass
        pytracker.start_exporter(history_period=0.01)
        keep = []
        print("ready", os.getpid(), flush=True)
        while True:
            keep.append(A())
            time.sleep(0.005)
        """
    )
    proc, pid = start(shm_dir, code)
    try:
        time.sleep(1.6)
        doc = dump_json(pid, "--history")
        tiers = doc["tiers"]
        assert [t["tier"] for t in tiers] == [0, 1, 2]
        assert tiers[0]["period_ms"] == 10 and tiers[1]["period_ms"] == 600
        assert tiers[2]["period_ms"] == 36000
        assert len(tiers[0]["totals"]) >= 90
        # Tier 1 took every 60th sample: at least two in 1.6 s.
        assert len(tiers[1]["totals"]) >= 2
        t1 = tiers[1]["totals"]
        assert t1[1]["unix_ms"] - t1[0]["unix_ms"] >= 500
        assert t1[-1]["live"] >= t1[0]["live"]
        assert tiers[1]["classes"]["__main__.A"][-1] == t1[-1]["live"]
        assert all(s["rss_bytes"] > 0 for s in tiers[0]["totals"])
        r = run_tool("pytracker-cli", "dump", "--pid", pid, "--history", "--format", "csv")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("tier,period_ms,unix_ms,live,rss_bytes")
        assert lines[0].endswith("__main__.A")
        assert any(line.startswith("1,600,") for line in lines)
        r = run_tool("pytracker-cli", "dump", "--pid", pid, "--history")
        assert r.returncode == 2 and "--format json or --format csv" in r.stderr
    finally:
        proc.kill()
        proc.wait()


def test_service_name_and_csv_buckets(shm_dir):
    proc, pid = start(shm_dir, KILLED)
    try:
        time.sleep(0.5)
        doc = dump_json(pid)
        # `python -c ...`: the interpreter's name, never the command line.
        assert doc["process"]["service"].startswith("python")
        r = run_tool("pytracker-cli", "dump", "--pid", pid, "--format", "csv")
        header = r.stdout.splitlines()[0].split(",")
        assert header[7:11] == ["peak_live", "peak_unix_ms", "oldest_s", "retained"]
        assert header[11] == "age_lt_5s" and header[-1] == "age_ge_3d"
        r = run_tool("pytracker-cli", "dump", "--pid", pid, "--format", "openmetrics")
        assert "pytracker_objects_peak{" in r.stdout
        assert 'seconds="60"' in r.stdout
    finally:
        proc.kill()
        proc.wait()


PLANTED = textwrap.dedent(
    """
    import os, sys, time
    import pytracker

    class Session(pytracker.Trackable): pass
    class Other(pytracker.Trackable): pass

    pytracker.start_exporter(site_every=int(sys.argv[1]))
    leaked = []

    def handle():
        leaked.append(Session())  # the planted leak: line 12

    def churn():
        for _ in range(10):
            Session(); Other()

    for _ in range(4000):
        handle()
        churn()
    print("ready", os.getpid(), flush=True)
    time.sleep(60)
    """
)


def test_sites_name_the_planted_leak_first(shm_dir):
    script = shm_dir.parent / "service.py"
    script.write_text(PLANTED)
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    proc = subprocess.Popen(
        [sys.executable, str(script), "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        first = proc.stdout.readline().split()
        assert first and first[0] == "ready", proc.stderr.read()
        pid = int(first[1])
        r = run_tool("pytracker-cli", "sites", "--pid", pid, "--format", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["sample_every"] == 16
        top = doc["classes"][0]
        assert top["class"] == "__main__.Session" and top["live"] == 4000
        site = top["sites"][0]
        assert site["frames"][0] == {"file": str(script), "line": 12, "function": "handle"}
        assert site["frames"][1]["function"] == "<module>"
        # The churned objects died: their sites hold nothing alive. The
        # estimate is the sample scaled by 16 (about 250 samples of 4000).
        assert len(top["sites"]) == 1
        assert 2000 <= site["estimated_live"] <= 6000, site
        assert site["estimated_live"] == 16 * site["sampled_live"]
        assert all(c["class"] != "__main__.Other" for c in doc["classes"])
        r = run_tool("pytracker-cli", "sites", "--pid", pid, "--class", "Session")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "one creation in 16 sampled" in lines[0]
        assert lines[2].startswith("__main__.Session  4000 live")
        assert lines[4].strip() == "at %s:12 in handle" % script
    finally:
        proc.kill()
        proc.wait()


def test_sites_off_says_how_to_turn_them_on(shm_dir):
    script = shm_dir.parent / "service.py"
    script.write_text(PLANTED)
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    proc = subprocess.Popen(
        [sys.executable, str(script), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        first = proc.stdout.readline().split()
        assert first and first[0] == "ready", proc.stderr.read()
        r = run_tool("pytracker-cli", "sites", "--pid", first[1])
        assert r.returncode == 2 and "site_every > 0" in r.stderr
    finally:
        proc.kill()
        proc.wait()


def test_each_class_is_sampled_one_in_n_beside_untracked_creations(shm_dir):
    # Every creation is sampled with chance 1/8, tracked or not. A chance
    # that falls on a creation no tracker takes (here an opted-out class
    # made between every two tracked ones) is dropped, not passed on to the
    # next tracked creation: so about 1000 of 8000 tracked objects are
    # sampled (standard deviation about 30), not about 2000, and
    # `estimated_live` stays an estimate of the class's own objects.
    code = textwrap.dedent(
        """
        import pytracker
        class A(pytracker.Trackable): pass
        class Quiet(pytracker.Trackable):
            _disable_global_tracker = True
        tracker = pytracker.start_exporter(site_every=8)
        keep, quiet = [], []
        for _ in range(8000):
            keep.append(A())
            quiet.append(Quiet())
        print(*pytracker._native._site_stats())
        """
    )
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    alive, every = map(int, r.stdout.split())
    assert every == 8
    assert 800 <= alive <= 1200, alive


def test_sampling_resumes_after_creations_without_a_tracker(shm_dir):
    code = textwrap.dedent(
        """
        import pytracker
        class A(pytracker.Trackable): pass
        tracker = pytracker.start_exporter(site_every=1)
        pytracker.set_global_tracker(None)
        untracked = [A() for _ in range(100)]
        assert pytracker._native._site_stats()[0] == 0
        pytracker.set_global_tracker(tracker)
        tracked = [A() for _ in range(20)]
        assert pytracker._native._site_stats()[0] == 20, pytracker._native._site_stats()
        print("ok")
        """
    )
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_sampled_objects_are_counted_out_when_they_go(shm_dir):
    code = textwrap.dedent(
        """
        import gc, os, pytracker
        class A(pytracker.Trackable): pass
        tracker = pytracker.start_exporter(site_every=1)
        keep = [A() for _ in range(50)]
        drop = [A() for _ in range(30)]
        alive, every = pytracker._native._site_stats()
        assert (alive, every) == (80, 1), (alive, every)
        del drop
        gc.collect()
        assert pytracker._native._site_stats()[0] == 50
        snap = pytracker.read_snapshot(path=tracker.path)
        print("ok")
        """
    )
    env = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
