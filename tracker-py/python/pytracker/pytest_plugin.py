"""pytest plugin: fail tests that leave Trackable objects alive.

Enabled with ``--pytracker-leaks``. The plugin is registered through the
``pytest11`` entry point when pytracker is installed; with plugin
autoloading disabled, load it with ``-p pytracker.pytest_plugin``.

After each test and its fixtures' teardown, a full garbage collection runs,
and any Trackable the test created that is still alive fails that test,
once, as a test failure naming each class, the count and the serials left.
Not counted: objects made while fixtures of a wider scope (class, module,
package, session) were set up, which those fixtures own, and objects made
by other threads than the test's (``--pytracker-all-threads`` counts them).

Allow some with a marker: ``@pytest.mark.pytracker_allow(2)`` (any classes,
2 objects in all) or ``@pytest.mark.pytracker_allow({"app.Session": 1})``
(per class or glob pattern).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from . import _native
from ._leaks import Leaks, find_leaks, format_leaks, over_limits

_START = pytest.StashKey[int]()
_LEAKS = pytest.StashKey[Leaks]()
# Serial ranges (after, up_to] made while wider-scoped fixtures were set up.
_WIDER = pytest.StashKey[list[tuple[int, int]]]()
# The tag of the thread the tests run in (see _native._record_creators).
_THREAD = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pytracker")
    group.addoption(
        "--pytracker-leaks",
        action="store_true",
        default=False,
        help="fail tests that leave pytracker.Trackable objects alive",
    )
    group.addoption(
        "--pytracker-all-threads",
        action="store_true",
        default=False,
        help="with --pytracker-leaks, also count objects other threads created during a test",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pytracker_allow(limit): allow a test to leave Trackable objects alive: "
        "a total count, or a dict of class name or glob to count",
    )
    if config.getoption("--pytracker-leaks", default=False):
        config.stash[_THREAD] = _native._record_creators(True)
        config.stash[_WIDER] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    if _THREAD in config.stash:
        _native._record_creators(False)


def _enabled(item: pytest.Item) -> bool:
    return _THREAD in item.config.stash


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    config = request.config
    if _THREAD not in config.stash or fixturedef.scope == "function":
        return (yield)
    before = _native.last_serial()
    try:
        return (yield)
    finally:
        config.stash[_WIDER].append((before, _native.last_serial()))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    if _enabled(item):
        item.stash[_START] = _native.last_serial()
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    result = yield
    start = item.stash.get(_START, None)
    if start is None:
        return result
    # Fixtures are finalised by now, but pytest drops its references to
    # their values only after this hook: do it first so they are not
    # reported as leaks.
    if getattr(item, "funcargs", None):
        item.funcargs = {}  # type: ignore[attr-defined]
    config = item.config
    creator = None if config.getoption("--pytracker-all-threads") else config.stash[_THREAD]
    wider: list[tuple[int, int]] = config.stash[_WIDER]
    leaks = find_leaks(start, creator, wider)
    marker = item.get_closest_marker("pytracker_allow")
    limit = marker.args[0] if marker and marker.args else marker.kwargs.get("limit", 0) if marker else 0
    if isinstance(limit, dict):
        broken = over_limits(leaks, limit, 0)
    else:
        total = sum(len(s) for s in leaks.values())
        broken = leaks if total > int(limit) else {}
    if broken:
        item.stash[_LEAKS] = broken
    return result


def _message(item: pytest.Item, leaks: Leaks) -> str:
    message = "pytracker: " + format_leaks(leaks)
    if item.get_closest_marker("pytracker_allow") is None:
        message += "\n  (allow with @pytest.mark.pytracker_allow(N) if this is intended)"
    return message


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Runs the test as pytest does, then reports a leak found at teardown
    as a failure of the test itself (once), instead of an error of its
    teardown."""
    if not _enabled(item):
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    leaks = item.stash.get(_LEAKS, None)
    if leaks:
        call = next((r for r in reports if r.when == "call"), None)
        if call is not None and call.passed and not hasattr(call, "wasxfail"):
            call.outcome = "failed"
            call.longrepr = _message(item, leaks)
        elif call is not None and call.failed:
            # Already failing: the leak is told with that failure.
            call.sections.append(("pytracker", _message(item, leaks)))
    for report in reports:
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
