"""Crash safety: SIGKILL at any point, rerun the same command, get the uninterrupted result.

The command runs as a child process (forked from a zygote that has already imported
miaudit, see hostile/zygote.py) on a small synthetic config with several groups. Ten kill
points are drawn with a fixed seed from the timeline of an uninterrupted traced run: some
are SIGKILLs sent from outside at a random moment of a stage (training, scoring, anywhere),
the others hit the narrow windows of file writing from inside (half a shard or result file
written, a complete temporary not yet renamed, a rename just done). Each killed run is then
rerun to completion and its result files, score arrays and shards are compared byte for byte
with a plain ``python -m miaudit.cli`` run. run.json (creation time, timings) is not
compared, and report.html is compared with its one timestamp ("run created ...") masked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hostile.runfiles import content, result_digests
from hostile.zygote import Result, Zygote, read_trace

from miaudit.errors import InputError
from miaudit.results.store import RunStore, write_npz

CONFIG = """
[cohort.synthetic]
num_patients = 120
num_features = 6
max_records_per_patient = 2
num_atypical = 4
num_mislabelled = 4
seed = 5

[model]
family = "mlp"
width = 32

[training]
epochs = 5
batch_size = 32

[audit]
models = 8
group_size = 2
attacks = ["lira", "rmia", "loss"]
"""

SEED = 20261129
LOADING, TRAINING, SCORING, WRITING = (
    "loading cohort",
    "training reference models",
    "scoring attacks",
    "writing results",
)


class Setup:
    def __init__(self, root: Path, zygote: Zygote, baseline: dict[str, str],
                 timeline: list[tuple[float, str, str]]) -> None:
        self.root = root
        self.zygote = zygote
        self.baseline = baseline
        self.timeline = timeline
        self.config = root / "audit.toml"
        self.env = {"HOME": str(root)}

    def argv(self, out: Path, *extra: str) -> list[str]:
        return ["audit", str(self.config), "--out", str(out), *extra]

    def run(self, out: Path, logs: str, **kwargs: object) -> Result:
        return self.zygote.start(self.argv(out), cwd=self.root, logs=self.root / logs,
                                 env=self.env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("crash")
    (root / "audit.toml").write_text(CONFIG)
    base = root / "baseline"
    r = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(root / "audit.toml"), "--out", str(base)],
        capture_output=True, text=True, timeout=600, cwd=root,
        env={**os.environ, "COLUMNS": "200", "HOME": str(root)},
    )
    assert r.returncode == 0, r.stderr
    zygote = Zygote()
    try:
        s = Setup(root, zygote, result_digests(base), [])
        # the first child warms caches on disk, so the second one's timeline is the typical one
        for name in ("warm", "traced"):
            traced = s.run(root / name, name, trace=root / f"{name}.trace")
            assert traced.returncode == 0, traced.stderr
            # a forked run is the same as a plain one
            assert result_digests(root / name) == s.baseline
        s.timeline = read_trace(root / "traced.trace")
        yield s
    finally:
        zygote.close()


def stage_times(timeline: list[tuple[float, str, str]]) -> dict[str, float]:
    return {detail: t for t, kind, detail in timeline if kind == "stage"}


def kill_points(timeline: list[tuple[float, str, str]]) -> list[dict[str, object]]:
    """Ten seeded kill points spread over the run's stages and its file writes.

    Timed kills count from the moment the zygote sees the child enter a stage, with a delay
    drawn within that stage's length in the traced run, so machine load shifts them little.
    """
    rng = np.random.default_rng(SEED)
    stages = stage_times(timeline)
    writes = [(int(d.split()[0]), d.split()[1]) for _, kind, d in timeline if kind == "write"]
    shard_writes = [k for k, name in writes if name.startswith("shards/")]
    result_writes = [k for k, name in writes if k > max(shard_writes)]
    phases = ["mid", "before_rename", "after"]

    def during(stage: str, end: str) -> dict[str, object]:
        delay = float(rng.uniform(0.0, stages[end] - stages[stage]))
        return {"kill_after": {"stage": stage, "delay": delay}}

    def write(ks: list[int]) -> dict[str, object]:
        return {"crash": {"write": int(rng.choice(ks)), "phase": str(rng.choice(phases))}}

    return [
        during(TRAINING, SCORING),
        during(TRAINING, SCORING),
        during(TRAINING, SCORING),
        write(shard_writes),
        write(shard_writes),
        during(SCORING, WRITING),
        during(SCORING, WRITING),
        write(result_writes),
        write(result_writes),
        during(LOADING, WRITING),
    ]


def landed(trace: list[tuple[float, str, str]]) -> str:
    """Where a killed run died: its last stage, and the write it was in, if any."""
    stage = next((d for _, k, d in reversed(trace) if k == "stage"), "start-up")
    kills = [d for _, k, d in trace if k == "kill"]
    if kills:
        return f"{stage}: {kills[0]}"
    begun = [d for _, k, d in trace if k == "write"]
    ended = [d for _, k, d in trace if k == "written"]
    if len(begun) > len(ended):
        return f"{stage}: inside write of {begun[-1].split()[1]}"
    return stage


def assert_only_complete_files(run: Path, baseline: Path) -> None:
    """After a kill every file under a final name is whole: the same bytes as the baseline's."""
    for path in run.rglob("*"):
        rel = path.relative_to(run)
        if path.is_dir() or path.name.startswith(".") or path.name in (
            "run.json", "run.lock", "manifest.json"
        ):
            continue
        assert content(path) == content(baseline / rel), f"partial file {rel}"
    if (run / "run.json").exists():
        json.loads((run / "run.json").read_text())
    if (run / "manifest.json").exists():
        # the manifest (hashes, the run record's with its times) is whole, and names no file
        # that is not there with those bytes, except the run record it is written with
        manifest = json.loads((run / "manifest.json").read_text())
        for rel, digest in manifest["files"].items():
            accepted = [digest] if isinstance(digest, str) else digest  # [old, new] mid-write
            if rel != "run.json" and (run / rel).exists():
                assert hashlib.sha256((run / rel).read_bytes()).hexdigest() in accepted, rel


