"""Executors: the same groups give the same logits wherever they train.

The Ray tests start a two-CPU Ray cluster inside this process (the driver) and compare a
small audit run through it with the in-process executor, bit for bit, through the Python API
and through the command line. They are skipped only when ray is not installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hostile.runfiles import result_digests

from miaudit.audit import run_audit
from miaudit.config import ExecutorSpec, parse_config
from miaudit.errors import InputError
from miaudit.executors import (
    LocalExecutor,
    RayExecutor,
    TrainingJob,
    make_executor,
    make_groups,
)
from miaudit.models import ModelSpec
from miaudit.training import TrainingSpec, train_group

SMALL = {
    "cohort": {
        "synthetic": {
            "num_patients": 90,
            "num_features": 5,
            "max_records_per_patient": 2,
            "num_atypical": 3,
            "num_mislabelled": 3,
            "seed": 4,
        }
    },
    "model": {"family": "mlp", "width": 16},
    "training": {"epochs": 3, "batch_size": 32},
    "audit": {"models": 8, "attacks": ["lira", "rmia", "loss"], "group_size": 3},
    "report": {"html": False},
}


def small_job(num_models: int = 6) -> TrainingJob:
    rng = np.random.default_rng(0)
    n = 40
    inputs = rng.standard_normal((n, 4)).astype(np.float32)
    labels = (inputs[:, 0] > 0).astype(np.int64)
    keep = rng.random((num_models, n)) < 0.5
    return TrainingJob(
        model=ModelSpec(family="mlp", width=8),
        training=TrainingSpec(epochs=2, batch_size=16),
        inputs=inputs,
        labels=labels,
        keep=keep,
        seed=3,
    )


# -- grouping and the local executor ------------------------------------------------------


@pytest.mark.parametrize(("models", "size"), [(range(10), 3), ([7, 2, 5], 1), ([4], 50), ([], 2)])
def test_make_groups_covers_every_model_once_in_order(models: range, size: int) -> None:
    groups = make_groups(list(models), size)
    expected: list[list[int]] = []
    for m in sorted(models):  # the obvious way: fill a group, start a new one when full
        if not expected or len(expected[-1]) == size:
            expected.append([])
        expected[-1].append(m)
    assert [g.tolist() for g in groups] == expected
    assert all(g.dtype == np.int64 for g in groups)


def test_local_executor_hands_each_group_to_the_driver() -> None:
    job = small_job()
    seen: list[tuple[list[int], np.ndarray]] = []
    groups = make_groups(range(6), 4)
    LocalExecutor().run(job, groups, lambda m, logits: seen.append((m.tolist(), logits)))
    assert [m for m, _ in seen] == [[0, 1, 2, 3], [4, 5]]
    # the oracle: every model trained alone gives the same logits as its group did
    for models, logits in seen:
        for pos, m in enumerate(models):
            alone = train_group(
                job.model, job.training, job.inputs, job.labels, job.keep[[m]], [m], job.seed
            )
            assert np.array_equal(logits[pos], alone[0])


# -- choosing an executor -----------------------------------------------------------------


def test_make_executor_local_by_default() -> None:
    assert isinstance(make_executor(ExecutorSpec()), LocalExecutor)


def test_address_without_ray_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"--address '10\.0\.0\.5:6379' is only used with --executor ray"):
        make_executor(ExecutorSpec(address="10.0.0.5:6379"))


def test_cpu_device_with_gpus_is_refused() -> None:
    with pytest.raises(InputError, match=r"num_gpus = 0\.5"):
        make_executor(ExecutorSpec(kind="ray", device="cpu", num_gpus=0.5))


def test_missing_ray_tells_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(InputError, match=r"pip install 'miaudit\[ray\]'"):
        make_executor(ExecutorSpec(kind="ray"))
    with pytest.raises(InputError, match="not installed"):
        RayExecutor().run(small_job(), make_groups(range(2), 1), lambda m, x: None)


def test_unreachable_address_fails_fast_with_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'miaudit[ray]')")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor = RayExecutor(address=f"127.0.0.1:{port}")
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(InputError, match=rf"127\.0\.0\.1:{port}.*no Ray cluster answers"):
        executor.run(small_job(), make_groups(range(2), 1), lambda m, x: None)
    with pytest.raises(InputError, match="port 'abc' is not a number"):
        RayExecutor(address="head:abc").run(small_job(), make_groups(range(2), 1), lambda m, x: None)


def test_bad_resources_are_refused() -> None:
    with pytest.raises(InputError, match="num_cpus = 0"):
        RayExecutor(num_cpus=0)


# -- Ray ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-CPU Ray cluster on this machine; yields its address for other drivers."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'miaudit[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    run_audit(parse_config(SMALL), out, executor=LocalExecutor())
    return out


class Counting:
    """Progress sink that records each advance and the thread it came from."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.current = ""

    def stage(self, name: str, total: int | None = None) -> None:
        self.current = name

    def advance(self, n: int = 1) -> None:
        self.events.append((self.current, n, threading.current_thread().name))


