"""`pip install ./tracker-py` into a fresh virtualenv gives the package and
both tools."""

import json
import os
import subprocess
import venv

from tools import REPO, TrackedProcess


def test_pip_install_gives_package_and_tools(tmp_path, shm_dir):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", os.path.join(REPO, "tracker-py")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [str(py), "-c", "import pytracker; print(pytracker.version(), pytracker.__file__)"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    version, location = r.stdout.split()
    assert version == "1" and str(env_dir) in location
    proc = TrackedProcess(shm_dir)
    try:
        proc.make("Order", 10, 4)
        r = subprocess.run(
            [str(env_dir / "bin" / "pytracker-cli"), "dump", "--pid", str(proc.pid), "--format", "json"],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        classes = {c["name"]: c["live"] for c in json.loads(r.stdout)["classes"]}
        assert classes == {"__main__.Order": 4}
        r = subprocess.run([str(env_dir / "bin" / "pytracker-top"), "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith("pytracker-top ")
    finally:
        proc.kill()
