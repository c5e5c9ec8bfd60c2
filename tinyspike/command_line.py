"""What every ``tinyspike`` command shares: the user-error type, argparse value types,
``--opt KEY=VALUE`` parsing, the backend switch and SIGTERM handling.

Both ``tinyspike/cli.py`` (train, eval, info) and ``tinyspike/analysis/commands.py`` (analyze)
use these; they live below both so that ``analysis`` never imports ``cli`` (the layer above it).
It also gives ``UserError`` one home: run as ``python -m tinyspike.cli``, the CLI module is
``__main__``, and a class defined there would differ from ``tinyspike.cli.UserError``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from tinyspike import backend


class UserError(Exception):
    """An error whose message is all the user needs (no traceback)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: it unwinds exactly as Ctrl-C does (atomic writes remove
    their temporary files, ``last.npz`` keeps the last finished epoch)."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While training, turn SIGTERM (``kill``, a batch scheduler's time limit) into ``Terminated``."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _integer_at_least(text, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
    return value


def positive_int(text) -> int:
    """argparse type: an integer >= 1."""
    return _integer_at_least(text, 1, "positive")


def nonneg_int(text) -> int:
    """argparse type: an integer >= 0."""
    return _integer_at_least(text, 0, "non-negative")


def real_number(text) -> float:
    """argparse type: any number ``float()`` reads."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parse_options(items, flag):
    """``["a=1", "b=[2,3]", "c=text"]`` -> ``{"a": 1, "b": [2, 3], "c": "text"}`` (None if no items)."""
    if not items:
        return None
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UserError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def use_backend(name):
    """``backend.use(name)``; an unknown name is a UserError."""
    try:
        backend.use(name)
    except ValueError:
        raise UserError(f"unknown backend {name!r}; choose numpy or cupy") from None
