"""Pickling and copying Trackable objects of every kind."""

import copy
import pickle

import pytest
import pytracker
from pytracker import Trackable


class Plain(Trackable):
    def __init__(self, value=None):
        self.value = value


class Slotted(Trackable):
    __slots__ = ("a", "b")

    def __getstate__(self):
        d, s = super().__getstate__()
        s = dict(s)
        s["a"] = self.a
        return (d, s)

    def __setstate__(self, state):
        super().__setstate__(state)


class SlottedNoOverride(Trackable):
    __slots__ = ("x",)


def roundtrips(obj):
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        yield "pickle%d" % proto, pickle.loads(pickle.dumps(obj, proto))
    yield "copy", copy.copy(obj)
    yield "deepcopy", copy.deepcopy(obj)


def test_getstate_form():
    p = Plain(5)
    p._set_data_bundle("b")
    assert p.__getstate__() == ({"value": 5}, {"_data_bundle": "b"})
    assert Trackable().__getstate__() == (None, {"_data_bundle": None})


def test_plain_subclass(recorder):
    p = Plain([1, 2])
    p._set_data_bundle({"tag": "x"})
    pytracker.set_global_tracker(recorder)
    for how, q in roundtrips(p):
        assert type(q) is Plain, how
        assert q.value == [1, 2], how
        assert q._get_data_bundle() == {"tag": "x"}, how
        assert q._get_tracker_serial() > p._get_tracker_serial(), how
        assert q._get_tracker() is recorder, how
    # each copy: attached at creation, then updated by __setstate__
    kinds = [k for k in recorder.kinds() if k != "destroyed"]
    assert kinds == ["attached", "updated"] * (pickle.HIGHEST_PROTOCOL + 3)
    updated = [e for e in recorder.events if e[0] == "updated"]
    assert all(e[3] == {"tag": "x"} for e in updated)


def test_bare_trackable():
    t = Trackable()
    t._set_data_bundle(7)
    for how, q in roundtrips(t):
        assert type(q) is Trackable, how
        assert q._get_data_bundle() == 7, how
        assert q._get_tracker_serial() != t._get_tracker_serial()


def test_slots_subclass_calling_super():
    s = Slotted()
    s.a = "A"
    s._set_data_bundle("bb")
    for how, q in roundtrips(s):
        assert q.a == "A", how
        assert q._get_data_bundle() == "bb", how
        assert not hasattr(q, "b"), how


def test_slots_subclass_without_override_keeps_slots():
    s = SlottedNoOverride()
    s.x = 42
    for how, q in roundtrips(s):
        assert q.x == 42, how


def test_setstate_accepts_plain_dict_and_rejects_garbage(recorder):
    p = Plain()
    p._set_tracker(recorder)
    p.__setstate__({"value": 9})
    assert p.value == 9
    assert recorder.kinds()[-1] == "updated"
    with pytest.raises(TypeError, match="__setstate__ expects"):
        p.__setstate__(42)
    with pytest.raises(TypeError, match="__setstate__ expects"):
        p.__setstate__((1, 2, 3))


def test_getnewargs_honoured():
    class WithArgs(Trackable):
        def __init__(self, n):
            self.n = n

        def __getnewargs__(self):
            return (self.n,)

        def __new__(cls, n):
            return super().__new__(cls)

    globals()["WithArgs"] = WithArgs
    WithArgs.__qualname__ = "WithArgs"
    w = WithArgs(3)
    q = pickle.loads(pickle.dumps(w, 2))
    assert q.n == 3
