"""The shared-memory exporter end to end: real processes, real segments."""

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import pytracker
from tools import TrackedProcess


@pytest.fixture
def writer(shm_dir):
    w = TrackedProcess(shm_dir)
    yield w
    w.kill()


def classes(snap):
    return {c["name"].split(".")[-1]: c for c in snap["classes"]}


def segments(directory):
    return sorted(p for p in directory.iterdir() if p.name.startswith("pytracker-"))


def test_reader_sees_what_the_writer_created(writer, shm_dir):
    writer.make("Order", 1000, 100)
    writer.make("Line", 10, 10)
    snap = pytracker.read_snapshot(pid=writer.pid)
    assert snap["process"]["pid"] == writer.pid
    assert snap["process"]["writer_state"] == "alive"
    assert "python" in snap["process"]["program"]
    c = classes(snap)
    assert (c["Order"]["created"], c["Order"]["live"], c["Order"]["destroyed"]) == (1000, 100, 900)
    assert (c["Line"]["created"], c["Line"]["live"]) == (10, 10)
    assert c["Order"]["name"] == "__main__.Order"
    writer.make("Order", 500, 500)
    snap2 = pytracker.read_snapshot(pid=writer.pid)
    c2 = classes(snap2)
    assert c2["Order"]["created"] == 1500 and c2["Order"]["live"] == 600
    assert c2["Order"]["last_serial"] > c["Order"]["last_serial"]
    writer.drop()
    assert classes(pytracker.read_snapshot(pid=writer.pid))["Order"]["live"] == 0


def test_segment_is_private_and_removed_on_normal_exit(writer, shm_dir):
    (seg,) = segments(shm_dir)
    mode = stat.S_IMODE(seg.stat().st_mode)
    assert mode == 0o600
    assert seg.stat().st_uid == os.getuid()
    assert writer.exit() == 0
    assert writer.proc.stderr.read() == ""
    assert segments(shm_dir) == []


def test_sigkill_leaves_segment_reported_as_exited(writer, shm_dir):
    writer.make("Order", 100, 100)
    writer.proc.send_signal(signal.SIGKILL)
    writer.proc.wait()
    (seg,) = segments(shm_dir)
    snap = pytracker.read_snapshot(path=str(seg))
    assert snap["process"]["writer_state"] == "exited"
    assert classes(snap)["Order"]["live"] == 100
    # by pid too: the segment is found and said to be from an exited writer
    assert pytracker.read_snapshot(pid=writer.pid)["process"]["writer_state"] == "exited"


def test_reused_pid_is_detected(writer, shm_dir):
    writer.make("Order", 5, 5)
    writer.proc.send_signal(signal.SIGKILL)
    writer.proc.wait()
    (seg,) = segments(shm_dir)
    data = bytearray(seg.read_bytes())
    # Pretend the writer's pid now belongs to this (test) process, which
    # started at another time.
    struct.pack_into("<Q", data, 96, os.getpid())
    fake = shm_dir / "pytracker-0-1-1-9"
    fake.write_bytes(bytes(data))
    os.chmod(fake, 0o600)
    assert pytracker.read_snapshot(path=str(fake))["process"]["writer_state"] == "pid reused"


