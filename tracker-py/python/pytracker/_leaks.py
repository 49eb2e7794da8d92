"""Finding Trackable objects that outlive a block of code."""

from __future__ import annotations

import fnmatch
import gc
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Literal

from . import _native

Leaks = dict[str, list[int]]
"""Serials of the Trackable objects left alive, by qualified class name."""

__all__ = ["LeakError", "leak_check", "find_leaks", "format_leaks"]


class LeakError(AssertionError):
    """Trackable objects created inside a checked block are still alive.

    ``leaks`` maps each class's qualified name to the sorted serials left.
    """

    def __init__(self, message: str, leaks: Leaks) -> None:
        super().__init__(message)
        self.leaks = leaks


def _qualified(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    qual = getattr(cls, "__qualname__", cls.__name__)
    return qual if module in (None, "builtins") else "%s.%s" % (module, qual)


def find_leaks(
    since_serial: int,
    creator: int | None = None,
    excluded: Sequence[tuple[int, int]] = (),
) -> Leaks:
    """Trackable objects alive now that were created after ``since_serial``,
    after a full garbage collection: ``{qualified class name: [serials]}``.
    With ``creator``, only objects that thread created (its tag from
    ``_native._record_creators``); serials in an ``excluded`` range
    ``(after, up_to]`` are left out."""
    gc.collect()
    found: Leaks = {}
    for obj in gc.get_objects():
        if isinstance(obj, _native.Trackable):
            serial = obj._get_tracker_serial()
            if serial <= since_serial:
                continue
            if creator is not None and _native._creator_tag(obj) != creator:
                continue
            if any(lo < serial <= hi for lo, hi in excluded):
                continue
            found.setdefault(_qualified(type(obj)), []).append(serial)
    for serials in found.values():
        serials.sort()
    return found


def _limit(name: str, allowed: Mapping[str, int], default: int) -> int:
    short = name.rsplit(".", 1)[-1]
    for pattern, limit in allowed.items():
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(short, pattern):
            return limit
    return default


def over_limits(leaks: Leaks, allowed: Mapping[str, int] | None = None, default: int = 0) -> Leaks:
    """The part of ``leaks`` beyond the allowed counts."""
    allowed = allowed or {}
    return {name: serials for name, serials in leaks.items() if len(serials) > _limit(name, allowed, default)}


def format_leaks(leaks: Leaks, shown: int = 5) -> str:
    """A few short lines: one per class, with the count and a few serials."""
    total = sum(len(s) for s in leaks.values())
    lines = ["%d Trackable object%s left alive:" % (total, "" if total == 1 else "s")]
    for name in sorted(leaks, key=lambda n: (-len(leaks[n]), n)):
        serials = leaks[name]
        listed = ", ".join(str(s) for s in serials[:shown])
        if len(serials) > shown:
            listed += ", ... (%d more)" % (len(serials) - shown)
        shown_name = _native.escape_control(name)
        lines.append("  %s: %d (serial%s %s)" % (shown_name, len(serials), "" if len(serials) == 1 else "s", listed))
    return "\n".join(lines)


class leak_check:
    """Context manager failing when Trackable objects created inside it are
    still alive at its end (after ``gc.collect()``).

    ``max`` maps class names or glob patterns (qualified ``module.Class`` or
    bare ``Class``) to the number allowed to stay alive; ``default`` is the
    allowance for other classes. Only objects the current thread created
    count, unless ``all_threads`` is true (a background thread's objects
    are usually not the block's doing). Raises :class:`LeakError`; the
    objects found are in ``check.leaks`` either way::

        with pytracker.leak_check(max={"app.Session": 1}):
            handle_request()
    """

    def __init__(self, max: Mapping[str, int] | None = None, default: int = 0, all_threads: bool = False) -> None:
        self.allowed: dict[str, int] = dict(max or {})
        self.default = default
        self.all_threads = all_threads
        self.leaks: Leaks = {}
        self._start = 0
        self._thread = 0

    def __enter__(self) -> leak_check:
        self._thread = _native._record_creators(True)
        self._start = _native.last_serial()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            self.leaks = find_leaks(self._start, None if self.all_threads else self._thread)
        finally:
            _native._record_creators(False)
        if exc_type is not None:
            return False
        broken = over_limits(self.leaks, self.allowed, self.default)
        if broken:
            raise LeakError(format_leaks(broken), broken)
        return False
