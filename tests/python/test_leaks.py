"""leak_check and the pytest plugin (run with pytester)."""

import pytest
import pytracker
from pytracker import Trackable

pytest_plugins = ["pytester"]


class Conn(Trackable):
    pass


class Buf(Trackable):
    pass


_cache = []


def test_leak_check_passes_when_everything_is_freed():
    with pytracker.leak_check() as check:
        objs = [Conn() for _ in range(10)]
        del objs
    assert check.leaks == {}


def test_leak_check_names_class_count_and_serials():
    with pytest.raises(pytracker.LeakError) as e, pytracker.leak_check():
        _cache.extend(Conn() for _ in range(7))
        _cache.append(Buf())
    message = str(e.value)
    lines = message.splitlines()
    assert lines[0] == "8 Trackable objects left alive:"
    serials = sorted(c._get_tracker_serial() for c in _cache if isinstance(c, Conn))
    assert lines[1] == "  %s.Conn: 7 (serials %s, ... (2 more))" % (__name__, ", ".join(map(str, serials[:5])))
    assert lines[2].startswith("  %s.Buf: 1 (serial " % __name__)
    assert len(lines) == 3
    assert set(e.value.leaks) == {__name__ + ".Conn", __name__ + ".Buf"}
    del _cache[:]


def test_leak_check_allowances_and_cycles():
    with pytracker.leak_check(max={"Conn": 2, "*.Buf": 1}) as check:
        _cache.extend([Conn(), Conn(), Buf()])
        a = Conn()
        a.me = a  # a cycle: collected by the check's gc.collect()
        del a
    assert sum(len(v) for v in check.leaks.values()) == 3
    del _cache[:]
    with pytest.raises(pytracker.LeakError), pytracker.leak_check(max={"Conn": 1}):
        _cache.extend([Conn(), Conn()])
    del _cache[:]


def test_objects_from_before_are_not_counted():
    before = [Conn() for _ in range(3)]
    with pytracker.leak_check():
        pass
    assert len(before) == 3


PLUGIN_TESTS = """
import pytest
import pytracker

class Session(pytracker.Trackable):
    pass

CACHE = []

@pytest.fixture
def session():
    s = Session()
    yield s  # released at teardown: not a leak

def test_clean(session):
    x = [Session() for _ in range(5)]

def test_leaky():
    CACHE.extend(Session() for _ in range(3))

@pytest.mark.pytracker_allow(3)
def test_allowed():
    CACHE.extend(Session() for _ in range(3))

@pytest.mark.pytracker_allow({"*.Session": 1})
def test_allowed_per_class_but_over():
    CACHE.extend(Session() for _ in range(2))
"""


def test_plugin_fails_leaky_tests(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_app=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "pytracker.pytest_plugin", "--pytracker-leaks", "-q")
    result.assert_outcomes(passed=4, errors=2)
    text = result.stdout.str()
    assert "ERROR at teardown of test_leaky" in text
    assert "pytracker: 3 Trackable objects left alive:" in text
    assert "test_app.Session: 3 (serials" in text
    assert "pytracker_allow" in text
    assert "ERROR at teardown of test_allowed_per_class_but_over" in text
    assert "test_clean" not in text.split("short test summary")[-1]


def test_plugin_is_off_without_the_option(pytester):
    pytester.makepyfile(test_app=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=4)


def test_plugin_registered_by_entry_point(pytester):
    pytester.makepyfile(test_app=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--pytracker-leaks", "-q")
    result.assert_outcomes(passed=4, errors=2)
