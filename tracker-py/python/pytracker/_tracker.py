"""The Python-level trackers: the ``TrackerMixin`` protocol and the ``Tracker``
inventory that users of the original package know, with its behaviour: what
is counted on each notification, the entry protocol (``_get_entry``,
``type_tracker``, ``track``/``untrack``) and the dump format."""

import sys
from typing import IO, Any

from . import _native

__all__ = ["TrackerMixin", "TrackedType", "Tracker"]


class TrackerMixin:
    """The tracker protocol. Any object with these methods can be a tracker;
    a missing method means that notification is not wanted.

    Each method is called with the object's serial, its type and its data
    bundle. They run during object creation and destruction: keep them short,
    and never keep a reference to the object.
    """

    def notify_attached(self, serial: int, objtype: type, bundle: Any) -> None:
        """The object was given this tracker (at creation or by ``_set_tracker``)."""

    def notify_detached(self, serial: int, objtype: type, bundle: Any) -> None:
        """The object was given another tracker, or none."""

    def notify_updated(self, serial: int, objtype: type, bundle: Any) -> None:
        """The object's data bundle was set."""

    def notify_destroyed(self, serial: int, objtype: type, bundle: Any) -> None:
        """The object is being destroyed."""


class TrackedType(_native._EntryCounts):
    """One entry of a :class:`Tracker`: usually one class's objects.

    ``allocated`` counts the objects attached now, ``deallocated`` those
    destroyed (a tracker change is not a retirement); ``objects`` maps serial
    to bundle for live objects while object tracking is on, else is
    ``None``. A new entry starts with both counts 0, ``objects`` ``None``
    and ``objtype`` ``None`` (unless given); it accepts any other attribute
    a tracker wants to keep on it.

    The two counts are kept natively, so that the stock :class:`Tracker`
    counts without a Python call; they take any value (a float, say), and
    Python arithmetic then decides, as for ordinary attributes.
    """

    objtype: Any = None
    objects: dict[int, Any] | None = None

    def __init__(self, objtype: Any = None) -> None:
        if objtype is not None:
            self.objtype = objtype

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, allocated=self.allocated, deallocated=self.deallocated)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.allocated = state.pop("allocated", 0)
        self.deallocated = state.pop("deallocated", 0)
        self.__dict__.update(state)

    def __reduce__(self) -> tuple[Any, ...]:
        # Made by the class's own __new__ under every pickle protocol (0 and
        # 1 would otherwise call object.__new__, which refuses a native base).
        return (_new_entry, (type(self),), self.__getstate__())

    @property
    def track_objects(self) -> bool:
        """Whether live objects' bundles are kept by serial; setting it true
        starts an empty record (if there is none), false drops it."""
        return self.objects is not None

    @track_objects.setter
    def track_objects(self, enable: bool) -> None:
        if enable:
            if self.objects is None:
                self.objects = {}
        else:
            self.objects = None

    def track(self, serial: int, objtype: Any, bundle: Any) -> None:
        """Records ``bundle`` for ``serial`` when object tracking is on."""
        if self.objects is not None:
            self.objects[serial] = bundle

    def untrack(self, serial: int, objtype: Any, bundle: Any) -> None:
        """Forgets ``serial`` (nothing happens if it is not recorded)."""
        if self.objects is not None:
            self.objects.pop(serial, None)

    def dump_objects(self, output: IO[str] | None = None) -> None:
        """Writes one line per tracked object: its serial and its bundle
        (``str(bundle)``, or nothing for a false bundle such as ``None``)."""
        if output is None:
            output = sys.stdout
        output.write("".join(_object_line(s, b) + "\n" for s, b in sorted((self.objects or {}).items())))

    def __repr__(self) -> str:
        return "<TrackedType %s allocated=%d deallocated=%d>" % (
            getattr(self.objtype, "__name__", self.objtype),
            self.allocated,
            self.deallocated,
        )


def _new_entry(cls: type[TrackedType]) -> TrackedType:
    """A new entry of ``cls``, its state to be set (unpickling, copying)."""
    return cls.__new__(cls)


def _object_line(serial: int, bundle: Any) -> str:
    return "   obj#%-8d bundle:'%s'" % (serial, str(bundle) if bundle else "")


def _with_change(value: int, previous: int | None) -> str:
    """``value``, followed by its change since the previous dump if it
    changed."""
    if previous is None or previous == value:
        return str(value)
    return "%d (%+d)" % (value, value - previous)


