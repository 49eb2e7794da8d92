"""Writers and readers in different pid namespaces, made with unshare: a
writer in a container seen from the host (alive, with its pid there and
here), and a sidecar that shares only the segment directory telling a live
writer from an exited one by its lock alone."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from tools import binary

WRITER = textwrap.dedent(
    """
    import os, sys, pytracker
    class Box(pytracker.Trackable):
        pass
    pytracker.start_exporter(service="boxed")
    keep = [Box() for _ in range(7)]
    print(os.getpid(), flush=True)
    sys.stdin.readline()
    """
)


def unshare():
    path = shutil.which("unshare")
    assert path, "unshare (util-linux) is missing"
    assert os.geteuid() == 0, "these tests make pid namespaces: run them as root (CI does)"
    return [path, "--pid", "--fork", "--mount-proc"]


def ps(*prefix):
    r = subprocess.run(
        list(prefix) + [binary("pytracker-cli"), "ps", "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return [p for p in json.loads(r.stdout)["processes"] if p.get("service") == "boxed"]


def test_a_writer_in_a_container_is_alive_with_both_pids(shm_dir):
    w = subprocess.Popen(
        unshare() + [sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert w.stdout.readline().strip() == "1", "the writer is pid 1 of its namespace"
        (row,) = ps()
        assert row["state"] == "alive" and row["pid"] == 1 and "untrusted" not in row, row
        host = row["host_pid"]
        with open("/proc/%d/cmdline" % host, "rb") as f:
            assert b"pytracker.start_exporter" in f.read()
        table = subprocess.run([binary("pytracker-cli"), "ps"], capture_output=True, text=True).stdout
        assert "pid %d runs in another pid namespace (a container), where it is pid 1" % host in table, table
        doc = json.loads(
            subprocess.run(
                [binary("pytracker-cli"), "dump", "--service", "boxed", "--format", "json"],
                capture_output=True,
                text=True,
            ).stdout
        )
        assert doc["classes"][0]["live"] == 7
    finally:
        w.stdin.close()
        w.wait(timeout=30)


def test_a_sidecar_without_the_writers_pids_tells_alive_from_exited(shm_dir):
    w = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(w.stdout.readline())
        # The reader's /proc shows none of the writer's processes.
        (row,) = ps(*unshare())
        assert row["state"] == "alive" and row["pid"] == pid, row
        os.kill(pid, signal.SIGKILL)
        w.wait(timeout=30)
        deadline = time.monotonic() + 10
        while True:
            (row,) = ps(*unshare())
            if row["state"] != "alive" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert row["state"] == "exited", row
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def test_a_container_with_its_own_dev_shm_is_found_through_its_root(tmp_path, monkeypatch):
    """A writer in new mount and pid namespaces with a private tmpfs as its
    /dev/shm (as in a container): the host's readers, searching their
    default directories, find its segment through /proc/PID/root and
    resolve its host pid."""
    monkeypatch.delenv("PYTRACKER_DIR", raising=False)
    monkeypatch.delenv("PYTRACKER_SERVICE", raising=False)
    inner = "mount -t tmpfs -o size=8m tmpfs /dev/shm && exec %s -c %s" % (
        sys.executable,
        shlex.quote(WRITER.replace('service="boxed"', 'service="mounted"')),
    )
    w = subprocess.Popen(unshare() + ["sh", "-c", inner], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout.readline().strip() == "1", "the writer is pid 1 of its namespace"
        rows = [p for p in json.loads(cli("ps", "--format", "json"))["processes"] if p.get("service") == "mounted"]
        assert len(rows) == 1, rows
        (row,) = rows
        host = row["host_pid"]
        assert row["state"] == "alive" and row["pid"] == 1, row
        assert row["segment"].startswith("/proc/") and "/root/dev/shm/pytracker-" in row["segment"], row
        assert not any(f.startswith("pytracker-0-1-") and "mounted" in f for f in os.listdir("/dev/shm"))
        doc = json.loads(cli("dump", "--pid", str(host), "--format", "json"))
        assert doc["process"]["pid"] == 1 and doc["process"]["host_pid"] == host, doc["process"]
        assert doc["classes"][0]["live"] == 7
        text = cli("dump", "--pid", str(host))
        assert "pid %d (pid 1 in its container)" % host in text, text
        doc = json.loads(cli("dump", "--service", "mounted", "--format", "json"))
        assert doc["classes"][0]["live"] == 7
        # The host's pid 1 is not the container's.
        r = subprocess.run([binary("pytracker-cli"), "dump", "--pid", "1"], capture_output=True, text=True)
        assert r.returncode != 0 and "mounted" not in r.stdout, r.stdout
    finally:
        w.stdin.close()
        w.wait(timeout=30)


def cli(*args):
    r = subprocess.run([binary("pytracker-cli")] + list(args), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout
