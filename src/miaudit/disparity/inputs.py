"""Checks shared by the statistics (exposure, shares, seeds, options, thresholds), seeded draws."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from miaudit.errors import InputError


def _check_exposure(exposure: Any, n_patients: int) -> tuple[np.ndarray, np.ndarray]:
    """Exposure as float [P] and the mask of patients with a defined exposure."""
    try:
        values = np.asarray(exposure, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            "exposure: expected numbers (patient attack AUC in [0, 1], NaN where undefined); "
            "convert the column with pd.to_numeric first."
        ) from None
    if values.ndim != 1 or values.shape[0] != n_patients:
        raise InputError(
            f"exposure: expected one value per patient, shape [{n_patients}] to match the "
            f"{n_patients} rows of attributes, got shape {list(values.shape)}; pass the patient "
            f"exposure (e.g. patient_auc), not the record-level array."
        )
    if np.isinf(values).any():
        raise InputError(
            f"exposure: {int(np.isinf(values).sum())} value(s) are infinite; exposure is an "
            f"attack AUC in [0, 1] (NaN where undefined)."
        )
    valid = ~np.isnan(values)
    if not valid.any():
        raise InputError(
            "exposure: every value is NaN, so no patient has a defined exposure; check that "
            "the attack produced patient AUCs (each patient needs IN and OUT scores)."
        )
    bad = valid & ((values < 0.0) | (values > 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"exposure: {int(bad.sum())} value(s) outside [0, 1] (patient {first} has "
            f"{values[first]:g}); exposure is an attack AUC, so pass patient AUCs rather than "
            f"raw membership scores."
        )
    return values, valid


def _check_fraction(top_fraction: float) -> float:
    if not (isinstance(top_fraction, (int, float, np.floating)) and 0.0 < top_fraction <= 1.0):
        raise InputError(
            f"top_fraction: expected a share in (0, 1] of the most exposed patients, got "
            f"{top_fraction!r}; use 0.01 for the most exposed 1%."
        )
    return float(top_fraction)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}.")
    return int(seed)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator keyed by seed and names, independent of which other columns are analysed."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode("utf-8")) for k in keys)])


def _check_choice(name: str, value: Any, choices: Sequence[str], hint: str) -> None:
    if value not in choices:
        raise InputError(f"{name}: expected one of {', '.join(choices)}, got {value!r}; {hint}")


def _check_n_sim(n_sim: int) -> int:
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 99:
        raise InputError(
            f"n_sim: expected an integer ≥ 99 (Monte-Carlo draws for small-count p-values), "
            f"got {n_sim!r}; the default 10000 resolves p-values down to 1e-4."
        )
    return int(n_sim)


def _threshold_name(t: float) -> str:
    return f"share_ge_{t:g}"


def _check_thresholds(thresholds: Any) -> tuple[float, ...]:
    items = (thresholds,) if isinstance(thresholds, (int, float)) else tuple(thresholds)
    ts = tuple(float(t) for t in items)
    if not ts or any(not 0.0 <= t <= 1.0 for t in ts):
        raise InputError(
            f"thresholds: expected risk thresholds on the AUC scale in [0, 1], got "
            f"{thresholds!r}; e.g. (0.8, 0.9, 0.95, 0.99)."
        )
    if len({_threshold_name(t) for t in ts}) != len(ts):
        raise InputError(f"thresholds: {thresholds!r} repeats a threshold; list each once.")
    return ts
