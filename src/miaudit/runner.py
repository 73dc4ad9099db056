"""The run machinery a full audit and a deployed-model audit share.

Both audits are the same sequence around different scoring: load the cohort, open (or
resume) the run directory bound to an identity, record the config and the cohort, train the
reference models that have no shard yet, score, write, report, close. This module holds that
sequence's steps once — progress, timings, the opening and closing of a run, the training
job and the resumable training step — so the two audits cannot drift apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from miaudit.cohort import Cohort
from miaudit.config import AuditConfig, CohortConfig, DeployedConfig, ReportSpec
from miaudit.datasets import BUILTIN, load_builtin, load_table_cohort, make_synthetic
from miaudit.datasets.builtin import unknown_dataset
from miaudit.datasets.local import is_local, load_local
from miaudit.datasets.media import MediaSpec, load_media_cohort
from miaudit.datasets.tabular import TableSpec
from miaudit.errors import InputError
from miaudit.executors import LocalExecutor, TrainingJob, make_groups
from miaudit.report import build_report
from miaudit.results import layout as L
from miaudit.results.pixels import cached_pixels
from miaudit.results.store import RunStore, write_text

__all__ = [
    "ProgressSink",
    "Silent",
    "Timings",
    "cohort_info",
    "finish_run",
    "load_cohort",
    "open_run",
    "train_missing",
    "training_job",
    "with_pixels",
]


class ProgressSink(Protocol):
    """What an audit tells its caller while it runs (the CLI draws progress bars)."""

    def stage(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class Silent:
    """A progress sink that shows nothing (the default outside the CLI)."""

    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class Timings:
    """Wall-clock seconds of a run's steps, from its start (stored in the run record)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.values: dict[str, float] = {}

    @contextlib.contextmanager
    def measure(self, key: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.values[key] = time.perf_counter() - t

    def since_start(self, key: str) -> None:
        self.values[key] = time.perf_counter() - self.start


def load_cohort(cfg: CohortConfig, *, decode: bool = True) -> Cohort:
    """Build the cohort a config names, validated.

    ``decode=False`` leaves the pixels of a paper dataset's images pending, for the run to
    decode into its cache (:func:`with_pixels`); otherwise they are decoded into memory.
    """
    if cfg.dataset is not None and is_local(cfg.dataset):
        cohort = load_local(cfg.dataset, cfg.root, decode=decode)
    elif cfg.dataset is not None:
        if cfg.dataset not in BUILTIN:
            raise unknown_dataset(cfg.dataset)
        if cfg.root is not None:
            raise InputError(
                f"cohort.root: the built-in cohort {cfg.dataset!r} ships with its package and "
                "reads no folder; remove cohort.root (root is for the paper's datasets read "
                "from your copy, see `miaudit datasets`)"
            )
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


def with_pixels(cohort: Cohort, folder: Path, progress: ProgressSink | None) -> Cohort:
    """The cohort with its pixels, decoded into the ``cache/`` of a run or sweep folder it
    owns (or read back from it)."""
    if cohort.pending is None:
        return cohort
    return cohort.decoded(cached_pixels(folder, cohort.pending, progress))


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
        **({} if cohort.holdout is None else {"test_split": {
            "records": int(np.count_nonzero(cohort.holdout)),
            "patients": int(np.count_nonzero(cohort.holdout_patients())),
        }}),
    }


@contextlib.contextmanager
def open_run(
    out: Path,
    *,
    identity: dict[str, Any],
    force: bool,
    config_toml: str,
    cohort: Cohort,
    **record: Any,
) -> Iterator[RunStore]:
    """Open (create, resume or replace) a run bound to ``identity`` and record what it is.

    ``config.toml`` and the run record's config hash, data fingerprint, model count and
    cohort facts are written on every opening, so a resumed run describes itself the same.
    ``record`` adds fields to the run record before them (e.g. ``kind``).
    """
    with RunStore.open(out, identity=identity, force=force) as store:
        write_text(store.file(L.CONFIG), config_toml)
        store.update_run_record(
            **record,
            config_hash=identity["training_hash"],
            data_fingerprint=identity["data_fingerprint"],
            models=identity["models"],
            cohort=cohort_info(cohort),
        )
        yield store


def training_job(
    config: AuditConfig | DeployedConfig,
    cohort: Cohort,
    keep: np.ndarray,
    seed: int,
    run_dir: Path | None = None,
    estimator: Any = None,
) -> TrainingJob:
    """The job every group of a run's models trains with: the config's recipe on the cohort.

    ``run_dir`` holds the folders of command recipes' models; ``estimator`` is an estimator
    object handed to the Python API in place of ``[model] estimator``.
    """
    return TrainingJob(
        model=config.model,
        training=config.training,
        inputs=cohort.inputs,
        labels=cohort.labels,
        keep=keep,
        seed=seed,
        device=config.executor.device,
        privacy=config.privacy,
        patient=cohort.patient,
        views=config.views,
        modality=cohort.modality,
        table=cohort.table,
        record_ids=cohort.record_ids,
        patient_ids=cohort.patient_ids[cohort.patient],
        work_dir=None if run_dir is None else run_dir / L.RECIPE_DIR,
        cwd=Path.cwd(),
        workers=config.executor.workers,
        estimator=estimator,
    )


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


def finish_run(
    store: RunStore, report: ReportSpec, timings: Timings, progress: ProgressSink
) -> None:
    """Mark the run complete (its files all describe this scoring), draw the report (when
    asked) and record the timings. The report reads the run as complete, as a rebuild will."""
    store.update_run_record(complete=True)
    if report.html:
        build_report(store.path, top_patients=report.top_patients)
    else:
        # a report an earlier run drew may name patients this run pseudonymises: it goes
        store.remove_stale(L.REPORT, keep=set())
    progress.advance()
    timings.since_start("total_s")
    store.update_run_record(timings=timings.values, complete=True)
