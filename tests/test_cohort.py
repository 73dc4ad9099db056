"""Cohort: validation errors, patient-level views against plain loops, fingerprints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from miaudit.cohort import Cohort, attribute_conflicts, first_record_of_patient
from miaudit.errors import InputError


def small_cohort(**changes: object) -> Cohort:
    """6 records of 4 patients (patient 1 has three records), two classes, two attributes."""
    base = {
        "name": "small",
        "inputs": np.arange(12, dtype=np.float32).reshape(6, 2),
        "labels": np.array([0, 1, 0, 1, 1, 0], dtype=np.int64),
        "patient": np.array([0, 1, 1, 2, 1, 3], dtype=np.int64),
        "patient_ids": np.array(["a", "b", "c", "d"], dtype=object),
        "record_ids": np.array(["r0", "r1", "r2", "r3", "r4", "r5"], dtype=object),
        "attributes": pd.DataFrame(
            {
                "sex": ["f", "m", "m", "f", "m", "f"],
                "age": [30.0, 41.0, 41.0, 70.0, 41.0, np.nan],
            }
        ),
        "class_names": ("no", "yes"),
        "feature_names": ("x", "y"),
        "source": "test.csv",
    }
    base.update(changes)
    return Cohort(**base)  # type: ignore[arg-type]


def random_cohort(seed: int, num_patients: int = 40) -> Cohort:
    """A valid cohort with 1-4 records per patient in shuffled order."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, size=num_patients)
    patient = rng.permutation(np.repeat(np.arange(num_patients), counts)).astype(np.int64)
    n = patient.size
    sex = rng.choice(["f", "m"], size=num_patients)
    age = rng.integers(20, 90, size=num_patients).astype(float)
    return Cohort(
        name="random",
        inputs=rng.standard_normal((n, 3)).astype(np.float32),
        labels=np.r_[0, 1, rng.integers(0, 2, size=n - 2)].astype(np.int64),
        patient=patient,
        patient_ids=np.array([f"p{i}" for i in range(num_patients)], dtype=object),
        record_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        attributes=pd.DataFrame({"sex": sex[patient], "age": age[patient]}),
        class_names=("no", "yes"),
        feature_names=("a", "b", "c"),
    )


def test_a_valid_cohort_passes_and_reports_its_sizes() -> None:
    cohort = small_cohort()
    cohort.validate()
    assert (cohort.num_records, cohort.num_patients, cohort.num_classes) == (6, 4, 2)
    assert not cohort.multilabel
    assert cohort.records_per_patient().tolist() == [1, 3, 1, 1]


def test_patient_attributes_keep_numbers_numeric_and_count_records() -> None:
    table = small_cohort().patient_attributes()
    assert table.index.tolist() == [0, 1, 2, 3]
    assert table["patient_id"].tolist() == ["a", "b", "c", "d"]
    assert table["sex"].tolist() == ["f", "m", "f", "f"]
    assert pd.api.types.is_float_dtype(table["age"])
    assert table["age"].iloc[:3].tolist() == [30.0, 41.0, 70.0]
    assert np.isnan(table["age"].iloc[3])
    assert table["records"].tolist() == [1, 3, 1, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_patient_views_match_a_plain_loop(seed: int) -> None:
    cohort = random_cohort(seed)
    table = cohort.patient_attributes()
    for p in range(cohort.num_patients):
        rows = [i for i in range(cohort.num_records) if cohort.patient[i] == p]
        assert table.loc[p, "records"] == len(rows)
        assert cohort.records_per_patient()[p] == len(rows)
        assert first_record_of_patient(cohort.patient, cohort.num_patients)[p] == rows[0]
        assert table.loc[p, "sex"] == cohort.attributes["sex"][rows[0]]
        assert table.loc[p, "age"] == cohort.attributes["age"][rows[0]]
        assert table.loc[p, "patient_id"] == cohort.patient_ids[p]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_attribute_conflicts_match_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, 30, size=120)
    patient[:30] = np.arange(30)  # every patient present
    values = pd.Series(rng.choice(["x", "y", None], size=120, p=[0.8, 0.1, 0.1]), dtype=object)
    found = attribute_conflicts(patient, values, 30)
    for p in range(30):
        seen = {"<NA>" if v is None else v for v in values[patient == p]}
        assert found[p] == (len(seen) > 1)
    assert found.any() and not found.all()


def test_fingerprint_follows_content_not_name() -> None:
    cohort = small_cohort()
    same = small_cohort(name="another name", source="elsewhere.parquet")
    assert cohort.fingerprint() == same.fingerprint()
    assert len(cohort.fingerprint()) == 64
    inputs = cohort.inputs.copy()
    inputs[3, 1] += 1e-3
    changed_attr = cohort.attributes.copy()
    changed_attr.loc[0, "sex"] = "m"
    variants = [
        replace(cohort, inputs=inputs),
        replace(cohort, labels=cohort.labels[::-1].copy()),
        replace(cohort, patient_ids=np.array(["a", "b", "c", "e"], dtype=object)),
        replace(cohort, record_ids=np.array(["r0", "r1", "r2", "r3", "r4", "x"], dtype=object)),
        replace(cohort, attributes=changed_attr),
        replace(cohort, attributes=cohort.attributes.rename(columns={"sex": "gender"})),
    ]
    prints = {v.fingerprint() for v in variants}
    assert len(prints) == len(variants)
    assert cohort.fingerprint() not in prints


