"""One audit as a composition of the parts: cohort → plan → training → shards → scores → risk.

This module holds no maths of its own; it decides what runs in which order, what is resumed,
and what is written where.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from miaudit import attacks, risk
from miaudit.cohort import Cohort
from miaudit.config import AuditConfig, AuditSpec, CohortConfig, to_toml
from miaudit.datasets import load_builtin, load_table_cohort, make_synthetic
from miaudit.datasets.media import MediaSpec, load_media_cohort
from miaudit.datasets.tabular import TableSpec
from miaudit.diagnostics import model_performance, summarise_performance
from miaudit.errors import InputError
from miaudit.executors import LocalExecutor, TrainingJob, make_groups
from miaudit.plan import MembershipPlan, make_plan
from miaudit.results import layout as L
from miaudit.results.store import RunStore, load_npz, write_npz, write_text
from miaudit.results.write import write_outputs
from miaudit.scored import AttackResult, attack_figures
from miaudit.signals import check_logits


class ProgressSink(Protocol):
    """What the audit tells its caller while it runs (the CLI draws progress bars)."""

    def stage(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass
class AuditResult:
    """What a finished audit returns to its caller (also all on disk in ``run_dir``)."""

    run_dir: Path
    summary: dict[str, Any]
    patients: pd.DataFrame
    models: pd.DataFrame
    attacks: dict[str, AttackResult] = field(default_factory=dict)


def load_cohort(cfg: CohortConfig) -> Cohort:
    """Build the cohort a config names, validated."""
    if cfg.dataset is not None:
        cohort = load_builtin(cfg.dataset)
    elif cfg.synthetic is not None:
        cohort, _ = make_synthetic(cfg.synthetic)
    elif cfg.is_media:
        fields = set(MediaSpec.model_fields) & set(cfg.model_fields_set)
        cohort = load_media_cohort(MediaSpec(**cfg.model_dump(include=fields | {"path"})))
    else:
        spec = TableSpec(
            **cfg.model_dump(
                include={
                    "path",
                    "label",
                    "patient_id",
                    "record_id",
                    "features",
                    "exclude",
                    "attributes",
                    "positive",
                    "categorical",
                },
                exclude_none=True,
            )
        )
        cohort = load_table_cohort(spec)
    cohort.validate()
    return cohort


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
    records z, which is what the attack assumes population data to be.
    """
    num_models = logits.shape[0]
    targets = np.arange(spec.targets or num_models)
    results = {}
    held = holdout_records is not None and bool(holdout_records.any())
    for name in spec.attacks:
        options: dict[str, Any] = {}
        if held and name.startswith("rmia"):
            options["population"] = np.flatnonzero(holdout_records)
        scores = attacks.run_attack(name, logits, labels, record_keep, targets=targets, **options)
        if held:
            scores[:, holdout_records] = np.nan
        membership = record_keep[targets]
        record = risk.record_auc(scores, membership, method=spec.record_auc)
        exposure, se = risk.patient_exposure(
            record.auc,
            patient,
            how=spec.patient_aggregate,
            se=record.se,
            num_patients=num_patients,
        )
        metrics = attack_figures(scores, membership, exposure, tuple(spec.thresholds))
        results[name] = AttackResult(name, targets, scores, record, exposure, se, metrics)
    return results


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
    plan = make_plan(
        cohort.num_patients, spec.models, spec.seed, holdout_fraction=spec.holdout_fraction
    )
    write_npz(path, **plan.to_arrays())
    return plan


def train_missing(
    store: RunStore,
    job: TrainingJob,
    num_models: int,
    group_size: int,
    progress: ProgressSink,
    executor: Any | None = None,
    after_shard: Callable[[int], None] | None = None,
) -> None:
    """Train the models of a run that have no shard yet; each finished group is saved at once.

    The driver alone writes shards (workers only return logits), so a killed run resumes
    from its last finished group and any executor can train the rest.
    """
    done = store.finished_models()
    todo = [m for m in range(num_models) if m not in done]
    progress.stage("training reference models", total=num_models)
    progress.advance(num_models - len(todo))

    def on_done(models: np.ndarray, logits: np.ndarray) -> None:
        store.write_shard(models, logits)
        progress.advance(len(models))
        if after_shard is not None:
            after_shard(len(models))

    (executor or LocalExecutor()).run(job, make_groups(todo, group_size), on_done)


def run_audit(
    config: AuditConfig,
    out: Path,
    *,
    force: bool = False,
    progress: ProgressSink | None = None,
    executor: Any | None = None,
    after_shard: Callable[[int], None] | None = None,
) -> AuditResult:
    """Train (or resume), score and write one audit into ``out``."""
    progress = progress or _Silent()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress.stage("loading cohort")
    cohort = load_cohort(config.cohort)
    spec = config.audit
    if cohort.num_patients < 4:
        raise InputError(
            f"cohort {cohort.name}: {cohort.num_patients} patients; an audit needs ≥ 4 "
            "(each model trains on half of them): add patients or check cohort.patient_id"
        )
    timings["cohort_s"] = time.perf_counter() - t0

    with RunStore.open(out, identity=_identity(config, cohort), force=force) as store:
        plan = _plan(store, cohort, spec)
        write_text(store.file(L.CONFIG), to_toml(config))
        identity = _identity(config, cohort)
        store.update_run_record(
            config_hash=identity["training_hash"],
            data_fingerprint=identity["data_fingerprint"],
            models=spec.models,
            cohort=cohort_info(cohort),
        )
        record_keep = plan.record_keep(cohort.patient)

        t1 = time.perf_counter()
        job = TrainingJob(
            model=config.model,
            training=config.training,
            inputs=cohort.inputs,
            labels=cohort.labels,
            keep=record_keep,
            seed=spec.seed,
            device=config.executor.device,
            privacy=config.privacy,
            patient=cohort.patient,
            views=config.views,
            modality=cohort.modality,
        )
        train_missing(store, job, spec.models, spec.group_size, progress, executor, after_shard)
        timings["training_s"] = time.perf_counter() - t1

        t2 = time.perf_counter()
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
        timings["scoring_s"] = time.perf_counter() - t2

        progress.stage("writing results", total=1)
        summary = _summary(config, cohort, results, performance, store.read_identity() or {})
        patients = write_outputs(
            store, cohort, results, performance, summary, redact=config.report.redact
        )
        if config.report.html:
            from miaudit.report import build_report

            build_report(store.path, top_patients=config.report.top_patients)
        progress.advance()
        timings["total_s"] = time.perf_counter() - t0
        store.update_run_record(timings=timings, complete=True)
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


def cohort_info(cohort: Cohort) -> dict[str, Any]:
    """The facts about a cohort a reader of the report needs."""
    return {
        "name": cohort.name,
        "source": cohort.source,
        "records": cohort.num_records,
        "patients": cohort.num_patients,
        "classes": list(cohort.class_names),
        "features": len(cohort.feature_names),
        "modality": cohort.modality,
        "input_shape": [int(d) for d in cohort.inputs.shape[1:]],
        "multilabel": cohort.multilabel,
        "attributes": list(cohort.attributes.columns),
    }
