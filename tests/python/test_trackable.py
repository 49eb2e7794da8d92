"""The Trackable type: serials, trackers, bundles, destruction, errors."""

import gc
import sys
import threading
import weakref

import pytest
import pytracker
from pytracker import Trackable
from tools import Recorder, run_python


class Widget(Trackable):
    pass


class Gadget(Trackable):
    def __init__(self, size):
        super().__init__()
        self.size = size


def test_is_a_native_type_that_behaves_like_object():
    assert type(Trackable) is type
    assert Trackable.__module__ == "pytracker"
    assert not hasattr(Trackable, "__dict__") or "__init__" not in Trackable.__dict__
    assert "Trackable" in repr(Trackable())
    w = Widget()
    w.anything = 5
    assert w.anything == 5
    assert isinstance(w, Trackable)
    assert Gadget(3).size == 3
    with pytest.raises(AttributeError):
        Trackable().anything = 1


def test_arguments_without_init_are_an_error_like_object():
    with pytest.raises(TypeError, match=r"Widget\(\) takes no arguments"):
        Widget(1)
    with pytest.raises(TypeError, match="takes no arguments"):
        Trackable(x=1)


def test_weakref_supported():
    for cls in (Trackable, Widget):
        obj = cls()
        r = weakref.ref(obj)
        assert r() is obj
        del obj
        assert r() is None


def test_weakref_callback_runs_on_destruction(recorder):
    pytracker.set_global_tracker(recorder)
    seen = []
    w = Widget()
    r = weakref.ref(w, lambda ref: seen.append("cb"))
    del w
    assert seen == ["cb"]
    assert recorder.kinds() == ["attached", "destroyed"]
    assert r() is None


def test_serials_unique_and_increasing_across_classes():
    objs = [Widget(), Gadget(1), Trackable(), Widget()]
    serials = [o._get_tracker_serial() for o in objs]
    assert serials == sorted(serials)
    assert len(set(serials)) == 4