def _raises(cohort: Cohort, *fragments: str) -> str:
    with pytest.raises(InputError) as info:
        cohort.validate()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_non_finite_inputs_name_the_record_and_feature() -> None:
    inputs = np.arange(12, dtype=np.float32).reshape(6, 2)
    inputs[4, 1] = np.inf
    inputs[2, 1] = np.nan
    _raises(small_cohort(inputs=inputs), "'r2'", "'r4'", "'y'", "NaN or infinite")


def test_inputs_must_be_float32_with_the_modality_shape() -> None:
    _raises(small_cohort(inputs=np.zeros((6, 2))), "float32")
    _raises(small_cohort(inputs=np.zeros((6, 2, 2), dtype=np.float32)), "table inputs need 2")
    _raises(small_cohort(modality="video"), "unknown modality")
    _raises(small_cohort(feature_names=("x",)), "1 feature names for 2")


def test_labels_are_checked() -> None:
    _raises(small_cohort(labels=np.array([0, 1, 2, 0, 1, 0])), "0..1", "'r2'")
    _raises(small_cohort(labels=np.zeros(6, dtype=np.int64)), "2 classes")
    _raises(small_cohort(labels=np.array([0, 1, 0, 1, 1, 0], dtype=np.int32)), "int64")
    _raises(small_cohort(labels=np.array([0, 1], dtype=np.int64)), "2 labels for 6")
    _raises(small_cohort(class_names=("only",)), "at least 2 class")


def test_multilabel_labels() -> None:
    labels = np.array([[0, 1], [1, 0], [1, 1], [0, 0], [1, 0], [0, 1]], dtype=np.int64)
    cohort = small_cohort(labels=labels)
    cohort.validate()
    assert cohort.multilabel
    _raises(small_cohort(labels=labels * 2), "0/1")
    _raises(small_cohort(labels=labels[:, :1].copy()), "shape")


def test_patient_index_is_checked() -> None:
    _raises(small_cohort(patient=np.array([0, 1, 1, 2, 1, 4])), "0..3")
    _raises(small_cohort(patient=np.array([0, 1, 1, 0, 1, 3])), "'c'", "no records")
    _raises(small_cohort(patient=np.array([0, 1, 1, 2, 1, 3], dtype=np.int32)), "int64")
    _raises(small_cohort(patient_ids=np.array(["a", "b", "b", "d"], dtype=object)), "'b'", "unique")
    _raises(small_cohort(record_ids=np.array(["r"] * 6, dtype=object)), "record ids", "'r'")


def test_attributes_are_checked() -> None:
    _raises(small_cohort(attributes=pd.DataFrame({"sex": ["f"] * 5})), "6 rows")
    shifted = small_cohort().attributes.set_axis(range(1, 7))
    _raises(small_cohort(attributes=shifted), "RangeIndex")
    _raises(small_cohort(attributes=pd.DataFrame({"records": [1] * 6})), "'records'", "rename")


def test_conflicting_attributes_within_a_patient_name_the_patient() -> None:
    attributes = small_cohort().attributes.copy()
    attributes.loc[4, "sex"] = "f"  # patient b: m, m, f
    message = _raises(small_cohort(attributes=attributes), "'sex'", "'b'", "1 patient(s)")
    assert "'m'" in message and "'f'" in message
    # a missing value next to a present one is a conflict too
    attributes = small_cohort().attributes.copy()
    attributes.loc[2, "age"] = np.nan
    _raises(small_cohort(attributes=attributes), "'age'", "'b'")


def test_uint8_pixels_are_images_only_and_read_as_value_over_255() -> None:
    from miaudit.cohort import float_inputs

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 1, 4, 4), dtype=np.uint8)
    image = Cohort(
        name="u8", inputs=pixels, labels=np.array([0, 1] * 3, dtype=np.int64),
        patient=np.arange(6, dtype=np.int64), patient_ids=np.array([f"p{i}" for i in range(6)], dtype=object),
        record_ids=np.array([f"r{i}" for i in range(6)], dtype=object),
        attributes=pd.DataFrame(index=pd.RangeIndex(6)), class_names=("a", "b"),
        feature_names=("pixels",), modality="image",
    )
    image.validate()
    loop = np.array([[[[v / 255 for v in row] for row in plane] for plane in rec] for rec in pixels.tolist()],
                    dtype=np.float32)
    np.testing.assert_array_equal(float_inputs(pixels), loop)
    assert float_inputs(loop) is not None and float_inputs(loop).dtype == np.float32
    table = replace(image, inputs=pixels.reshape(6, -1), modality="table",
                    feature_names=tuple(f"f{i}" for i in range(16)))
    with pytest.raises(InputError, match="float32 numpy array \\(images also uint8 pixels\\)"):
        table.validate()
    held = replace(image, holdout=np.array([True] + [False] * 5))
    assert held.holdout_patients().tolist() == [True] + [False] * 5
    assert held.fingerprint() != image.fingerprint()  # the split is part of the data
    with pytest.raises(InputError, match="every record is in the official test split"):
        replace(image, holdout=np.ones(6, dtype=bool)).validate()


def test_a_job_hands_whole_array_recipes_float_pixels() -> None:
    from miaudit.config import ModelSpec, TrainingSpec
    from miaudit.executors import TrainingJob

    pixels = np.arange(2 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 1, 2, 2) * 60
    job = TrainingJob(model=ModelSpec(module="m.py:build"), training=TrainingSpec(), inputs=pixels,
                      labels=np.array([0, 1]), keep=np.ones((1, 2), dtype=bool), seed=0, modality="image")
    got = job._recipe_inputs()
    assert got.dtype == np.float32 and got.max() <= 1.0
    np.testing.assert_array_equal(got * 255, pixels.astype(np.float32))
