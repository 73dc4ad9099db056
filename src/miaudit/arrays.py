"""The array contract between the parts (DESIGN.md, "The arrays"): one validator per array.

Every part that takes one of the design's arrays from a caller checks it here, so a bad
array gets the same message wherever it enters:

- ``logits`` [M, N, V, K] (or [N, V, K]) finite numbers: :func:`check_logits`;
- ``signals`` [M, N, V] (or [M, N]) and one model's [N, V] (or [N]) finite float64:
  :func:`as_model_array`, :func:`as_one_model_array`, with :func:`check_finite` and
  :func:`check_probabilities` naming the first bad model, record and view;
- ``keep`` [M, N] bool, the models' training sets: :func:`as_keep`; ``membership`` [T, N]
  bool, the targets' training sets next to ``scores``: :func:`as_membership`;
- ``scores`` [T, N] float, NaN = undefined: :func:`as_scores`;
- ``patient`` [N] int indices 0..P-1: :func:`as_patient`;
- per-record or per-patient values ([N] record AUC, [P] exposure), NaN = undefined:
  :func:`as_vector`;
- indices into those axes: target models :func:`as_targets`, population records
  :func:`as_population`.

Only numpy and :mod:`miaudit.errors`: every layer above may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from miaudit.errors import InputError

__all__ = [
    "as_keep",
    "as_membership",
    "as_model_array",
    "as_one_model_array",
    "as_patient",
    "as_population",
    "as_scores",
    "as_targets",
    "as_vector",
    "check_finite",
    "check_logits",
    "check_probabilities",
]


# --------------------------------------------------------------------------- logits


def check_logits(logits: ArrayLike) -> None:
    """Raise InputError when logits are not [M, N, V, K] (or [N, V, K]) finite numbers.

    Why: a diverged model (NaN/inf outputs) silently poisons every reference statistic of
    every record, so it is rejected up front with the model and record that hold it.
    """
    arr = np.asarray(logits)
    if arr.ndim not in (3, 4):
        raise InputError(
            f"logits: expected shape [M, N, V, K] (models, records, views, classes) or "
            f"[N, V, K] for one model, got shape {arr.shape}; add a views axis of size 1 "
            f"for single-view data, e.g. logits[:, :, None, :]"
        )
    if 0 in arr.shape:
        raise InputError(
            f"logits: shape {arr.shape} has an empty axis; every model needs at least one "
            f"record, one view and one class"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(
            f"logits: expected real numbers, got dtype {arr.dtype}; pass the raw model "
            f"outputs as a float array"
        )
    if np.issubdtype(arr.dtype, np.integer):
        return
    if np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return
    full = arr if arr.ndim == 4 else arr[None]
    for m in range(full.shape[0]):
        bad = ~np.isfinite(full[m])
        if bad.any():
            n, v, k = np.unravel_index(int(np.argmax(bad)), bad.shape)
            value = full[m, n, v, k]
            where = f"model {m}, record {n}" if arr.ndim == 4 else f"record {n}"
            raise InputError(
                f"logits: {where} (view {v}, class {k}) holds {value}; every logit must be "
                f"finite - retrain or drop that model (a diverged run gives NaN/inf), or "
                f"remove that record"
            )


# --------------------------------------------------------------------------- signals


def as_model_array(values: ArrayLike, *, name: str) -> NDArray[np.float64]:
    """Validate a [M, N, V] (or [M, N], read as V = 1) per-model array of finite numbers."""
    arr = np.asarray(values)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(
            f"{name}: expected shape [M, N, V] (models, records, views), got {arr.shape}"
        )
    if 0 in arr.shape:
        raise InputError(f"{name}: shape {arr.shape} has an empty axis")
    _check_real(arr, name)
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(arr, name=name, models=True)
    return arr


def as_one_model_array(values: ArrayLike, *, name: str) -> NDArray[np.float64]:
    """Validate a [N, V] (or [N]) array of one model's values; return [N, V] float64."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected shape [N, V] (records, views), got {arr.shape}")
    if 0 in arr.shape:
        raise InputError(f"{name}: shape {arr.shape} has an empty axis")
    _check_real(arr, name)
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(arr, name=name, models=False)
    return arr


def _check_real(arr: NDArray, name: str) -> None:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name}: expected real numbers, got dtype {arr.dtype}")


def _where(idx: tuple[int, ...], models: bool) -> str:
    if models:
        return f"model {idx[0]}, record {idx[1]} (view {idx[2]})"
    return f"record {idx[0]} (view {idx[1]})"


def check_finite(arr: NDArray[np.float64], *, name: str, models: bool) -> None:
    """InputError naming the first model/record/view that is NaN or infinite."""
    if np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return
    idx = np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape)
    raise InputError(
        f"{name}: {_where(idx, models)} holds {arr[idx]}; every value must be finite - check "
        f"that model's outputs (a diverged run gives NaN/inf) or drop that record"
    )


def check_probabilities(arr: NDArray[np.float64], *, name: str, models: bool) -> None:
    """InputError naming the first value outside [0, 1]."""
    if arr.min() >= 0.0 and arr.max() <= 1.0:
        return
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    idx = np.unravel_index(int(np.argmax(bad)), arr.shape)
    raise InputError(
        f"{name}: {_where(idx, models)} is {arr[idx]}, not a probability in [0, 1]; pass "
        f"true-class probabilities (miaudit.signals.true_class_probability), not logits"
    )


# --------------------------------------------------------------------------- membership


def _is_numeric(arr: NDArray) -> bool:
    return bool(np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating))


