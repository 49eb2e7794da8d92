"""Forks of a tracked process: a child's counts are those at the fork even
while the parent's threads keep working; a child forked from any thread
exits; a child that cannot publish warns; a long-lived parent bounds the
segments its children leave."""

import os
import subprocess
import sys
import textwrap
import time

import pytracker


def run(code, shm_dir, timeout=60, **env):
    e = dict(os.environ, PYTRACKER_DIR=str(shm_dir))
    e.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e, timeout=timeout
    )


BUSY_PARENT = """
    import json, os, sys, threading, time
    import pytracker
    t = pytracker.start_exporter(sampler=False)
    class Job(pytracker.Trackable):
        pass
    stop = threading.Event()
    def churn():
        kept = []
        while not stop.is_set():
            kept.append(Job())
            if len(kept) > 500:
                kept.clear()
    threading.Thread(target=churn, daemon=True).start()
    time.sleep(0.05)
    results = []
    for i in range(20):
        r, w = os.pipe()
        # Counted at the fork, by the forking thread, with the GIL held.
        pid = os.fork()
        if pid == 0:
            os.close(r)
            live_at_fork = sum(c["live"] for c in t.snapshot())
            # What a reader sees, against what this child really holds.
            import gc
            held = sum(1 for o in gc.get_objects() if isinstance(o, Job))
            os.write(w, json.dumps([live_at_fork, held]).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
        os.waitpid(pid, 0)
        results.append(json.loads(data))
    stop.set()
    print(json.dumps(results))
"""


def test_child_counts_are_those_at_the_fork_with_a_busy_parent_thread(shm_dir):
    r = run(BUSY_PARENT, shm_dir)
    assert r.returncode == 0, r.stderr
    import json

    results = json.loads(r.stdout)
    assert len(results) == 20
    off = [(counted, held) for counted, held in results if counted != held]
    assert not off, "children whose counts differ from the objects they hold: %s" % off


FROM_A_THREAD = """
    import os, sys, threading
    import pytracker
    pytracker.start_exporter(history_period=0.05)
    class Job(pytracker.Trackable):
        pass
    kept = [Job() for _ in range(3)]
    def fork_here():
        pid = os.fork()
        if pid == 0:
            kept.append(Job())
            sys.exit(0)  # leaves through the interpreter's normal exit
        _, status = os.waitpid(pid, 0)
        print("child status", status, flush=True)
    th = threading.Thread(target=fork_here)
    th.start()
    th.join()
"""


def test_a_child_forked_from_a_thread_exits(shm_dir):
    r = run(FROM_A_THREAD, shm_dir, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "child status 0" in r.stdout


CHILD_CANNOT_PUBLISH = """
    import os, sys, warnings
    import pytracker
    warnings.simplefilter("always")
    pytracker.start_exporter(sampler=False)
    d = os.environ["PYTRACKER_DIR"]
    os.chmod(d, 0o500)
    pid = os.fork()
    if pid == 0:
        sys.stderr.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    os.chmod(d, 0o700)
"""


def test_a_child_that_cannot_publish_warns_once(shm_dir):
    # As root, a read-only directory is still writable: use a path that
    # vanishes instead.
    code = CHILD_CANNOT_PUBLISH.replace("os.chmod(d, 0o500)", 'os.rename(d, d + ".gone")').replace(
        "os.chmod(d, 0o700)", 'os.rename(d + ".gone", d)'
    )
    r = run(code, shm_dir)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("RuntimeWarning") == 1, r.stderr
    assert "pytracker:" in r.stderr and "counting continues in this process only" in r.stderr


FORK_POOL = """
    import os, sys, time
    import pytracker
    pytracker.start_exporter(history_period=0.01, keep_exited=3)
    class Job(pytracker.Trackable):
        pass
    for i in range(25):
        pid = os.fork()
        if pid == 0:
            Job()
            os._exit(0)  # no atexit: the child's segment stays behind
        os.waitpid(pid, 0)
    print("forked", flush=True)
    sys.stdin.readline()
"""


def test_a_long_lived_parent_prunes_what_its_children_leave(shm_dir):
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(FORK_POOL)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTRACKER_DIR=str(shm_dir)),
    )
    try:
        assert p.stdout.readline().strip() == "forked"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = [n for n in os.listdir(shm_dir) if n.startswith("pytracker-")]
            if len(left) <= 4:
                break
            time.sleep(0.1)
        assert len(left) <= 4, "parent + 3 kept exited segments, found %d" % len(left)
        assert pytracker.read_snapshot(pid=p.pid)["process"]["writer_state"] == "alive"
    finally:
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(timeout=30)
