"""The type stubs match the compiled module, the package type-checks under
``mypy --strict``, and the types say what the records hold."""

import subprocess
import sys
import textwrap

import pytracker


def mypy(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "mypy", *args],
        capture_output=True,
        text=True,
        cwd=str(cwd),
        timeout=600,
    )


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


def test_package_type_checks_strictly(tmp_path):
    r = mypy("--strict", "-p", "pytracker", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_user_code_is_checked_against_the_real_signatures(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent("""
        import pytracker

        tracker = pytracker.start_exporter(events=False, history_period=0.5)
        problem: str | None = tracker.problem
        record: pytracker.ClassRecord = pytracker.CountingTracker().snapshot()[0]
        flags: tuple[bool, bool, bool] = (record["name_truncated"], record["overflow"], record["saturated"])
        snap: pytracker.SnapshotRecord = pytracker.read_snapshot(pid=1)
        version: int = snap["schema_version"]
        pid: int = snap["process"]["pid"]
        with pytracker.leak_check(max={"app.Session": 1}) as check:
            pass
        leaks: dict[str, list[int]] = check.leaks
    """)
    )
    r = mypy("--strict", str(good), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent("""
        import pytracker

        pytracker.start_exporter(event=False)
        name: int = pytracker.CountingTracker().snapshot()[0]["name"]
        pytracker.read_snapshot(pid=1)["clases"]
    """)
    )
    r = mypy("--strict", str(bad), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'Unexpected keyword argument "event"' in r.stdout, r.stdout
    assert "bad.py:5: error" in r.stdout, r.stdout
    assert '"clases"' in r.stdout, r.stdout


def test_records_carry_every_field_the_types_name():
    class Tracked(pytracker.Trackable):
        pass

    tracker = pytracker.CountingTracker()
    pytracker.set_global_tracker(tracker)
    try:
        keep = Tracked()
        (record,) = [r for r in tracker.snapshot() if r["name"].endswith("Tracked")]
    finally:
        pytracker.set_global_tracker(None)
    # A CountingTracker records no peaks or ages: exactly the required keys.
    assert set(record) == set(pytracker.ClassRecord.__required_keys__)
    assert set(pytracker.ClassRecord.__optional_keys__) == {"peak_live", "peak_unix_ms", "ages"}
    assert record["name_truncated"] is False
    assert record["overflow"] is False
    assert record["saturated"] is False
    assert record["live"] == 1
    del keep


def test_read_snapshot_has_the_typed_shape(tmp_path):
    long_name = "C" * 200
    program = textwrap.dedent(f"""
        import json, sys, pytracker
        tracker = pytracker.ShmTracker(directory={str(tmp_path)!r}, class_capacity=3, sampler=False)
        pytracker.set_global_tracker(tracker)
        kinds = [type(n, (pytracker.Trackable,), {{}}) for n in ("A", {long_name!r}, "B")]
        keep = [k() for k in kinds]
        snap = pytracker.read_snapshot(path=str(tracker.path))
        print(json.dumps(snap))
    """)
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import json

    snap = json.loads(r.stdout)
    assert set(snap) == set(pytracker.SnapshotRecord.__annotations__)
    assert set(snap["process"]) == set(pytracker.ProcessRecord.__annotations__)
    assert snap["schema_version"] >= 1
    by_name = {c["name"]: c for c in snap["classes"]}
    # Two slots and the overflow slot: the third class folds into it.
    assert by_name["<other classes>"]["overflow"] is True
    assert by_name["<other classes>"]["live"] == 1
    (cut,) = [c for c in snap["classes"] if c["name"].startswith("__main__.CCC")]
    assert cut["name_truncated"] is True and len(cut["name"]) < len(long_name)
    assert by_name["__main__.A"]["name_truncated"] is False
    for record in snap["classes"]:
        # Segments add the peak and ages (the peak's time once a sample
        # saw it: this writer has no sampler).
        assert set(record) == set(pytracker.ClassRecord.__annotations__) - {"peak_unix_ms"}
        assert set(record["ages"]) == set(pytracker.AgesRecord.__annotations__)