class Tracker(dict, TrackerMixin):  # type: ignore[type-arg]
    """An inventory of tracked objects: a ``dict`` of :class:`TrackedType`
    entries, keyed by class ``__name__``.

    Every notification counts on the entry ``self._get_entry(serial,
    objtype, bundle)`` returns: attached calls ``entry.track`` then adds one
    to ``allocated``; detached calls ``entry.untrack`` and subtracts one;
    updated calls ``entry.track``; destroyed calls ``entry.untrack``,
    subtracts one from ``allocated`` and adds one to ``deallocated``.
    Override :meth:`_get_entry` to key entries differently, ``type_tracker``
    to use another entry class, or the entry's ``track``/``untrack``.
    """

    type_tracker: Any = TrackedType

    # True while `_get_entry` is the one below: the lookup is then done
    # inline, sparing a Python call per notification (the entry's own
    # `track`/`untrack` are still called unless the entry is a plain
    # TrackedType, whose methods are inlined too).
    _plain_entries = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_entries = cls._get_entry is Tracker._get_entry

    def _get_entry(self, serial: int | None, objtype: Any, bundle: Any) -> Any:
        """The entry that counts this object: ``self[objtype.__name__]``,
        made with ``self.type_tracker()`` (then given ``objtype``) if new."""
        name = objtype.__name__
        entry = self.get(name)
        if entry is None:
            entry = self.type_tracker()
            entry.objtype = objtype
            self[name] = entry
        return entry

    def notify_attached(self, serial: int, objtype: Any, bundle: Any) -> None:
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        if type(entry) is TrackedType:
            if entry.objects is not None:
                entry.objects[serial] = bundle
        else:
            entry.track(serial, objtype, bundle)
        entry.allocated += 1

    def notify_detached(self, serial: int, objtype: Any, bundle: Any) -> None:
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        if type(entry) is TrackedType:
            if entry.objects is not None:
                entry.objects.pop(serial, None)
        else:
            entry.untrack(serial, objtype, bundle)
        entry.allocated -= 1

    def notify_updated(self, serial: int, objtype: Any, bundle: Any) -> None:
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        entry.track(serial, objtype, bundle)

    def notify_destroyed(self, serial: int, objtype: Any, bundle: Any) -> None:
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        if type(entry) is TrackedType:
            if entry.objects is not None:
                entry.objects.pop(serial, None)
        else:
            entry.untrack(serial, objtype, bundle)
        entry.allocated -= 1
        entry.deallocated += 1

    def set_object_tracking(self, cls: Any, enable: bool = True) -> None:
        """Keep (or stop keeping) each live object's bundle, by serial, for
        objects of ``cls`` attached from now on."""
        self._get_entry(None, cls, None).track_objects = enable

    def reset_object_tracking(self, cls: Any) -> None:
        """Forget the objects recorded so far for ``cls`` (tracking stays on
        if it was on; the counts are left alone)."""
        entry = self._get_entry(None, cls, None)
        if entry.objects is not None:
            entry.objects = {}

    def dump(self, output: IO[str] | None = None) -> None:
        """Write one line per entry, sorted by key, named after the entry's
        class, with a value's change since the previous dump in parentheses
        when it changed; after an entry with object tracking, one line per
        tracked object."""
        if output is None:
            output = sys.stdout
        previous: dict[Any, tuple[int, int]] = self.__dict__.setdefault("_previous_dump", {})
        try:
            keys = sorted(self)
        except TypeError:  # keys of mixed types
            keys = sorted(self, key=repr)
        lines = []
        for key in keys:
            entry = self[key]
            before = previous.get(key)
            name = getattr(entry.objtype, "__name__", None) or str(key)
            lines.append(
                "%-40s allocated: %-12s retired: %-12s"
                % (
                    name,
                    _with_change(entry.allocated, before and before[0]),
                    _with_change(entry.deallocated, before and before[1]),
                )
            )
            previous[key] = (entry.allocated, entry.deallocated)
            if entry.objects is not None:
                lines.extend(_object_line(s, b) for s, b in sorted(entry.objects.items()))
        output.write("".join(line + "\n" for line in lines))


# Notifications to a `Tracker` of exactly this class, with the stock
# `notify_attached`/`notify_destroyed` in place, are counted by the extension
# on these same objects when the entry is a plain TrackedType with object
# tracking off; every other case makes the Python call above.
_native._register_stock_tracker(Tracker, TrackedType)
