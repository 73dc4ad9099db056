"""The report of a deployed-model run (``miaudit audit-model``), rebuilt from its files alone.

One model, one score per patient: the page leads with the target's aggregate attack AUC next
to the number of its training patients (members) the attack flags at a low false-positive
rate, and puts the same-distribution control beside it, because a high AUC between two
groups from different sources is not a privacy finding. Every number is recomputed from the
run's files (scores, patient table, ``confound.npz``), as for the full audit's page.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from markupsafe import Markup

from miaudit import confound, risk
from miaudit.errors import InputError
from miaudit.report.html import _cell, _environment, _group_sections, _rate_label
from miaudit.results.read import RunFiles

__all__ = ["render_deployed"]

TEMPLATE = "deployed.html"


def _patient_max(values: np.ndarray, patient: np.ndarray, num_patients: int) -> np.ndarray:
    from miaudit.deployed import patient_max

    return patient_max(values, patient, num_patients)


def _tests(run: RunFiles, member: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Patient-level AUC tests of the target, the neither model and the input classifier."""
    patient = run.records["patient"].to_numpy(np.int64)
    p = len(run.patients)
    arrays = run.confound_arrays()
    score = run.column("score").astype(np.float64)
    attack = confound.auc_test(score[candidate], member[candidate])
    neither_score = _patient_max(arrays["neither_scores"], patient, p)
    neither = confound.auc_test(neither_score[candidate], member[candidate])
    prob = arrays["classifier_probability"]
    classifier = None
    if (~np.isnan(prob)).any():
        ok = ~np.isnan(prob)
        sums = np.bincount(patient[ok], weights=prob[ok], minlength=p)
        counts = np.bincount(patient[ok], minlength=p)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_patient = sums / counts
        chosen = candidate & (counts > 0)
        classifier = confound.auc_test(per_patient[chosen], member[chosen])
    stored = run.summary.get("confound") or {}
    alpha = float(stored.get("alpha", 0.05))
    verdict = confound.assess(attack, classifier, neither, alpha=alpha)
    return {
        "attack": attack,
        "neither": neither,
        "neither_score": neither_score,
        "classifier": classifier,
        "classifier_model": stored.get("classifier_model"),
        "folds": stored.get("folds"),
        "verdict": verdict,
        "stored": stored,
    }


