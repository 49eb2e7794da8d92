import os
import sys

# The helpers of the Python suite (tools.run_tool, tools.binary).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))

import pytest  # noqa: E402


@pytest.fixture
def shm_dir(tmp_path, monkeypatch):
    """A private segment directory, for writers and readers alike."""
    d = tmp_path / "shm"
    d.mkdir()
    monkeypatch.setenv("PYTRACKER_DIR", str(d))
    monkeypatch.delenv("PYTRACKER_SERVICE", raising=False)
    return d