def test_kill_at_ten_random_points_then_resume_gives_identical_results(setup: Setup) -> None:
    points = kill_points(setup.timeline)
    where = []
    for i, point in enumerate(points):
        out = setup.root / f"trial{i}"
        trace = setup.root / f"trial{i}.trace"
        killed = setup.run(out, f"trial{i}-killed", trace=trace, **point)
        for _ in range(3):  # a run faster than the traced one may end first: halve the delay
            if killed.killed or "kill_after" not in point:
                break
            shutil.rmtree(out)
            trace.unlink()
            after = dict(point["kill_after"])  # type: ignore[call-overload]
            point = {"kill_after": {**after, "delay": after["delay"] / 2}}
            killed = setup.run(out, f"trial{i}-killed", trace=trace, **point)
        assert killed.killed, f"trial {i} ({point}) was not killed: {killed.stderr[-2000:]}"
        where.append(landed(read_trace(trace)))
        assert_only_complete_files(out, setup.root / "baseline")

        resumed = setup.run(out, f"trial{i}-resumed")
        assert resumed.returncode == 0, f"trial {i} ({where[-1]}): {resumed.stderr[-3000:]}"
        assert result_digests(out) == setup.baseline, f"trial {i} killed at {where[-1]}"
        assert not list(out.rglob(".*.tmp")), "a killed writer's temporary file was left"
        record = json.loads((out / "run.json").read_text())
        assert record["complete"] is True
        for path in out.rglob("*"):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    text = "\n".join(f"{i}: {w}" for i, w in enumerate(where))
    print(f"kills landed at:\n{text}")
    for stage in (TRAINING, SCORING, WRITING):
        assert stage in text, f"no kill landed in {stage!r}:\n{text}"
    assert "shards/models-" in text and ("mid-write" in text or "before rename" in text), text
    assert any(w.startswith(WRITING + ":") for w in where), text


def test_a_second_process_on_the_same_run_is_refused(setup: Setup) -> None:
    out = setup.root / "locked"
    trace = setup.root / "locked.trace"
    # the first process pauses for a few seconds right after its first shard
    first = setup.run(out, "first", trace=trace, background=True,
                      crash={"write": 4, "phase": "pause", "seconds": 3.0})
    deadline = time.monotonic() + 60
    while not any(k == "pause" for _, k, _ in read_trace(trace)):
        assert time.monotonic() < deadline, "first run never reached its first shard"
        time.sleep(0.02)
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    for extra in ([], ["--force"]):
        second = setup.zygote.start(setup.argv(out, *extra), cwd=setup.root,
                                    logs=setup.root / "second", env=setup.env)
        assert second.returncode == 2, second.stderr
        assert f"{out}: another miaudit process is using this run directory" in second.stderr
        assert "Traceback" not in second.stderr
        assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before
    first = setup.zygote.wait(first)
    assert first.returncode == 0, first.stderr
    assert result_digests(out) == setup.baseline


def test_a_kill_while_force_clears_an_old_run_never_adopts_its_shards(tmp_path: Path) -> None:
    old = {"training_hash": "a" * 64, "data_fingerprint": "b" * 64, "models": 4}
    new = {**old, "training_hash": "c" * 64}
    run = tmp_path / "run"
    with RunStore.open(run, identity=old) as store:
        store.write_shard(np.arange(2), np.zeros((2, 3, 1, 2), np.float32))
        write_npz(store.file("plan.npz"), keep=np.ones((4, 3), bool))
    real_unlink = Path.unlink
    calls = []

    def dies_after_first(path: Path, *args: object, **kwargs: object) -> None:
        calls.append(path.name)
        real_unlink(path, *args, **kwargs)
        if path.name != "run.lock":
            raise KeyboardInterrupt  # stands in for SIGKILL after the first file is gone

    Path.unlink = dies_after_first  # type: ignore[assignment,method-assign]
    try:
        with pytest.raises(KeyboardInterrupt), RunStore.open(run, identity=new, force=True):
            pass
    finally:
        Path.unlink = real_unlink  # type: ignore[method-assign]
    assert calls  # the clearing was interrupted part-way
    # the record still names the old run: without --force the new run is refused ...
    with pytest.raises(InputError, match="different training_hash"), RunStore.open(run, identity=new):
        pass
    # ... and with --force it starts clean, with no old shard taken as finished
    with RunStore.open(run, identity=new, force=True) as store:
        assert store.finished_models() == {}
        assert not store.file("plan.npz").exists()


def test_a_finished_run_being_rerun_is_marked_incomplete_until_it_ends(tmp_path: Path) -> None:
    ident = {"training_hash": "a" * 64, "data_fingerprint": "b" * 64, "models": 4}
    run = tmp_path / "run"
    with RunStore.open(run, identity=ident) as store:
        store.update_run_record(complete=True)
    with RunStore.open(run, identity=ident) as store:
        assert store.read_identity()["complete"] is False  # type: ignore[index]
