"""Every disparity statistic in one JSON-serialisable dict for the report."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from miaudit.disparity.cmh import stratified
from miaudit.disparity.inputs import _check_exposure, _check_thresholds, _threshold_name
from miaudit.disparity.makeup import composition
from miaudit.disparity.subgroup_risk import group_risk, size_vs_exposure
from miaudit.errors import InputError
from miaudit.jsonable import jsonable

_SUMMARY_OPTIONS = {
    "columns": ("composition", "group_risk", "size_vs_exposure"),
    "numeric_bins": ("composition", "group_risk", "size_vs_exposure", "stratified"),
    "seed": ("composition", "group_risk", "stratified"),
    "top_fraction": ("composition", "stratified"),
    "method": ("composition", "stratified"),
    "n_sim": ("composition", "stratified"),
    "ties": ("composition", "stratified"),
    "correction": ("composition",),
    "alpha": ("composition",),
    "thresholds": ("group_risk",),
    "n_boot": ("group_risk",),
    "confidence": ("group_risk",),
    "share_interval_method": ("group_risk",),
    "threshold": ("size_vs_exposure",),
    "rare_n": ("size_vs_exposure",),
    "rare_fraction": ("size_vs_exposure",),
}


def summarise(attributes: pd.DataFrame, exposure: Any, **options: Any) -> dict[str, Any]:
    """Every disparity statistic in one JSON-serialisable dict for the report.

    Options are those of the functions above (each goes to the functions that take it), plus
    ``stratify``: a list of (attribute, within) pairs for :func:`stratified`. Keys: cohort
    (counts, median, high-risk shares), composition, group_risk, size_vs_exposure, stratified.
    NaN becomes null, so ``json.dumps(..., allow_nan=False)`` accepts the result.
    """
    stratify = options.pop("stratify", ())
    unknown = sorted(set(options) - set(_SUMMARY_OPTIONS))
    if unknown:
        raise InputError(
            f"summarise: unknown option(s) {', '.join(unknown)}; accepted are "
            f"{', '.join(sorted([*_SUMMARY_OPTIONS, 'stratify']))}."
        )
    pairs = [tuple(p) for p in stratify]
    if any(len(p) != 2 for p in pairs):
        raise InputError(
            f"stratify: expected (attribute, within) pairs, got {stratify!r}; e.g. "
            f"stratify=[('race', 'disease')]."
        )

    def for_(fn: str) -> dict[str, Any]:
        return {k: v for k, v in options.items() if fn in _SUMMARY_OPTIONS[k]}

    comp = composition(attributes, exposure, **for_("composition"))
    risk = group_risk(attributes, exposure, **for_("group_risk"))
    sizes = size_vs_exposure(attributes, exposure, **for_("size_vs_exposure"))
    values, valid = _check_exposure(exposure, len(attributes))
    present = values[valid]
    ts = _check_thresholds(options.get("thresholds", (0.8, 0.9, 0.95, 0.99)))
    cohort: dict[str, Any] = {
        "n_patients": int(values.size),
        "n_excluded": int(values.size - present.size),
        "n_analysed": int(present.size),
        "median": float(np.median(present)),
        "mean": float(present.mean()),
        **{_threshold_name(t): float(np.mean(present >= t)) for t in ts},
    }
    strat = []
    for attribute, within in pairs:
        table = stratified(attributes, exposure, attribute, within, **for_("stratified"))
        strat.append(
            {
                "test": table.attrs["test"],
                "groups": table.drop(columns=["statistic", "dof", "p_value", "method", "n_strata"]),
            }
        )
    summary = jsonable(
        {
            "cohort": cohort,
            "composition": comp.to_dict(),
            "group_risk": risk,
            "size_vs_exposure": sizes,
            "stratified": strat,
        },
        nonfinite="null",
    )
    json.dumps(summary, allow_nan=False)  # fail here, not in the report writer
    return summary
