"""A reader's memory is bounded by the format's limits, however large and
full a segment is: the largest segment the format allows, with every class
slot in use, read by dump and by pytracker-top in a real terminal."""

import subprocess
import sys
import textwrap
import time

from test_top import Tmux
from tools import binary

# What the largest segment may cost a reader (it maps ~72 MiB of it).
LIMIT_KB = 300 * 1024

BUILD = textwrap.dedent(
    """
    import os, struct, sys
    import pytracker
    d = sys.argv[1]
    t = pytracker.ShmTracker(directory=d, class_capacity=2**16, ring_capacity=2**20,
                             history_capacity=96, sampler=False)
    class C(pytracker.Trackable):
        pass
    pytracker.set_global_tracker(t)
    keep = [C() for _ in range(10)]
    t.sample()
    data = bytearray(open(t.path, "rb").read())
    class_offset, capacity, slot_size = struct.unpack_from("<QQQ", data, 32)
    struct.pack_into("<Q", data, 152, capacity - 1)  # every slot claimed
    struct.pack_into("<Q", data, 368, capacity - 1)  # and backed
    first = bytes(data[class_offset:class_offset + slot_size])
    for i in range(1, capacity - 1):
        slot = bytearray(first)
        name = ("big.Class%07d" % i).ljust(110, "x").encode()
        struct.pack_into("<Q", slot, 16, len(name))
        slot[24:24 + len(name)] = name
        at = class_offset + i * slot_size
        data[at:at + slot_size] = slot
    out = os.path.join(d, "largest")
    with open(out, "wb") as f:
        f.write(data)
    print(out, capacity - 1)
    """
)

MEASURE = textwrap.dedent(
    """
    import resource, subprocess, sys
    r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
    print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def largest_segment(tmp_path):
    r = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path, classes = r.stdout.split()
    return path, int(classes)


def test_dump_and_top_memory_is_bounded_on_the_largest_segment(tmp_path):
    path, classes = largest_segment(tmp_path)
    assert classes == 65535
    r = subprocess.run(
        [sys.executable, "-c", MEASURE, binary("pytracker-cli"), "dump", "--path", path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, maxrss_kb = map(int, r.stdout.split())
    assert code == 0
    assert maxrss_kb < LIMIT_KB, "dump used %d MiB" % (maxrss_kb // 1024)

    tmux = Tmux(tmp_path)
    try:
        tmux.type("%s --path %s --interval 100ms" % (binary("pytracker-top"), path), enter=True)
        tmux.wait_for(lambda s: "┌ classes 65535 " in s, timeout=30)
        time.sleep(1.5)  # a dozen refreshes
        pids = subprocess.run(["pgrep", "-x", "pytracker-top"], capture_output=True, text=True).stdout.split()
        hwm = []
        for pid in pids:
            with open("/proc/%s/cmdline" % pid) as f:
                if path not in f.read().replace("\0", " "):
                    continue
            with open("/proc/%s/status" % pid) as f:
                hwm += [int(l.split()[1]) for l in f if l.startswith("VmHWM:")]
        assert hwm, "pytracker-top is not running"
        assert max(hwm) < LIMIT_KB, "top used %d MiB" % (max(hwm) // 1024)
        tmux.key("q")
    finally:
        tmux.close()
