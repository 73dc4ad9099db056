"""WFDB records (PhysioNet): the ``.hea`` header and its signal files, read with wfdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.datasets.media.files import _detail
from miaudit.datasets.media.optional import import_wfdb
from miaudit.datasets.media.waveforms import _Signal, _to_millivolts
from miaudit.errors import InputError


def _wfdb_signal(record: Path, what: str) -> _Signal:
    wfdb = import_wfdb(what)
    try:
        rec = wfdb.rdrecord(str(record), physical=True)
    except Exception as error:  # wfdb raises many types for missing or malformed files
        raise InputError(
            f"{what}: not a readable WFDB record ({_detail(error)}); check that "
            f"'{record.name}.hea' and its signal file(s) exist and are complete."
        ) from error
    if rec.p_signal is None or rec.p_signal.ndim != 2:
        raise InputError(f"{what}: WFDB record has no signal samples; check the record files.")
    data = _to_millivolts(np.asarray(rec.p_signal, dtype=np.float64).T, rec.units or [])
    names = tuple(str(n) for n in rec.sig_name) if rec.sig_name else None
    return _Signal(data, float(rec.fs), names)
