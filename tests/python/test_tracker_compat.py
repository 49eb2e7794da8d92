"""Drop-in compatibility with the original package's Tracker and
TrackedType: entry protocol, counting per notification, object tracking
and the dump format, as code written for the original expects them."""

import copy
import gc
import io
import pickle

import pytest
import pytracker
from pytracker import Trackable, TrackedType, Tracker


@pytest.fixture
def tracker():
    t = Tracker()
    pytracker.set_global_tracker(t)
    yield t
    pytracker.set_global_tracker(None)


class Widget(Trackable):
    pass


class Slotted(Trackable):
    __slots__ = ("x",)


# 1. TrackedType() and type_tracker() without arguments


def test_tracked_type_without_arguments_has_class_defaults():
    e = TrackedType()
    assert (e.objtype, e.allocated, e.deallocated, e.objects) == (None, 0, 0, None)
    e.bundle = "mine"  # users keep their own attributes on entries
    e.anything = 1
    assert (e.bundle, e.anything) == ("mine", 1)
    assert TrackedType(Widget).objtype is Widget


def test_entries_are_made_by_a_no_argument_type_tracker():
    made = []

    class Entry(TrackedType):
        def __init__(self):
            made.append(self)

    class MyTracker(Tracker):
        type_tracker = Entry

    t = MyTracker()
    w = Widget()
    w._set_tracker(t)
    (entry,) = made
    assert t["Widget"] is entry and entry.objtype is Widget and entry.allocated == 1


# 2. track_objects


def test_track_objects_property():
    e = TrackedType()
    assert e.track_objects is False
    e.track_objects = True
    assert e.objects == {} and e.track_objects is True
    e.objects[5] = "b"
    e.track_objects = True  # keeps what is there
    assert e.objects == {5: "b"}
    e.track_objects = False
    assert e.objects is None


# 3. track / untrack / dump_objects, and overrides honoured


def test_track_untrack_dump_objects():
    e = TrackedType(Widget)
    e.track(1, Widget, "one")
    assert e.objects is None, "nothing recorded while tracking is off"
    e.track_objects = True
    e.track(1, Widget, "one")
    e.track(2, Widget, None)
    e.untrack(3, Widget, None)  # absent: no error
    out = io.StringIO()
    e.dump_objects(out)
    assert out.getvalue() == "   obj#1        bundle:'one'\n   obj#2        bundle:''\n"
    e.untrack(1, Widget, "one")
    assert e.objects == {2: None}


def test_tracker_goes_through_overridden_track_and_untrack():
    calls = []

    class Entry(TrackedType):
        def track(self, serial, objtype, bundle):
            calls.append(("track", bundle))

        def untrack(self, serial, objtype, bundle):
            calls.append(("untrack", bundle))

    class MyTracker(Tracker):
        type_tracker = Entry

    t = MyTracker()
    w = Widget()
    w._set_tracker(t)
    w._set_data_bundle("b")
    w._set_tracker(None)
    w._set_tracker(t)
    del w
    assert calls == [("track", None), ("track", "b"), ("untrack", "b"), ("track", "b"), ("untrack", "b")]


# 4. Counting per notification


def test_counting_per_notification(tracker):
    w = Widget()
    e = tracker["Widget"]
    assert (e.allocated, e.deallocated) == (1, 0)
    w._set_tracker(tracker)  # detached then attached: not a retirement
    assert (e.allocated, e.deallocated) == (1, 0)
    w._set_tracker(tracker)
    assert (e.allocated, e.deallocated) == (1, 0)
    w._set_tracker(None)
    assert (e.allocated, e.deallocated) == (0, 0)
    w._set_tracker(tracker)
    del w
    assert (e.allocated, e.deallocated) == (0, 1)


def test_get_entry_is_called_for_every_notification():
    seen = []

    class BySerial(Tracker):
        def _get_entry(self, serial, objtype, bundle):
            seen.append(serial)
            self[serial] = self.get(serial) or TrackedType()
            return self[serial]

    t = BySerial()
    pytracker.set_global_tracker(t)
    try:
        w = Widget()
        s = w._get_tracker_serial()
        w._set_data_bundle(1)
        w._set_tracker(t)
        del w
    finally:
        pytracker.set_global_tracker(None)
    assert seen == [s] * 5  # attached, updated, detached, attached, destroyed
    assert (t[s].allocated, t[s].deallocated) == (0, 1)


