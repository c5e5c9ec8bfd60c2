"""The bad-input harness: call the public API with one bad argument and classify what happens.

Outcomes (the vocabulary of the project's bad-input audits):

- ``clear``: a ``TypeError`` or ``ValueError`` (or a subclass) whose message names the argument (as a
  whole word: ``p`` inside ``dropout`` does not count)
  (or, for a file, the file's name);
- ``unclear``: any other exception, or one whose message names none of the expected words;
- ``silent``: no exception at all: the bad value was accepted;
- ``crash``: the interpreter itself in trouble (``MemoryError``, ``RecursionError``, a
  ``BaseException`` that is not an ``Exception``). A segfault ends the process; the audit script
  (``benchmarks/bad_input_audit.py``) runs the suite in a subprocess to see those.

Every bad-input test calls ``assert_clear``. When the environment variable
``TINYSPIKE_BAD_INPUT_LOG`` names a file, each classified call appends one JSON line to it, so the
audit can count the outcomes of every generated case.
"""

from __future__ import annotations

import json
import os
import re
from typing import Callable, Iterable

OUTCOMES = ("clear", "unclear", "silent", "crash")
CLEAR_ERRORS = (TypeError, ValueError)


def _names(name: str, message: str) -> bool:
    """Whether ``message`` contains ``name`` as a whole word: ``"p"`` must not be found in
    ``"dropout"`` nor ``"lr"`` in ``"already"``, or a message about anything would pass."""
    before = r"(?<!\w)" if re.match(r"\w", name) else ""
    after = r"(?!\w)" if re.match(r"\w", name[-1:]) else ""
    return re.search(before + re.escape(name) + after, message) is not None


def classify(call: Callable[[], object], names: Iterable[str]) -> tuple[str, str]:
    """Run ``call()`` and return ``(outcome, message)``; ``names``: words a clear message contains."""
    names = [names] if isinstance(names, str) else list(names)
    try:
        call()
    except (MemoryError, RecursionError) as err:
        return "crash", f"{type(err).__name__}: {err}"
    except CLEAR_ERRORS as err:
        message = str(err)
        if any(_names(name, message) for name in names):
            return "clear", f"{type(err).__name__}: {message}"
        return "unclear", f"{type(err).__name__} naming none of {names}: {message}"
    except Exception as err:  # noqa: BLE001 - classifying every other error is the point
        return "unclear", f"{type(err).__name__}: {err}"
    except BaseException as err:  # SystemExit, KeyboardInterrupt raised by library code
        return "crash", f"{type(err).__name__}: {err}"
    return "silent", "no error"


def _log(case: str, value, outcome: str, message: str) -> None:
    path = os.environ.get("TINYSPIKE_BAD_INPUT_LOG")
    if not path:
        return
    record = {"case": case, "value": repr(value)[:200], "outcome": outcome, "message": message[:300]}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def assert_clear(case: str, call: Callable[[], object], names, value=None) -> str:
    """Assert that ``call()`` fails clearly, naming one of ``names``; return the message.

    ``case`` names the API and argument under test (e.g. ``"SGD lr"``); ``value`` is the bad value,
    recorded for the audit.
    """
    outcome, message = classify(call, names)
    _log(case, value, outcome, message)
    assert outcome == "clear", f"{case} with {value!r}: {outcome} ({message})"
    return message
