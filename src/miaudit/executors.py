"""Where groups of reference models train: in this process, or on a Ray cluster.

An executor takes a :class:`TrainingJob` (everything a group needs: data, membership, recipe)
and a list of groups of global model indices, and hands each finished group's logits back to
the driver through ``on_done``, which alone writes the shards and advances progress. Workers
never touch the run directory, so a cluster needs no shared filesystem. Because every model
is seeded by its global index, neither the executor nor the grouping changes the numbers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from miaudit.cohort import float_inputs
from miaudit.errors import InputError
from miaudit.models import ModelSpec
from miaudit.recipes.command import CommandRecipe, train_commands
from miaudit.recipes.estimator import EstimatorRecipe, train_estimators
from miaudit.recipes.module import train_function, train_module
from miaudit.training import TrainingSpec, train_group
from miaudit.training.dp import DPSpec, train_group_dp
from miaudit.views import ViewSpec, make_views

if TYPE_CHECKING:
    from miaudit.config import ExecutorSpec

__all__ = [
    "LocalExecutor",
    "OnDone",
    "RayExecutor",
    "TrainingJob",
    "make_executor",
    "make_groups",
]

#: Seconds to wait for a TCP answer from a cluster address before calling it unreachable
#: (``ray.init`` itself retries for many minutes before it gives up).
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, eq=False)
class TrainingJob:
    """The inputs shared by every group of one audit."""

    model: ModelSpec
    training: TrainingSpec
    inputs: np.ndarray  # [N, ...] float32
    labels: np.ndarray  # [N] or [N, K]
    keep: np.ndarray  # [M, N] bool
    seed: int
    device: str | None = None
    privacy: DPSpec | None = None
    patient: np.ndarray | None = None  # [N] patient index (DP clips per patient)
    views: ViewSpec | None = None  # query views (training augmentation and scoring)
    modality: str = "table"
    table: pd.DataFrame | None = None  # raw feature columns ([model] inputs = "raw")
    record_ids: np.ndarray | None = None  # [N] (command recipes name records by id)
    patient_ids: np.ndarray | None = None  # [N] each record's patient id (command recipes)
    work_dir: Path | None = None  # where command recipes keep each model's folder
    cwd: Path | None = None  # where command recipes run (the driver's folder)
    workers: int | None = None  # local processes for estimator and command recipes
    estimator: Any = None  # an estimator object from the Python API (else model.estimator)

    def _view_transforms(self) -> list[Any] | None:
        if self.views is not None and self.modality != "table":
            return make_views(self.views, self.modality, tuple(self.inputs.shape[1:]))
        return None

    def _float_inputs(self) -> np.ndarray:
        """The inputs as float32 for recipes that take the whole array (uint8 pixels / 255);
        only the built-in conv families stream uint8 batches themselves."""
        return float_inputs(self.inputs)

    def _recipe_inputs(self) -> np.ndarray | pd.DataFrame:
        if self.model.inputs != "raw":
            return self._float_inputs()
        if self.table is None:
            raise InputError(
                "model.inputs = 'raw': this cohort has no raw columns (only table cohorts "
                "read from a file or DataFrame do); remove model.inputs"
            )
        return self.table

    def train(self, models: np.ndarray) -> np.ndarray:
        """Train the models with these global indices; logits [G, N, V, K]."""
        kind = self.model.kind
        indices = [int(m) for m in models]
        if kind == "estimator" or self.estimator is not None:
            recipe = EstimatorRecipe(path=self.model.estimator, params=dict(self.model.params),
                                     obj=self.estimator)
            return train_estimators(recipe, self._recipe_inputs(), self.labels,
                                    self.keep[models], indices, self.seed, workers=self.workers)
        if kind == "command":
            if self.record_ids is None or self.patient_ids is None:
                raise InputError("model.command: needs the cohort's record and patient ids")
            views = self._view_transforms()
            return train_commands(
                CommandRecipe(self.model.command or "", self.work_dir, self.cwd), self.record_ids,
                self.patient_ids, self.labels, self.keep[models], indices, self.seed,
                views=len(views) if views else 1, workers=self.workers,
            )
        if kind == "module":
            return train_module(self.model.module or "", dict(self.model.params), self.training,
                                self._float_inputs(), self.labels, self.keep[models], indices, self.seed,
                                device=self.device, views=self._view_transforms())
        if kind == "train_fn":
            views = self._view_transforms()
            return train_function(self.model.train_fn or "", dict(self.model.params),
                                  self._recipe_inputs(), self.labels, self.keep[models],
                                  indices, self.seed, views=len(views) if views else 1)
        if self.privacy is not None and self.privacy.enabled:
            return train_group_dp(
                self.model,
                self.training,
                self.privacy,
                self._float_inputs(),
                self.labels,
                self.patient,
                self.keep[models],
                [int(m) for m in models],
                self.seed,
                device=self.device,
            )
        views = self._view_transforms()
        return train_group(
            self.model,
            self.training,
            self.inputs,
            self.labels,
            self.keep[models],
            [int(m) for m in models],
            self.seed,
            device=self.device,
            views=views,
        )


OnDone = Callable[[np.ndarray, np.ndarray], None]


class LocalExecutor:
    """Trains groups one after another in this process."""

    name = "local"

    def run(self, job: TrainingJob, groups: Sequence[np.ndarray], on_done: OnDone) -> None:
        for models in groups:
            on_done(models, job.train(models))


def make_groups(models: Sequence[int], group_size: int) -> list[np.ndarray]:
    """Split model indices into consecutive groups of at most ``group_size``."""
    arr = np.asarray(sorted(models), dtype=np.int64)
    return [arr[i : i + group_size] for i in range(0, len(arr), group_size)]


# -- Ray ------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "executor 'ray': the ray package is not installed; install it with "
            "`pip install 'miaudit[ray]'` or use --executor local"
        ) from None
    return ray


def _train_task(job: TrainingJob, models: np.ndarray) -> np.ndarray:
    """Body of one remote task: train one group and return its logits to the driver."""
    return job.train(models)


def _group_text(models: np.ndarray) -> str:
    return f"models {int(models[0])}–{int(models[-1])}"


def _probe(address: str) -> None:
    """Fail fast, with a clear message, when nothing answers at ``host:port``."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise InputError(
            f"--address {address!r}: the port {port!r} is not a number; give the head node as "
            "HOST:PORT (e.g. 10.0.0.5:6379), as printed by `ray start --head`"
        ) from None
    try:
        with socket.create_connection((host.strip("[]"), number), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise InputError(
            f"--address {address!r}: no Ray cluster answers there ({err.strerror or err}); "
            "start one with `ray start --head` and pass the address it prints, or omit "
            "--address to start a local one"
        ) from None


class RayExecutor:
    """Trains each group as one Ray task; results are written by the driver as they arrive.

    The job's arrays go to the object store once (``ray.put``); every task gets a reference,
    so on a multi-node cluster each node fetches them once. ``num_gpus`` may be fractional
    (0.25 lets four groups share a card). A task that fails for any reason other than bad
    input is submitted again, up to ``max_retries`` times; Ray also re-runs tasks whose worker
    or node died. ``address=None`` joins the cluster this process already started, else
    starts a local one.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 2,
    ) -> None:
        if num_cpus <= 0 or num_gpus < 0 or max_retries < 0:
            raise InputError(
                f"executor: num_cpus = {num_cpus} must be > 0, num_gpus = {num_gpus} ≥ 0 and "
                f"max_retries = {max_retries} ≥ 0; fix [executor] in the config"
            )
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.max_retries = int(max_retries)

    # -- connection ------------------------------------------------------------------------
    def _connect(self, ray: Any) -> bool:
        """Join or start a cluster; True when this call started the connection."""
        if ray.is_initialized():
            return False
        if self.address is not None:
            _probe(self.address)
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
            where = f"at {self.address!r}" if self.address else "locally"
            raise InputError(
                f"executor 'ray': could not connect to a Ray cluster {where} "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); check "
                "--address and, for a cluster with token authentication, that its token is "
                "in ~/.ray/auth_token or $RAY_AUTH_TOKEN; or omit --address to start a local "
                "cluster"
            ) from None
        return True

    def _check_resources(self, ray: Any) -> None:
        """Refuse requests no node can satisfy: Ray would queue such tasks forever."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
        fits = [
            n
            for n in nodes
            if n.get("CPU", 0.0) >= self.num_cpus and n.get("GPU", 0.0) >= self.num_gpus
        ]
        if not fits:
            best_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
            best_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
            raise InputError(
                f"executor: each task asks for num_cpus = {self.num_cpus:g} and num_gpus = "
                f"{self.num_gpus:g}, but the largest node of the Ray cluster has {best_cpu:g} "
                f"CPUs and {best_gpu:g} GPUs; lower executor.num_cpus / executor.num_gpus"
            )

    # -- running ---------------------------------------------------------------------------
    def run(self, job: TrainingJob, groups: Sequence[np.ndarray], on_done: OnDone) -> None:
        """Train every group on the cluster; ``on_done`` runs here, once per finished group."""
        if not groups:
            return
        ray = _import_ray()
        started = self._connect(ray)
        try:
            self._check_resources(ray)
            remote = ray.remote(_train_task).options(
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
                name="miaudit.train_group",
            )
            # a task never touches the run directory: command recipes keep their models in
            # the task's own temporary folder, and each task runs its share of the node's CPUs
            job_ref = ray.put(replace(
                job, work_dir=None, workers=job.workers or max(1, int(self.num_cpus))
            ))
            pending: dict[Any, tuple[np.ndarray, int]] = {}

            def submit(models: np.ndarray, attempt: int) -> None:
                pending[remote.remote(job_ref, models)] = (models, attempt)

            for models in groups:
                submit(np.asarray(models, dtype=np.int64), 0)
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    ref = ready[0]
                    models, attempt = pending.pop(ref)
                    try:
                        logits = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = getattr(err, "cause", None)
                        if isinstance(cause, InputError):
                            raise InputError(str(cause)) from None
                        if attempt >= self.max_retries:
                            raise RuntimeError(
                                f"executor 'ray': training {_group_text(models)} failed "
                                f"{attempt + 1} time(s); finished groups are saved, rerun the "
                                "same command to resume"
                            ) from err
                        submit(models, attempt + 1)
                        continue
                    except ray.exceptions.RayError as err:
                        # worker or node lost, and Ray's own max_retries re-runs used up
                        raise RuntimeError(
                            f"executor 'ray': training {_group_text(models)} was lost "
                            f"({type(err).__name__}); finished groups are saved, rerun the "
                            "same command to resume"
                        ) from err
                    del ref
                    on_done(models, np.asarray(logits))
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)
        finally:
            if started:
                ray.shutdown()


def make_executor(spec: ExecutorSpec) -> LocalExecutor | RayExecutor:
    """The executor a config's ``[executor]`` table (or --executor/--address) asks for."""
    if spec.kind == "local":
        if spec.address is not None:
            raise InputError(
                f"--address {spec.address!r} is only used with --executor ray; add "
                "--executor ray (or kind = \"ray\" in [executor]) or drop the address"
            )
        return LocalExecutor()
    if spec.device == "cpu" and spec.num_gpus > 0:
        raise InputError(
            f"executor: device = 'cpu' with num_gpus = {spec.num_gpus:g} would reserve GPUs "
            "that no task uses; set num_gpus = 0 or leave device unset"
        )
    _import_ray()
    return RayExecutor(spec.address, spec.num_cpus, spec.num_gpus, spec.max_retries)

