"""The Python Tracker inventory, TrackerMixin and dump_on_signal."""

import io
import os
import signal

import pytracker
from pytracker import Trackable, TrackedType, Tracker, TrackerMixin


class track_my_instances(Trackable):
    pass


def test_tracker_is_a_dict_of_tracked_types():
    t = Tracker()
    assert isinstance(t, dict)
    assert isinstance(t, TrackerMixin)
    pytracker.set_global_tracker(t)
    a, b = track_my_instances(), track_my_instances()
    entry = t["track_my_instances"]
    assert isinstance(entry, TrackedType)
    assert entry.objtype is track_my_instances
    assert (entry.allocated, entry.deallocated, entry.objects) == (2, 0, None)
    del a
    assert (entry.allocated, entry.deallocated) == (1, 1)
    b._set_tracker(None)  # a detach counts as no longer allocated
    assert entry.allocated == 0


def test_dump_format_line_by_line():
    t = Tracker()
    pytracker.set_global_tracker(t)
    first = track_my_instances()
    second = track_my_instances()
    out = io.StringIO()
    t.dump(out)
    assert out.getvalue().splitlines() == [
        "track_my_instances                       allocated: 2            retired: 0           ",
    ]
    t.set_object_tracking(track_my_instances)
    kept = track_my_instances()
    kept._set_data_bundle("hello")
    del first, second
    out = io.StringIO()
    t.dump(out)
    serial = kept._get_tracker_serial()
    assert out.getvalue().splitlines() == [
        "track_my_instances                       allocated: 1 (-1)       retired: 2 (+2)      ",
        "   obj#%-8d bundle:'hello'" % serial,
    ]


def test_dump_sorted_by_name_and_to_stdout(capsys):
    class Zeta(Trackable):
        pass

    class Alpha(Trackable):
        pass

    t = Tracker()
    pytracker.set_global_tracker(t)
    keep = [Zeta(), Alpha(), Alpha()]
    t.dump()
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines] == ["Alpha", "Zeta"]
    assert "allocated: 2 " in lines[0]


def test_object_tracking_order_and_reset():
    t = Tracker()
    pytracker.set_global_tracker(t)
    t.set_object_tracking(track_my_instances)
    objs = [track_my_instances() for _ in range(3)]
    for i, o in enumerate(objs):
        o._set_data_bundle(i)
    entry = t["track_my_instances"]
    assert list(entry.objects.items()) == [(o._get_tracker_serial(), i) for i, o in enumerate(objs)]
    t.reset_object_tracking(track_my_instances)
    assert entry.objects == {}
    t.set_object_tracking(track_my_instances, False)
    assert entry.objects is None


def test_get_entry_override_keys_by_serial():
    class PerObject(Tracker):
        def _get_entry(self, serial, objtype, bundle):
            entry = self.get(serial)
            if entry is None:
                entry = self[serial] = self.type_tracker(objtype)
            return entry

    t = PerObject()
    pytracker.set_global_tracker(t)
    a, b = track_my_instances(), track_my_instances()
    assert set(t) == {a._get_tracker_serial(), b._get_tracker_serial()}


def test_type_tracker_override():
    class MyEntry(TrackedType):
        pass

    class MyTracker(Tracker):
        type_tracker = MyEntry

    t = MyTracker()
    pytracker.set_global_tracker(t)
    x = track_my_instances()
    assert type(t["track_my_instances"]) is MyEntry


def test_mixin_methods_are_noops():
    m = TrackerMixin()
    for name in ("notify_attached", "notify_detached", "notify_updated", "notify_destroyed"):
        assert getattr(m, name)(1, int, None) is None
    pytracker.set_global_tracker(m)
    track_my_instances()


def test_dump_on_signal_writes_inventory():
    t = Tracker()
    pytracker.set_global_tracker(t)
    keep = [track_my_instances() for _ in range(4)]
    out = io.StringIO()
    previous = pytracker.dump_on_signal(signal.SIGUSR1, file=out)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert "track_my_instances" in out.getvalue()
        assert "allocated: 4" in out.getvalue()
        counting = pytracker.CountingTracker()
        out2 = io.StringIO()
        pytracker.dump_on_signal(signal.SIGUSR1, tracker=counting, file=out2)
        counting_keep = track_my_instances()
        counting_keep._set_tracker(counting)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert "track_my_instances" in out2.getvalue()
    finally:
        signal.signal(signal.SIGUSR1, previous)
