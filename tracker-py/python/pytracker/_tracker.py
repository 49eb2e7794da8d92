"""The Python-level trackers: the ``TrackerMixin`` protocol and the ``Tracker``
inventory that users of the original package know."""

import sys

__all__ = ["TrackerMixin", "TrackedType", "Tracker"]


class TrackerMixin(object):
    """The tracker protocol. Any object with these methods can be a tracker;
    a missing method means that notification is not wanted.

    Each method is called with the object's serial, its type and its data
    bundle. They run during object creation and destruction: keep them short,
    and never keep a reference to the object.
    """

    def notify_attached(self, serial, objtype, bundle):
        """The object was given this tracker (at creation or by ``_set_tracker``)."""

    def notify_detached(self, serial, objtype, bundle):
        """The object was given another tracker, or none."""

    def notify_updated(self, serial, objtype, bundle):
        """The object's data bundle was set."""

    def notify_destroyed(self, serial, objtype, bundle):
        """The object is being destroyed."""


class TrackedType(object):
    """One class's entry in a :class:`Tracker`.

    ``allocated`` counts objects currently attached, ``deallocated`` those
    retired (destroyed or detached); ``objects`` maps serial to bundle for
    live objects when object tracking is on for the class, else is ``None``.
    """

    __slots__ = ("objtype", "allocated", "deallocated", "objects", "_dumped")

    def __init__(self, objtype):
        self.objtype = objtype
        self.allocated = 0
        self.deallocated = 0
        self.objects = None
        self._dumped = None

    def __repr__(self):
        return "<TrackedType %s allocated=%d deallocated=%d>" % (
            getattr(self.objtype, "__name__", self.objtype),
            self.allocated,
            self.deallocated,
        )


def _with_change(value, previous):
    if previous is None:
        return str(value)
    return "%d (%+d)" % (value, value - previous)


class Tracker(dict, TrackerMixin):
    """An inventory of tracked objects: a ``dict`` from class ``__name__`` to
    :class:`TrackedType`.

    Override :meth:`_get_entry` to key entries differently, and
    ``type_tracker`` to use another entry class.
    """

    type_tracker = TrackedType

    # True while `_get_entry` is the one below: notifications then look the
    # entry up inline, sparing a Python call per object.
    _plain_entries = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._plain_entries = cls._get_entry is Tracker._get_entry

    def _get_entry(self, serial, objtype, bundle):
        """The entry that counts this object."""
        name = objtype.__name__
        entry = self.get(name)
        if entry is None:
            entry = self[name] = self.type_tracker(objtype)
        return entry

    def notify_attached(self, serial, objtype, bundle):
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        entry.allocated += 1
        if entry.objects is not None:
            entry.objects[serial] = bundle

    def notify_detached(self, serial, objtype, bundle):
        entry = self.get(objtype.__name__) if self._plain_entries else None
        if entry is None:
            entry = self._get_entry(serial, objtype, bundle)
        entry.allocated -= 1
        entry.deallocated += 1
        if entry.objects is not None:
            entry.objects.pop(serial, None)

    notify_destroyed = notify_detached

    def notify_updated(self, serial, objtype, bundle):
        entry = self._get_entry(serial, objtype, bundle)
        if entry.objects is not None and serial in entry.objects:
            entry.objects[serial] = bundle

    def set_object_tracking(self, cls, enable=True):
        """Keep (or stop keeping) each live object's bundle, by serial, for
        objects of ``cls`` attached from now on."""
        entry = self._get_entry(None, cls, None)
        if enable:
            if entry.objects is None:
                entry.objects = {}
        else:
            entry.objects = None

    def reset_object_tracking(self, cls):
        """Forget the objects recorded so far for ``cls`` (tracking stays on
        if it was on)."""
        entry = self._get_entry(None, cls, None)
        if entry.objects is not None:
            entry.objects = {}

    def dump(self, output=None):
        """Write one line per class, sorted by name, with the change since the
        previous dump in parentheses; then, for classes with object
        tracking, one line per live object in serial order."""
        if output is None:
            output = sys.stdout
        lines = []
        for name in sorted(self, key=str):
            entry = self[name]
            previous = entry._dumped
            lines.append(
                "%-40s allocated: %-12s retired: %-12s"
                % (
                    name,
                    _with_change(entry.allocated, previous and previous[0]),
                    _with_change(entry.deallocated, previous and previous[1]),
                )
            )
            entry._dumped = (entry.allocated, entry.deallocated)
            if entry.objects is not None:
                for serial in sorted(entry.objects):
                    lines.append("   obj#%-8s bundle:%r" % (serial, entry.objects[serial]))
        output.write("".join(line + "\n" for line in lines))
