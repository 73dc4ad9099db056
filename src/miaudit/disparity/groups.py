"""Patient subgroups: one label per patient and attribute, numeric columns in quantile bins."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from miaudit.errors import InputError

MISSING = "missing"
"""Label of the subgroup formed by patients with a missing attribute value."""


@dataclass(frozen=True, eq=False)
class _Grouping:
    """One attribute as integer group codes [P] (into ``labels``), in display order."""

    attribute: str
    codes: np.ndarray
    labels: tuple[str, ...]


def _check_attributes(attributes: Any) -> pd.DataFrame:
    if not isinstance(attributes, pd.DataFrame):
        raise InputError(
            f"attributes: expected a pandas DataFrame with one row per patient, got "
            f"{type(attributes).__name__}; build one with pd.DataFrame({{'race': [...], ...}})."
        )
    index = attributes.index
    if not (
        isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    ) and not np.array_equal(np.asarray(index), np.arange(len(attributes))):
        raise InputError(
            "attributes: the index must be the patient index 0..P-1 in order, so that row p "
            "lines up with exposure[p]; call attributes.reset_index(drop=True) after putting "
            "the rows in patient order."
        )
    if len(attributes) == 0:
        raise InputError(
            "attributes: the DataFrame has no rows; pass one row per patient of the audited cohort."
        )
    return attributes


def _select_columns(attributes: pd.DataFrame, columns: Iterable[Any] | None) -> list[Any]:
    if columns is None:
        selected = list(attributes.columns)
    elif isinstance(columns, str):
        selected = [columns]
    else:
        selected = list(columns)
    if not selected:
        raise InputError(
            "attributes: no subgroup columns to analyse; pass a DataFrame with columns such as "
            "'race' or 'insurance', or name them with columns=[...]."
        )
    unknown = [c for c in selected if c not in attributes.columns]
    if unknown:
        raise InputError(
            f"attributes: column(s) {', '.join(map(repr, unknown))} not found; available "
            f"columns are {', '.join(map(repr, attributes.columns))}."
        )
    if len(set(map(str, selected))) != len(selected):
        raise InputError(
            f"columns: {selected!r} names a column twice; list each subgroup attribute once."
        )
    return selected


def _format_number(x: float, digits: int) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.{digits}g}"


def _numeric_groups(x: np.ndarray, missing: np.ndarray, bins: int) -> tuple[np.ndarray, list[str]]:
    """Quantile groups of a numeric column; codes -1 for missing values."""
    codes = np.full(x.shape[0], -1, dtype=np.int64)
    present = x[~missing]
    if present.size == 0:
        return codes, []
    distinct = np.unique(present)
    if distinct.size <= bins:
        codes[~missing] = np.searchsorted(distinct, present)
        lows = highs = distinct
    else:
        # Right-closed quantile bins, as pandas.qcut: (e_i, e_{i+1}], the first one closed.
        inner = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1))[1:-1])
        raw = np.searchsorted(inner, present, side="left")
        used, dense = np.unique(raw, return_inverse=True)
        codes[~missing] = dense
        lows = np.array([present[raw == u].min() for u in used])
        highs = np.array([present[raw == u].max() for u in used])
    for digits in range(3, 18):
        labels = [
            _format_number(lo, digits)
            if lo == hi
            else f"{_format_number(lo, digits)}–{_format_number(hi, digits)}"
            for lo, hi in zip(lows, highs, strict=True)
        ]
        if len(set(labels)) == len(labels):
            break
    return codes, labels


def _grouping(attributes: pd.DataFrame, column: Any, numeric_bins: int) -> _Grouping:
    series = attributes[column]
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        raw = series.cat.codes.to_numpy().astype(np.int64)
        used = np.unique(raw[raw >= 0])
        remap = np.full(len(dtype.categories), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        codes = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
        labels = [str(dtype.categories[u]) for u in used]
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = missing | np.isnan(values)
        codes, labels = _numeric_groups(values, missing, numeric_bins)
    else:
        # Factorise first and stringify only the distinct values; values that print the same
        # (1 and "1") merge into one subgroup, and subgroups are listed in sorted order.
        raw, uniques = pd.factorize(series, use_na_sentinel=True)
        raw = np.asarray(raw, dtype=np.int64)
        missing = raw < 0
        codes = np.full(len(series), -1, dtype=np.int64)
        labels = []
        if len(uniques):
            names = np.array([str(u) for u in uniques], dtype=str)
            sorted_names, inverse = np.unique(names, return_inverse=True)
            codes[~missing] = inverse[raw[~missing]]
            labels = [str(u) for u in sorted_names]
    if missing.any():
        if MISSING in labels:  # a literal "missing" value joins the missing patients
            codes[missing] = labels.index(MISSING)
        else:
            codes[missing] = len(labels)
            labels.append(MISSING)
    return _Grouping(str(column), codes, tuple(labels))


def _check_bins(numeric_bins: int) -> int:
    if (
        isinstance(numeric_bins, bool)
        or not isinstance(numeric_bins, (int, np.integer))
        or (numeric_bins < 2)
    ):
        raise InputError(
            f"numeric_bins: expected an integer ≥ 2 (the number of quantile groups for numeric "
            f"attributes such as age), got {numeric_bins!r}; use 4 for quartiles."
        )
    return int(numeric_bins)


def _groupings(
    attributes: pd.DataFrame, columns: Iterable[Any] | None, numeric_bins: int
) -> list[_Grouping]:
    attributes = _check_attributes(attributes)
    bins = _check_bins(numeric_bins)
    return [_grouping(attributes, c, bins) for c in _select_columns(attributes, columns)]


def patient_groups(
    attributes: pd.DataFrame, columns: Iterable[Any] | None = None, *, numeric_bins: int = 4
) -> pd.DataFrame:
    """Subgroup label (a string) of every patient for each attribute column.

    Text, boolean and categorical columns keep their values as strings. Numeric columns with
    more than ``numeric_bins`` distinct values are cut into ``numeric_bins`` quantile groups
    (right-closed, as ``pandas.qcut``; fewer when ties merge quantiles), each labelled by the
    smallest and largest value observed in it (``"52–64"``), so labels read as ranges of real
    patients; numeric columns with few distinct values keep one group per value (cast numeric
    codes, such as disease codes, to str or category to keep every code a group). Missing
    values form the group ``"missing"``.
    """
    groupings = _groupings(attributes, columns, numeric_bins)
    out = {g.attribute: np.array(g.labels, dtype=object)[g.codes] for g in groupings}
    return pd.DataFrame(out, index=attributes.index, dtype=object)


def _restrict(grouping: _Grouping, valid: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes of the patients with defined exposure; groups left empty are dropped."""
    codes = grouping.codes[valid]
    counts = np.bincount(codes, minlength=len(grouping.labels))
    kept = np.flatnonzero(counts > 0)
    remap = np.full(len(grouping.labels), -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    return remap[codes], [grouping.labels[k] for k in kept]