def test_ray_audit_is_bit_identical_to_local(cluster: str, local_run: Path, tmp_path: Path) -> None:
    progress = Counting()
    out = tmp_path / "ray"
    run_audit(parse_config(SMALL), out, executor=RayExecutor(num_cpus=1), progress=progress)
    assert result_digests(out) == result_digests(local_run)
    training = [(n, t) for stage, n, t in progress.events if stage.startswith("training")]
    # one advance per finished group (3 + 3 + 2 models), all on the driver's main thread
    assert sorted(n for n, _ in training if n) == [2, 3, 3]
    assert {t for _, t in training} == {threading.main_thread().name}


def test_ray_through_the_command_line(cluster: str, local_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "small.toml"
    config.write_text((local_run / "config.toml").read_text())
    cfg_local = tomllib.loads(config.read_text())
    out = tmp_path / "cli"
    argv = [sys.executable, "-m", "miaudit.cli", "audit", str(config), "--out", str(out),
            "--executor", "ray", "--address", cluster]
    env = {**os.environ, "COLUMNS": "200"}
    # without the cluster's auth token (another HOME): one clear message, exit 2
    no_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       env={**no_token, "HOME": str(tmp_path)})
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"could not connect to a Ray cluster at '{cluster}'" in r.stderr
    assert "auth_token" in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert not (out / "shards").exists() or not any((out / "shards").iterdir())
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = result_digests(out), result_digests(local_run)
    # the saved config records where the run trained; everything else is the same bytes
    assert got.pop("config.toml") != want.pop("config.toml")
    assert got == want
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg.pop("executor") == {**cfg_local.pop("executor"), "kind": "ray", "address": cluster}
    assert cfg == cfg_local


@dataclass(frozen=True, eq=False)
class _Marked(TrainingJob):
    scratch: str = ""
    fail_first: int = 0
    bad_input: bool = False

    def train(self, models: np.ndarray) -> np.ndarray:
        folder = Path(self.scratch)
        mark = folder / f"group-{int(models[0])}-{uuid.uuid4().hex}"
        attempts = len(list(folder.glob(f"group-{int(models[0])}-*")))
        mark.touch()
        if self.bad_input:
            raise InputError(f"record 7 of group {int(models[0])} is broken; fix it")
        if attempts < self.fail_first:
            raise RuntimeError("simulated worker failure")
        return super().train(models)


def _marked(tmp_path: Path, **kwargs: object) -> TrainingJob:
    base = small_job()
    return _Marked(**{f: getattr(base, f) for f in ("model", "training", "inputs", "labels", "keep", "seed")},
                   scratch=str(tmp_path), **kwargs)  # type: ignore[arg-type]


