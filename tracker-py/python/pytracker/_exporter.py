"""Starting the shared-memory exporter."""

from __future__ import annotations

import gc
import os
from os import PathLike
from typing import Any

from . import _native

__all__ = ["start_exporter", "get_exporter"]

_exporter: _native.ShmTracker | None = None


def start_exporter(
    *,
    directory: str | PathLike[str] | None = None,
    class_capacity: int = 4096,
    ring_capacity: int = 512,
    events: bool = True,
    history_capacity: int = 96,
    history_period: float = 1.0,
    sampler: bool = True,
    keep_exited: int = 8,
    service: str | None = None,
    site_every: int = 8192,
) -> _native.ShmTracker:
    """Create a :class:`ShmTracker` and make it the global tracker, so
    ``pytracker-cli`` and ``pytracker-top`` can read this process's
    inventory. Returns the tracker; calling it again returns the same one
    (its options are those of the first call).

    ``directory``: where the segment goes (default ``/dev/shm``, else
    ``$XDG_RUNTIME_DIR``, else the temporary directory with a warning;
    ``$PYTRACKER_DIR`` overrides). ``class_capacity``: class slots.
    ``ring_capacity``: event-ring slots. ``events``: record lifecycle
    events. ``history_capacity``: history samples kept per tier (at most
    96; tier 0 samples every ``history_period``, tier 1 every 60 periods,
    tier 2 every 3,600). ``history_period``: seconds between samples.
    ``sampler``: a native thread samples history and heartbeat.
    ``keep_exited``: segments of this user's exited processes kept for
    post-mortem reading. ``service``: the service this process belongs to
    (default ``$PYTRACKER_SERVICE``, else the script or module name).
    ``site_every``: on average one creation in this many records where it
    happened (file, line and function of up to four frames), for
    ``pytracker-cli sites``; 0 turns it off.

    Trackable objects that already exist are adopted: those with no tracker
    (made before any tracker was set, unless their class sets
    ``_disable_global_tracker``) and those of the previous global tracker
    move to the exporter, which counts them as created now. Objects given a
    tracker of their own keep it.

    If the segment cannot be created, a RuntimeWarning says why once and
    the process keeps running, counting privately.
    """
    global _exporter
    previous = _native.get_global_tracker()
    if _exporter is None:
        _exporter = _native.ShmTracker(
            directory=directory,
            class_capacity=class_capacity,
            ring_capacity=ring_capacity,
            events=events,
            history_capacity=history_capacity,
            history_period=history_period,
            sampler=sampler,
            keep_exited=keep_exited,
            service=service,
            site_every=site_every,
        )
        # Processes started from this one (multiprocessing's spawn and
        # forkserver children, a prefork server's re-executed workers)
        # belong to the same service when they export.
        os.environ.setdefault("PYTRACKER_SERVICE", _exporter.service)
    _native.set_global_tracker(_exporter)
    if previous is not _exporter:
        _adopt(_exporter, previous)
    return _exporter


def _adopt(exporter: _native.ShmTracker, previous: Any) -> None:
    """Moves the live Trackable objects with no tracker, or with
    ``previous``, to ``exporter`` (one walk of the collector's objects;
    every Trackable is tracked by the collector)."""
    # The base type's own methods: a subclass may override them.
    get_tracker, set_tracker = _native.Trackable._get_tracker, _native.Trackable._set_tracker
    for obj in gc.get_objects():
        if not isinstance(obj, _native.Trackable):
            continue
        current = get_tracker(obj)
        if current is None:
            if getattr(type(obj), "_disable_global_tracker", False):
                continue
        elif current is not previous:
            continue
        # Tells `previous` (if any) the object left, and the exporter it
        # arrived; a Python tracker's exception goes to
        # sys.unraisablehook as for any notification.
        set_tracker(obj, exporter)


def get_exporter() -> _native.ShmTracker | None:
    """The tracker :func:`start_exporter` created, or None."""
    return _exporter


def _start_from_environment() -> None:
    value = os.environ.get("PYTRACKER_EXPORT", "").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return
    start_exporter()
