"""Starting the shared-memory exporter."""

import os

from . import _native

__all__ = ["start_exporter", "get_exporter"]

_exporter = None


def start_exporter(**options):
    """Create a :class:`ShmTracker` and make it the global tracker, so
    ``pytracker-cli`` and ``pytracker-top`` can read this process's
    inventory. Returns the tracker; calling it again returns the same one.

    Options (all optional): ``directory`` (default ``/dev/shm``, else
    ``$XDG_RUNTIME_DIR``, else the temporary directory with a warning;
    ``$PYTRACKER_DIR`` overrides), ``class_capacity`` (4096),
    ``ring_capacity`` (65536 events), ``events`` (True),
    ``history_capacity`` (64 samples), ``history_period`` (1.0 s),
    ``sampler`` (True: a native thread samples history and heartbeat).

    If the segment cannot be created, a RuntimeWarning says why once and
    the process keeps running, counting privately.
    """
    global _exporter
    if _exporter is None:
        _exporter = _native.ShmTracker(**options)
    _native.set_global_tracker(_exporter)
    return _exporter


def get_exporter():
    """The tracker :func:`start_exporter` created, or None."""
    return _exporter


def _start_from_environment():
    value = os.environ.get("PYTRACKER_EXPORT", "").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return
    start_exporter()
