"""Dumping an inventory when the process receives a signal."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from . import _native

if TYPE_CHECKING:
    from typing import TypeAlias

    _Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

__all__ = ["dump_on_signal"]


def dump_on_signal(
    signum: int = signal.SIGUSR1,
    tracker: Any = None,
    file: IO[str] | None = None,
) -> _Handler:
    """Install a handler that dumps ``tracker`` (default: the global tracker
    at the time of the signal) to ``file`` (default: ``sys.stderr``) when the
    process receives ``signum``. Returns the previous handler.

    This is the production pattern: ``kill -USR1 <pid>`` writes the current
    inventory to the service's log without stopping it.
    """

    def _dump(received: int, frame: FrameType | None) -> None:
        target = tracker if tracker is not None else _native.get_global_tracker()
        out = file if file is not None else sys.stderr
        if target is None:
            out.write("pytracker: no tracker to dump (set one with pytracker.set_global_tracker)\n")
        elif hasattr(target, "dump"):
            target.dump(out)
        else:
            out.write("pytracker: %r has no dump() method\n" % (target,))
        if hasattr(out, "flush"):
            out.flush()

    return signal.signal(signum, _dump)
