# Type stubs of the compiled module; checked against it by mypy's stubtest
# (tests/python/test_stubs.py).

from os import PathLike
from pathlib import Path
from typing import Any, SupportsIndex, TextIO, final

from typing_extensions import Self, disjoint_base

from ._types import ClassRecord, SnapshotRecord

__version__: str

__all__ = [
    "CountingTracker",
    "NativeTracker",
    "SegmentError",
    "ShmTracker",
    "Trackable",
    "cli_main",
    "get_global_tracker",
    "last_serial",
    "read_snapshot",
    "set_global_tracker",
    "tick",
    "top_main",
    "version",
    "_after_fork_child",
    "_close_exporters",
    "_shutdown",
    "_typecache_stats",
    "escape_control",
    "__version__",
    "_EntryCounts",
    "_register_stock_tracker",
    "_record_creators",
    "_creator_tag",
    "_site_stats",
]

@disjoint_base
class Trackable:
    """Base class of objects whose lifecycle is tracked.

    Every instance gets a process-wide serial; its tracker (the global
    tracker at creation, unless the class sets ``_disable_global_tracker``)
    is told of its creation, tracker changes, bundle updates and
    destruction.
    """

    _data_bundle: Any
    """The data bundle; assigning it does not notify the tracker."""
    def _set_tracker(self, tracker: Any) -> None:
        """Give the object another tracker (or none): the old one is told
        ``detached``, the new one ``attached``."""
    def _get_tracker(self) -> Any:
        """The object's tracker, or None."""
    def _set_data_bundle(self, bundle: Any) -> None:
        """Set the data bundle and tell the tracker ``updated``."""
    def _get_data_bundle(self) -> Any:
        """The data bundle (None when unset)."""
    def _get_tracker_serial(self) -> int:
        """The serial issued at creation."""
    def __getstate__(self) -> tuple[dict[str, Any] | None, dict[str, Any]]: ...
    def __setstate__(self, state: Any) -> None: ...
    def __reduce_ex__(self, protocol: SupportsIndex) -> Any: ...

@disjoint_base
class NativeTracker:
    """Base of the native trackers (not instantiable): objects attached to
    one are counted in Rust, with no Python call."""
    def snapshot(self) -> list[ClassRecord]:
        """One record per class, sorted by name."""
    def dump(self, output: TextIO | None = None) -> None:
        """Write one line per class to ``output`` (default ``sys.stdout``)."""
    def notify_attached(self, serial: int, objtype: type, bundle: Any = None) -> None:
        """Count an attachment (the tracker protocol, for Python callers)."""
    def notify_detached(self, serial: int, objtype: type, bundle: Any = None) -> None:
        """Count a detachment."""
    def notify_updated(self, serial: int, objtype: type, bundle: Any = None) -> None:
        """Count a bundle update."""
    def notify_destroyed(self, serial: int, objtype: type, bundle: Any = None) -> None:
        """Count a destruction."""

@final
class CountingTracker(NativeTracker):
    """Per-class counts and serial ranges, kept in this process."""
    def __new__(cls) -> CountingTracker: ...

@final
class ShmTracker(NativeTracker):
    """Per-class counts, events and history published in a shared-memory
    segment that ``pytracker-cli`` and ``pytracker-top`` read from another
    process. Never fails: when nothing can be published it counts
    privately, and ``problem`` says why."""
    def __new__(
        cls,
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
        site_capacity: int = 512,
    ) -> ShmTracker: ...
    @property
    def path(self) -> Path | None:
        """The segment's path, if one was published."""
    @property
    def service(self) -> str:
        """The service this process belongs to."""
    @property
    def worker(self) -> int | None:
        """This process's worker number in its service, or None."""
    @property
    def problem(self) -> str | None:
        """Why the segment is not published (or was damaged); None when all
        is well."""
    def tick(self, name: str = "requests", n: int = 1) -> None:
        """Count ``n`` units of work called ``name`` in this segment."""
    def sample(self) -> None:
        """Write one history sample and a heartbeat now."""
    def close(self) -> None:
        """Stop the sampler, mark the segment closed and remove its file;
        counting goes on privately."""

class SegmentError(Exception):
    """A segment could not be read; the message says what to do."""

    kind: str
    """What went wrong, as a short word (``not_found``, ``permission``,
    ``corrupt``, ...)."""

def tick(name: str | None = None, n: int = 1) -> None:
    """Count ``n`` units of work called ``name`` (default ``"requests"``)
    in the global tracker's segment, when it is a ShmTracker; readers show
    objects retained per 1,000 units. At most eight names; names are cut
    to 24 bytes."""

def set_global_tracker(tracker: Any) -> None:
    """Attach new Trackable objects to ``tracker`` (None: to no tracker)."""

def get_global_tracker() -> Any:
    """The global tracker, or None."""

def version() -> int:
    """The API version of the extension."""

def read_snapshot(pid: int | None = None, path: str | PathLike[str] | None = None) -> SnapshotRecord:
    """Read the inventory another process publishes, by ``pid`` or segment
    ``path``. Raises :class:`SegmentError` saying what to do."""

def last_serial() -> int:
    """The serial of the Trackable created last in this process (0 before the first)."""

def cli_main(argv: list[str]) -> int:
    """Run ``pytracker-cli`` with ``argv``; returns its exit status."""

def top_main(argv: list[str]) -> int:
    """Run ``pytracker-top`` with ``argv``; returns its exit status."""

def _shutdown() -> None: ...
def _close_exporters() -> None: ...
def _after_fork_child() -> None: ...
def _typecache_stats() -> tuple[int, int]: ...
def escape_control(text: str) -> str:
    """``text`` with control characters escaped, safe to print."""

@disjoint_base
class _EntryCounts:
    """The native counts of a ``TrackedType`` entry."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...
    # Integers unless a caller sets them to something else.
    allocated: int
    deallocated: int

def _register_stock_tracker(tracker: type, entry: type) -> None: ...
def _site_stats() -> tuple[int, int]:
    """Sampled objects alive, and the site sampling rate (for tests)."""

def _record_creators(on: bool) -> int:
    """Start (True) or stop (False) recording which thread creates each
    Trackable (calls nest); returns the calling thread's tag."""

def _creator_tag(obj: Trackable) -> int:
    """The tag of the thread that created ``obj`` (0 if not recorded)."""
