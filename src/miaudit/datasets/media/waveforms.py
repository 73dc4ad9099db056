"""Signal records (ECG): leads in millivolts, resampling, length, whole-cohort standardising.

Signals are read in physical units (millivolts where the file states V, mV or µV), then
resampled to ``sampling_rate`` with a polyphase filter, cut or zero-padded at the end to
``length`` samples, and (``standardize``, the default) standardised per lead with the mean
and standard deviation over the whole cohort. As for tables, one transform fitted on the
whole cohort is the same function for every reference model, IN or OUT, so it carries no
membership information; per-model statistics would let the preprocessing itself depend
on membership. A ``.npy`` signal is [L, T] (or [T]); its rate is the index's
``sampling_rate`` column, else ``sampling_rate``, and ``leads`` names its rows. WFDB and
DICOM records name their leads, and ``leads`` selects and orders them by name (any case).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.datasets.media.files import _npy
from miaudit.datasets.media.spec import MediaSpec
from miaudit.datasets.tabular import _listing, _rows_text
from miaudit.errors import InputError

#: Column of an index that holds each ``.npy`` signal's own sampling rate (Hz).
SAMPLING_RATE_COLUMN = "sampling_rate"
#: Largest denominator of the rational resampling factor up/down.
MAX_RESAMPLE_DENOMINATOR = 1000
#: Unit of a signal lead → factor to millivolts.
TO_MILLIVOLT = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


@dataclass
class _Signal:
    """One record: [L, T] float64 values, its own rate (None: unknown) and lead names."""

    data: np.ndarray
    fs: float | None
    names: tuple[str, ...] | None


def _to_millivolts(data: np.ndarray, units: Sequence[str | None]) -> np.ndarray:
    factors = np.array(
        [TO_MILLIVOLT.get(str(u or "").strip().casefold(), 1.0) for u in units], dtype=np.float64
    )
    return data * factors[:, None]


def _npy_signal(path: Path, what: str, fs: float | None) -> _Signal:
    array = _npy(path, what)
    return _array_signal(array, what, fs)


def _array_signal(array: np.ndarray, what: str, fs: float | None) -> _Signal:
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise InputError(
            f"{what}: a signal array must be numeric [L, T] (leads × samples) or [T] for one "
            f"lead, got {array.dtype} with shape {array.shape}."
        )
    return _Signal(np.asarray(array, dtype=np.float64), fs, None)


def resample_signal(data: np.ndarray, native: float, target: float) -> np.ndarray:
    """Resample along the last axis from ``native`` Hz to ``target`` Hz (polyphase filter)."""
    if native == target:
        return data
    from scipy.signal import resample_poly

    ratio = Fraction(target / native).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    if ratio.numerator == 0:
        raise InputError(
            f"sampling_rate = {target} Hz is too far below a record's {native} Hz to resample; "
            "choose a rate closer to the recordings'."
        )
    return resample_poly(data, ratio.numerator, ratio.denominator, axis=-1)


def fit_length(data: np.ndarray, length: int) -> np.ndarray:
    """Keep the first ``length`` samples (cut the end) or zero-pad at the end."""
    have = data.shape[-1]
    if have >= length:
        return data[..., :length]
    pad = [(0, 0)] * (data.ndim - 1) + [(0, length - have)]
    return np.pad(data, pad)


def standardize_leads(inputs: np.ndarray) -> np.ndarray:
    """[N,L,T] → per-lead (x - mean) / std over all records and samples (std 0 → 1)."""
    mean = inputs.mean(axis=(0, 2), dtype=np.float64)
    std = inputs.std(axis=(0, 2), dtype=np.float64)
    std[std == 0] = 1.0
    return ((inputs - mean[None, :, None]) / std[None, :, None]).astype(np.float32)


def _close(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _stacked_signal_loader(
    stacked: np.ndarray, i: int, what: str, fs: float | None
) -> Callable[[], _Signal]:
    return lambda: _array_signal(np.asarray(stacked[i]), what, fs)


def _row_rates(frame: pd.DataFrame, spec: MediaSpec, source: str) -> list[float | None]:
    """Each row's own sampling rate for .npy signals: the index column, else the spec's."""
    if SAMPLING_RATE_COLUMN not in frame.columns:
        return [spec.sampling_rate] * len(frame)
    values = pd.to_numeric(frame[SAMPLING_RATE_COLUMN], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = ~(values > 0)
    if bad.any():
        raise InputError(
            f"{source}: column {SAMPLING_RATE_COLUMN!r} must hold positive rates in Hz, but "
            f"data rows {_rows_text(np.flatnonzero(bad))} do not; fill them in."
        )
    return [float(v) for v in values]


def _select_leads(
    signal: _Signal, what: str, leads: list[str] | None
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    data = signal.data
    if leads is None:
        return data, signal.names
    if signal.names is None:
        if data.shape[0] != len(leads):
            raise InputError(
                f"{what}: has {data.shape[0]} unnamed lead(s), but `leads` names {len(leads)}; "
                "for .npy signals `leads` names the rows in order, so give one name per row."
            )
        return data, tuple(leads)
    position = {n.casefold(): j for j, n in enumerate(signal.names)}
    missing = [lead for lead in leads if lead.casefold() not in position]
    if missing:
        hints = "".join(_close(m, signal.names) for m in missing[:1])
        raise InputError(
            f"{what}: lacks lead(s) {_listing(missing)}; it has {_listing(list(signal.names))}."
            f"{hints} Fix `leads` in the cohort spec."
        )
    return data[[position[lead.casefold()] for lead in leads]], tuple(leads)


def _check_signal(data: np.ndarray, names: tuple[str, ...] | None, what: str) -> None:
    """InputError for gaps (NaN or infinite samples) in the leads that were selected."""
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        lead = int(np.flatnonzero(~finite)[0])
        label = repr(names[lead]) if names else f"row {lead}"
        raise InputError(
            f"{what}: lead {label} has NaN or infinite samples (gaps in the recording); "
            "fill them (e.g. interpolate) or drop the record before the audit."
        )


class _LeadCheck:
    """Every record has the first record's lead count, and named records the same names."""

    def __init__(self, describe: Sequence[str]) -> None:
        self.describe = describe
        self.count: int | None = None
        self.names: tuple[str, ...] | None = None
        self.named_at = 0

    def add(self, i: int, data: np.ndarray, names: tuple[str, ...] | None) -> None:
        if self.count is None:
            self.count = data.shape[0]
        elif data.shape[0] != self.count:
            raise InputError(
                f"records have different numbers of leads: {self.describe[0]} has "
                f"{self.count}, {self.describe[i]} has {data.shape[0]}; set `leads` to the "
                "lead names to read from every record."
            )
        if names is None:
            return
        if self.names is None:
            self.names, self.named_at = names, i
        elif [n.casefold() for n in self.names] != [n.casefold() for n in names]:
            raise InputError(
                f"records name their leads differently: {self.describe[self.named_at]} has "
                f"{_listing(list(self.names))}, {self.describe[i]} has {_listing(list(names))}; "
                "set `leads` to select and order the leads by name."
            )


