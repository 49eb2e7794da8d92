"""pytracker: production-grade object-lifecycle tracking.

Make important classes subclass :class:`Trackable`; set a tracker with
:func:`set_global_tracker`; read the inventory with ``Tracker.dump()``,
``CountingTracker.snapshot()``, or from another process with
``pytracker-cli`` and ``pytracker-top``.
"""

import atexit as _atexit

from . import _native
from ._native import (
    CountingTracker,
    Trackable,
    get_global_tracker,
    set_global_tracker,
    version,
)
from ._signal import dump_on_signal
from ._tracker import TrackedType, Tracker, TrackerMixin

__all__ = [
    "CountingTracker",
    "Trackable",
    "TrackedType",
    "Tracker",
    "TrackerMixin",
    "dump_on_signal",
    "get_global_tracker",
    "set_global_tracker",
    "version",
]

# Objects that outlive the interpreter's module teardown must not call into
# half-destroyed Python trackers.
_atexit.register(_native._shutdown)