def test_serials_unique_across_threads():
    per_thread = 20000
    results = {}

    def work(i):
        results[i] = [Widget()._get_tracker_serial() for _ in range(per_thread)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allserials = [s for v in results.values() for s in v]
    assert len(set(allserials)) == 8 * per_thread
    for v in results.values():
        assert all(a < b for a, b in zip(v, v[1:], strict=False))


def test_counts_exact_with_many_threads():
    counting = pytracker.CountingTracker()
    pytracker.set_global_tracker(counting)
    kept = []
    lock = threading.Lock()

    def work():
        mine = []
        for i in range(10000):
            w = Widget()
            if i % 10 == 0:
                mine.append(w)
        with lock:
            kept.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = {r["name"]: r for r in counting.snapshot()}[__name__ + ".Widget"]
    assert (rec["created"], rec["live"], rec["destroyed"]) == (60000, 6000, 54000)
    del kept[:]
    rec = {r["name"]: r for r in counting.snapshot()}[__name__ + ".Widget"]
    assert rec["live"] == 0


def test_global_tracker_attached_at_creation(recorder):
    pytracker.set_global_tracker(recorder)
    assert pytracker.get_global_tracker() is recorder
    w = Widget()
    assert w._get_tracker() is recorder
    assert recorder.events == [("attached", w._get_tracker_serial(), Widget, None)]
    pytracker.set_global_tracker(None)
    assert pytracker.get_global_tracker() is None
    assert Widget()._get_tracker() is None
    # the object keeps the tracker it was created with
    assert w._get_tracker() is recorder


def test_disable_global_tracker_class_attribute(recorder):
    class Quiet(Trackable):
        _disable_global_tracker = True

    class QuietChild(Quiet):
        pass

    class Loud(Trackable):
        _disable_global_tracker = False

    pytracker.set_global_tracker(recorder)
    assert Quiet()._get_tracker() is None
    assert QuietChild()._get_tracker() is None
    assert Loud()._get_tracker() is recorder
    # changing the attribute later takes effect (the class cache follows it)
    Quiet._disable_global_tracker = False
    assert Quiet()._get_tracker() is recorder
    Quiet._disable_global_tracker = 1
    assert Quiet()._get_tracker() is None


def test_set_tracker_detaches_then_attaches(recorder):
    other = Recorder()
    w = Widget()
    s = w._get_tracker_serial()
    w._set_data_bundle("b")
    w._set_tracker(recorder)
    assert recorder.events == [("attached", s, Widget, "b")]
    w._set_tracker(recorder)  # same tracker: detached first, then attached
    assert recorder.kinds() == ["attached", "detached", "attached"]
    w._set_tracker(other)
    assert recorder.kinds()[-1] == "detached"
    assert other.kinds() == ["attached"]
    w._set_tracker(None)
    assert w._get_tracker() is None
    assert other.kinds() == ["attached", "detached"]
    del w
    assert other.kinds() == ["attached", "detached"]


def test_bundle_set_get_and_attribute(recorder):
    w = Widget()
    assert w._get_data_bundle() is None
    assert w._data_bundle is None
    w._set_tracker(recorder)
    w._set_data_bundle({"k": 1})
    assert w._get_data_bundle() == {"k": 1}
    assert recorder.events[-1] == ("updated", w._get_tracker_serial(), Widget, {"k": 1})
    n = len(recorder.events)
    w._data_bundle = "direct"
    assert w._get_data_bundle() == "direct"
    assert len(recorder.events) == n  # direct assignment does not notify
    w._set_data_bundle(None)
    assert w._data_bundle is None


def test_destroyed_once_by_refcount(recorder):
    pytracker.set_global_tracker(recorder)
    w = Widget()
    w._set_data_bundle("x")
    s = w._get_tracker_serial()
    del w
    assert recorder.events[-1] == ("destroyed", s, Widget, "x")
    assert recorder.kinds().count("destroyed") == 1


def test_destroyed_once_in_cycles(recorder):
    pytracker.set_global_tracker(recorder)
    gc.collect()
    a, b = Widget(), Widget()
    a.other, b.other = b, a
    serials = {a._get_tracker_serial(), b._get_tracker_serial()}
    del a, b
    assert "destroyed" not in recorder.kinds()
    gc.collect()
    destroyed = [e for e in recorder.events if e[0] == "destroyed"]
    assert {e[1] for e in destroyed} == serials
    assert len(destroyed) == 2


def test_cycle_through_bundle_and_tracker_collected(monkeypatch):
    # The tracker dies in the same garbage as the object; it may already be
    # cleared when told, and what it raises then goes to unraisablehook.
    monkeypatch.setattr(sys, "unraisablehook", lambda u: None)

    class Holder(pytracker.TrackerMixin):
        def __init__(self):
            self.objects = []
            self.destroyed = []

        def notify_destroyed(self, serial, objtype, bundle):
            self.destroyed.append((serial, bundle is not None))

    h = Holder()
    w = Widget()
    w._set_tracker(h)
    h.objects.append(w)  # cycle through the tracker
    box = [w]
    w._set_data_bundle(box)  # cycle through the bundle
    ref = weakref.ref(w)
    del w, box
    h_ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None
    assert h_ref() is None


def test_cycle_destroyed_notification_has_bundle(recorder):
    w = Widget()
    w._set_tracker(recorder)
    w.me = w
    w._set_data_bundle("kept")
    del w
    gc.collect()
    assert recorder.events[-1][0] == "destroyed"
    assert recorder.events[-1][3] == "kept"


def test_tracker_without_methods_is_not_told():
    class Partial:
        def __init__(self):
            self.n = 0

        def notify_attached(self, serial, objtype, bundle):
            self.n += 1

    p = Partial()
    pytracker.set_global_tracker(p)
    w = Widget()
    w._set_data_bundle(1)
    w._set_tracker(None)
    del w
    pytracker.set_global_tracker(object())
    Widget()
    assert p.n == 1


def test_tracker_exceptions_go_to_unraisablehook(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u))

    class Broken:
        def notify_attached(self, serial, objtype, bundle):
            raise ValueError("attach failed")

        def notify_destroyed(self, serial, objtype, bundle):
            raise KeyError("destroy failed")

        def notify_updated(self, serial, objtype, bundle):
            raise AttributeError("inner attribute error")

    pytracker.set_global_tracker(Broken())
    w = Widget()  # no exception reaches the caller
    w._set_data_bundle(3)
    del w
    kinds = [type(u.exc_value) for u in seen]
    assert kinds == [ValueError, AttributeError, KeyError]


def test_pending_exception_preserved_through_destruction(recorder):
    pytracker.set_global_tracker(recorder)

    def fail():
        w = Widget()  # destroyed while the exception propagates
        raise RuntimeError("original")

    with pytest.raises(RuntimeError, match="original"):
        fail()
    assert recorder.kinds() == ["attached", "destroyed"]


def test_exception_in_destroy_while_raising(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u))

    class Broken:
        def notify_destroyed(self, serial, objtype, bundle):
            raise ValueError("tracker broke")

    pytracker.set_global_tracker(Broken())

    def fail():
        w = Widget()
        raise RuntimeError("user error")

    with pytest.raises(RuntimeError, match="user error"):
        fail()
    assert [type(u.exc_value) for u in seen] == [ValueError]


def test_multiple_inheritance_with_builtin_rejected():
    with pytest.raises(TypeError):

        class TrackedDict(Trackable, dict):
            pass

    with pytest.raises(TypeError):

        class TrackedList(list, Trackable):
            pass


