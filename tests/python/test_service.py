"""Services: a multiprocessing pool's processes, with each start method,
read as one service (worker numbers, the master, sums and the per-worker
spread), and what --pid on a master says."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from tools import run_tool

POOL = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, time
    import pytracker

    class Job(pytracker.Trackable):
        pass

    keep = []

    def work(i):
        keep.extend(Job() for _ in range(10 * (i + 1)))
        # Every worker takes one task: the others are busy meanwhile.
        time.sleep(1.5)
        return os.getpid()

    def start_in_worker():
        pytracker.start_exporter(service="pool-workers")

    def park(_):
        time.sleep(3600)

    if __name__ == "__main__":
        init = None
        if sys.argv[2] == "export":
            pytracker.start_exporter(service="pool-" + sys.argv[1])
            # Children that run a new interpreter (spawn, forkserver)
            # export too, as with PYTRACKER_EXPORT=1 for the whole service.
            os.environ["PYTRACKER_EXPORT"] = "1"
        elif sys.argv[2] == "workers":
            # Only the workers export (as a post-fork hook would do).
            init = start_in_worker
        ctx = mp.get_context(sys.argv[1])
        with ctx.Pool(3, initializer=init) as p:
            pids = p.map(work, range(3), chunksize=1)
            print(" ".join(map(str, sorted(set(pids)))), flush=True)
            p.map_async(park, range(3), chunksize=1)
            sys.stdin.readline()
    """
)


def start_pool(tmp_path, method, mode, env_extra=None):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    env = dict(os.environ)
    env.pop("PYTRACKER_SERVICE", None)
    env.update(env_extra or {})
    p = subprocess.Popen(
        [sys.executable, str(script), method, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    return p


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)


def ps_rows(service):
    r = run_tool("pytracker-cli", "ps", "--format", "json")
    assert r.returncode == 0, r.stderr
    return [x for x in json.loads(r.stdout)["processes"] if x.get("service") == service and x["state"] == "alive"]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_pool_is_one_service(shm_dir, tmp_path, method):
    service = "pool-" + method
    # spawn and forkserver children run a new interpreter: they export
    # because the environment says so, and belong to the parent's service
    # through $PYTRACKER_SERVICE, which start_exporter sets for them.
    p = start_pool(tmp_path, method, "export")
    try:
        line = p.stdout.readline()
        assert line, "the pool did not start"
        workers = set(map(int, line.split()))
        assert len(workers) == 3
        rows = ps_rows(service)
        by_pid = {r["pid"]: r for r in rows}
        assert workers <= set(by_pid), rows
        labels = [r["worker_label"] for r in rows]
        assert len(labels) == len(set(labels)), labels
        # The exporting parent, whose workers were started by it, is the
        # master (forkserver's children are the fork server's: it is then
        # the parent of the fork server, itself a member only if it
        # exported).
        if method != "forkserver":
            assert by_pid[p.pid]["worker_label"] == "master", rows
        # Worker numbers are the lowest free ones: the parent, which
        # published first, holds 0. (A fork server that imports the
        # script, as 3.14's does, exports too and holds one of them.)
        numbers = sorted(by_pid[w]["worker"] for w in workers)
        if method == "forkserver":
            assert len(set(numbers)) == 3 and set(numbers) <= {1, 2, 3, 4}, rows
        else:
            assert numbers == [1, 2, 3], rows

        r = run_tool("pytracker-cli", "dump", "--service", service, "--format", "json", "--per-worker")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["service"] == service and doc["schema_version"] == 1
        # Spawned children import the script as __mp_main__.
        (job,) = [c for c in doc["classes"] if c["name"].endswith(".Job")]
        assert job["live"] == 60
        # The parent (and a fork server) hold none; each worker its share.
        assert sorted(v for v in job["per_worker"].values() if v) == [10, 20, 30], job["per_worker"]
        assert set(job["per_worker"]) == set(labels)

        table = run_tool("pytracker-cli", "dump", "--service", service, "--per-worker")
        assert table.returncode == 0, table.stderr
        assert "service %s: " % service in table.stdout
        job_rows = [l for l in table.stdout.splitlines() if l.split(" ")[0].endswith(".Job")]
        assert len(job_rows) == 2, table.stdout
        assert job_rows[1].split()[1:3] == ["0", "30"] or job_rows[1].split()[1:3] == ["10", "30"], table.stdout

        ps = run_tool("pytracker-cli", "ps")
        assert max(len(l) for l in ps.stdout.splitlines()) <= 100, ps.stdout
    finally:
        stop(p)


def test_worker_numbers_are_reused_after_a_worker_is_killed(shm_dir, tmp_path):
    p = start_pool(tmp_path, "fork", "export")
    try:
        workers = list(map(int, p.stdout.readline().split()))
        before = {r["pid"]: r["worker"] for r in ps_rows("pool-fork")}
        victim = workers[0]
        freed = before[victim]
        os.kill(victim, signal.SIGKILL)
        # The pool replaces the worker; the new one takes the freed number.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = ps_rows("pool-fork")
            numbers = sorted(r["worker"] for r in rows if r["pid"] != p.pid)
            if victim not in {r["pid"] for r in rows} and len(numbers) == 3:
                break
            time.sleep(0.2)
        # The new worker exports only once it creates a Trackable or the
        # fork hook publishes its segment: numbers stay within 1..3.
        assert numbers == [1, 2, 3], rows
    finally:
        stop(p)


def test_pid_of_a_master_points_to_the_service(shm_dir, tmp_path):
    p = start_pool(tmp_path, "fork", "export")
    try:
        assert p.stdout.readline()
        r = run_tool("pytracker-cli", "dump", "--pid", p.pid)
        assert r.returncode == 0, r.stderr
        assert "master of service pool-fork" in r.stderr and "--service pool-fork" in r.stderr, r.stderr
    finally:
        stop(p)

    # Workers that export by themselves, a parent that does not.
    p = start_pool(tmp_path, "fork", "workers")
    try:
        workers = p.stdout.readline().split()
        assert workers
        r = run_tool("pytracker-cli", "dump", "--pid", p.pid)
        assert r.returncode == 2
        assert "does not export a segment, but its workers do (service pool-workers" in r.stderr, r.stderr
        assert "--service pool-workers" in r.stderr, r.stderr
        assert all(w in r.stderr for w in workers), r.stderr
        ok = run_tool("pytracker-cli", "dump", "--service", "pool-workers", "--format", "json")
        assert json.loads(ok.stdout)["classes"][0]["live"] == 60
    finally:
        stop(p)
