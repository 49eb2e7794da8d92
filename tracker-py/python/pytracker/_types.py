"""The shapes of the records pytracker hands out, for type checkers.

At run time they are plain ``dict`` objects; these ``TypedDict`` classes
name their keys and value types.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["AgesRecord", "ClassRecord", "ProcessRecord", "SnapshotRecord"]


class AgesRecord(TypedDict):
    """A class's live objects by age, as a segment records them (ages as
    of the writer's last heartbeat; an object counts with the youngest age
    its cohort allows, so "older than" is never overstated)."""

    bucket_bounds_s: list[int]
    """Bucket boundaries in seconds."""
    buckets: list[int]
    """``buckets[0]``: objects that may be younger than the first
    boundary; ``buckets[i]``: objects at least ``bucket_bounds_s[i-1]``
    seconds old."""
    oldest_s: int
    """Lower bound of the oldest live object's age, seconds."""
    cohorts: list[list[int]]
    """``[youngest age in ms, live objects]`` per cohort, youngest first."""


class _SegmentFields(TypedDict, total=False):
    """What only segments record: present in records read from one
    (``ShmTracker.snapshot()``, :func:`read_snapshot`)."""

    peak_live: int
    """Highest live count seen."""
    peak_unix_ms: int
    """When a sample first saw ``peak_live``, Unix ms (absent until one
    did)."""
    ages: AgesRecord
    """Live objects by age."""


class ClassRecord(_SegmentFields):
    """One class's counts, as ``CountingTracker.snapshot()``,
    ``ShmTracker.snapshot()`` and :func:`read_snapshot` give them."""

    name: str
    """Qualified class name (``module.QualName``)."""
    live: int
    """Objects alive now: created and not yet destroyed."""
    created: int
    """Objects attached to the tracker so far."""
    destroyed: int
    """Objects destroyed (or detached) so far."""
    updated: int
    """Bundle updates so far."""
    first_serial: int
    """Lowest serial seen, 0 if none."""
    last_serial: int
    """Highest serial seen, 0 if none."""
    name_truncated: bool
    """The name was cut to fit a segment's fixed-size slot."""
    overflow: bool
    """This record sums the classes that did not fit in the class table."""
    saturated: bool
    """A count overflowed and is held at its maximum (corrupt or forged
    source)."""


class ProcessRecord(TypedDict):
    """The process a segment describes."""

    pid: int
    program: str
    """Its command line, arguments separated by spaces (cut at 512 bytes)."""
    started_unix_ms: int
    """When its segment was created, Unix milliseconds."""
    writer_state: str
    """``alive``, ``exited``, ``stale segment``, ``pid reused`` or
    ``locked by another process``."""


class SnapshotRecord(TypedDict):
    """What :func:`read_snapshot` returns."""

    schema_version: int
    """Version of this shape, the same as in ``pytracker-cli dump --format
    json``."""
    process: ProcessRecord
    classes: list[ClassRecord]
    classes_dropped: int
    """Classes folded into the ``<other classes>`` record."""
    taken_unix_ms: int
    """When the snapshot was read, Unix milliseconds."""
