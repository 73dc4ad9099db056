"""The findings of a full audit: headline, attacks, most exposed patients, groups, precision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from miaudit import risk
from miaudit.findings.attack import AttackFindings, attack_findings
from miaudit.findings.groups import HEADLINE_THRESHOLD, GroupFindings, group_findings
from miaudit.results import layout as L
from miaudit.results.read import RunFiles
from miaudit.risk.chance import FDR_NAMES, Chance, models_for_threshold
from miaudit.risk.intervals import measured_coverage

__all__ = ["AuditFindings", "audit_findings", "ranked"]


@dataclass(frozen=True, eq=False)
class AuditFindings:
    """Every figure of a full audit's report, from the run's files."""

    attacks: list[AttackFindings]
    """In the run's order; the primary attack is marked."""
    headline: dict[str, Any]
    """The aggregate AUC and the patients identified almost surely (the page's first line)."""
    top: dict[str, Any]
    """The most exposed patients (raw attribute values) and the columns shown."""
    groups: GroupFindings | None
    survival: dict[str, risk.Survival]
    """Exposure survival per attack, primary first (attacks without exposure left out)."""
    survival_counts: dict[float, int]
    adequacy: dict[str, Any]
    """Record-AUC precision against the number of targets (``table``: the curve)."""
    diagnostic: dict[str, Any]
    """The models' diagnostic AUROC on their held-out patients."""

    @property
    def primary(self) -> AttackFindings:
        return next(a for a in self.attacks if a.primary)

    @property
    def floor(self) -> float:
        """The lowest FPR any attack's ROC resolves (the log-log chart's lower limit)."""
        return min([1.0, *(1.0 / max(a.n_out, 1) for a in self.attacks)])


def ranked(exposure: np.ndarray) -> np.ndarray:
    """Patients from most to least exposed (NaN left out; ties by patient index)."""
    idx = np.flatnonzero(~np.isnan(exposure))
    return idx[np.lexsort((idx, -exposure[idx]))]


def headline(
    auc: float,
    exposure: np.ndarray,
    thresholds: list[float],
    chance: Chance | None = None,
    *,
    models: int = 0,
    records_per_patient: float = 1.0,
) -> dict[str, Any]:
    """The one sentence the page leads with, and the numbers in it.

    Each level carries what chance gives there (``null``, the mean count over the
    permutations, and ``beyond``, those of its patients exposed beyond chance at the run's
    FDR); ``mostly_chance`` marks a level where the null accounts for half the count or
    more, with the model count that would make chance put fewer than one patient there.
    """
    defined = exposure[~np.isnan(exposure)]
    n = int(defined.size)
    high = [t for t in thresholds if t >= HEADLINE_THRESHOLD] or [max(thresholds)]
    levels = sorted({high[0], high[-1]})
    parts = []
    for t in levels:
        count = int(np.count_nonzero(defined >= t))
        part: dict[str, Any] = {
            "threshold": t,
            "count": count,
            "share": float(np.mean(defined >= t)) if n else math.nan,
        }
        if chance is not None:
            key = repr(float(t))
            null = chance.high_risk_null[key]
            part |= {
                "null": null,
                "null_upper": chance.high_risk_null_upper[key],
                "beyond": chance.beyond_chance_above[key],
                "mostly_chance": bool(null >= 1.0 and null >= 0.5 * count),
                "models_needed": models_for_threshold(t, max(n, 1), records_per_patient)
                if t > 0.5
                else None,
            }
        parts.append(part)
    out = {
        "auc": auc,
        "levels": parts,
        "n": n,
        "max": float(defined.max()) if n else math.nan,
        "undefined": int(exposure.size - n),
        "models": models,
        "chance": None,
    }
    if chance is not None:
        out["chance"] = {
            "permutations": chance.permutations,
            "beyond": chance.beyond_chance,
            "fdr": chance.fdr,
            "method": FDR_NAMES[chance.fdr_method],
        }
    return out


