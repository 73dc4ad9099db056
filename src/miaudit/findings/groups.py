"""Who the most exposed patients are: subgroup make-up, per-group risk, group size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from miaudit import disparity
from miaudit.results.read import RunFiles

__all__ = [
    "HEADLINE_THRESHOLD",
    "AttributeFindings",
    "GroupFindings",
    "composition",
    "group_findings",
    "main_threshold",
]

HEADLINE_THRESHOLD = 0.9
"""The exposure from which a patient counts as identified almost surely in the headline."""


def main_threshold(thresholds: list[float]) -> float:
    """The threshold the subgroup analysis counts at (the first ≥ 0.9, else the highest)."""
    return next((t for t in thresholds if t >= HEADLINE_THRESHOLD), max(thresholds))


@dataclass(frozen=True, eq=False)
class AttributeFindings:
    """One attribute: each group's risk and share among the most exposed, and the test."""

    attribute: str
    rows: pd.DataFrame
    """One row per group: n, median exposure (CI), share ≥ threshold (CI), n_top, residual."""
    test: dict[str, Any]
    over: list[dict[str, Any]]
    """Groups over-represented among the most exposed (Pearson residual ≥ 2), largest first."""


@dataclass(frozen=True, eq=False)
class GroupFindings:
    """The disparity analysis of one run's primary exposure."""

    attributes: list[AttributeFindings]
    sizes: pd.DataFrame
    threshold: float
    share_column: str
    top_label: str
    n_top: int
    n_patients: int
    cutoff: float
    correction: str
    alpha: float
    cohort_median: float
    cohort_share: float
    rare: list[str]


def composition(run: RunFiles, attack: str) -> disparity.Composition:
    """The subgroup make-up of the most exposed ``top_fraction`` under ``attack`` (with tests).

    The report's subgroup section and the gate's residual check both use this one test.
    """
    exposure, _ = run.exposure(attack)
    return disparity.composition(run.attributes(), exposure, top_fraction=run.top_fraction, seed=0)


def group_findings(run: RunFiles) -> GroupFindings | None:
    """Subgroup findings of the run's primary exposure (None without attributes or exposure)."""
    attrs = run.attributes()
    if attrs.shape[1] == 0:
        return None
    exposure, _ = run.exposure(run.primary)
    if np.isnan(exposure).all():
        return None
    main_t = main_threshold(run.thresholds)
    share_col = f"share_ge_{main_t:g}"
    comp = composition(run, run.primary)
    group_risk = disparity.group_risk(attrs, exposure, thresholds=run.thresholds, seed=0)
    sizes = disparity.size_vs_exposure(attrs, exposure, threshold=main_t)
    merged = group_risk.merge(
        comp.groups[
            ["attribute", "group", "n_top", "expected", "residual", "share_cohort", "share_top"]
        ],
        on=["attribute", "group"],
        how="left",
    )
    defined = exposure[~np.isnan(exposure)]
    tests = comp.tests.set_index("attribute")
    attributes = []
    for attribute in dict.fromkeys(merged["attribute"]):
        rows = merged[merged["attribute"] == attribute].reset_index(drop=True)
        test = tests.loc[attribute]
        over = rows[(rows["residual"] >= 2)].sort_values("residual", ascending=False)
        attributes.append(
            AttributeFindings(
                attribute=attribute,
                rows=rows,
                test={
                    "statistic": float(test["statistic"]),
                    "dof": int(test["dof"]),
                    "p_value": float(test["p_value"]),
                    "p_adjusted": float(test["p_adjusted"]),
                    "method": str(test["method"]),
                    "significant": bool(test["significant"]),
                },
                over=[
                    {
                        "group": str(r["group"]),
                        "share_cohort": float(r["share_cohort"]),
                        "share_top": float(r["share_top"]),
                        "n_top": int(r["n_top"]),
                        "residual": float(r["residual"]),
                    }
                    for _, r in over.iterrows()
                ],
            )
        )
    rare = sizes[sizes["rare"]]
    return GroupFindings(
        attributes=attributes,
        sizes=sizes,
        threshold=main_t,
        share_column=share_col,
        top_label=f"most exposed {run.top_fraction * 100:g}%",
        n_top=comp.n_top,
        n_patients=comp.n_patients,
        cutoff=comp.cutoff,
        correction=comp.correction,
        alpha=comp.alpha,
        cohort_median=float(np.median(defined)),
        cohort_share=float(np.mean(defined >= main_t)),
        rare=[f"{r['attribute']}={r['group']} (n={int(r['n'])})" for _, r in rare.iterrows()],
    )
