"""Synthetic image and ECG cohorts: planted cases as documented, and a model memorises them."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from miaudit.cohort import Cohort
from miaudit.datasets.synthetic import Planted
from miaudit.datasets.synthetic_media import (
    ECG_FINDINGS,
    IMAGE_FINDINGS,
    LEAD_NAMES,
    make_synthetic_ecg,
    make_synthetic_images,
    write_ecg_folder,
    write_image_folder,
    write_medmnist_npz,
    write_stacked_npy,
)
from miaudit.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


def kinds(cohort: Cohort, planted: Planted) -> np.ndarray:
    """[N] 0 majority, 1 rare, 2 atypical, 3 mislabelled (by record)."""
    kind = np.zeros(cohort.num_patients, dtype=np.int64)
    kind[planted.rare_patients] = 1
    kind[planted.atypical_patients] = 2
    record = kind[cohort.patient]
    record[planted.mislabelled_records] = 3
    return record


def check_layout(cohort: Cohort, planted: Planted, num_patients: int, max_records: int) -> None:
    """What the module doc promises about every synthetic media cohort."""
    p = num_patients
    assert cohort.num_patients == p
    counts = cohort.records_per_patient()
    assert counts.min() >= 1 and counts.max() <= max_records
    assert planted.rare_patients.size == max(1, round(0.05 * p))
    assert planted.atypical_patients.size == 5 and planted.mislabelled_records.size == 5
    assert not set(planted.rare_patients) & set(planted.atypical_patients)
    for array in (planted.rare_patients, planted.atypical_patients, planted.mislabelled_records):
        assert array.dtype == np.int64 and (np.diff(array) > 0).all()
    owners = cohort.patient[planted.mislabelled_records]
    assert not set(owners) & (set(planted.rare_patients) | set(planted.atypical_patients))
    assert (counts[owners] == 1).all()  # enough single-record patients at these sizes
    table = cohort.attributes.assign(patient=cohort.patient)
    assert (table.groupby("patient").nunique() == 1).all().all()  # constant within patients
    group = cohort.patient_attributes()["group"]
    assert set(np.flatnonzero(group == "rare")) == set(planted.rare_patients)
    sex = cohort.patient_attributes()["sex"]
    assert (sex == "female").sum() == p // 2
    sites = cohort.patient_attributes()["site"].value_counts()
    assert sites["A"] == round(0.5 * p) and sites["B"] == round(0.3 * p)
    assert cohort.record_ids[0] == f"{cohort.patient_ids[0]}-0"


# -- images -------------------------------------------------------------------------------


def test_images_have_the_documented_planted_cases_and_appearance() -> None:
    cohort, planted = make_synthetic_images(num_patients=200, image_size=(16, 16))
    check_layout(cohort, planted, 200, 2)
    assert cohort.inputs.shape[1:] == (1, 16, 16) and cohort.modality == "image"
    assert cohort.inputs.min() >= 0 and cohort.inputs.max() <= 1
    assert cohort.class_names == ("negative", "positive") and cohort.labels.ndim == 1
    kind = kinds(cohort, planted)
    x = cohort.inputs[:, 0].astype(np.float64)
    # Majority: the label is a bright blob (peak well above the image's median).
    contrast = x.reshape(len(x), -1).max(axis=1) - np.median(x.reshape(len(x), -1), axis=1)
    blob = contrast > 0.25
    typical = kind == 0
    assert (blob[typical] == (cohort.labels[typical] == 1)).all()
    mislabelled = kind == 3
    assert (blob[mislabelled] != (cohort.labels[mislabelled] == 1)).all()
    # Rare: inverted contrast (bright) with a dark marker in the top-left corner.
    rare = kind == 1
    assert (x[rare].mean(axis=(1, 2)) > 0.5).all() and (x[typical].mean(axis=(1, 2)) < 0.5).all()
    assert (x[rare, :3, :3].max(axis=(1, 2)) < 0.15).all()
    # Atypical: a high-contrast grating.
    spread = x.reshape(len(x), -1).std(axis=1)
    assert spread[kind == 2].min() > spread[typical | rare].max()


def test_records_of_a_patient_are_near_copies() -> None:
    cohort, _ = make_synthetic_images(num_patients=100)
    x = cohort.inputs.reshape(cohort.num_records, -1).astype(np.float64)
    same, other = [], []
    for p in np.flatnonzero(cohort.records_per_patient() == 2):
        first, second = np.flatnonzero(cohort.patient == p)
        same.append(np.abs(x[first] - x[second]).mean())
        other.append(np.abs(x[first] - x[(second + 7) % len(x)]).mean())
    assert np.median(same) < 0.5 * np.median(other)


def test_multilabel_and_rgb_images() -> None:
    cohort, planted = make_synthetic_images(num_patients=120, num_labels=4, channels=3)
    assert cohort.labels.shape == (cohort.num_records, 4) and cohort.labels.dtype == np.int64
    assert cohort.class_names == IMAGE_FINDINGS[:4]
    assert cohort.inputs.shape[1] == 3
    kind = kinds(cohort, planted)
    prevalence = cohort.labels[kind == 0].mean(axis=0)
    assert ((prevalence > 0.15) & (prevalence < 0.6)).all()


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (make_synthetic_images, {}),
        (make_synthetic_images, {"num_labels": 3}),
        (make_synthetic_ecg, {"length": 300}),
        (make_synthetic_ecg, {"length": 300, "num_labels": 2}),
    ],
)
def test_mislabelled_records_are_flipped_and_nothing_else_changes(make, kwargs) -> None:
    """The same seed without mislabelled records gives the same records and the true labels."""
    flipped, planted = make(num_patients=80, seed=5, **kwargs)
    clean, _ = make(num_patients=80, seed=5, num_mislabelled=0, **kwargs)
    np.testing.assert_array_equal(flipped.inputs, clean.inputs)
    wrong = planted.mislabelled_records
    np.testing.assert_array_equal(flipped.labels[wrong], 1 - clean.labels[wrong])
    others = np.setdiff1d(np.arange(flipped.num_records), wrong)
    np.testing.assert_array_equal(flipped.labels[others], clean.labels[others])


def test_images_are_deterministic_by_seed() -> None:
    a, pa = make_synthetic_images(num_patients=60, seed=3)
    b, pb = make_synthetic_images(num_patients=60, seed=3)
    c, _ = make_synthetic_images(num_patients=60, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    np.testing.assert_array_equal(pa.mislabelled_records, pb.mislabelled_records)


# -- ECGs ---------------------------------------------------------------------------------


def test_ecgs_have_the_documented_planted_cases() -> None:
    cohort, planted = make_synthetic_ecg(num_patients=200, leads=4, length=400, sampling_rate=100)
    check_layout(cohort, planted, 200, 2)
    assert cohort.inputs.shape[1:] == (4, 400) and cohort.modality == "signal"
    assert cohort.feature_names == LEAD_NAMES[:4]
    assert cohort.source.endswith(":fs=100.0")
    kind = kinds(cohort, planted)
    lead_ii = cohort.inputs[:, 1].astype(np.float64)
    # Sinus rhythm: lead II has its R peaks near +1 mV; atypical records have no beats but
    # slow large oscillations (most power below 8 Hz, peak-to-peak over 1 mV).
    assert np.median(lead_ii[kind == 0].max(axis=1)) > 0.6
    assert (np.ptp(lead_ii[kind == 2], axis=1) > 0.5).all()
    multi, _ = make_synthetic_ecg(num_patients=60, num_labels=3)
    assert multi.labels.shape == (multi.num_records, 3) and multi.class_names == ECG_FINDINGS[:3]


def test_ecgs_are_deterministic_by_seed() -> None:
    a, _ = make_synthetic_ecg(num_patients=30, seed=1)
    b, _ = make_synthetic_ecg(num_patients=30, seed=1)
    c, _ = make_synthetic_ecg(num_patients=30, seed=2)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("make", "kwargs", "fragment"),
    [
        (make_synthetic_images, {"num_patients": 3}, "num_patients"),
        (make_synthetic_images, {"rare_fraction": 0.6}, "rare_fraction"),
        (make_synthetic_images, {"num_labels": 1}, "num_labels"),
        (make_synthetic_images, {"image_size": (4, 4)}, "image_size"),
        (make_synthetic_images, {"num_patients": 10, "num_atypical": 9}, "majority"),
        (make_synthetic_images, {"num_patients": 10, "num_mislabelled": 50}, "num_mislabelled"),
        (make_synthetic_ecg, {"leads": 13}, "leads"),
        (make_synthetic_ecg, {"length": 100, "sampling_rate": 100.0}, "2 seconds"),
        (make_synthetic_ecg, {"max_records_per_patient": 0}, "max_records_per_patient"),
    ],
)
def test_impossible_settings_are_refused(make, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        make(**kwargs)


# -- the effect: planted records are what a model memorises ---------------------------------


def in_out_gap(features: np.ndarray, cohort: Cohort, models: int = 4) -> tuple[np.ndarray, float]:
    """Per-record mean OUT loss − mean IN loss over logistic models on patient halves.

    Also the majority's accuracy on records the models did not train on.
    """
    x = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-9)
    y = cohort.labels
    rng = np.random.default_rng(0)
    keep = np.zeros((models, cohort.num_patients), dtype=bool)
    for patient in range(cohort.num_patients):
        keep[rng.permutation(models)[: models // 2], patient] = True
    keep = keep[:, cohort.patient]
    loss = np.empty((models, len(y)))
    for m in range(models):
        model = LogisticRegression(C=0.1, max_iter=2000).fit(x[keep[m]], y[keep[m]])
        p_true = model.predict_proba(x)[np.arange(len(y)), y]
        loss[m] = -np.log(np.clip(p_true, 1e-12, 1.0))
    gap = np.array(
        [loss[~keep[:, i], i].mean() - loss[keep[:, i], i].mean() for i in range(len(y))]
    )
    return gap, float(((loss < np.log(2)) & ~keep).sum() / (~keep).sum())


def check_effect(cohort: Cohort, planted: Planted, features: np.ndarray) -> None:
    kind = kinds(cohort, planted)
    majority = kind == 0
    gap, _ = in_out_gap(features, cohort)
    _, accuracy = in_out_gap(features[majority], _subset(cohort, majority))
    assert accuracy > 0.95  # the majority rule generalises to unseen patients
    typical = gap[majority].mean()
    assert abs(typical) < 0.1
    for k in (1, 2, 3):
        assert gap[kind == k].mean() > max(0.3, 5 * typical), (k, gap[kind == k].mean(), typical)


def _subset(cohort: Cohort, rows: np.ndarray) -> Cohort:
    patients, patient = np.unique(cohort.patient[rows], return_inverse=True)
    return Cohort(
        name=cohort.name,
        inputs=cohort.inputs[rows],
        labels=cohort.labels[rows],
        patient=patient.astype(np.int64),
        patient_ids=cohort.patient_ids[patients],
        record_ids=cohort.record_ids[rows],
        attributes=cohort.attributes[rows].reset_index(drop=True),
        class_names=cohort.class_names,
        feature_names=cohort.feature_names,
        modality=cohort.modality,
    )


def test_a_simple_model_learns_the_majority_and_memorises_the_planted_images() -> None:
    cohort, planted = make_synthetic_images()
    check_effect(cohort, planted, cohort.inputs.reshape(cohort.num_records, -1).astype(np.float64))


def test_a_simple_model_learns_the_majority_and_memorises_the_planted_ecgs() -> None:
    cohort, planted = make_synthetic_ecg()
    spectrum = np.abs(np.fft.rfft(cohort.inputs.astype(np.float64), axis=-1))  # shift-invariant
    check_effect(cohort, planted, spectrum.reshape(cohort.num_records, -1))


# -- writers ------------------------------------------------------------------------------


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_writers_never_overwrite(tmp_path: Path) -> None:
    images, _ = make_synthetic_images(
        num_patients=12, rare_fraction=0.1, num_atypical=1, num_mislabelled=1
    )
    ecg, _ = make_synthetic_ecg(
        num_patients=12, length=300, rare_fraction=0.1, num_atypical=1, num_mislabelled=1
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("user data")
    (tmp_path / "file.npz").write_bytes(b"user data")
    before = hashes(tmp_path)
    attempts = [
        lambda: write_image_folder(images, tmp_path / "taken"),
        lambda: write_image_folder(images, tmp_path / "file.npz"),
        lambda: write_ecg_folder(ecg, tmp_path / "taken"),
        lambda: write_stacked_npy(images, tmp_path / "taken"),
        lambda: write_medmnist_npz(images, tmp_path / "file.npz"),
    ]
    for attempt in attempts:
        with pytest.raises(InputError, match="never overwrites"):
            attempt()
    assert hashes(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    index = write_image_folder(images, empty)  # an existing empty folder is fine
    assert index == empty / "index.csv"
    frame = pd.read_csv(index)
    assert list(frame.columns[:4]) == ["path", "label", "patient_id", "record_id"]
    assert (empty / frame["path"][0]).is_file()


def test_writers_check_optional_packages_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, _ = make_synthetic_images(
        num_patients=12, rare_fraction=0.1, num_atypical=1, num_mislabelled=1
    )
    ecg, _ = make_synthetic_ecg(
        num_patients=12, length=300, rare_fraction=0.1, num_atypical=1, num_mislabelled=1
    )
    monkeypatch.setitem(sys.modules, "pydicom", None)
    monkeypatch.setitem(sys.modules, "wfdb", None)
    with pytest.raises(InputError, match=r"pydicom.*miaudit\[imaging\]"):
        write_image_folder(images, tmp_path / "dcm", fmt="dcm")
    with pytest.raises(InputError, match=r"wfdb.*miaudit\[imaging\]"):
        write_ecg_folder(ecg, tmp_path / "wfdb")
    assert not any(tmp_path.iterdir())


def test_writer_argument_errors(tmp_path: Path) -> None:
    images, _ = make_synthetic_images(
        num_patients=12, rare_fraction=0.1, num_atypical=1, num_mislabelled=1, channels=3
    )
    ecg, _ = make_synthetic_ecg(
        num_patients=12, length=300, rare_fraction=0.1, num_atypical=1, num_mislabelled=1
    )
    with pytest.raises(InputError, match="16-bit PNG"):
        write_image_folder(images, tmp_path / "a", bits=16)
    with pytest.raises(InputError, match="split_fractions"):
        write_medmnist_npz(images, tmp_path / "b.npz", split_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(InputError, match="signal"):
        write_image_folder(ecg, tmp_path / "c")
    with pytest.raises(InputError, match="image"):
        write_ecg_folder(images, tmp_path / "d")
    unknown = Cohort(**{**ecg.__dict__, "source": "elsewhere"})
    with pytest.raises(InputError, match="sampling_rate"):
        write_ecg_folder(unknown, tmp_path / "e")
    index = write_ecg_folder(unknown, tmp_path / "f", fmt="npy", sampling_rate=250)
    assert (pd.read_csv(index)["sampling_rate"] == 250).all()
    clash = Cohort(
        **{**ecg.__dict__, "attributes": ecg.attributes.rename(columns={"sex": "label"})}
    )
    with pytest.raises(InputError, match="'label' would be two columns"):
        write_stacked_npy(clash, tmp_path / "g")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b.npz").exists()
    assert not (tmp_path / "g").exists()
