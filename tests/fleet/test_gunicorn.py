"""A real gunicorn with four sync workers recycled by --max-requests,
serving an application whose one class leaks: the service view sums the
leaking class over the workers and ranks it first, worker numbers stay
within 0..3 across recycling, and the segment directory holds no more
than the live workers' segments and a bounded number of leftovers."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

from tools import run_tool

APP = textwrap.dedent(
    """
    import pytracker

    class Leak(pytracker.Trackable):
        pass

    class Request(pytracker.Trackable):
        pass

    kept = []

    def app(environ, start_response):
        Request()
        kept.append(Leak())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\\n"]
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(service):
    r = run_tool("pytracker-cli", "ps", "--format", "json")
    assert r.returncode == 0, r.stderr
    return [p for p in json.loads(r.stdout)["processes"] if p.get("service") == service and p["state"] == "alive"]


def test_gunicorn_workers_are_one_service_across_recycling(shm_dir, tmp_path):
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    assert gunicorn, "gunicorn is missing from the test environment: `make venv` installs it"
    (tmp_path / "leaky.py").write_text(APP)
    port = free_port()
    env = dict(os.environ, PYTRACKER_EXPORT="1", PYTRACKER_SERVICE="shop-web", PYTHONPATH=str(tmp_path))
    server = subprocess.Popen(
        [
            gunicorn,
            "--bind",
            "127.0.0.1:%d" % port,
            "--workers",
            "4",
            "--max-requests",
            "25",
            "--max-requests-jitter",
            "0",
            "leaky:app",
        ],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "gunicorn.log").open("w"),
        start_new_session=True,
    )
    try:
        url = "http://127.0.0.1:%d/" % port
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        numbers_seen = set()
        pids_seen = set()
        # 400 requests: each worker is recycled several times.
        for i in range(400):
            urllib.request.urlopen(url, timeout=10).read()
            if i % 20 == 0:
                for p in alive("shop-web"):
                    numbers_seen.add(p["worker"])
                    pids_seen.add(p["pid"])
        # Let the last recycled workers come back.
        deadline = time.monotonic() + 20
        while len(alive("shop-web")) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in alive("shop-web"):
            numbers_seen.add(p["worker"])
            pids_seen.add(p["pid"])
        assert len(pids_seen) > 4, "no worker was recycled: %s" % pids_seen
        assert numbers_seen <= {0, 1, 2, 3}, numbers_seen

        # A few more requests so every live worker holds some leaked objects.
        for _ in range(40):
            urllib.request.urlopen(url, timeout=10).read()
        # A worker just recycled may be between its exit and its
        # successor's start: read until all four are there.
        deadline = time.monotonic() + 30
        while True:
            r = run_tool("pytracker-cli", "dump", "--service", "shop-web", "--format", "json", "--per-worker")
            assert r.returncode == 0, r.stderr
            doc = json.loads(r.stdout)
            first = doc["classes"][0] if doc["classes"] else {}
            settled = len(doc["workers"]) == 4 and first.get("name") == "leaky.Leak" and first["live"] > 0
            if settled or time.monotonic() > deadline:
                break
            # (Every worker may have been recycled at once: one more
            # request leaves a leaked object somewhere.)
            urllib.request.urlopen(url, timeout=10).read()
            time.sleep(0.2)
        assert len(doc["workers"]) == 4, doc["workers"]
        assert {w["worker"] for w in doc["workers"]} <= {0, 1, 2, 3}, doc["workers"]
        assert doc["classes"][0]["name"] == "leaky.Leak", doc["classes"]
        leak = doc["classes"][0]
        assert leak["live"] > 0 and sum(leak["per_worker"].values()) == leak["live"]

        # Recycled workers leave no segment behind (they exit cleanly); at
        # most the live workers' segments remain, and a bounded few others.
        segments = [n for n in os.listdir(shm_dir) if n.startswith("pytracker-")]
        assert len(segments) <= 4 + 8, segments
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
