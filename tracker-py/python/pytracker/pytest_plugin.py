"""pytest plugin: fail tests that leave Trackable objects alive.

Enabled with ``--pytracker-leaks``. The plugin is registered through the
``pytest11`` entry point when pytracker is installed; with plugin
autoloading disabled, load it with ``-p pytracker.pytest_plugin``. After each test and its
fixtures' teardown, a full garbage collection runs and any Trackable created
during the test that is still alive fails the test, naming each class, the
count and the serials left.

Allow some with a marker: ``@pytest.mark.pytracker_allow(2)`` (any classes,
2 objects in all) or ``@pytest.mark.pytracker_allow({"app.Session": 1})``
(per class or glob pattern).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import _native
from ._leaks import find_leaks, format_leaks, over_limits

_START = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pytracker")
    group.addoption(
        "--pytracker-leaks",
        action="store_true",
        default=False,
        help="fail tests that leave pytracker.Trackable objects alive",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pytracker_allow(limit): allow a test to leave Trackable objects alive: "
        "a total count, or a dict of class name or glob to count",
    )


def _enabled(item: pytest.Item) -> bool:
    return bool(item.config.getoption("--pytracker-leaks", default=False))


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
    leaks = find_leaks(start)
    marker = item.get_closest_marker("pytracker_allow")
    limit = marker.args[0] if marker and marker.args else marker.kwargs.get("limit", 0) if marker else 0
    if isinstance(limit, dict):
        broken = over_limits(leaks, limit, 0)
    else:
        total = sum(len(s) for s in leaks.values())
        broken = leaks if total > int(limit) else {}
    if broken:
        message = "pytracker: " + format_leaks(broken)
        if marker is None:
            message += "\n  (allow with @pytest.mark.pytracker_allow(N) if this is intended)"
        pytest.fail(message, pytrace=False)
    return result
