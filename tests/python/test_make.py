"""`make build` reinstalls the extension only when something it is built
from changed (maturin develop takes about 13 s even with nothing to do)."""

import os
import subprocess

from tools import REPO


def dry_run(tmp_path, ext):
    r = subprocess.run(
        ["make", "-n", "build", "VENV=%s" % (tmp_path / "venv"), "EXTENSION=%s" % ext],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_build_skips_an_up_to_date_extension(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".ready").touch()
    ext = tmp_path / "_native.so"
    ext.touch()
    out = dry_run(tmp_path, ext)
    assert "maturin" not in out, out
    assert "cargo build --release" in out, "the binaries are still checked (cargo is quick when idle)"
    # Older than a Rust source: rebuilt.
    source = os.path.join(REPO, "tracker-shm", "src", "ring.rs")
    os.utime(ext, (0, 0))
    os.utime(venv / ".ready", (0, 0))
    assert os.path.getmtime(source) > 0
    out = dry_run(tmp_path, ext)
    assert "maturin develop" in out, out
