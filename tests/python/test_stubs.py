"""The type stubs match the compiled module, and the package type-checks."""

import subprocess
import sys


def test_stubtest_native_module(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "pytracker._native"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_package_type_checks(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "pytracker"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
