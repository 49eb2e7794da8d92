import gc
import os
import subprocess
import sys

import pytest
import pytracker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _no_global_tracker():
    """Every test starts and ends without a global tracker."""
    pytracker.set_global_tracker(None)
    yield
    pytracker.set_global_tracker(None)
    gc.collect()


class Recorder(pytracker.TrackerMixin):
    """A tracker that records every notification."""

    def __init__(self):
        self.events = []

    def notify_attached(self, serial, objtype, bundle):
        self.events.append(("attached", serial, objtype, bundle))

    def notify_detached(self, serial, objtype, bundle):
        self.events.append(("detached", serial, objtype, bundle))

    def notify_updated(self, serial, objtype, bundle):
        self.events.append(("updated", serial, objtype, bundle))

    def notify_destroyed(self, serial, objtype, bundle):
        self.events.append(("destroyed", serial, objtype, bundle))

    def kinds(self):
        return [e[0] for e in self.events]


@pytest.fixture
def shm_dir(tmp_path, monkeypatch):
    """A private segment directory, used by writers and readers alike
    (through $PYTRACKER_DIR)."""
    d = tmp_path / "shm"
    d.mkdir()
    monkeypatch.setenv("PYTRACKER_DIR", str(d))
    return d


@pytest.fixture
def recorder():
    return Recorder()


def run_python(code, env=None, timeout=60):
    """Runs ``code`` in a fresh interpreter of this virtualenv."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
