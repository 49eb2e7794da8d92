"""Shared helpers for tests that run the real binaries against real
tracked processes."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytracker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary(name):
    """Path of a built tool: $PYTRACKER_BIN_DIR (set by `make test`), else
    target/release."""
    directory = os.environ.get("PYTRACKER_BIN_DIR") or os.path.join(REPO, "target", "release")
    path = os.path.join(directory, name)
    assert os.access(path, os.X_OK), "%s is not built: run `make build`" % path
    return path


def run_tool(name, *args, env=None, timeout=60):
    """Runs a tool to completion; returns the CompletedProcess."""
    return subprocess.run(
        [binary(name)] + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


PROGRAM = textwrap.dedent(
    """
    import os, sys
    import pytracker

    class Order(pytracker.Trackable):
        pass

    class Line(pytracker.Trackable):
        pass

    class Audit(pytracker.Trackable):
        pass

    kept = []
    print("ready", os.getpid(), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "make":
            cls = globals()[cmd[1]]
            n, keep = int(cmd[2]), int(cmd[3])
            for i in range(n):
                o = cls()
                if i < keep:
                    kept.append(o)
            o = None
        elif cmd[0] == "drop":
            del kept[:]
        elif cmd[0] == "exit":
            break
        print("done", flush=True)
    """
)


class TrackedProcess:
    """A real Python process exporting its inventory, driven over stdin.
    Killed when closed (or garbage-collected by the fixture)."""

    def __init__(self, directory, export=True):
        env = dict(os.environ, PYTRACKER_DIR=str(directory))
        if export:
            env["PYTRACKER_EXPORT"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROGRAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        first = self.proc.stdout.readline().split()
        assert first and first[0] == "ready", self.proc.stderr.read()
        self.pid = int(first[1])

    def make(self, cls, n, keep):
        self.proc.stdin.write("make %s %d %d\n" % (cls, n, keep))
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def drop(self):
        """Releases every object kept so far."""
        self.proc.stdin.write("drop\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def exit(self):
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)


def have_tmux():
    return shutil.which("tmux") is not None


class Recorder(pytracker.TrackerMixin):
    """A tracker that records every notification."""

    def __init__(self):
        self.events = []

    def notify_attached(self, serial, objtype, bundle):
        self.events.append(("attached", serial, objtype, bundle))

    def notify_detached(self, serial, objtype, bundle):
        self.events.append(("detached", serial, objtype, bundle))

    def notify_updated(self, serial, objtype, bundle):
        self.events.append(("updated", serial, objtype, bundle))

    def notify_destroyed(self, serial, objtype, bundle):
        self.events.append(("destroyed", serial, objtype, bundle))

    def kinds(self):
        return [e[0] for e in self.events]


def run_python(code, env=None, timeout=60):
    """Runs ``code`` in a fresh interpreter of this virtualenv."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
