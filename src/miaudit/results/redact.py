"""Keyed pseudonyms for patient and record ids, applied before anything is written.

With redaction on, no real id lands in the run directory. The key lives outside it
(``$MIAUDIT_REDACTION_KEY`` as hex, else ``~/.config/miaudit/redaction.key``), so one owner
gets the same pseudonyms across runs and can re-identify a patient by recomputing the HMAC,
while whoever receives the run folder cannot.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from miaudit.errors import InputError, ids_redacted
from miaudit.results.store import atomic_write

__all__ = [
    "KEY_ENV",
    "default_key_path",
    "redact_ids",
    "redacted_messages",
    "redacting",
    "redaction_key",
    "run_ids",
]

KEY_ENV = "MIAUDIT_REDACTION_KEY"
F = TypeVar("F", bound=Callable[..., Any])


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "miaudit" / "redaction.key"


def redaction_key() -> bytes:
    """The owner's pseudonymisation key (created once, 0600, outside any run directory)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _key(env, f"${KEY_ENV}")
    path = default_key_path()
    if path.is_file():
        return _key(path.read_text().strip(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    atomic_write(path, lambda f: f.write(key.hex().encode()))
    return key


def _key(text: str, where: str) -> bytes:
    """A key from its hex text, checked the same way wherever it comes from."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InputError(
            f"{where}: not a hex string; set it to e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        ) from None
    if len(key) < 16:
        raise InputError(f"{where}: key too short; use at least 16 bytes (32 hex digits)")
    return key


@contextlib.contextmanager
def redacted_messages(redact: bool) -> Iterator[None]:
    """Under redaction, error messages name patients and records by their pseudonyms."""
    if not redact:
        yield
        return
    key = redaction_key()

    def pseudonym(text: str, prefix: str) -> str:
        return str(redact_ids(np.array([text], dtype=object), key, prefix)[0])

    with ids_redacted(pseudonym):
        yield


def redacting(fn: F) -> F:
    """Run an audit (its config first) with error messages redacted as its config asks."""

    @functools.wraps(fn)
    def wrapper(config: Any, *args: Any, **kwargs: Any) -> Any:
        with redacted_messages(bool(config.report.redact)):
            return fn(config, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def redact_ids(ids: np.ndarray, key: bytes, prefix: str = "P-") -> np.ndarray:
    """Keyed pseudonyms: HMAC-SHA256(key, id), 12 hex digits (collisions are checked)."""
    out = np.array(
        [prefix + hmac.new(key, str(i).encode(), hashlib.sha256).hexdigest()[:12] for i in ids],
        dtype=object,
    )
    if len(set(out.tolist())) != len(set(map(str, ids))):
        raise RuntimeError("pseudonym collision; use a different redaction key")
    return out


def run_ids(patient_ids: np.ndarray, record_ids: np.ndarray, *, redact: bool) -> tuple[np.ndarray, np.ndarray]:
    """The (patient, record) ids a run writes: as strings, pseudonymised when ``redact``."""
    patients = np.asarray(patient_ids, dtype=object).astype(str)
    records = np.asarray(record_ids, dtype=object).astype(str)
    if redact:
        key = redaction_key()
        patients = redact_ids(patients, key, "P-")
        records = redact_ids(records, key, "R-")
    return patients, records