def _first_not_binary(arr: NDArray) -> tuple[int, ...] | None:
    """Index of the first entry (row-major) of a numeric array that is neither 0 nor 1."""
    bad = (arr != 0) & (arr != 1)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))


def as_keep(keep: ArrayLike, m: int, n: int, *, name: str = "keep") -> NDArray[np.bool_]:
    """Validate a [M, N] membership matrix of the models (bool, or 0/1 numbers)."""
    arr = np.asarray(keep)
    if arr.shape != (m, n):
        raise InputError(
            f"{name}: expected shape [M, N] = [{m}, {n}] (models x records, True = the record "
            f"was in that model's training set), got {arr.shape}"
        )
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr)
    if not _is_numeric(arr):
        raise InputError(f"{name}: expected booleans, got dtype {arr.dtype}")
    bad = _first_not_binary(arr)
    if bad is not None:
        mi, ni = bad
        raise InputError(
            f"{name}: model {mi}, record {ni} is {arr[mi, ni]}; membership must be True/False "
            f"(or 1/0)"
        )
    return arr.astype(bool)


def as_membership(membership: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``membership`` [T, N] next to scores of ``shape``, as bool; 0/1 numbers accepted."""
    arr = np.asarray(membership)
    if arr.shape != shape:
        raise InputError(
            f"membership: shape {arr.shape} does not match scores shape {shape}; both must be "
            "[T targets, N records] in the same order."
        )
    if arr.dtype == np.bool_:
        return arr
    if not _is_numeric(arr):
        raise InputError(
            f"membership: expected a bool array (True = record IN the target's training set), "
            f"got dtype {arr.dtype}; convert it with membership.astype(bool)."
        )
    bad = _first_not_binary(arr)
    if bad is not None:
        t, n = bad
        raise InputError(
            f"membership: value {arr[t, n].item()!r} at target {t}, record {n} is not 0/1 or "
            "True/False; membership must say IN (True) or OUT (False) for every pair."
        )
    return arr.astype(bool)


# --------------------------------------------------------------------------- scores


def as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """``scores`` as a 2-D float64 array [T, N]; NaN allowed, any other garbage rejected."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name}: cannot be read as a float array ({exc}); pass a numeric [T, N] array "
            "of membership scores (targets × records)."
        ) from None
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D array [T targets, N records], got shape {arr.shape}; "
            "for a single target pass scores[None, :]."
        )
    return arr


def as_vector(values: Any, name: str) -> np.ndarray:
    """A 1-D float64 array; NaN means undefined, ±inf is rejected (it is never an AUC)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be read as a float array ({exc}).") from None
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}.")
    if np.isinf(arr).any():
        i = int(np.flatnonzero(np.isinf(arr))[0])
        raise InputError(
            f"{name}: entry {i} is {arr[i]}; use NaN for an undefined value, not infinity."
        )
    return arr


# --------------------------------------------------------------------------- patients


def as_patient(
    patient: Any, n: int | None = None, num_patients: int | None = None
) -> tuple[np.ndarray, int]:
    """``patient`` [N] as int64 indices 0..P-1, and P: ``num_patients`` or max index + 1.

    ``n``: the number of records it must cover (None: any 1-D length). Whole floats are
    accepted; anything else that is not an integer index is rejected.
    """
    arr = np.asarray(patient)
    if n is None:
        if arr.ndim != 1:
            raise InputError(
                f"patient: expected a 1-D array [N] of patient indices, got shape {arr.shape}."
            )
    elif arr.shape != (n,):
        raise InputError(
            f"patient: shape {arr.shape} does not match the {n} records; pass one patient "
            "index per record."
        )
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"patient: expected integer patient indices 0..P-1, got dtype {arr.dtype}; map "
            "patient ids to indices first, e.g. patient = pandas.factorize(ids)[0]."
        )
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InputError(
            f"patient: index {int(arr.min())} is negative; patient indices run from 0 to P-1."
        )
    top = int(arr.max()) + 1 if arr.size else 0
    if num_patients is None:
        return arr, top
    p = int(num_patients)
    if p < top:
        raise InputError(
            f"num_patients: {num_patients} is smaller than the largest patient index + 1 "
            f"({top}); pass the number of patients in the cohort."
        )
    return arr, p


# --------------------------------------------------------------------------- indices


def as_targets(targets: Sequence[int] | ArrayLike | None, m: int) -> NDArray[np.intp]:
    """Validate target model indices (default: every model)."""
    if targets is None:
        return np.arange(m, dtype=np.intp)
    arr = np.asarray(targets)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"targets: expected a non-empty sequence of model indices, got {targets!r}"
        )
    bad = (arr < 0) | (arr >= m)
    if bad.any():
        raise InputError(
            f"targets: model index {arr[int(np.argmax(bad))]} is outside 0..{m - 1} for {m} models"
        )
    return arr.astype(np.intp)


def as_population(population: ArrayLike | None, n: int) -> NDArray[np.bool_]:
    """Population records z as an [N] bool mask, from indices or a mask (default: all)."""
    if population is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(population)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise InputError(
                f"population: a boolean mask must have one entry per record ({n}), got "
                f"shape {arr.shape}"
            )
        mask = arr.copy()
    else:
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                "population: expected record indices (ints) or a boolean mask over records"
            )
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            raise InputError(
                f"population: record index {arr[int(np.argmax(bad))]} is outside 0..{n - 1}"
            )
        mask = np.zeros(n, dtype=bool)
        mask[arr] = True
    if mask.sum() < 2:
        raise InputError(
            "population: needs at least 2 records z to compare each record with; pass more "
            "population records (default: all records)"
        )
    return mask