def test_fork_child_gets_its_own_segment(shm_dir):
    code = textwrap.dedent(
        """
        import os, sys, json
        import pytracker
        class Job(pytracker.Trackable):
            pass
        parent_jobs = [Job() for _ in range(7)]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            child_jobs = [Job() for _ in range(5)]
            os.write(w, b"x")
            os.read(r, 1) if False else None
            import time; time.sleep(30)
            os._exit(0)
        os.read(r, 1)
        print(pid, flush=True)
        sys.stdin.readline()
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        """
    )
    env = dict(os.environ, PYTRACKER_EXPORT="1", PYTRACKER_DIR=str(shm_dir))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        child = int(proc.stdout.readline())
        parent = proc.pid
        ps = pytracker.read_snapshot(pid=parent)
        cs = pytracker.read_snapshot(pid=child)
        assert classes(ps)["Job"]["live"] == 7, "the child never writes the parent's segment"
        assert classes(cs)["Job"]["live"] == 12, "the child inherits the counts at the fork"
        assert cs["process"]["pid"] == child
        assert len(segments(shm_dir)) == 2
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_missing_directory_warns_once_and_keeps_running(tmp_path):
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("always")
        import pytracker
        class A(pytracker.Trackable):
            pass
        t = pytracker.start_exporter()
        t2 = pytracker.start_exporter()
        assert t is t2
        keep = [A() for _ in range(3)]
        print(t.path, [r["live"] for r in t.snapshot()])
        """
    )
    env = dict(os.environ, PYTRACKER_DIR=str(tmp_path / "missing"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "None [3]"
    assert r.stderr.count("RuntimeWarning") == 1
    assert "missing" in r.stderr and "does not exist" in r.stderr


def test_read_only_directory_warns(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    code = "import pytracker\nt = pytracker.ShmTracker(directory=%r)\nprint(t.path)\nprint(t.problem)" % str(ro)
    if os.getuid() == 0:
        # root writes anywhere: make the directory unusable another way
        code = "import pytracker\nt = pytracker.ShmTracker(directory='/proc')\nprint(t.path)\nprint(t.problem)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "None"
    assert "cannot create segment" in out[1]
    assert "RuntimeWarning" in r.stderr


def test_bad_segments_raise_clear_errors(tmp_path, shm_dir):
    bad = tmp_path / "pytracker-0-1-1-0"
    bad.write_bytes(b"this is not a segment" * 300)
    with pytest.raises(pytracker.SegmentError, match="not a pytracker segment") as e:
        pytracker.read_snapshot(path=str(bad))
    assert e.value.kind == "bad_magic"
    with pytest.raises(pytracker.SegmentError) as e:
        pytracker.read_snapshot(path=str(tmp_path / "nothing"))
    assert e.value.kind == "not_found"
    with pytest.raises(pytracker.SegmentError, match="no process with pid") as e:
        pytracker.read_snapshot(pid=2**31 - 5)
    assert e.value.kind == "no_such_process"
    with pytest.raises(pytracker.SegmentError, match="start_exporter") as e:
        pytracker.read_snapshot(pid=os.getpid())
    with pytest.raises(TypeError):
        pytracker.read_snapshot()


def test_shm_tracker_in_process(shm_dir):
    t = pytracker.ShmTracker(directory=str(shm_dir), sampler=False)
    pytracker.set_global_tracker(t)

    class Thing(pytracker.Trackable):
        pass

    things = [Thing() for _ in range(4)]
    things[0]._set_data_bundle("x")
    del things[1]
    rec = [r for r in t.snapshot() if r["name"].endswith("Thing")][0]
    assert (rec["live"], rec["created"], rec["destroyed"], rec["updated"]) == (3, 4, 1, 1)
    snap = pytracker.read_snapshot(path=t.path)
    assert classes(snap)["Thing"]["live"] == 3
    assert "ShmTracker" in repr(t)
    pytracker.set_global_tracker(None)
    path = t.path
    t.close()
    assert not os.path.exists(path)


def test_full_directory_warns_and_keeps_running(tmp_path):
    """A file system with no room for the segment: real (a 16 KiB tmpfs)
    when this test may mount one, else a file-size limit that makes sizing
    the segment fail the same way."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = (
        os.getuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(tiny)], capture_output=True
        ).returncode
        == 0
    )
    code = textwrap.dedent(
        """
        import resource, signal, sys, warnings
        warnings.simplefilter("always")
        if sys.argv[1] == "limit":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        import pytracker
        class A(pytracker.Trackable):
            pass
        t = pytracker.start_exporter(directory=sys.argv[2])
        keep = [A() for _ in range(5)]
        print(t.path, [r["live"] for r in t.snapshot()])
        print(t.problem)
        """
    )
    try:
        r = subprocess.run(
            [sys.executable, "-c", code, "mounted" if mounted else "limit", str(tiny)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        first, problem = r.stdout.splitlines()
        assert first == "None [5]"
        assert "cannot create segment in %s" % tiny in problem
        assert ("No space left on device" if mounted else "File too large") in problem
        assert r.stderr.count("RuntimeWarning") == 1
        assert [p for p in os.listdir(tiny)] == [], "no half-made file is left behind"
    finally:
        if mounted:
            subprocess.run(["umount", str(tiny)])


def test_old_segments_of_killed_processes_are_pruned(shm_dir):
    """Services killed again and again must not fill /dev/shm: each new
    exporter keeps the 8 newest exited segments of its user and removes the
    rest; live writers' segments are never touched."""
    live = TrackedProcess(shm_dir)
    killed = []
    for _ in range(12):
        w = TrackedProcess(shm_dir)
        w.kill()
        killed.append(w.pid)
    newest = TrackedProcess(shm_dir)
    try:
        # The new exporter's sampler thread prunes as it starts.
        want = sorted([live.pid, newest.pid] + killed[-8:])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = sorted(int(p.name.split("-")[2]) for p in segments(shm_dir))
            if pids == want:
                break
            time.sleep(0.02)
        assert pids == want
        assert pytracker.read_snapshot(pid=live.pid)["process"]["writer_state"] == "alive"
    finally:
        live.kill()
        newest.kill()


def test_path_is_none_when_publishing_failed(shm_dir):
    # Something else sits at the name the segment would get: the tracker
    # must not claim it as its own (nor remove it at exit).
    code = textwrap.dedent(
        """
        import os, warnings
        import pytracker
        pid = os.getpid()
        start = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19]
        squatter = os.path.join(os.environ["PYTRACKER_DIR"], "pytracker-%d-%d-%s-0" % (os.geteuid(), pid, start))
        os.mkdir(squatter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = pytracker.ShmTracker(sampler=False)
        print(t.path)
        print(t.problem)
        print(len(caught))
        class C(pytracker.Trackable):
            pass
        pytracker.set_global_tracker(t)
        kept = [C() for _ in range(5)]
        print(t.snapshot()[0]["live"])
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTRACKER_DIR=str(shm_dir)),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    path, problem, warned, live = r.stdout.splitlines()
    assert path == "None"
    assert problem.startswith("cannot publish segment") and warned == "1"
    assert live == "5"
    (left,) = list(shm_dir.iterdir())
    assert left.is_dir(), "the squatter is left alone"


def test_start_exporter_adopts_existing_objects(tmp_path):
    """An import-time pool (no tracker yet) and objects of the previous
    global tracker are counted by the exporter; objects given a tracker of
    their own, and classes that opt out, are left alone."""
    code = textwrap.dedent(
        """
        import json, sys, pytracker
        class Pool(pytracker.Trackable):
            pass
        class Quiet(pytracker.Trackable):
            _disable_global_tracker = True
        class Own(pytracker.Trackable):
            pass
        pool = [Pool() for _ in range(4)]
        quiet = Quiet()
        counting = pytracker.CountingTracker()
        pytracker.set_global_tracker(counting)
        later = [Pool() for _ in range(2)]
        mine = pytracker.CountingTracker()
        own = Own()
        own._set_tracker(mine)
        exporter = pytracker.start_exporter(directory=sys.argv[1], sampler=False)
        print(json.dumps({
            "exporter": {r["name"]: r["live"] for r in exporter.snapshot()},
            "previous": {r["name"]: r["live"] for r in counting.snapshot()},
            "own_kept": own._get_tracker() is mine,
            "quiet": quiet._get_tracker() is None,
            "segment": str(exporter.path),
        }))
        """
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["exporter"] == {"__main__.Pool": 6}
    assert got["previous"]["__main__.Pool"] == 0, "moved, so not counted twice"
    assert got["own_kept"] and got["quiet"]