def test_slots_subclass_and_del_subclass(recorder):
    class Slotted(Trackable):
        __slots__ = ("a",)

    class WithDel(Trackable):
        def __del__(self):
            recorder.events.append(("__del__",))

    pytracker.set_global_tracker(recorder)
    s = Slotted()
    s.a = 1
    with pytest.raises(AttributeError):
        s.b = 2
    del s
    d = WithDel()
    del d
    assert recorder.kinds() == ["attached", "destroyed", "attached", "__del__", "destroyed"]


def test_getsizeof_overhead_at_most_32_bytes():
    class Plain:
        pass

    assert sys.getsizeof(Widget()) - sys.getsizeof(Plain()) <= 32


def test_version_and_module_functions():
    assert pytracker.version() == 1
    assert isinstance(pytracker.version(), int)
    for name in pytracker.__all__:
        assert hasattr(pytracker, name)


def test_methods_reject_non_trackable():
    with pytest.raises(TypeError, match="expected a pytracker.Trackable"):
        Trackable._get_tracker_serial(object())


def test_counting_tracker_snapshot_fields():
    counting = pytracker.CountingTracker()
    pytracker.set_global_tracker(counting)
    ws = [Widget() for _ in range(3)]
    ws[0]._set_data_bundle(1)
    del ws[1]
    snap = counting.snapshot()
    (rec,) = [r for r in snap if r["name"] == __name__ + ".Widget"]
    assert set(rec) == {
        "name",
        "live",
        "created",
        "destroyed",
        "updated",
        "first_serial",
        "last_serial",
        "name_truncated",
        "overflow",
        "saturated",
    }
    assert (rec["live"], rec["created"], rec["destroyed"], rec["updated"]) == (2, 3, 1, 1)
    assert rec["first_serial"] == ws[0]._get_tracker_serial()
    assert rec["last_serial"] == ws[-1]._get_tracker_serial()
    assert "CountingTracker" in repr(counting)


def test_counting_tracker_qualified_names_and_moves():
    class Inner(Trackable):
        pass

    a, b = pytracker.CountingTracker(), pytracker.CountingTracker()
    x = Inner()
    x._set_tracker(a)
    x._set_tracker(b)
    ra = {r["name"]: r for r in a.snapshot()}
    name = __name__ + ".test_counting_tracker_qualified_names_and_moves.<locals>.Inner"
    assert ra[name]["live"] == 0 and ra[name]["destroyed"] == 1
    del x
    assert {r["name"]: r for r in b.snapshot()}[name]["destroyed"] == 1


def test_interpreter_shutdown_with_live_objects_is_silent():
    code = """
import pytracker
class A(pytracker.Trackable):
    pass
class Loud(pytracker.Tracker):
    def notify_destroyed(self, serial, objtype, bundle):
        print("destroyed", serial)
t = Loud()
pytracker.set_global_tracker(t)
keep = [A() for _ in range(100)]
cyc = A(); cyc.me = cyc
keep[0]._set_data_bundle(keep)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    r = run_python(code.replace("Loud()", "pytracker.CountingTracker()"))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_objects_keep_their_native_tracker_when_the_global_one_changes():
    a, b = pytracker.CountingTracker(), pytracker.CountingTracker()
    pytracker.set_global_tracker(a)
    old = [Widget() for _ in range(3)]
    pytracker.set_global_tracker(b)
    new = [Widget() for _ in range(2)]
    pytracker.set_global_tracker(None)
    del old[:2], new[0]
    name = __name__ + ".Widget"
    ra = {r["name"]: r for r in a.snapshot()}[name]
    rb = {r["name"]: r for r in b.snapshot()}[name]
    assert (ra["created"], ra["destroyed"]) == (3, 2)
    assert (rb["created"], rb["destroyed"]) == (2, 1)
    del a  # the objects still hold their tracker
    del old[:]
    gc.collect()


def test_global_tracker_replaced_while_a_class_is_first_seen():
    # The first object of a class makes pytracker look up class attributes;
    # a metaclass can run arbitrary code then, even drop the global tracker.
    class Meta(type):
        def __getattribute__(cls, name):
            if name == "_disable_global_tracker":
                pytracker.set_global_tracker(None)
            return super().__getattribute__(name)

    class Sneaky(Trackable, metaclass=Meta):
        pass

    pytracker.set_global_tracker(pytracker.CountingTracker())
    s = Sneaky()
    assert s._get_tracker() is None
    assert pytracker.get_global_tracker() is None


def test_classes_made_at_run_time_are_counted_under_one_name():
    counting = pytracker.CountingTracker()
    pytracker.set_global_tracker(counting)

    def factory():
        class Made(Trackable):
            pass

        return Made

    keep = [factory()() for _ in range(2000)]
    made = [r for r in counting.snapshot() if r["name"].endswith("factory.<locals>.Made")]
    assert len(made) == 1 and made[0]["live"] == 2000
    del keep
    gc.collect()
    made = [r for r in counting.snapshot() if r["name"].endswith("factory.<locals>.Made")]
    assert made[0]["live"] == 0 and made[0]["destroyed"] == 2000
