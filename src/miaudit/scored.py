"""The scored arrays of one attack, and the figures the run's summary stores from them.

What scoring hands on: the audit builds an :class:`AttackResult` per attack, the writer
stores its arrays, and :func:`attack_figures` is the one definition of the summary's attack
figures (the report's and the gate's, from the run's files, are in :mod:`miaudit.findings`,
and tests hold the two to agree). Nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit import risk
from miaudit.risk.chance import Chance, NullRecords


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
    null: NullRecords | None = None  # record AUCs under permuted membership
    chance: Chance | None = None  # p-values, null counts, discoveries (None: no null)
    record_interval: tuple[np.ndarray, np.ndarray] | None = None  # [N] low, high
    interval: tuple[np.ndarray, np.ndarray] | None = None  # [P] low, high of the exposure


def attack_figures(
    scores: np.ndarray,
    membership: np.ndarray,
    exposure: np.ndarray,
    thresholds: tuple[float, ...],
    chance: Chance | None = None,
) -> dict[str, Any]:
    """The attack's summary figures: aggregate and per-target rates, high-risk counts and,
    with a permutation null, what chance gives (``chance``)."""
    metrics = risk.attack_metrics(scores, membership)
    metrics["high_risk"] = risk.high_risk_counts(exposure, thresholds=tuple(thresholds))
    if chance is not None:
        metrics["chance"] = chance.summary()
    return metrics
