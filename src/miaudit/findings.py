"""Findings: every figure miaudit reports, computed once from the scored arrays.

The audit computes the figures it stores in ``summary.json`` here; the report and the gate
get theirs from here too (from the run's files), so a figure has one definition and the
page, the gate and the summary cannot drift apart. Nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit import risk


@dataclass(frozen=True, eq=False)
class AttackResult:
    """The scored arrays of one attack on one run, and the summary figures drawn from them."""

    name: str
    targets: np.ndarray  # [T] model indices
    scores: np.ndarray  # [T, N]
    record: risk.RecordAUC
    exposure: np.ndarray  # [P]
    exposure_se: np.ndarray  # [P]
    metrics: dict[str, Any]


def attack_figures(
    scores: np.ndarray, membership: np.ndarray, exposure: np.ndarray, thresholds: tuple[float, ...]
) -> dict[str, Any]:
    """The attack's summary figures: aggregate and per-target rates, and high-risk counts."""
    metrics = risk.attack_metrics(scores, membership)
    metrics["high_risk"] = risk.high_risk_counts(exposure, thresholds=tuple(thresholds))
    return metrics
