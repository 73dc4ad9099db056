"""One audit as a composition of the parts: cohort → plan → training → shards → scores → risk.

This module holds no maths of its own; it decides what runs in which order, what is resumed,
and what is written where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit import attacks, risk
from miaudit.chance import null_records, record_measure
from miaudit.cohort import Cohort
from miaudit.config import AuditConfig, AuditSpec, to_toml
from miaudit.diagnostics import model_performance, summarise_performance
from miaudit.errors import InputError
from miaudit.plan import MembershipPlan, make_plan
from miaudit.results import layout as L
from miaudit.results.redact import redacting
from miaudit.results.store import RunStore, load_npz, write_npz
from miaudit.results.write import write_outputs
from miaudit.risk.chance import (
    Chance,
    NullRecords,
    chance,
    exact_record_p_values,
    inflation,
)
from miaudit.runner import (
    ProgressSink,
    Silent,
    Timings,
    cohort_info,
    finish_run,
    load_cohort,
    open_run,
    train_missing,
    training_job,
    with_pixels,
)
from miaudit.scored import AttackResult, attack_figures
from miaudit.signals import check_logits


@dataclass
class AuditResult:
    """What a finished audit returns to its caller (also all on disk in ``run_dir``)."""

    run_dir: Path
    summary: dict[str, Any]
    patients: pd.DataFrame
    models: pd.DataFrame
    attacks: dict[str, AttackResult] = field(default_factory=dict)


def score_attacks(
    logits: np.ndarray,
    labels: np.ndarray,
    record_keep: np.ndarray,
    patient: np.ndarray,
    num_patients: int,
    spec: AuditSpec,
    holdout_records: np.ndarray | None = None,
) -> dict[str, AttackResult]:
    """Run every configured attack leave-one-model-out and turn scores into exposure.

    Held-out records (never IN for any model) get no score; they serve RMIA as population
    records z, which is what the attack assumes population data to be. With
    ``null_permutations`` each attack is rescored under that many shuffled memberships
    (:mod:`miaudit.chance`) for its p-values, null counts and false-discovery control.
    """
    num_models = logits.shape[0]
    targets = np.arange(spec.targets or num_models)
    results = {}
    held = holdout_records is not None and bool(holdout_records.any())
    for name in spec.attacks:
        options: dict[str, Any] = {}
        if held and name.startswith("rmia"):
            options["population"] = np.flatnonzero(holdout_records)
        scorer, measure = record_measure(
            name,
            logits,
            labels,
            targets,
            method=spec.record_auc,
            holdout_records=holdout_records,
            **options,
        )
        scores = scorer(record_keep)
        membership = record_keep[targets]
        record = measure(record_keep, scores)
        exposure, se = risk.patient_exposure(
            record.auc,
            patient,
            how=spec.patient_aggregate,
            se=record.se,
            num_patients=num_patients,
        )
        null = found = None
        if spec.null_permutations:
            null = null_records(
                measure,
                record_keep,
                patient,
                num_patients,
                permutations=spec.null_permutations,
                seed=spec.seed,
                holdout_records=holdout_records,
            )
            exact = None
            if not attacks.registry.get(name).references:
                exact = exact_record_p_values(scores, membership)
            found = chance_figures(spec, record, exposure, patient, num_patients, null, exact)
        metrics = attack_figures(scores, membership, exposure, tuple(spec.thresholds), found)
        metrics["record_auc"] = record.method
        kappa = 1.0 if null is None else inflation(null, record.n_in, record.n_out)
        low, high = risk.auc_score_interval(record.auc, record.n_in, record.n_out, inflation=kappa)
        interval = risk.patient_interval(
            record.auc, low, high, patient, how=spec.patient_aggregate, num_patients=num_patients
        )
        results[name] = AttackResult(
            name, targets, scores, record, exposure, se, metrics, null, found, (low, high), interval
        )
    return results


def chance_figures(
    spec: AuditSpec,
    record: risk.RecordAUC,
    exposure: np.ndarray,
    patient: np.ndarray,
    num_patients: int,
    null: NullRecords,
    exact_p: np.ndarray | None = None,
) -> Chance:
    """The run's chance figures of one attack, with the audit's aggregate, thresholds and FDR."""
    return chance(
        record.auc,
        record.n_in,
        record.n_out,
        exposure,
        patient,
        num_patients,
        null,
        how=spec.patient_aggregate,
        thresholds=spec.thresholds,
        fdr=spec.fdr,
        fdr_method=spec.fdr_method,
        exact_p=exact_p,
    )


def _identity(config: AuditConfig, cohort: Cohort) -> dict[str, Any]:
    return {
        "training_hash": config.training_hash(),
        "data_fingerprint": cohort.fingerprint(),
        "models": config.audit.models,
    }


def _plan(store: RunStore, cohort: Cohort, spec: AuditSpec) -> MembershipPlan:
    """The run's plan: made once, then always read back (the resumed run uses the same)."""
    path = store.file(L.PLAN)
    if path.is_file():
        plan = MembershipPlan.from_arrays(load_npz(path))
        if plan.keep.shape != (spec.models, cohort.num_patients):
            raise InputError(f"{path}: plan does not match this run; pass --force to restart it")
        return plan
    held = cohort.holdout_patients()
    if held is not None and spec.holdout_fraction > 0:
        raise InputError(
            f"audit.holdout_fraction = {spec.holdout_fraction}: cohort {cohort.name} holds its "
            "dataset's official test split, which is held out of every model already; remove "
            "audit.holdout_fraction"
        )
    plan = make_plan(
        cohort.num_patients, spec.models, spec.seed, holdout_fraction=spec.holdout_fraction,
        holdout=held,
    )
    write_npz(path, **plan.to_arrays())
    return plan


