"""`make demo`: a small tracked service, seen from outside.

In a terminal, it starts the built-in workload (requests, pooled sessions and
a slowly leaking cache) as a separate process exporting its inventory, and
opens pytracker-top on it (q quits and stops the workload). Without a
terminal, it prints a few periodic dumps and a diff instead.
"""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def tool(name):
    built = os.path.join(os.environ.get("PYTRACKER_BIN_DIR") or os.path.join(REPO, "target", "release"), name)
    if os.access(built, os.X_OK):
        return built
    return os.path.join(os.path.dirname(sys.executable), name)  # the console script


def start_workload():
    env = dict(os.environ, PYTRACKER_EXPORT="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import workload; workload.serve()"],
        cwd=HERE,
        env=env,
    )
    # Wait until its segment is published.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = subprocess.run(
            [tool("pytracker-cli"), "dump", "--pid", str(proc.pid), "--format", "csv"], capture_output=True
        )
        if r.returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    sys.exit("demo: the workload did not start exporting")


def main():
    proc = start_workload()
    try:
        if sys.stdout.isatty() and sys.stdin.isatty():
            subprocess.run([tool("pytracker-top"), "--pid", str(proc.pid), "--interval", "500ms"])
            return
        print(
            "pytracker demo: workload pid %d exports its inventory; no terminal, so dumps instead of pytracker-top\n"
            % proc.pid
        )
        for _ in range(3):
            time.sleep(1.0)
            print("$ pytracker-cli dump --pid %d" % proc.pid)
            sys.stdout.flush()
            subprocess.run([tool("pytracker-cli"), "dump", "--pid", str(proc.pid)])
            print()
            sys.stdout.flush()
        print("$ pytracker-cli diff --pid %d --interval 2s" % proc.pid)
        sys.stdout.flush()
        subprocess.run([tool("pytracker-cli"), "diff", "--pid", str(proc.pid), "--interval", "2s"])
        print("\nworkload.CacheEntry keeps growing: that is the leak. Run `make demo` in a terminal for pytracker-top.")
    finally:
        # SIGINT lets the workload exit normally, which removes its segment.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
