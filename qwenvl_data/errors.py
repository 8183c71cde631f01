"""Errors a user can act on: one line, naming the file/row/sample and what is wrong.

`BadInput` (exit 1) is bad data; `UsageError` (exit 2) is a bad command line or config.
The CLI prints `qwenvl-data <cmd>: error: <message>` and exits with the code; never a traceback.
"""


class QwenVLDataError(Exception):
    exit_code = 1


class BadInput(QwenVLDataError):
    """A file, row or sample that cannot be used (exit 1)."""

    exit_code = 1


class UsageError(QwenVLDataError):
    """A bad flag, path or config value (exit 2)."""

    exit_code = 2
