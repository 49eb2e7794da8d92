"""pytracker-cli serve as Prometheus sees it: the text checked by promtool
and by prometheus_client's two parsers, and a real Prometheus server
(started here on loopback) scraping it and answering a query about the
leaking class of a service."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request

import pytest
from tools import binary

SERVICE = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, time
    import pytracker

    class Leak(pytracker.Trackable):
        pass

    class Conn(pytracker.Trackable):
        pass

    keep = []

    def work(i):
        keep.extend(Leak() for _ in range(10 * (i + 1)))
        keep.extend(Conn() for _ in range(5))
        time.sleep(1.0)
        return os.getpid()

    def park(_):
        time.sleep(3600)

    if __name__ == "__main__":
        pytracker.start_exporter(service="shop")
        with mp.get_context("fork").Pool(3) as p:
            print(" ".join(map(str, p.map(work, range(3), chunksize=1))), flush=True)
            p.map_async(park, range(3), chunksize=1)
            sys.stdin.readline()
    """
)


@pytest.fixture
def service(shm_dir, tmp_path):
    script = tmp_path / "shop.py"
    script.write_text(SERVICE)
    p = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert p.stdout.readline(), "the service did not start"
    yield p
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


@pytest.fixture
def serve(service):
    s = subprocess.Popen(
        [binary("pytracker-cli"), "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    line = s.stdout.readline()
    assert line.startswith("serving http://127.0.0.1:"), line
    url = line.split()[1]
    yield url
    s.kill()
    s.wait(timeout=10)


def fetch(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()


OM = "application/openmetrics-text; version=1.0.0"


def test_both_formats_pass_promtool_and_prometheus_client(serve):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
    from prometheus_client.parser import text_string_to_metric_families as parse_prom

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make system-deps` installs Debian's prometheus package"
    ctype, prom = fetch(serve)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    check = subprocess.run([promtool, "check", "metrics"], input=prom, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (check.stdout, check.stderr, prom)

    families = {f.name: f for f in parse_prom(prom)}
    assert families["pytracker_objects_created"].type == "counter"
    live = [s for s in families["pytracker_objects_live"].samples if s.labels["class"] == "__main__.Leak"]
    assert sorted(s.value for s in live) == [10, 20, 30]
    assert {s.labels["service"] for s in live} == {"shop"}
    assert sorted(s.labels["worker"] for s in live) == ["1", "2", "3"]
    assert all("pid" not in s.labels for s in live)

    ctype, om = fetch(serve, OM)
    assert ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
    families = {f.name: f for f in parse_om(om)}  # raises on anything invalid
    created = families["pytracker_objects_created"]
    assert created.type == "counter"
    names = {s.name for s in created.samples}
    assert names == {"pytracker_objects_created_total", "pytracker_objects_created_created"}
    stamps = {s.value for s in created.samples if s.name.endswith("_created")}
    assert all(abs(t - time.time()) < 600 for t in stamps), stamps

    # --top-k 1 keeps the largest class per service and sums the rest.
    r = subprocess.run(
        [binary("pytracker-cli"), "dump", "--service", "shop", "--format", "prometheus", "--top-k", "1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    classes = {s.labels["class"] for f in parse_prom(r.stdout) for s in f.samples if "class" in s.labels}
    assert classes == {"__main__.Leak", "<other classes>"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_prometheus_server_scrapes_serve(serve, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: `make system-deps` installs Debian's prometheus package"
    target = urllib.parse.urlparse(serve).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: pytracker
                static_configs:
                  - targets: ["%s"]
            """
            % target
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            prometheus,
            "--config.file=%s" % config,
            "--storage.tsdb.path=%s" % (tmp_path / "data"),
            "--web.listen-address=127.0.0.1:%d" % port,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        query = 'sum by (service) (pytracker_objects_live{class="__main__.Leak"})'
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": query}))
        deadline = time.monotonic() + 60
        result = None
        while time.monotonic() < deadline:
            try:
                _, body = fetch(url)
                result = json.loads(body)["data"]["result"]
                if result:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert result, "Prometheus found no series: %s" % (tmp_path / "prometheus.log").read_text()[-2000:]
        assert [(r["metric"]["service"], r["value"][1]) for r in result] == [("shop", "60")]
        # The counters arrive as counters (OpenMetrics was negotiated).
        meta_url = "http://127.0.0.1:%d/api/v1/metadata?metric=pytracker_objects_created" % port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = json.loads(fetch(meta_url)[1])["data"]
            if meta:
                break
            time.sleep(0.5)
        assert meta["pytracker_objects_created"][0]["type"] == "counter", meta
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
