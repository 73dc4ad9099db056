"""End to end on the paper's cohorts from a local copy: PTB-XL (signals) and Fitzpatrick17k
(images, decoded into the run's pixel cache), each through the command line as a user
reproducing the paper runs it: ``--dataset NAME --root COPY --preset paper``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import fitzpatrick17k, ptbxl

from miaudit.results.read import load_run

pytestmark = pytest.mark.slow

#: Small enough for a 2-core CI machine; the preset gives the rest of the paper's recipe.
SMALL = """
[audit]
models = 4
attacks = ["loss", "rmia"]
null_permutations = 2

[training]
epochs = 2

[model]
width = 8
"""


def miaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "miaudit.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def _audit(tmp_path: Path, dataset: str, root: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "small.toml").write_text(SMALL)
    return miaudit("audit", "small.toml", "--dataset", dataset, "--root", str(root), "--preset",
                   "paper", "--out", "run", cwd=tmp_path)


def _check_test_split_held_out(run: Path, held_records: list[str]) -> None:
    plan = np.load(run / "plan.npz", allow_pickle=False)
    records = pd.read_parquet(run / "records.parquet")
    patients = pd.read_parquet(run / "patients.parquet")
    held = plan["holdout"]
    assert held.sum() > 0 and not plan["keep"][:, held].any()  # no model saw a test patient
    test_patients = set(records.loc[records["record_id"].isin(held_records), "patient_id"])
    assert set(patients.loc[held, "patient_id"]) == test_patients
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["diagnostic"]["auroc_mean"] <= 1.0  # measured on the test split
    split = summary["cohort"]["test_split"]
    assert split == {"records": len(held_records), "patients": len(test_patients)}
    assert f"records of {split['patients']:,} patients), which no model trained on" in (
        run / "report.html").read_text()


def test_ptbxl_audit_runs_on_the_papers_cohort(tmp_path):
    root = tmp_path / "ptb-xl-1.0.3"
    expected = ptbxl.write(root)
    done = _audit(tmp_path, "ptbxl", root)
    assert done.returncode == 0, done.stderr
    assert "on the official test split: 2 records of 2 patients" in " ".join(done.stdout.split())
    run = tmp_path / "run"
    config = (run / "config.toml").read_text()
    assert 'preset = "paper"' in config and 'family = "resnet1d"' in config and "blocks = 1" in config
    assert "width = 8" in config and "epochs = 2" in config  # the user's keys win over the preset
    _check_test_split_held_out(run, expected.test)
    found = load_run(run)
    assert found.summary["cohort"]["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert set(found.patients.columns) >= {"attr_sex", "attr_extra_beats", "attr_superclass"}


def test_fitzpatrick17k_audit_decodes_once_and_resumes_from_the_cache(tmp_path):
    root = tmp_path / "fitzpatrick17k"
    expected = fitzpatrick17k.write(root, records=42)
    done = _audit(tmp_path, "fitzpatrick17k", root)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    cache = sorted((run / "cache").iterdir())
    assert [p.suffix for p in cache] == [".json", ".npy"]
    pixels = np.load(cache[1], allow_pickle=False)
    assert pixels.dtype == np.uint8 and pixels.shape == (42, 3, 64, 64)
    _check_test_split_held_out(run, expected.test)
    summary = json.loads((run / "summary.json").read_text())
    first = cache[1].stat().st_mtime_ns
    again = _audit(tmp_path, "fitzpatrick17k", root)  # resumes: same shards, pixels from the cache
    assert again.returncode == 0, again.stderr
    assert cache[1].stat().st_mtime_ns == first and "decoding images" not in again.stderr
    assert json.loads((run / "summary.json").read_text())["attacks"] == summary["attacks"]
    # a changed copy (same bytes, new modification times) is another cohort: refused ...
    for image in (root / "images").iterdir():
        image.write_bytes(image.read_bytes())
    changed = _audit(tmp_path, "fitzpatrick17k", root)
    assert changed.returncode == 2 and "different data_fingerprint" in changed.stderr
    assert cache[1].stat().st_mtime_ns == first  # before anything was written
    # ... and with --force decoded again, under its new key, the old pixels removed
    forced = miaudit("audit", "small.toml", "--dataset", "fitzpatrick17k", "--root", str(root),
                     "--preset", "paper", "--out", "run", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    renewed = sorted((run / "cache").iterdir())
    assert len(renewed) == 2 and renewed[1] != cache[1]
    np.testing.assert_array_equal(np.load(renewed[1], allow_pickle=False), pixels)


def test_a_run_killed_while_decoding_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """The decode stops midway (a kill); the rerun decodes only the rest and its results,
    pixels and shards are those of a run that was never interrupted, byte for byte."""
    from hostile.runfiles import result_digests

    from miaudit.audit import run_audit
    from miaudit.config import parse_config
    from miaudit.datasets.local.decode import ImageSource
    from miaudit.results import pixels

    root = tmp_path / "copy"
    fitzpatrick17k.write(root, records=30)
    config = parse_config({
        "cohort": {"dataset": "fitzpatrick17k", "root": str(root)}, "preset": "paper",
        "model": {"width": 4, "blocks": 1}, "training": {"epochs": 1},
        "audit": {"models": 4, "attacks": ["loss"], "null_permutations": 2},
    }, "test")
    monkeypatch.setattr(pixels, "CHUNK", 8)
    run_audit(config, tmp_path / "whole")
    decode = ImageSource.decode_rows
    calls: list[int] = []

    def killed_at_the_third_chunk(self, lo, hi):
        calls.append(lo)
        if lo == 16 and len(calls) == 3:
            raise KeyboardInterrupt
        return decode(self, lo, hi)

    monkeypatch.setattr(ImageSource, "decode_rows", killed_at_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_audit(config, tmp_path / "killed")
    assert not list((tmp_path / "killed" / "shards").glob("*.npz"))
    run_audit(config, tmp_path / "killed")
    assert calls == [0, 8, 16, 16, 24]  # resumed at the chunk the kill interrupted
    whole, killed = (sorted((tmp_path / r / "cache").glob("*.npy")) for r in ("whole", "killed"))
    assert [p.read_bytes() for p in whole] == [p.read_bytes() for p in killed]
    assert result_digests(tmp_path / "killed") == result_digests(tmp_path / "whole")


def test_a_sweep_decodes_the_pixels_once_and_holds_out_the_official_split(tmp_path):
    from miaudit.config import parse_config
    from miaudit.config.sweep import SweepSpec
    from miaudit.sweep import run_sweep

    root = tmp_path / "copy"
    expected = fitzpatrick17k.write(root, records=30)
    config = parse_config({
        "cohort": {"dataset": "fitzpatrick17k", "root": str(root)}, "preset": "paper",
        "model": {"blocks": 1}, "training": {"epochs": 1},
        "audit": {"models": 4, "attacks": ["loss"], "null_permutations": 2},
    }, "test")
    table = run_sweep(config, SweepSpec(widths=[4, 8]), tmp_path / "sweep")
    assert len(table) == 2
    assert len(list((tmp_path / "sweep" / "cache").glob("*.npy"))) == 1
    held = set(expected.test)
    for point in ("w4", "w8"):
        run = tmp_path / "sweep" / point
        assert not (run / "cache").exists()  # the sweep's pixels, not a copy per point
        records = pd.read_parquet(run / "records.parquet")
        plan = np.load(run / "plan.npz", allow_pickle=False)
        patients = pd.read_parquet(run / "patients.parquet")
        assert set(patients.loc[plan["holdout"], "patient_id"]) == held
        assert set(records["record_id"]) >= held
    page = (tmp_path / "sweep" / "sweep.html").read_text()
    assert f"official test split ({len(held)} records of {len(held)} patients)" in page


def test_an_image_that_does_not_decode_stops_the_run_by_its_path_and_the_fixed_copy_resumes(tmp_path):
    root = tmp_path / "fitzpatrick17k"
    expected = fitzpatrick17k.write(root, records=24)
    broken = root / "images" / f"{expected.record_ids[20]}.jpg"
    good = broken.read_bytes()
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "small.toml").write_text(SMALL)
    env_args = ("audit", "small.toml", "--dataset", "fitzpatrick17k", "--root", str(root),
                "--preset", "paper", "--out", "run", "--redact")
    failed = miaudit(*env_args, cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    message = " ".join(failed.stderr.split())
    assert message.count("error:") == 1 and f"file '{broken}'" in message and "not a readable image" in message
    assert f"'{expected.record_ids[20]}')" not in message and "record 'R-" in message  # pseudonymised
    broken.write_bytes(good)  # the repaired copy is another cohort (its content key changed)
    refused = miaudit(*env_args, cwd=tmp_path)
    assert refused.returncode == 2 and "pass --force to replace that run" in refused.stderr
    done = miaudit(*env_args, "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "run" / "cache").glob("*.npy"))) == 1  # the old key's pixels went
