"""Keyed pseudonyms for patient and record ids, applied before anything is written.

With redaction on, no real id lands in the run directory. The key lives outside it
(``$MIAUDIT_REDACTION_KEY`` as hex, else ``~/.config/miaudit/redaction.key``), so one owner
gets the same pseudonyms across runs and can re-identify a patient by recomputing the HMAC,
while whoever receives the run folder cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.results.store import atomic_write

__all__ = ["KEY_ENV", "default_key_path", "redact_ids", "redaction_key", "run_ids"]

KEY_ENV = "MIAUDIT_REDACTION_KEY"


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "miaudit" / "redaction.key"


def redaction_key() -> bytes:
    """The owner's pseudonymisation key (created once, 0600, outside any run directory)."""
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise InputError(
                f"${KEY_ENV}: not a hex string; set it to e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            ) from None
        if len(key) < 16:
            raise InputError(f"${KEY_ENV}: key too short; use at least 16 bytes (32 hex digits)")
        return key
    path = default_key_path()
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    atomic_write(path, lambda f: f.write(key.hex().encode()))
    return key


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
