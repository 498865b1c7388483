"""Errors a user can fix, and how every command reports them.

A :class:`UserError` (bad configuration, bad data, a corrupt or missing file) is printed as one
line, ``error: <file>: <what>; <how to fix>``, and the command exits with code 2. Anything else
is a bug: Python prints its traceback and the exit code is 1.
"""

from __future__ import annotations

import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input; the message names the file and how to fix it."""


def report(err: BaseException) -> int:
    """Print ``err`` as the one-line ``error: ...`` message; returns the exit code 2."""
    print(f"error: {err}", file=sys.stderr)
    return EXIT_USER_ERROR
