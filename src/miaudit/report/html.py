"""The audit report: one self-contained HTML page rebuilt from the run directory alone.

Its reader is a compliance officer, a clinician-scientist or a regulator. The page has to show
that the average hides individual risk (the aggregate attack AUC next to the number of patients
identified almost surely), who the most exposed patients are and which subgroups they come
from, and whether the audit itself is precise enough to trust. Every number on it is recomputed
from the run's files (scores, plan, tables) by :mod:`miaudit.findings`, never copied from a
cache, so a report can be regenerated, checked and diffed; the same files always give the
same bytes. This module draws and renders those findings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from miaudit.errors import InputError
from miaudit.findings import AttackFindings, audit_findings
from miaudit.report import charts
from miaudit.report.deployed import render_deployed
from miaudit.report.page import environment, group_sections, rate_label
from miaudit.results import layout as L
from miaudit.results.ownership import owning_run_folder
from miaudit.results.read import RunFiles, load_run
from miaudit.results.store import write_text

__all__ = ["build_report", "render"]


# --------------------------------------------------------------------------- the page


def _attack_row(a: AttackFindings, thresholds: list[float]) -> dict[str, Any]:
    per_target = a.metrics["per_target"]
    return {
        "name": a.name,
        "primary": a.primary,
        "auc": a.auc,
        "rates": [(rate_label(k), v) for k, v in a.metrics["aggregate"]["tpr_at_fpr"].items()],
        "auc_mean": per_target["auc_mean"],
        "auc_std": per_target["auc_std"],
        "high_risk": [(t, a.high_risk[repr(float(t))]) for t in thresholds],
        "null": None
        if a.chance is None
        else [a.chance.high_risk_null[repr(float(t))] for t in thresholds],
        "beyond": None if a.chance is None else a.chance.beyond_chance,
        "median": a.median,
        "max": a.max,
    }


def _context(run: RunFiles, top_patients: int) -> dict[str, Any]:
    found = audit_findings(run, top_patients)
    attacks = [_attack_row(a, run.thresholds) for a in found.attacks]
    curves = {a.name: (a.fpr, a.tpr) for a in found.attacks}
    svgs: dict[str, Markup] = {
        chart_id: Markup(
            charts.roc_chart(
                curves, log=log, floor=found.floor, chart_id=chart_id, primary=run.primary
            )
        )
        for chart_id, log in (("roc-linear", False), ("roc-loglog", True))
    }
    if run.primary in found.survival:
        svgs["survival"] = Markup(
            charts.survival_chart(
                found.survival,
                primary=run.primary,
                thresholds=run.thresholds,
                counts=found.survival_counts,
                chart_id="survival",
            )
        )
    adequacy = {k: v for k, v in found.adequacy.items() if k not in ("table", "records")}
    adequacy["table"] = found.adequacy["records"]
    svgs["adequacy"] = Markup(charts.adequacy_chart(found.adequacy["table"], chart_id="adequacy"))
    diagnostic = found.diagnostic
    svgs["diagnostic"] = Markup(charts.diagnostic_chart(diagnostic["auroc"], chart_id="diagnostic"))
    groups = group_sections(found.groups, charts)
    summary = run.summary
    cohort = summary.get("cohort") or run.run.get("cohort") or {}
    return {
        "title": f"Membership-inference audit — {cohort.get('name', run.path.name)}",
        "cohort": cohort,
        "summary": summary,
        "run_record": run.run,
        "primary": run.primary,
        "attacks": attacks,
        "headline": found.headline,
        "thresholds": run.thresholds,
        "top": found.top,
        "groups": groups,
        "adequacy": adequacy,
        "diagnostic": diagnostic,
        "svgs": svgs,
        "config_text": run.config_text,
        "version": summary.get("miaudit_version") or run.run.get("miaudit_version") or "unknown",
        "created": run.run.get("created", "unknown"),
        "fingerprint": summary.get("data_fingerprint")
        or run.run.get("data_fingerprint", "unknown"),
        "config_hash": summary.get("config_hash") or run.run.get("config_hash", "unknown"),
        "models": len(run.keep),
        "targets": len(run.targets),
        "records": len(run.records),
        "patients": len(run.patients),
        "redacted": bool(summary.get("redacted", False)),
        "patient_aggregate": summary.get("patient_aggregate", "max"),
        "record_auc": summary.get("record_auc", "empirical"),
        "incomplete": not run.complete,
    }


# --------------------------------------------------------------------------- rendering


def render(context: dict[str, Any]) -> str:
    """The report page for a context made by :func:`build_report` (escaped by jinja2)."""
    return environment().get_template(L.REPORT).render(**context)


def build_report(run_dir: Path, *, out: Path | None = None, top_patients: int = 25) -> Path:
    """Write the run's HTML report (0600, atomically) and return its path.

    ``out`` defaults to ``RUN_DIR/report.html``; an existing folder gets ``report.html`` inside.
    Only the run's files are read, so the report can be rebuilt anywhere the run is copied.
    """
    if isinstance(top_patients, bool) or not isinstance(top_patients, int) or top_patients < 1:
        raise InputError(
            f"top_patients: {top_patients!r} is not a positive whole number; use e.g. 25 "
            "(rows of the most-exposed table)"
        )
    run = load_run(run_dir)
    if run.deployed:
        html = render_deployed(run, top_patients)
    else:
        html = render(_context(run, top_patients))
    path = Path(out) if out is not None else run.path / L.REPORT
    if path.is_dir():
        path = path / L.REPORT
    with owning_run_folder(run.path, path):
        write_text(path, html)
    return path
