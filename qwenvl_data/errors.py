"""Errors a user can act on: one line, naming the file/row/sample and what is wrong.

`BadInput` (exit 1) is bad data; `UsageError` (exit 2) is a bad command line or config.
The CLI prints `qwenvl-data <cmd>: error: <message>` and exits with the code; never a traceback.
An exception that is neither (a bug, or bad input no check caught yet) is reported by `internal_error`
as one line naming a log file that holds its traceback; tests/test_hostile.py fails on those too.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback


class QwenVLDataError(Exception):
    exit_code = 1


class BadInput(QwenVLDataError):
    """A file, row or sample that cannot be used (exit 1)."""

    exit_code = 1


class UsageError(QwenVLDataError):
    """A bad flag, path or config value (exit 2)."""

    exit_code = 2


def internal_error(prog: str, exc: BaseException) -> str:
    """Write `exc`'s traceback to a log file; the one line to print (exit 1)."""
    what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
    try:
        fd, path = tempfile.mkstemp(prefix=f"{prog}-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write("".join(traceback.format_exception(exc)))
        where = f"traceback in {path}"
    except OSError:
        where = "no log written"
    return f"unexpected {what} (a bug or unchecked input; {where})"