# 5. set_object_tracking / reset_object_tracking


def test_set_and_reset_object_tracking(tracker):
    tracker.set_object_tracking(Widget)
    assert tracker["Widget"].track_objects
    ws = [Widget() for _ in range(3)]
    assert len(tracker["Widget"].objects) == 3
    tracker.reset_object_tracking(Widget)
    e = tracker["Widget"]
    assert e.objects == {} and e.allocated == 3, "counts are left alone"
    tracker.set_object_tracking(Widget, False)
    tracker.reset_object_tracking(Widget)
    assert e.objects is None, "reset does not turn tracking on"
    del ws


# 6. The dump format


def test_dump_shows_changes_only_when_values_changed(tracker):
    a, b = Widget(), Widget()
    out = io.StringIO()
    tracker.dump(out)
    tracker.dump(out)  # nothing changed: values alone
    del a
    tracker.set_object_tracking(Widget)
    c = Widget()
    c._set_data_bundle({"k": 1})
    d = Widget()  # falsy bundle (None) shows as ''
    tracker.dump(out)
    lines = out.getvalue().split("\n")
    assert lines[0] == "Widget                                   allocated: 2            retired: 0           "
    assert lines[1] == lines[0]
    assert lines[2] == "Widget                                   allocated: 3 (+1)       retired: 1 (+1)      "
    assert lines[3] == "   obj#%-8d bundle:'{'k': 1}'" % c._get_tracker_serial()
    assert lines[4] == "   obj#%-8d bundle:''" % d._get_tracker_serial()
    assert lines[5:] == [""]


# 7. Fast path kept only where nothing is overridden


def test_fast_path_only_for_the_plain_entry_lookup():
    class Keyed(Tracker):
        def _get_entry(self, serial, objtype, bundle):
            return Tracker._get_entry(self, serial, objtype, bundle)

    class Entries(Tracker):
        type_tracker = TrackedType

    assert Tracker._plain_entries and Entries._plain_entries
    assert not Keyed._plain_entries


# Whole scenarios, written as the original's users write them


def test_scenario_tracker_keyed_by_serial_with_bundles():
    class BundleTracker(Tracker):
        def _get_entry(self, serial, objtype, bundle):
            entry = self.get(serial)
            if entry is None:
                entry = self[serial] = TrackedType()
                entry.objtype = objtype
                entry.bundle = bundle
            return entry

    tracker = BundleTracker()

    class Thing(Trackable):
        def __init__(self, name):
            self._set_data_bundle(name)
            self._set_tracker(tracker)

    things = [Thing("thing-%d" % i) for i in range(4)]
    gc.collect()
    assert len(tracker) == 4
    for i, thing in enumerate(things):
        entry = tracker[thing._get_tracker_serial()]
        assert (entry.objtype, entry.bundle, entry.allocated, entry.deallocated) == (Thing, "thing-%d" % i, 1, 0)
    serials = [t._get_tracker_serial() for t in things]
    del things, thing
    gc.collect()
    assert [(tracker[s].allocated, tracker[s].deallocated) for s in serials] == [(0, 1)] * 4


def test_scenario_dump_after_each_step(tracker):
    out = io.StringIO()
    w, t, s = Widget(), Trackable(), Slotted()
    s.x = 1
    tracker.dump(out)
    copies = [copy.copy(w), copy.copy(t), copy.copy(s)]
    tracker.dump(out)
    pickled = [pickle.loads(pickle.dumps(o)) for o in (w, t, s)]
    tracker.dump(out)
    del w, t, s, copies, pickled
    gc.collect()
    tracker.dump(out)
    expected = [
        "Slotted                                  allocated: 1            retired: 0           ",
        "Trackable                                allocated: 1            retired: 0           ",
        "Widget                                   allocated: 1            retired: 0           ",
        "Slotted                                  allocated: 2 (+1)       retired: 0           ",
        "Trackable                                allocated: 2 (+1)       retired: 0           ",
        "Widget                                   allocated: 2 (+1)       retired: 0           ",
        "Slotted                                  allocated: 3 (+1)       retired: 0           ",
        "Trackable                                allocated: 3 (+1)       retired: 0           ",
        "Widget                                   allocated: 3 (+1)       retired: 0           ",
        "Slotted                                  allocated: 0 (-3)       retired: 3 (+3)      ",
        "Trackable                                allocated: 0 (-3)       retired: 3 (+3)      ",
        "Widget                                   allocated: 0 (-3)       retired: 3 (+3)      ",
    ]
    assert out.getvalue().split("\n") == expected + [""]


