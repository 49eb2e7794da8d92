"""Console scripts: the same pytracker-cli and pytracker-top as the Rust
binaries, compiled into the extension module."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from . import _native


def _run(main: Callable[[list[str]], int]) -> NoReturn:
    # The tools handle SIGINT/SIGTERM themselves (Ctrl-C is a key in the
    # TUI); let the default actions apply instead of Python's handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main([sys.argv[0]] + sys.argv[1:]))


def cli() -> NoReturn:
    """Entry point of the ``pytracker-cli`` console script."""
    _run(_native.cli_main)


def top() -> NoReturn:
    """Entry point of the ``pytracker-top`` console script."""
    _run(_native.top_main)