def test_failed_tasks_are_retried_and_give_the_same_logits(cluster: str, tmp_path: Path) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    job = _marked(tmp_path, fail_first=2)
    groups = make_groups(range(6), 2)
    got: dict[int, np.ndarray] = {}
    RayExecutor(max_retries=2).run(job, groups, lambda m, x: got.update(zip(m.tolist(), x, strict=True)))
    plain = small_job().train(np.arange(6))
    assert sorted(got) == list(range(6))
    assert all(np.array_equal(got[m], plain[m]) for m in range(6))
    for g in groups:  # two failures and the success, for every group
        assert len(list(tmp_path.glob(f"group-{int(g[0])}-*"))) == 3


def test_retries_run_out_with_a_resumable_message(cluster: str, tmp_path: Path) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    job = _marked(tmp_path, fail_first=5)
    with pytest.raises(RuntimeError, match=r"failed 2 time\(s\).*rerun the same command to resume"):
        RayExecutor(max_retries=1).run(job, make_groups(range(2), 2), lambda m, x: None)


def test_bad_input_in_a_task_is_not_retried(cluster: str, tmp_path: Path) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    job = _marked(tmp_path, bad_input=True)
    with pytest.raises(InputError, match="record 7 of group 0 is broken"):
        RayExecutor(max_retries=3).run(job, make_groups(range(2), 2), lambda m, x: None)
    assert len(list(tmp_path.glob("group-0-*"))) == 1


def test_more_gpus_than_any_node_has_is_refused(cluster: str) -> None:
    with pytest.raises(InputError, match=r"num_gpus = 0\.5.*0 GPUs"):
        RayExecutor(num_gpus=0.5).run(small_job(), make_groups(range(2), 1), lambda m, x: None)


COMMAND_SCRIPT = """
import sys, pathlib
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
rows, out, seed = sys.argv[1:4]
frame = pd.read_csv("cohort.csv", dtype={"patient_id": str})
x = frame.drop(columns=["patient_id", "label"]).to_numpy()
train = np.loadtxt(rows, dtype=np.int64, ndmin=1)
est = LogisticRegression(max_iter=300, random_state=int(seed))
est.fit(x[train], frame["label"].to_numpy()[train])
margin = est.decision_function(x)
np.save(pathlib.Path(out) / "logits.npy", np.stack([np.zeros_like(margin), margin], axis=1))
"""


def test_a_command_recipe_on_ray_gives_the_local_numbers(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray tasks run the user's command in the driver's folder (a relative script path works),
    in a private scratch folder, and the run directory gets the same results as a local run."""
    import pandas as pd

    from miaudit.datasets import make_synthetic_tabular

    cohort, _ = make_synthetic_tabular(num_patients=80, num_features=4, seed=2)
    frame = pd.DataFrame(cohort.inputs, columns=list(cohort.feature_names))
    frame.insert(0, "patient_id", [f"P{p:04d}" for p in cohort.patient])
    frame["label"] = cohort.labels
    work = tmp_path / "project"
    work.mkdir()
    frame.to_csv(work / "cohort.csv", index=False)
    (work / "train.py").write_text(COMMAND_SCRIPT)
    monkeypatch.chdir(work)
    config = parse_config({
        "cohort": {"path": "cohort.csv", "label": "label", "patient_id": "patient_id"},
        "model": {"command": f"{sys.executable} train.py {{train_rows}} {{out}} {{seed}}"},
        "audit": {"models": 6, "group_size": 2, "attacks": ["lira", "loss"]},
        "report": {"html": False},
    })
    local = run_audit(config, tmp_path / "local", executor=LocalExecutor())
    remote = run_audit(config, tmp_path / "ray", executor=RayExecutor(num_cpus=1))
    assert result_digests(tmp_path / "ray") == result_digests(tmp_path / "local")
    assert np.isfinite(remote.patients["exposure"]).all()
    assert local.patients["exposure"].std() > 0
    # the tasks kept their models in their own scratch folders, not in the run directory
    assert not (tmp_path / "ray" / "recipe").exists() or not any((tmp_path / "ray" / "recipe").iterdir())
