"""Errors a user can act on.

The CLI turns an :class:`InputError` into one message and exit code 2, and a
:class:`CheckFailed` into exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class MiauditError(Exception):
    """Base class for errors that carry a complete, user-facing message."""

    exit_code = 2


class InputError(MiauditError, ValueError):
    """Bad input: the message names the file, column or key, what is wrong and how to fix it."""

    exit_code = 2


class CheckFailed(MiauditError):
    """A gate or consistency check failed (not a bug, not bad input)."""

    exit_code = 1


# What to do about an OS error on a run's paths, by errno name.
_OS_FIXES = {
    "ENOSPC": "the disk is full: free space and run the same command again (finished work is kept)",
    "EDQUOT": "the disk quota is used up: free space and run the same command again",
    "EROFS": "the filesystem is read-only: choose an --out on a writable disk",
    "EACCES": "permission denied: choose a folder you may write, or change its permissions",
    "EPERM": "not permitted: choose a folder you may write, or change its permissions",
    "ENOTDIR": "a part of this path is a file, not a folder: choose another --out",
    "EISDIR": "this is a folder where a file was expected: choose another path",
    "ENOENT": "no such file or folder (a broken symbolic link?): check the path",
    "EEXIST": "something already exists there: choose another path",
    "ENAMETOOLONG": "the path is too long: choose a shorter one",
    "ELOOP": "too many symbolic links in the path: choose another one",
}


def os_error_message(err: OSError) -> str | None:
    """One message for an OS error on a path the user gave (None: not one of those, a bug)."""
    import errno as errno_module

    name = errno_module.errorcode.get(err.errno or -1)
    if name not in _OS_FIXES:
        return None
    where = err.filename if err.filename is not None else "a file of the run"
    if err.filename2 is not None:
        where = f"{where} → {err.filename2}"
    return f"{where}: {err.strerror or name} — {_OS_FIXES[name]}"


# Under --redact an error message names a patient or record by its keyed pseudonym, never by
# its real id: the audit sets the pseudonymiser for the whole run (``ids_redacted``), and every
# message that shows an id formats it through ``shown_ids`` / ``shown_id``.
_PSEUDONYM: ContextVar[Callable[[str, str], str] | None] = ContextVar(
    "miaudit_pseudonym", default=None
)


@contextmanager
def ids_redacted(pseudonym: Callable[[str, str], str] | None) -> Iterator[None]:
    """Show ids in error messages through ``pseudonym`` for the block (None: as they are)."""
    token = _PSEUDONYM.set(pseudonym)
    try:
        yield
    finally:
        _PSEUDONYM.reset(token)


def shown_id(value: object, prefix: str = "P-") -> str:
    """An id as an error message shows it: repr of the id, or under redaction of its
    pseudonym (``prefix`` "P-" for patients, "R-" for records, as the run's files)."""
    pseudonym = _PSEUDONYM.get()
    text = str(value)
    return repr(pseudonym(text, prefix) if pseudonym is not None else text)


def shown_ids(values: Iterable[object], limit: int = 5, prefix: str = "P-") -> str:
    """The first ``limit`` ids as a message shows them, and how many more."""
    items = list(values)
    shown = ", ".join(shown_id(v, prefix) for v in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")
