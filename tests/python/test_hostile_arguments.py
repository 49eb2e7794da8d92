"""No Rust panic reaches Python from the public API: every public callable,
and every method of the public classes, is called with hostile arguments in
a separate interpreter. Each call may raise an ordinary exception (as
CPython's own functions do: TypeError, ValueError, OverflowError for
C-sized integers, SegmentError); none may raise PanicException, crash or
hang."""

import textwrap

from tools import run_python

PROGRAM = textwrap.dedent(
    r"""
    import inspect, itertools, os, sys
    import pytracker
    from pytracker import _native

    HOSTILE = [None, -1, 0, 2**63, 2**70, -(2**70), 1e20, 1e19, float("nan"), float("inf"), -0.0,
               "", "\x00", "\x1b[2J" * 1000, b"\xff", [], {}, (1, 2, 3), object(), lambda *a: 1 / 0,
               type("Evil", (), {"__index__": lambda s: 1 / 0, "__float__": lambda s: 1 / 0})()]

    class Victim(pytracker.Trackable):
        __slots__ = ("a", "b", "__dict__")

    def targets():
        yield "Trackable()", pytracker.Trackable
        for name in sorted(pytracker.__all__):
            obj = getattr(pytracker, name)
            if callable(obj) and name not in ("leak_check",):
                yield name, obj
        instances = {
            "Trackable": Victim(),
            "CountingTracker": pytracker.CountingTracker(),
            "ShmTracker": pytracker.ShmTracker(sampler=False),
            "Tracker": pytracker.Tracker(),
        }
        for cls_name, inst in instances.items():
            for attr in sorted(dir(inst)):
                if attr.startswith("__") and attr not in ("__setstate__", "__reduce_ex__", "__getstate__"):
                    continue
                if attr in ("close",):
                    continue
                value = getattr(inst, attr, None)
                if callable(value):
                    yield "%s.%s" % (cls_name, attr), value

    panics = []
    calls = 0
    for name, fn in targets():
        for n in (0, 1, 2):
            combos = [()] if n == 0 else (
                [(h,) for h in HOSTILE] if n == 1 else list(itertools.product(HOSTILE[:12], repeat=2)))
            for args in combos:
                calls += 1
                try:
                    fn(*args)
                except Exception:
                    pass
                except BaseException as e:
                    if type(e).__name__ == "PanicException":
                        panics.append("%s%r: %s" % (name, args, e))
                    else:
                        raise
    # Keyword arguments of the constructors with ranges.
    for key in ("class_capacity", "ring_capacity", "history_capacity", "history_period", "keep_exited"):
        for h in HOSTILE:
            calls += 1
            try:
                pytracker.ShmTracker(sampler=False, **{key: h}).close()
            except Exception:
                pass  # including what a hostile __index__ raises itself
            except BaseException as e:
                panics.append("ShmTracker(%s=%r): %r" % (key, h, e))
    # A __slots__ class whose __setattr__ changes the state being restored.
    class Mutating(pytracker.Trackable):
        __slots__ = ("x", "y")
        def __setattr__(self, k, v):
            state[1]["y"] = 1
            state[1]["z%d" % len(state[1])] = 2
            object.__setattr__(self, k, v) if k in ("x", "y") else None
    m = Mutating()
    state = (None, {"_data_bundle": None, "x": 1})
    try:
        m.__setstate__(state)
    except Exception:
        pass
    except BaseException as e:
        panics.append("__setstate__ with a mutating __setattr__: %r" % e)
    print("calls", calls)
    print("panics", len(panics))
    for p in panics:
        print(p[:300])
    """
)


def test_no_panic_reaches_python_from_the_public_api(shm_dir):
    r = run_python(PROGRAM, env={"PYTRACKER_DIR": str(shm_dir)}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    calls = int([l for l in lines if l.startswith("calls ")][0].split()[1])
    assert calls > 5000, "the sweep reached too few calls: %d" % calls
    assert "panics 0" in lines, r.stdout[-5000:]


def test_shm_tracker_arguments_are_range_checked():
    import pytest
    import pytracker

    for kw, bad in [
        ("history_period", 1e20),
        ("history_period", 1e19),
        ("history_period", 0),
        ("class_capacity", 1),
        ("class_capacity", 2**21),
        ("ring_capacity", 8),
        ("history_capacity", 0),
        ("history_capacity", 10**6),
        ("keep_exited", -1),
    ]:
        with pytest.raises(ValueError) as e:
            pytracker.ShmTracker(sampler=False, **{kw: bad})
        assert kw in str(e.value) and "between" in str(e.value)
