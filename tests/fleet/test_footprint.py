"""What segments cost in a memory-backed directory, on real tmpfs mounts of
the sizes containers have: 64 prefork workers with 100 classes each in
Docker's default 64 MiB /dev/shm, and a tmpfs too small for one process's
classes (classes fold into the overflow slot; no SIGBUS, no lost counts)."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

from tools import binary

WORKERS = 64
CLASSES = 100
PER_CLASS = 20

SERVICE = textwrap.dedent(
    """
    import os, sys, pytracker
    workers, classes, per_class = (int(a) for a in sys.argv[1:4])
    kinds = [type("C%03d" % i, (pytracker.Trackable,), {}) for i in range(classes)]
    pytracker.start_exporter(service="wide")
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(hold_w)
            keep = [k() for k in kinds for _ in range(per_class)]
            os.write(ready_w, b"x")
            os.read(hold_r, 1)  # until the master closes its end
            os._exit(0)
        children.append(pid)
    os.close(hold_r)
    got = 0
    while got < workers:
        got += len(os.read(ready_r, workers))
    print("ready", flush=True)
    sys.stdin.readline()
    os.close(hold_w)
    for pid in children:
        os.waitpid(pid, 0)
    """
)


@contextlib.contextmanager
def tmpfs(path, size):
    """A real tmpfs of `size` at `path` (needs root, which CI has)."""
    assert os.geteuid() == 0, "these tests mount tmpfs file systems: run them as root (CI does)"
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=%s,mode=1777" % size, "tmpfs", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 0, "cannot mount a tmpfs: %s" % r.stderr
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)])


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def cli(*args):
    r = subprocess.run([binary("pytracker-cli")] + list(args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_sixty_four_workers_fit_in_a_64_mib_tmpfs(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "shm", "64m") as shm:
        monkeypatch.setenv("PYTRACKER_DIR", str(shm))
        monkeypatch.delenv("PYTRACKER_SERVICE", raising=False)
        p = subprocess.Popen(
            [sys.executable, "-c", SERVICE, str(WORKERS), str(CLASSES), str(PER_CLASS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert p.stdout.readline().strip() == "ready"
            used = used_bytes(shm)
            segments = [f for f in os.listdir(shm) if not f.startswith(".")]
            print("%d segments use %.1f MiB of the 64 MiB tmpfs" % (len(segments), used / 2**20))
            assert len(segments) == WORKERS + 1, segments
            assert used <= (WORKERS + 1) * 256 * 1024, "%d bytes for %d workers" % (used, WORKERS)
            for name in segments:
                blocks = os.stat(shm / name).st_blocks * 512
                assert blocks <= 256 * 1024, "%s stores %d bytes" % (name, blocks)
            rows = [r for r in json.loads(cli("ps", "--format", "json"))["processes"] if r.get("service") == "wide"]
            assert len(rows) == WORKERS + 1 and all(r["state"] == "alive" for r in rows), rows
            labels = sorted(r["worker_label"] for r in rows)
            assert labels.count("master") == 1, labels
            assert sorted(int(x) for x in labels if x != "master") == list(range(1, WORKERS + 1)), labels
            doc = json.loads(cli("dump", "--service", "wide", "--format", "json"))
            live = {c["name"]: c["live"] for c in doc["classes"]}
            assert len(live) == CLASSES, sorted(live)
            assert set(live.values()) == {WORKERS * PER_CLASS}, live
        finally:
            p.stdin.close()
            assert p.wait(timeout=120) == 0


FULL = textwrap.dedent(
    """
    import os, sys, pytracker
    kinds = [type("F%03d" % i, (pytracker.Trackable,), {}) for i in range(int(sys.argv[1]))]
    t = pytracker.start_exporter(service="cramped")
    keep = [k() for k in kinds for _ in range(3)]
    print(t.path, flush=True)
    sys.stdin.readline()
    """
)


def test_a_full_tmpfs_folds_classes_and_never_faults(tmp_path, monkeypatch):
    # Room for the header, history totals, ring and overflow slot (44 KiB)
    # and about 25 class slots; the process has 100 classes.
    with tmpfs(tmp_path / "shm", "96k") as shm:
        monkeypatch.setenv("PYTRACKER_DIR", str(shm))
        p = subprocess.Popen(
            [sys.executable, "-c", FULL, "100"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            path = p.stdout.readline().strip()
            assert path.startswith(str(shm)), path
            doc = json.loads(cli("dump", "--pid", str(p.pid), "--format", "json"))
            classes = {c["name"]: c["live"] for c in doc["classes"]}
            own = [n for n in classes if n.startswith("__main__.F")]
            assert 10 <= len(own) < 100, sorted(classes)
            assert classes["<other classes>"] == 3 * (100 - len(own)), classes
            assert sum(classes.values()) == 300, "no object is lost"
            assert doc["classes_dropped"] == 100 - len(own)
            assert used_bytes(shm) <= 96 * 1024
            text = cli("dump", "--pid", str(p.pid))
            assert "classes folded into <other classes>" in text and "segment directory is full" in text, text
        finally:
            p.stdin.close()
            rc = p.wait(timeout=60)
        assert rc == 0, "the writer died with %d" % rc


RECYCLER = textwrap.dedent(
    """
    import os, signal, sys, time, pytracker
    class Job(pytracker.Trackable):
        pass
    pytracker.start_exporter(service="recycled", history_period=0.1)
    recycles, parallel = int(sys.argv[1]), int(sys.argv[2])
    running = set()
    for n in range(recycles):
        if len(running) == parallel:
            pid, _ = os.wait()
            running.discard(pid)
        pid = os.fork()
        if pid == 0:
            keep = [Job() for _ in range(n % 7 + 1)]
            time.sleep(0.02)
            if n % 3 == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(0)
        running.add(pid)
    while running:
        running.discard(os.wait()[0])
    print("done", flush=True)
    sys.stdin.readline()
    """
)


def test_a_thousand_worker_recycles_leave_a_bounded_directory(shm_dir):
    """Workers leaving by os._exit and by SIGKILL, 1,000 of them: the
    directory keeps the live master, the 8 newest exited segments and the
    newest of the service, and the last worker's inventory stays readable."""
    p = subprocess.Popen(
        [sys.executable, "-c", RECYCLER, "1000", "8"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "done"
        # Each worker prunes as it starts: at most the last 8 to exit are
        # more than the bound, until the master's sampler prunes again
        # (every 60 samples: 6 s here).
        left = [f for f in os.listdir(shm_dir) if f.startswith("pytracker-")]
        assert len(left) <= 1 + 8 + 1 + 8, "%d segments left: %s" % (len(left), sorted(left))
        deadline = time.monotonic() + 30
        while True:
            left = [f for f in os.listdir(shm_dir) if f.startswith("pytracker-")]
            if len(left) <= 1 + 8 + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(left) <= 1 + 8 + 1, "%d segments left: %s" % (len(left), sorted(left))
        last = cli("last", "--service", "recycled")
        assert "Job" in last, last
    finally:
        p.stdin.close()
        p.wait(timeout=60)
