"""The native type under abuse: deep chains freed without overflowing the C
stack, the abstract-class check, interrupts raised inside Python trackers,
and native counts when an instance's __class__ is reassigned."""

import abc
import textwrap

import pytest
import pytracker
from tools import run_python


@pytest.mark.parametrize("link", ["bundle", "tracker"])
def test_freeing_a_deep_chain_does_not_overflow_the_stack(link):
    code = textwrap.dedent(
        """
        import threading
        import pytracker
        def build_and_free(n):
            head = pytracker.Trackable()
            node = head
            for _ in range(n):
                nxt = pytracker.Trackable()
                if LINK == "bundle":
                    node._set_data_bundle(nxt)
                else:
                    node._set_tracker(nxt)
                node = nxt
            del node
            del head  # frees the whole chain
        build_and_free(300000)
        threading.stack_size(1 << 20)
        t = threading.Thread(target=build_and_free, args=(100000,))
        t.start()
        t.join()
        # A chain of subclass instances, through both links.
        class Node(pytracker.Trackable):
            pass
        head = Node()
        node = head
        for i in range(200000):
            nxt = Node() if i % 2 else pytracker.Trackable()
            node._set_data_bundle(nxt)
            node = nxt
        del node, head
        print("freed")
        """
    ).replace("LINK", repr(link))
    r = run_python(code, timeout=120)
    assert r.returncode == 0, "rc %d: %s" % (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "freed"


def test_abstract_subclasses_cannot_be_instantiated():
    class Base(pytracker.Trackable, metaclass=abc.ABCMeta):
        @abc.abstractmethod
        def run(self): ...

    class Plain(metaclass=abc.ABCMeta):
        @abc.abstractmethod
        def run(self): ...

    with pytest.raises(TypeError) as tracked:
        Base()
    with pytest.raises(TypeError) as plain:
        Plain()
    # The same message as object.__new__ gives, whatever the version says.
    assert str(tracked.value) == str(plain.value).replace("Plain", "Base")

    class Done(Base):
        def run(self):
            return 1

    assert Done().run() == 1


INTERRUPTING = """
    import signal, sys
    import pytracker

    # As in an interactive program, whatever the test runner inherited.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class Interrupting(pytracker.Tracker):
        raising = None
        raising_in_destroy = None
        def notify_attached(self, serial, objtype, bundle):
            if self.raising:
                raise self.raising()
        notify_updated = notify_attached
        notify_detached = notify_attached
        def notify_destroyed(self, serial, objtype, bundle):
            if self.raising_in_destroy:
                raise self.raising_in_destroy()

    class C(pytracker.Trackable):
        pass

    t = Interrupting()
    pytracker.set_global_tracker(t)
    caught = []
    for exc in (KeyboardInterrupt, SystemExit):
        t.raising = exc
        # Outside a destructor: creation, updates, tracker changes propagate.
        for action in ("create", "update", "set"):
            try:
                if action == "create":
                    C()
                elif action == "update":
                    t.raising = None; o = C(); t.raising = exc
                    o._set_data_bundle(1)
                else:
                    t.raising = None; o = C(); t.raising = exc
                    o._set_tracker(None)
            except BaseException as e:
                caught.append((action, type(e).__name__))
        t.raising = None
    print("caught", caught)
    # Inside a destructor, a KeyboardInterrupt is delivered again, not lost.
    o = C()
    t.raising_in_destroy = KeyboardInterrupt
    try:
        del o
        for _ in range(1000):
            pass
        print("lost")
    except KeyboardInterrupt:
        print("redelivered")
    t.raising_in_destroy = None
"""


def test_interrupts_in_python_trackers_are_not_swallowed():
    r = run_python(textwrap.dedent(INTERRUPTING))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    caught = eval(lines[0][len("caught ") :])
    want = [(a, e) for e in ("KeyboardInterrupt", "SystemExit") for a in ("create", "update", "set")]
    assert caught == want
    assert lines[1] == "redelivered"
    assert "Exception ignored" not in r.stderr


def test_native_counts_follow_the_class_counted_at_creation():
    counting = pytracker.CountingTracker()
    pytracker.set_global_tracker(counting)
    try:

        class A(pytracker.Trackable):
            pass

        class B(pytracker.Trackable):
            pass

        objs = [A() for _ in range(10)]
        for o in objs[:4]:
            o.__class__ = B
        del objs, o
        by_name = {c["name"].rsplit(".", 1)[1]: c for c in counting.snapshot()}
        assert (by_name["A"]["created"], by_name["A"]["live"]) == (10, 0)
        assert "B" not in by_name or by_name["B"]["live"] == 0
        # Assigned before any tracker saw it: counted where it is counted.
        pytracker.set_global_tracker(None)
        late = A()
        late.__class__ = B
        late._set_tracker(counting)
        late._set_tracker(None)
        del late
        by_name = {c["name"].rsplit(".", 1)[1]: c for c in counting.snapshot()}
        assert all(c["live"] == 0 for c in by_name.values()), by_name
    finally:
        pytracker.set_global_tracker(None)


CTRL_C = """
    import signal, sys
    import pytracker
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pytracker.set_global_tracker(pytracker.Tracker())  # the stock Python tracker
    class Job(pytracker.Trackable):
        pass
    caught = 0
    while caught < 20:
        try:
            print("armed", caught, flush=True)
            while True:
                kept = [Job() for _ in range(50)]
                del kept
        except KeyboardInterrupt:
            caught += 1
    print("done", caught, flush=True)
"""


def test_every_ctrl_c_reaches_a_program_using_the_stock_tracker():
    import os
    import signal
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CTRL_C)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        import select

        for i in range(20):
            # Each press is sent once the previous one was caught; a lost
            # one is never answered.
            ready, _, _ = select.select([p.stdout], [], [], 10)
            assert ready, "Ctrl-C number %d was lost" % i
            assert p.stdout.readline().strip() == "armed %d" % i
            os.kill(p.pid, signal.SIGINT)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        assert ready, "the last Ctrl-C was lost"
        assert p.stdout.readline().strip() == "done 20"
        assert p.wait(timeout=30) == 0
        assert "Exception ignored" not in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