@redacting
def run_audit(
    config: AuditConfig,
    out: Path,
    *,
    force: bool = False,
    progress: ProgressSink | None = None,
    executor: Any | None = None,
    after_shard: Callable[[int], None] | None = None,
    cohort: Cohort | None = None,
    estimator: Any = None,
) -> AuditResult:
    """Train (or resume), score and write one audit into ``out``.

    ``cohort`` replaces loading ``config.cohort`` (a DataFrame audited from Python), and
    ``estimator`` is an estimator object trained in place of ``[model] estimator``.
    """
    progress = progress or Silent()
    timings = Timings()
    progress.stage("loading cohort", total=1)
    cohort = cohort if cohort is not None else load_cohort(config.cohort, decode=False)
    progress.advance()
    spec = config.audit
    if cohort.num_patients < 4:
        raise InputError(
            f"cohort {cohort.name}: {cohort.num_patients} patients; an audit needs ≥ 4 "
            "(each model trains on half of them): add patients or check cohort.patient_id"
        )
    timings.since_start("cohort_s")

    identity = _identity(config, cohort)
    with open_run(
        out, identity=identity, force=force, config_toml=to_toml(config), cohort=cohort
    ) as store:
        cohort = with_pixels(cohort, store.path, progress)
        plan = _plan(store, cohort, spec)
        record_keep = plan.record_keep(cohort.patient)

        with timings.measure("training_s"):
            job = training_job(config, cohort, record_keep, spec.seed, store.path, estimator)
            train_missing(store, job, spec.models, spec.group_size, progress, executor, after_shard)

        with timings.measure("scoring_s"):
            progress.stage("scoring attacks", total=len(spec.attacks))
            logits = store.load_logits(spec.models)
            check_logits(logits)
            holdout_records = None if plan.holdout is None else plan.holdout[cohort.patient]
            results = score_attacks(
                logits,
                cohort.labels,
                record_keep,
                cohort.patient,
                cohort.num_patients,
                spec,
                holdout_records,
            )
            progress.advance(len(spec.attacks))
            performance = model_performance(logits, cohort.labels, record_keep, holdout_records)

        progress.stage("writing results", total=1)
        summary = _summary(config, cohort, results, performance, store.read_identity() or {})
        patients = write_outputs(
            store, cohort, results, performance, summary, redact=config.report.redact
        )
        finish_run(store, config.report, timings, progress)
    return AuditResult(store.path, summary, patients, performance, results)


def _summary(
    config: AuditConfig,
    cohort: Cohort,
    results: dict[str, AttackResult],
    performance: pd.DataFrame,
    record: dict[str, Any],
) -> dict[str, Any]:
    spec = config.audit
    identity = record.get("identity", {})
    return {
        "primary_attack": spec.attacks[0],
        "attacks": {name: r.metrics for name, r in results.items()},
        "diagnostic": summarise_performance(performance),
        "patient_aggregate": spec.patient_aggregate,
        "record_auc": spec.record_auc,
        "thresholds": list(spec.thresholds),
        "top_fraction": spec.top_fraction,
        "redacted": config.report.redact,
        "models": spec.models,
        "targets": len(next(iter(results.values())).targets),
        "cohort": cohort_info(cohort),
        "data_fingerprint": identity.get("data_fingerprint", cohort.fingerprint()),
        "config_hash": identity.get("training_hash", config.training_hash()),
        "miaudit_version": record.get("miaudit_version"),
    }
