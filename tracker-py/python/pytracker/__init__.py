"""pytracker: production-grade object-lifecycle tracking.

Make important classes subclass :class:`Trackable`; set a tracker with
:func:`set_global_tracker`; read the inventory with ``Tracker.dump()``,
``CountingTracker.snapshot()``, or from another process with
``pytracker-cli`` and ``pytracker-top``.
"""

import atexit as _atexit
import os as _os

from . import _native
from ._exporter import get_exporter, start_exporter
from ._leaks import LeakError, leak_check
from ._native import (
    CountingTracker,
    SegmentError,
    ShmTracker,
    Trackable,
    get_global_tracker,
    read_snapshot,
    set_global_tracker,
    tick,
    version,
)
from ._signal import dump_on_signal
from ._tracker import TrackedType, Tracker, TrackerMixin
from ._types import AgesRecord, ClassRecord, ProcessRecord, SnapshotRecord

__version__: str = _native.__version__

__all__ = [
    "AgesRecord",
    "ClassRecord",
    "CountingTracker",
    "LeakError",
    "ProcessRecord",
    "SegmentError",
    "ShmTracker",
    "SnapshotRecord",
    "Trackable",
    "TrackedType",
    "Tracker",
    "TrackerMixin",
    "dump_on_signal",
    "get_exporter",
    "get_global_tracker",
    "leak_check",
    "read_snapshot",
    "set_global_tracker",
    "start_exporter",
    "tick",
    "version",
]

# Objects that outlive the interpreter's module teardown must not call into
# half-destroyed Python trackers.
_atexit.register(_native._shutdown)
# Segments are removed on a normal exit (a crash leaves them for readers to
# report and for `pytracker-cli clean`).
_atexit.register(_native._close_exporters)
# A forked child gets a segment of its own and never writes its parent's.
_os.register_at_fork(after_in_child=_native._after_fork_child)

from ._exporter import _start_from_environment  # noqa: E402

_start_from_environment()
