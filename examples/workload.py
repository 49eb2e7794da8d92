"""A small tracked service: requests come and go, sessions are pooled, and
one cache slowly leaks entries. Used by ``make demo`` and the tests."""

import random
import time

import pytracker


class Request(pytracker.Trackable):
    def __init__(self, path):
        self.path = path


class Session(pytracker.Trackable):
    def __init__(self, user):
        self.user = user


class CacheEntry(pytracker.Trackable):
    def __init__(self, key):
        self.key = key


class Service:
    """One `step()` handles a burst of requests."""

    def __init__(self, seed=1):
        self.rng = random.Random(seed)
        self.sessions = []
        self.cache = {}
        self.steps = 0

    def step(self):
        self.steps += 1
        batch = [Request("/item/%d" % self.rng.randrange(1000)) for _ in range(200)]
        for r in batch[:20]:
            r._set_data_bundle({"path": r.path})
        if len(self.sessions) < 50:
            self.sessions.append(Session(self.rng.randrange(100)))
        elif self.rng.random() < 0.5:
            self.sessions[self.rng.randrange(len(self.sessions))] = Session(self.rng.randrange(100))
        # The leak: a few entries per step, never evicted.
        for _ in range(3):
            key = (self.steps, self.rng.random())
            self.cache[key] = CacheEntry(key)
        del batch


def run(seconds, period=0.05):
    """Steps the service for `seconds` (Ctrl-C / SIGINT stops it quietly)."""
    service = Service()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            service.step()
            time.sleep(period)
    except KeyboardInterrupt:
        pass
    return service


def serve(seconds=3600.0):
    """Runs the service as its own process until SIGINT (or `seconds`)."""
    import signal

    # A process started in the background by a non-interactive shell
    # inherits SIGINT ignored; the demo stops this one with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(seconds)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import sys

    serve(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