def assemble_signals(
    loaders: Sequence[Callable[[], _Signal]], describe: Sequence[str], spec: MediaSpec
) -> tuple[np.ndarray, tuple[str, ...]]:
    """[N,L,T] float32 and lead names: select leads, resample, fit length, standardise."""
    records: list[np.ndarray] = []
    rates: list[float] = []
    leads = _LeadCheck(describe)
    for i, load in enumerate(loaders):
        signal = load()
        if signal.fs is None:
            raise InputError(
                f"{describe[i]}: a .npy signal has no sampling rate; set `sampling_rate` in "
                f"the cohort spec, or add a {SAMPLING_RATE_COLUMN!r} column (Hz) to the index."
            )
        data, names = _select_leads(signal, describe[i], spec.leads)
        _check_signal(data, names, describe[i])
        leads.add(i, data, names)
        records.append(data)
        rates.append(signal.fs)
    if not records:
        raise InputError("the cohort has no records; add rows to the index.")
    target = spec.sampling_rate
    if target is None:
        differs = [i for i, r in enumerate(rates) if r != rates[0]]
        if differs:
            raise InputError(
                f"records have different sampling rates: {describe[0]} {rates[0]:g} Hz, "
                f"{describe[differs[0]]} {rates[differs[0]]:g} Hz; set `sampling_rate` to "
                "resample every record to one rate."
            )
        target = rates[0]
    records = _resample_all(records, rates, target)
    if spec.length is not None:
        records = [fit_length(r, spec.length) for r in records]
    else:
        sizes = [r.shape[-1] for r in records]
        differs = [i for i, s in enumerate(sizes) if s != sizes[0]]
        if differs:
            raise InputError(
                f"records differ in length (at {target:g} Hz): {describe[0]} has {sizes[0]} "
                f"samples, {describe[differs[0]]} has {sizes[differs[0]]}; set `length` to cut "
                "or zero-pad every record to one number of samples."
            )
    inputs = np.stack(records).astype(np.float32)
    if spec.standardize:
        inputs = standardize_leads(inputs)
    lead_names = leads.names or tuple(f"lead{j}" for j in range(inputs.shape[1]))
    return inputs, lead_names


def _resample_all(records: list[np.ndarray], rates: list[float], target: float) -> list[np.ndarray]:
    """Resample records in groups of equal (rate, length), one filter call per group."""
    groups: dict[tuple[float, int], list[int]] = {}
    for i, (data, rate) in enumerate(zip(records, rates, strict=True)):
        if rate != target:
            groups.setdefault((rate, data.shape[-1]), []).append(i)
    out = list(records)
    for (rate, _), members in groups.items():
        stacked = np.stack([records[i] for i in members])
        resampled = resample_signal(stacked, rate, target)
        for k, i in enumerate(members):
            out[i] = resampled[k]
    return out
