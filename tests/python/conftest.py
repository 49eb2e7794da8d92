import gc
import os

import pytest
import pytracker
from tools import Recorder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _no_global_tracker():
    """Every test starts and ends without a global tracker."""
    pytracker.set_global_tracker(None)
    yield
    pytracker.set_global_tracker(None)
    gc.collect()


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
