"""Root reading segments in a directory every user can write to: planted
segments are refused for --pid and flagged by ps; a lock held by another
process does not make a writer alive; clean leaves other users' files."""

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest
from tools import TrackedProcess, binary, run_tool

NOBODY = 65534
# Header offsets of docs/segment-format.md.
CREATED_MONO_NS = 120
CLASS_COUNT = 152


def as_nobody(argv, **kw):
    return ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"] + argv


@pytest.fixture
def shared_dir(monkeypatch):
    """A segment directory like /dev/shm: mode 1777, reachable by every user."""
    assert os.geteuid() == 0, "these tests play root against a second uid (setpriv): run the suite as root, as CI does"
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed"
    d = tempfile.mkdtemp(prefix="pytracker-shared-", dir="/tmp")
    os.chmod(d, 0o1777)
    monkeypatch.setenv("PYTRACKER_DIR", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cli(*args):
    return run_tool("pytracker-cli", *args)


def plant(directory, name, data):
    """Another user writes `data` to `name` in `directory` and holds an
    exclusive flock on it, as a forger would. Returns the process."""
    path = os.path.join(directory, name)
    p = subprocess.Popen(
        as_nobody(["sh", "-c", 'cat > "$1" && exec flock -x "$1" sh -c "echo locked; exec sleep 300"', "sh", path]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=False,
    )
    p.stdin.write(data)
    p.stdin.close()
    assert p.stdout.readline() == b"locked\n"
    assert os.stat(path).st_uid == NOBODY
    return p


def test_root_refuses_segments_planted_by_another_user(shared_dir):
    victim = TrackedProcess(shared_dir)
    planters = []
    try:
        victim.make("Order", 100, 50)
        (real,) = os.listdir(shared_dir)
        with open(os.path.join(shared_dir, real), "rb") as f:
            data = bytearray(f.read())
        # The forgery: the victim's own header (pid, start time), no classes,
        # and the newest creation time so that it would be preferred.
        struct.pack_into("<Q", data, CLASS_COUNT, 0)
        struct.pack_into("<Q", data, CREATED_MONO_NS, 2**62)
        start = real.split("-")[3]
        planters.append(plant(shared_dir, "pytracker-0-%d-%s-9" % (victim.pid, start), bytes(data)))
        planters.append(plant(shared_dir, "pytracker-%d-%d-%s-8" % (NOBODY, victim.pid, start), bytes(data)))

        out = cli("dump", "--pid", victim.pid)
        assert out.returncode == 0, out.stderr
        assert "1 classes, 50 live objects" in out.stdout
        r = cli("check", "--pid", victim.pid, "--max-total", "10")
        assert r.returncode == 1, r.stdout + r.stderr
        import pytracker

        snap = pytracker.read_snapshot(victim.pid)
        assert sum(c["live"] for c in snap["classes"]) == 50

        ps = cli("ps")
        assert ps.returncode == 0, ps.stderr
        planted_rows = [l for l in ps.stdout.splitlines() if "UNTRUSTED (" in l]
        assert len(planted_rows) == 2, ps.stdout
        assert all(" nobody " in l for l in planted_rows)
        notes = [l for l in ps.stdout.splitlines() if l.startswith("UNTRUSTED ")]
        assert any("its name says uid 0 but the file is owned by uid 65534" in l for l in notes), notes
        assert any("process %d runs as uid 0 but the file is owned by uid 65534" % victim.pid in l for l in notes), (
            notes
        )
        rows = json.loads(cli("ps", "--format", "json").stdout)["processes"]
        owners = sorted((r["owner_uid"], "untrusted" in r) for r in rows)
        assert owners == [(0, False), (NOBODY, True), (NOBODY, True)]

        # Named by hand, the file is read, with a warning.
        planted = os.path.join(shared_dir, "pytracker-0-%d-%s-9" % (victim.pid, start))
        by_path = cli("dump", "--path", planted)
        assert by_path.returncode == 0
        assert "may not describe the process it names" in by_path.stderr

        # With only planted files left, --pid refuses and says why.
        os.remove(os.path.join(shared_dir, real))
        r = cli("dump", "--pid", victim.pid)
        assert r.returncode == 2
        assert "refusing" in r.stderr and "planted by another user" in r.stderr
    finally:
        victim.kill()
        for p in planters:
            p.kill()
            p.wait()


def test_a_lock_held_by_another_process_is_not_a_live_writer(shm_dir):
    victim = TrackedProcess(shm_dir)
    victim.make("Order", 3, 3)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    (seg,) = os.listdir(shm_dir)
    path = os.path.join(shm_dir, seg)
    holder = subprocess.Popen(["flock", "-x", path, "sh", "-c", "echo locked; exec sleep 300"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        out = cli("dump", "--path", path)
        assert out.returncode == 0, out.stderr
        assert "writer locked by another process" in out.stdout.splitlines()[0]
        assert "its lock is held by pid [%d], not by its writer (pid %d)" % (holder.pid, victim.pid) in out.stderr
        r = cli("check", "--pid", victim.pid, "--max-total", "10")
        assert r.returncode == 2 and "refusing" in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_check_refuses_an_exited_process_unless_allowed(shm_dir):
    victim = TrackedProcess(shm_dir)
    victim.make("Order", 3, 3)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    r = cli("check", "--pid", victim.pid, "--max-total", "10")
    assert r.returncode == 2
    assert "is not running (exited)" in r.stderr and "--allow-exited" in r.stderr
    r = cli("check", "--pid", victim.pid, "--max-total", "10", "--allow-exited")
    assert r.returncode == 0, r.stderr
    r = cli("check", "--pid", victim.pid, "--max-total", "1", "--allow-exited")
    assert r.returncode == 1


def test_non_root_clean_leaves_other_users_segments(shared_dir):
    victim = TrackedProcess(shared_dir)
    victim.make("Order", 3, 3)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    tool = os.path.join(shared_dir, "cli-copy")
    shutil.copy(binary("pytracker-cli"), tool)
    os.chmod(tool, 0o755)
    env = dict(os.environ, PYTRACKER_DIR=shared_dir)
    r = subprocess.run(as_nobody([tool, "clean", "--yes"]), capture_output=True, text=True, env=env)
    os.remove(tool)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped 1 segment(s) of other users" in r.stdout
    assert len([n for n in os.listdir(shared_dir) if n.startswith("pytracker-")]) == 1
    r = cli("clean", "--yes")
    assert r.returncode == 0 and "removed" in r.stdout