# The stock Tracker's native counting gives what the Python methods give


def _workload(t):
    pytracker.set_global_tracker(t)
    try:
        kept = [Widget() for _ in range(50)] + [Slotted() for _ in range(7)]
        for w in kept[:10]:
            w._set_tracker(None)
        for w in kept[10:20]:
            w._set_data_bundle("b")
        del kept[25:]
        gc.collect()
        return {k: (e.allocated, e.deallocated) for k, e in t.items()}, kept
    finally:
        pytracker.set_global_tracker(None)


def test_stock_tracker_counts_as_its_python_methods_do():
    class PythonPath(Tracker):
        def notify_attached(self, serial, objtype, bundle):
            return Tracker.notify_attached(self, serial, objtype, bundle)

        def notify_destroyed(self, serial, objtype, bundle):
            return Tracker.notify_destroyed(self, serial, objtype, bundle)

    stock, kept_a = _workload(Tracker())
    python, kept_b = _workload(PythonPath())
    assert stock == python == {"Widget": (15, 25), "Slotted": (0, 7)}


def test_replaced_methods_and_unusual_entries_take_the_python_call():
    calls = []
    original = Tracker.notify_attached
    Tracker.notify_attached = lambda self, s, o, b: calls.append("class")
    try:
        Widget()._set_tracker(Tracker())
    finally:
        Tracker.notify_attached = original
    t = Tracker()
    t.notify_attached = lambda s, o, b: calls.append("instance")
    Widget()._set_tracker(t)
    assert calls == ["class", "instance"]

    t = Tracker()
    w = Widget()
    w._set_tracker(t)
    t["Widget"].allocated = 1.5  # not an int: Python arithmetic decides
    w2 = Widget()
    w2._set_tracker(t)
    assert t["Widget"].allocated == 2.5
    del w2
    assert (t["Widget"].allocated, t["Widget"].deallocated) == (1.5, 1)

    class Entry(TrackedType):
        pass

    t = Tracker()
    t["Widget"] = Entry(Widget)
    w3 = Widget()
    w3._set_tracker(t)
    assert t["Widget"].allocated == 1


# The entries' counts are native fields of TrackedType's base


def test_entry_counts_keep_any_value_python_arithmetic_decides():
    e = TrackedType()
    for value in (2**70, True, 1.5, "n", None):
        e.allocated = value
        assert e.allocated is value or e.allocated == value
    e.allocated = 2**63 - 1
    t = Tracker()
    t["Widget"] = e
    w = Widget()
    w._set_tracker(t)  # past 64 bits: the Python call counts
    assert e.allocated == 2**63
    e.allocated = -5
    e.deallocated = 7
    del w
    assert (e.allocated, e.deallocated) == (-6, 8)
    with pytest.raises(AttributeError):
        del e.allocated


def test_entries_copy_and_pickle_with_their_counts():
    t = Tracker()
    kept = [Widget() for _ in range(3)]
    for w in kept:
        w._set_tracker(t)
    del kept[0]
    t["Widget"].note = "mine"
    t["Widget"].deallocated = 2**70  # held as a Python int
    copies = [copy.copy(t["Widget"]), copy.deepcopy(t["Widget"])]
    copies += [pickle.loads(pickle.dumps(t, proto))["Widget"] for proto in range(pickle.HIGHEST_PROTOCOL + 1)]
    for c in copies:
        assert type(c) is TrackedType
        assert (c.allocated, c.deallocated, c.note, c.objtype) == (2, 2**70, "mine", Widget)
        assert c.objects is None


def test_a_class_attribute_shadowing_the_counts_takes_the_python_call():
    t = Tracker()
    TrackedType.allocated = 100  # the class-level value shadows the native field
    try:
        w = Widget()
        w._set_tracker(t)
        entry = t["Widget"]
        # The Python call: read 100 from the class, store 101 on the instance.
        assert entry.__dict__["allocated"] == 101 and entry.allocated == 101
    finally:
        del TrackedType.allocated
    assert entry.allocated == 0  # the native field again, untouched meanwhile
    w2 = Widget()
    w2._set_tracker(t)
    assert entry.allocated == 1