def top_patients(run: RunFiles, top_patients: int) -> dict[str, Any]:
    """The ``top_patients`` most exposed patients under the primary attack."""
    exposure, se = run.exposure(run.primary)
    order = ranked(exposure)[:top_patients]
    attrs = run.attributes()
    others = [a for a in run.attacks if a != run.primary]
    chance = run.summary["attacks"][run.primary].get("chance")
    q = run.p_values(run.primary)[2] if chance else None
    low = high = None
    if L.low_column(run.primary) in run.patients.columns:
        low = run.patients[L.low_column(run.primary)].to_numpy(np.float64)
        high = run.patients[L.high_column(run.primary)].to_numpy(np.float64)
    rows = []
    for rank, p in enumerate(order, start=1):
        row = run.patients.iloc[p]
        rows.append(
            {
                "rank": rank,
                "patient_id": str(row[L.PATIENT_ID]),
                "exposure": float(exposure[p]),
                "se": float(se[p]),
                "q": None if q is None or np.isnan(q[p]) else float(q[p]),
                "low": float(low[p]) if low is not None else None,
                "high": float(high[p]) if high is not None else None,
                "records": int(row[L.RECORD_COUNT]),
                "others": [float(run.patients.at[p, L.exposure_column(a)]) for a in others],
                "attributes": [attrs.at[p, c] for c in attrs.columns],
            }
        )
    return {
        "rows": rows,
        "attributes": list(attrs.columns),
        "others": others,
        "q": q is not None,
        "interval": low is not None,
        "coverage": measured_coverage(len(run.targets)),
        "fdr": float(chance["fdr"]) if chance else None,
        "total": int(np.count_nonzero(~np.isnan(exposure))),
    }


def adequacy(run: RunFiles) -> dict[str, Any]:
    """How precise the record AUCs are with the run's targets, and how much more would help."""
    table = risk.model_count_adequacy(run.scores(run.primary), run.membership())
    last = table.iloc[-1]
    prev = table.iloc[-2] if len(table) > 1 else None
    return {
        "records": table.to_dict(orient="records"),
        "final_se": float(last["mean_se"]),
        "targets": int(last["num_targets"]),
        "previous": None
        if prev is None
        else {"targets": int(prev["num_targets"]), "se": float(prev["mean_se"])},
        "drift": float(last["mean_abs_diff"]) if prev is not None else math.nan,
        "table": table,
    }


def diagnostic(models: pd.DataFrame) -> dict[str, Any]:
    """The models' diagnostic AUROC and accuracies (means over the models that define them)."""
    m = models
    auroc = m[L.TEST_AUROC].to_numpy(np.float64)
    ok = auroc[np.isfinite(auroc)]

    def mean(col: str) -> float:
        if col not in m:
            return math.nan
        v = m[col].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    return {
        "auroc": auroc,
        "auroc_mean": float(ok.mean()) if ok.size else math.nan,
        "auroc_std": float(ok.std(ddof=1)) if ok.size > 1 else math.nan,
        "auroc_min": float(ok.min()) if ok.size else math.nan,
        "auroc_max": float(ok.max()) if ok.size else math.nan,
        "test_accuracy": mean("test_accuracy"),
        "train_accuracy": mean("train_accuracy"),
        "train_records": mean("train_records"),
        "models": len(m),
    }


def audit_findings(run: RunFiles, top: int = 25) -> AuditFindings:
    """Every figure of a full audit's report, computed once from ``run``'s files."""
    attacks = [attack_findings(run, name) for name in run.attacks]
    primary = next(a for a in attacks if a.primary)
    exposure, _ = run.exposure(run.primary)
    survival = {}
    for name in run.attacks:
        e, _ = run.exposure(name)
        if (~np.isnan(e)).any():
            survival[name] = risk.survival(e)
    counts: dict[float, int] = {}
    if run.primary in survival:
        survival = {run.primary: survival.pop(run.primary), **survival}
        counts = {
            t: int(np.count_nonzero(exposure[~np.isnan(exposure)] >= t)) for t in run.thresholds
        }
    return AuditFindings(
        attacks=attacks,
        headline=headline(
            primary.auc,
            exposure,
            run.thresholds,
            primary.chance,
            models=primary.models,
            records_per_patient=float(run.patients[L.RECORD_COUNT].mean()),
        ),
        top=top_patients(run, top),
        groups=group_findings(run),
        survival=survival,
        survival_counts=counts,
        adequacy=adequacy(run),
        diagnostic=diagnostic(run.models),
    )