def _curve(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = risk.roc(np.asarray(scores, dtype=np.float64)[None], np.asarray(member)[None])
    return fpr, tpr


def _top_members(
    run: RunFiles, member: np.ndarray, exposure: np.ndarray, top_patients: int
) -> dict[str, Any]:
    score = run.column("score").astype(np.float64)
    fpr = run.column("fpr").astype(np.float64)
    p_value = run.column("p_value").astype(np.float64)
    idx = np.flatnonzero(member & ~np.isnan(exposure))
    order = idx[np.lexsort((idx, -np.nan_to_num(score[idx], nan=-np.inf), -exposure[idx]))]
    attrs = run.attributes()
    rows = []
    for rank, i in enumerate(order[:top_patients], start=1):
        row = run.patients.iloc[i]
        rows.append(
            {
                "rank": rank,
                "patient_id": str(row["patient_id"]),
                "exposure": float(exposure[i]),
                "fpr": float(fpr[i]),
                "p_value": float(p_value[i]),
                "score": float(score[i]),
                "records": int(row["records"]),
                "attributes": [_cell(attrs.at[i, c]) for c in attrs.columns],
            }
        )
    return {"rows": rows, "attributes": list(attrs.columns), "total": int(idx.size)}


def _models(run: RunFiles) -> dict[str, Any]:
    target = run.models.iloc[0]
    refs = run.references()
    refs = refs[refs["role"].astype(str) == "reference"]
    auroc = refs["test_auroc"].to_numpy(np.float64)
    auroc = auroc[np.isfinite(auroc)]
    return {
        "target_auroc": float(target["test_auroc"]),
        "target_test_accuracy": float(target["test_accuracy"]),
        "target_train_accuracy": float(target["train_accuracy"]),
        "target_train_records": int(target["train_records"]),
        "references": len(refs),
        "reference_auroc": float(auroc.mean()) if auroc.size else math.nan,
        "reference_train_records": float(refs["train_records"].mean()) if len(refs) else math.nan,
    }


def deployed_context(run: RunFiles, top_patients: int) -> dict[str, Any]:
    """Everything the deployed page shows, recomputed from the run's files."""
    from miaudit.report import charts

    summary = run.summary
    attack = run.primary
    role = run.column("role").astype(str)
    member = run.column("member").astype(bool)
    candidate = role != "population"
    nonmember = candidate & ~member
    exposure = run.column("exposure").astype(np.float64)
    fpr = run.column("fpr").astype(np.float64)
    score = run.column("score").astype(np.float64)
    warnings: list[str] = []
    record_scores = run.scores(attack)[0]
    record_member = run.membership()[0]
    record_metrics = risk.attack_metrics(record_scores[None], record_member[None])
    record_auc = float(record_metrics["aggregate"]["auc"])
    stored_auc = summary["attacks"][attack].get("aggregate", {}).get("auc")
    if stored_auc is not None and abs(float(stored_auc) - record_auc) > 1e-9:
        warnings.append(
            f"summary.json gives record-level AUC {float(stored_auc):.6f}, the scores give "
            f"{record_auc:.6f}; the figures here are recomputed from the scores."
        )
    tests = _tests(run, member, candidate)
    patient_metrics = risk.attack_metrics(score[candidate][None], member[candidate][None])
    levels = [float(x) for x in summary.get("flag_levels", (0.1, 0.01, 0.001))]
    flagged = {lvl: int(np.count_nonzero(member & (fpr <= lvl))) for lvl in levels}
    neither_fpr = _null_fpr(tests["neither_score"], nonmember)
    neither_flagged = {lvl: int(np.count_nonzero(member & (neither_fpr <= lvl))) for lvl in levels}
    n_members = int(member.sum())
    thresholds = run.thresholds
    member_exposure = exposure[member]
    high = risk.high_risk_counts(member_exposure, thresholds)

    stored = summary["attacks"][attack]
    stored_flagged = stored.get("flagged", {})
    for lvl in levels:
        key = repr(lvl)
        if key in stored_flagged and int(stored_flagged[key]) != flagged[lvl]:
            warnings.append(
                f"summary.json counts {stored_flagged[key]} members flagged at FPR ≤ {lvl:g}, "
                f"patients.parquet gives {flagged[lvl]}; the figures here use patients.parquet."
            )
    if bool(tests["stored"].get("confounded", tests["verdict"].confounded)) != tests[
        "verdict"
    ].confounded:
        warnings.append(
            "summary.json and the run's scores disagree on whether the audit is confounded; "
            "the verdict here is recomputed from the scores and confound.npz."
        )

    curves = {
        "target, patients": _curve(score[candidate], member[candidate]),
        "target, records": _curve(record_scores, record_member),
        "neither model (control)": _curve(tests["neither_score"][candidate], member[candidate]),
    }
    floor = 1.0 / max(int(nonmember.sum()), 1)
    svgs: dict[str, Markup] = {}
    for log in (False, True):
        chart_id = "roc-loglog" if log else "roc-linear"
        svgs[chart_id] = Markup(
            charts.roc_chart(
                curves, log=log, floor=floor, chart_id=chart_id, primary="target, patients"
            )
        )
    survival = {}
    if (~np.isnan(member_exposure)).any():
        survival["members"] = risk.survival(member_exposure)
    if (~np.isnan(exposure[nonmember])).any():
        survival["non-members"] = risk.survival(exposure[nonmember])
    if "members" in survival:
        counts = {t: high[repr(float(t))] for t in thresholds}
        svgs["survival"] = Markup(
            charts.survival_chart(
                survival, primary="members", thresholds=thresholds, counts=counts, chart_id="survival"
            )
        )
    # exposure_ATTACK holds the members' exposure only: subgroups of members are analysed
    groups = _group_sections(run, charts)

    cohort = summary.get("cohort") or run.run.get("cohort") or {}
    roles = summary.get("roles", {})
    return {
        "title": f"Deployed-model audit — {cohort.get('name', run.path.name)}",
        "cohort": cohort,
        "summary": summary,
        "attack": attack,
        "attack_rule": summary.get("attack_rule", ""),
        "references": int(summary.get("references", len(run.keep) - 2)),
        "mode": summary.get("mode", "offline"),
        "rmia_a": summary.get("rmia_a"),
        "record_auc": record_auc,
        "patient_auc": float(patient_metrics["aggregate"]["auc"]),
        "patient_rates": _rates(patient_metrics),
        "record_rates": _rates(record_metrics),
        "tests": tests,
        "flagged": [(lvl, flagged[lvl], neither_flagged[lvl]) for lvl in levels],
        "flag_1": flagged.get(0.01),
        "flag_01": flagged.get(0.001),
        "n_members": n_members,
        "n_nonmembers": int(nonmember.sum()),
        "n_population": int((role == "population").sum()),
        "population_rule": roles.get("population_rule", ""),
        "high_risk": [(t, high[repr(float(t))]) for t in thresholds],
        "thresholds": thresholds,
        "top": _top_members(run, member, exposure, top_patients),
        "groups": groups,
        "models": _models(run),
        "target": summary.get("target", {}),
        "svgs": svgs,
        "warnings": warnings,
        "config_text": run.config_text,
        "version": summary.get("miaudit_version") or run.run.get("miaudit_version") or "unknown",
        "created": run.run.get("created", "unknown"),
        "fingerprint": summary.get("data_fingerprint") or run.run.get("data_fingerprint", "unknown"),
        "config_hash": summary.get("config_hash") or run.run.get("config_hash", "unknown"),
        "records": len(run.records),
        "patients": len(run.patients),
        "redacted": bool(summary.get("redacted", False)),
    }


def _null_fpr(scores: np.ndarray, null: np.ndarray) -> np.ndarray:
    from miaudit.deployed import null_rates

    return null_rates(scores, null)[0]


def _rates(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    rates = metrics["aggregate"]["tpr_at_fpr"]
    return [(_rate_label(k), float(v)) for k, v in rates.items() if k != "1/N"]


def render_deployed(run: RunFiles, top_patients: int) -> str:
    """The deployed-model page for a loaded run (escaped by jinja2)."""
    if "member" not in run.patients.columns:
        raise InputError(
            f"{run.path}: summary.json says this is a deployed-model run, but patients.parquet "
            "has no 'member' column; rerun `miaudit audit-model` to rewrite the tables"
        )
    context = deployed_context(run, top_patients)
    return _environment().get_template(TEMPLATE).render(**context)
