"""End-to-end audits of image and ECG cohorts read from real file formats.

Synthetic cohorts with planted rare and atypical patients are written as a PNG folder and as
WFDB records, audited through the command line (images) and the API (ECGs) with a small CNN,
and the planted patients must come out as the most exposed: the paper's effect, on the
modalities it audits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _margins import SEED, at_least, planted_or_decoy
from sklearn.metrics import roc_auc_score

from miaudit.audit import run_audit
from miaudit.config import load_config
from miaudit.datasets.synthetic_media import (
    make_synthetic_ecg,
    make_synthetic_images,
    write_ecg_folder,
    write_image_folder,
)

pytestmark = pytest.mark.slow


def miaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "miaudit.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=900,
    )


def planted_ranking(patients: pd.DataFrame, planted_ids: set[str], attack: str) -> tuple[float, int]:
    """AUC of exposure separating planted from other patients, and planted among the top k."""
    exposure = patients[f"exposure_{attack}"].to_numpy(dtype=float)
    is_planted = patients["patient_id"].isin(planted_ids).to_numpy()
    top = np.argsort(-exposure, kind="stable")[: int(is_planted.sum())]
    return float(roc_auc_score(is_planted, exposure)), int(is_planted[top].sum())


def planted_ids(cohort: object, planted: object) -> set[str]:
    """Ids of the planted rare and atypical patients (decoys under MIAUDIT_TEST_DECOY=1)."""
    index = planted_or_decoy(
        np.union1d(planted.rare_patients, planted.atypical_patients), cohort.num_patients
    )
    return set(cohort.patient_ids[index])


RECIPE = """
[model]
width = 8
blocks = 1

[training]
epochs = 30
batch_size = 32

[audit]
models = 16
attacks = ["rmia", "lira", "loss"]
"""


def test_image_audit_from_a_png_folder_ranks_the_planted_patients_first(tmp_path: Path) -> None:
    cohort, planted = make_synthetic_images(120, seed=SEED)
    index = write_image_folder(cohort, tmp_path / "images", fmt="png")
    config = tmp_path / "images.toml"
    config.write_text(
        f'[cohort]\npath = "{index.relative_to(tmp_path)}"\nmodality = "image"\n'
        'label = "label"\npatient_id = "patient_id"\nrecord_id = "record_id"\n'
        'attributes = ["sex", "site", "group"]\n'
        "[views]\nflip = true\nshift = 1\n" + RECIPE
    )
    out = tmp_path / "run"
    r = miaudit("audit", str(config), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Most exposed patients" in r.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["cohort"]["modality"] == "image"
    assert summary["cohort"]["input_shape"] == [1, 16, 16]
    at_least("mean AUROC (the models learn the finding)", summary["diagnostic"]["auroc_mean"], 0.85)
    logits = np.load(out / "scores" / "rmia.npy")
    assert logits.shape == (16, cohort.num_records)
    patients = pd.read_parquet(out / "patients.parquet")
    ids = planted_ids(cohort, planted)
    chance_top = len(ids) ** 2 / cohort.num_patients
    for attack in ("rmia", "lira", "loss"):
        auc, in_top = planted_ranking(patients, ids, attack)
        at_least(f"{attack}: AUC of exposure, planted vs others", auc, 0.65)
        at_least(f"{attack}: planted in the top k / chance", in_top / chance_top, 2, strict=False)
    # the rare subgroup is over-represented among the most exposed, and the report says so
    assert (out / "report.html").stat().st_mode & 0o077 == 0
    assert "group" in (out / "report.html").read_text()


def test_ecg_audit_from_wfdb_records_ranks_the_planted_patients_first(tmp_path: Path) -> None:
    cohort, planted = make_synthetic_ecg(120, seed=SEED)
    index = write_ecg_folder(cohort, tmp_path / "ecg", fmt="wfdb")
    config = tmp_path / "ecg.toml"
    config.write_text(
        f'[cohort]\npath = "{index}"\nmodality = "signal"\nlabel = "label"\n'
        'patient_id = "patient_id"\nrecord_id = "record_id"\nattributes = ["sex", "site", "group"]\n'
        "[views]\nshift = 4\n[report]\nhtml = false\n" + RECIPE
    )
    cfg = load_config(config)
    assert cfg.model.family == "resnet1d"
    result = run_audit(cfg, tmp_path / "run")
    assert result.summary["cohort"]["input_shape"] == list(cohort.inputs.shape[1:])
    ids = planted_ids(cohort, planted)
    is_planted = result.patients["patient_id"].isin(ids).to_numpy()
    for attack in ("rmia", "lira", "loss"):
        auc, _ = planted_ranking(result.patients, ids, attack)
        exposure = result.patients[f"exposure_{attack}"].to_numpy(dtype=float)
        # atrial fibrillation (the rare subgroup) is less memorable than a rare image
        # appearance, so the ECG margin is smaller than the image one, yet clear
        at_least(f"{attack}: AUC of exposure, planted vs others", auc, 0.6)
        at_least(f"{attack}: mean exposure, planted - others",
                 exposure[is_planted].mean() - exposure[~is_planted].mean(), 0.05)
    # three views per record, every one scored by every model
    shard = next((tmp_path / "run" / "shards").iterdir())
    with np.load(shard, allow_pickle=False) as arrays:
        assert arrays["logits"].shape[1:3] == (cohort.num_records, 3)


def test_multilabel_image_audit_runs_and_reports_per_finding_performance(tmp_path: Path) -> None:
    cohort, _ = make_synthetic_images(40, num_labels=3, seed=1)
    index = write_image_folder(cohort, tmp_path / "cxr", fmt="npy")
    frame = pd.read_csv(index)
    config = tmp_path / "cxr.toml"
    config.write_text(
        f'[cohort]\npath = "{index}"\nmodality = "image"\n'
        f"labels = {json.dumps(list(cohort.class_names))}\n"
        'patient_id = "patient_id"\nrecord_id = "record_id"\n'
        "[model]\nwidth = 4\nblocks = 1\n[training]\nepochs = 2\n"
        '[audit]\nmodels = 4\nattacks = ["rmia", "loss"]\n[report]\nhtml = false\n'
    )
    assert set(cohort.class_names) <= set(frame.columns)
    result = run_audit(load_config(config), tmp_path / "run")
    assert result.summary["cohort"]["multilabel"] is True
    assert result.summary["cohort"]["classes"] == list(cohort.class_names)
    exposure = result.patients["exposure_rmia"].to_numpy(dtype=float)
    assert exposure.shape == (cohort.num_patients,) and np.isfinite(exposure).all()
    assert np.isfinite(result.models["test_auroc"]).all()
