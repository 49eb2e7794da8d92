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
    # Each leak is one failure of its test: no teardown error, no test
    # counted twice.
    result.assert_outcomes(passed=2, failed=2)
    text = result.stdout.str()
    assert "ERROR" not in text
    assert "FAILED test_app.py::test_leaky" in text
    assert "FAILED test_app.py::test_allowed_per_class_but_over" in text
    assert "pytracker: 3 Trackable objects left alive:" in text
    assert "test_app.Session: 3 (serials" in text
    assert "pytracker_allow" in text
    assert "test_clean" not in text.split("short test summary")[-1]


def test_plugin_is_off_without_the_option(pytester):
    pytester.makepyfile(test_app=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=4)


def test_plugin_registered_by_entry_point(pytester):
    pytester.makepyfile(test_app=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--pytracker-leaks", "-q")
    result.assert_outcomes(passed=2, failed=2)


WIDER_SCOPES = """
import threading
import pytest
import pytracker

class Conn(pytracker.Trackable):
    pass

class Job(pytracker.Trackable):
    pass

@pytest.fixture(scope="session")
def pool():
    return [Conn() for _ in range(4)]

@pytest.fixture(scope="module")
def cache():
    return [Conn() for _ in range(2)]

@pytest.fixture(scope="class")
def per_class():
    return [Conn()]

def test_first_user_of_the_pool(pool, cache):
    assert len(pool) == 4

def test_second_user(pool, cache):
    pass

class TestGroup:
    def test_one(self, per_class, pool):
        pass

KEPT = []

def test_background_thread():
    t = threading.Thread(target=lambda: KEPT.extend(Job() for _ in range(46)))
    t.start()
    t.join()

def test_a_real_leak(pool):
    KEPT.append(Conn())
"""


def test_plugin_ignores_wider_fixtures_and_other_threads(pytester):
    pytester.makepyfile(test_scopes=WIDER_SCOPES)
    result = pytester.runpytest_subprocess("--pytracker-leaks", "-q")
    result.assert_outcomes(passed=4, failed=1)
    text = result.stdout.str()
    assert "FAILED test_scopes.py::test_a_real_leak" in text
    assert "1 Trackable object left alive:" in text and "test_scopes.Conn: 1 (serial " in text
    assert "Job" not in text
    # Other threads' objects count when asked for.
    result = pytester.runpytest_subprocess("--pytracker-leaks", "--pytracker-all-threads", "-q")
    result.assert_outcomes(passed=3, failed=2)
    assert "test_scopes.Job: 46" in result.stdout.str()


def test_a_failing_test_that_also_leaks_is_reported_once(pytester):
    pytester.makepyfile(
        test_both="""
import pytracker

class Item(pytracker.Trackable):
    pass

KEPT = []

def test_fails_and_leaks():
    KEPT.append(Item())
    assert False, "the test's own failure"
"""
    )
    result = pytester.runpytest_subprocess("--pytracker-leaks", "-q")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "the test's own failure" in text and "test_both.Item: 1" in text
    assert "ERROR" not in text


def test_leak_check_counts_only_this_thread_unless_asked():
    import threading

    class Worker(pytracker.Trackable):
        pass

    kept = []
    with pytracker.leak_check() as check:
        t = threading.Thread(target=lambda: kept.extend(Worker() for _ in range(46)))
        t.start()
        t.join()
    assert check.leaks == {}
    with pytest.raises(pytracker.LeakError, match="46 Trackable objects"), pytracker.leak_check(all_threads=True):
        t = threading.Thread(target=lambda: kept.extend(Worker() for _ in range(46)))
        t.start()
        t.join()
    with pytest.raises(pytracker.LeakError, match="1 Trackable object left"), pytracker.leak_check():
        kept.append(Worker())
