"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest


def miaudit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "miaudit.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd or Path.cwd())},
        timeout=600,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


SMALL = """
[cohort.synthetic]
num_patients = 120
num_features = 6
seed = 2

[model]
family = "mlp"
width = 32

[training]
epochs = 5

[audit]
models = 8
attacks = ["lira", "loss"]
"""


def test_datasets_lists_the_builtin_cohorts(tmp_path: Path) -> None:
    r = miaudit("datasets", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("rhc", "support2", "nhanes", "covid_testing"):
        assert name in r.stdout


def test_unknown_config_key_exits_2_with_one_message(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SMALL.replace("width = 32", "widht = 32"))
    before = digest(cfg)
    r = miaudit("audit", str(cfg), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 2
    assert "model.widht" in r.stderr and "unknown key" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert digest(cfg) == before
    assert not (tmp_path / "run").exists()


def test_report_of_a_missing_run_exits_2(tmp_path: Path) -> None:
    r = miaudit("report", str(tmp_path / "nothing"), cwd=tmp_path)
    assert r.returncode == 2
    assert "not a finished miaudit run" in r.stderr
    assert "Traceback" not in r.stderr


def test_audit_runs_end_to_end_and_prints_the_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL + "\n[report]\nhtml = false\n")
    out = tmp_path / "run"
    r = miaudit("audit", str(cfg), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "aggregate AUC" in r.stdout and "Most exposed patients" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"] == 8 and set(summary["attacks"]) == {"lira", "loss"}
    # rerunning the same command resumes: same numbers, nothing retrained
    shards = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    r2 = miaudit("audit", str(cfg), "--out", str(out), cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == shards
    assert json.loads((out / "summary.json").read_text())["attacks"] == summary["attacks"]
    # a different recipe into the same folder is refused, nothing changed
    cfg.write_text(SMALL.replace("seed = 2", "seed = 3"))
    r3 = miaudit("audit", str(cfg), "--out", str(out), cwd=tmp_path)
    assert r3.returncode == 2 and "--force" in r3.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == shards


@pytest.mark.parametrize("models", ["3", "7"])
def test_bad_model_count_from_the_command_line(tmp_path: Path, models: str) -> None:
    r = miaudit("audit", "--dataset", "rhc", "--models", models, cwd=tmp_path)
    assert r.returncode == 2
    assert "audit.models" in r.stderr
    assert "Traceback" not in r.stderr
