"""Errors a user can act on.

The CLI turns an :class:`InputError` into one message and exit code 2, and a
:class:`CheckFailed` into exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MiauditError(Exception):
    """Base class for errors that carry a complete, user-facing message."""

    exit_code = 2


class InputError(MiauditError, ValueError):
    """Bad input: the message names the file, column or key, what is wrong and how to fix it."""

    exit_code = 2


class CheckFailed(MiauditError):
    """A gate or consistency check failed (not a bug, not bad input)."""

    exit_code = 1
