"""The report of a deployed-model run (``miaudit audit-model``), rebuilt from its files alone.

One model, one score per patient: the page leads with the target's aggregate attack AUC next
to the number of its training patients (members) the attack flags at a low false-positive
rate, and puts the same-distribution control beside it, because a high AUC between two
groups from different sources is not a privacy finding. The figures are the run's
:mod:`findings <miaudit.findings.deployed>`; this module only draws and renders them.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from miaudit.errors import InputError
from miaudit.findings import deployed_findings
from miaudit.report import charts
from miaudit.report.page import environment, group_sections, rate_label
from miaudit.results import layout as L
from miaudit.results.read import RunFiles

__all__ = ["render_deployed"]

TEMPLATE = "deployed.html"


def _rates(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    rates = metrics["aggregate"]["tpr_at_fpr"]
    return [(rate_label(k), float(v)) for k, v in rates.items() if k != "1/N"]


def deployed_context(run: RunFiles, top_patients: int) -> dict[str, Any]:
    """Everything the deployed page shows: the run's findings, drawn."""
    summary = run.summary
    found = deployed_findings(run, top_patients)
    thresholds = run.thresholds
    svgs: dict[str, Markup] = {}
    for log in (False, True):
        chart_id = "roc-loglog" if log else "roc-linear"
        svgs[chart_id] = Markup(
            charts.roc_chart(
                found.curves, log=log, floor=found.floor, chart_id=chart_id,
                primary="target, patients",
            )
        )
    if "members" in found.survival:
        svgs["survival"] = Markup(
            charts.survival_chart(
                found.survival, primary="members", thresholds=thresholds,
                counts=found.survival_counts, chart_id="survival",
            )
        )
    groups = group_sections(found.groups, charts)
    flagged = {lvl: n for lvl, n, _ in found.flagged}
    cohort = summary.get("cohort") or run.run.get("cohort") or {}
    roles = summary.get("roles", {})
    return {
        "title": f"Deployed-model audit — {cohort.get('name', run.path.name)}",
        "cohort": cohort,
        "summary": summary,
        "attack": run.primary,
        "attack_rule": summary.get("attack_rule", ""),
        "references": int(summary.get("references", len(run.keep) - 2)),
        "mode": summary.get("mode", "offline"),
        "rmia_a": summary.get("rmia_a"),
        "record_auc": found.record_auc,
        "patient_auc": found.patient_auc,
        "patient_rates": _rates(found.patient_metrics),
        "record_rates": _rates(found.record_metrics),
        "tests": found.tests,
        "flagged": found.flagged,
        "flag_1": flagged.get(0.01),
        "flag_01": flagged.get(0.001),
        "n_members": found.n_members,
        "n_nonmembers": found.n_nonmembers,
        "n_population": found.n_population,
        "population_rule": roles.get("population_rule", ""),
        "high_risk": [(t, found.high_risk[repr(float(t))]) for t in thresholds],
        "thresholds": thresholds,
        "top": found.top,
        "groups": groups,
        "models": found.models,
        "target": summary.get("target", {}),
        "recipe_warnings": list(summary.get("warnings", [])),
        "svgs": svgs,
        "config_text": run.config_text,
        "version": summary.get("miaudit_version") or run.run.get("miaudit_version") or "unknown",
        "created": run.run.get("created", "unknown"),
        "fingerprint": summary.get("data_fingerprint") or run.run.get("data_fingerprint", "unknown"),
        "config_hash": summary.get("config_hash") or run.run.get("config_hash", "unknown"),
        "records": len(run.records),
        "patients": len(run.patients),
        "redacted": bool(summary.get("redacted", False)),
    }


def render_deployed(run: RunFiles, top_patients: int) -> str:
    """The deployed-model page for a loaded run (escaped by jinja2)."""
    if L.MEMBER not in run.patients.columns:
        raise InputError(
            f"{run.path}: summary.json says this is a deployed-model run, but patients.parquet "
            "has no 'member' column; rerun `miaudit audit-model` to rewrite the tables"
        )
    context = deployed_context(run, top_patients)
    return environment().get_template(TEMPLATE).render(**context)
