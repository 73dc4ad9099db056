"""The MIMIC-IV-ED benchmark adapter reads the pipeline's files into the paper's cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import mimic_iv_ed as fixture

from miaudit.datasets.local import load_local
from miaudit.datasets.local.mimic_iv_ed import FEATURES
from miaudit.errors import InputError


def _check(cohort, expected: fixture.Expected) -> None:
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.patient_ids
    assert cohort.labels.dtype == np.int64
    assert cohort.labels.tolist() == expected.labels
    assert cohort.class_names == ("not_hospitalized", "hospitalized")
    assert list(cohort.attributes.columns) == list(fixture.ATTRIBUTE_NAMES)
    for name, values in expected.attributes.items():
        assert cohort.attributes[name].tolist() == values, name
    assert cohort.attributes["age"].dtype == np.float64
    if expected.holdout is None:
        assert cohort.holdout is None
    else:
        assert cohort.holdout.tolist() == expected.holdout
    pd.testing.assert_frame_equal(cohort.table.astype(float), expected.features,
                                  check_dtype=False)
    assert cohort.inputs.dtype == np.float32 and np.isfinite(cohort.inputs).all()


def _edit(path: Path, column: str, row: int, value: object) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_train_and_test_give_the_benchmark_cohort_and_split(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path)
    cohort = load_local("mimic_iv_ed", tmp_path)
    _check(cohort, expected)
    assert cohort.modality == "table"
    assert FEATURES == tuple(fixture.FEATURE_NAMES) and len(FEATURES) == 64
    assert "gender_female" in cohort.feature_names
    # a patient with a test stay is held out whole (their train stays too)
    held = cohort.holdout_patients()
    assert set(cohort.patient_ids[held]) == {"10000032", "10000117", "10000248", "10000635"}
    # gender F = 1 and True/False read as 1/0
    female = cohort.table["gender_female"].to_numpy()
    assert set(female) == {0.0, 1.0}
    assert (female == 1).tolist() == [s == "Female" for s in expected.attributes["sex"]]


def test_first_stay_is_the_earliest_by_intime_not_file_order(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    cohort = load_local("mimic_iv_ed", tmp_path)
    patients = cohort.patient_attributes().set_index("patient_id")
    # 10000032's earliest stay is in test.csv (Medicare, 52); file order would give a blank
    # insurance (→ Other) from its first train.csv row
    assert patients.loc["10000032", "insurance"] == "Medicare"
    # 10000117's first train.csv row is a later stay at 49 with race OTHER
    assert patients.loc["10000117", "age"] == 48.0
    assert patients.loc["10000117", "race"] == "Asian"


@pytest.mark.parametrize("gz", [False, True])
def test_master_dataset_alone_keeps_adults_and_has_no_split(tmp_path: Path, gz: bool) -> None:
    expected = fixture.write(tmp_path, layout="master", gz=gz)
    cohort = load_local("mimic_iv_ed", tmp_path)
    _check(cohort, expected)
    assert "30000801" not in set(cohort.record_ids)  # the child's stay (age 16)
    # blank triage values: median-imputed by the encoder, with a missing indicator
    assert {"triage_temperature:missing", "triage_pain:missing"} <= set(cohort.feature_names)
    column = cohort.feature_names.index("triage_pain:missing")
    assert cohort.inputs[:, column].tolist() == [float(r == "30000401") for r in cohort.record_ids]


def test_older_pipeline_ethnicity_and_integer_labels(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path, race_column="ethnicity", label="int")
    _check(load_local("mimic_iv_ed", tmp_path), expected)


def test_split_files_win_over_master_dataset(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path)
    fixture.write(tmp_path / "other", layout="master")
    (tmp_path / "other" / "master_dataset.csv").rename(tmp_path / "master_dataset.csv")
    _check(load_local("mimic_iv_ed", tmp_path), expected)


def test_no_file_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'train.csv' or 'master_dataset.csv'"):
        load_local("mimic_iv_ed", tmp_path)


def test_train_without_test_names_test_csv(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    (tmp_path / "test.csv").unlink()
    with pytest.raises(InputError, match=r"'test.csv' not found"):
        load_local("mimic_iv_ed", tmp_path)


def test_test_without_train_names_train_csv_even_with_master(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    fixture.write(tmp_path / "other", layout="master")
    (tmp_path / "other" / "master_dataset.csv").rename(tmp_path / "master_dataset.csv")
    (tmp_path / "train.csv").unlink()
    with pytest.raises(InputError, match=r"'train.csv' not found"):
        load_local("mimic_iv_ed", tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    frame = pd.read_csv(tmp_path / "test.csv", dtype=str)
    frame.drop(columns="triage_acuity").to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(InputError, match=r"'test.csv' lacks column\(s\) 'triage_acuity'"):
        load_local("mimic_iv_ed", tmp_path)


def test_missing_race_column_names_both_names(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv", dtype=str)
    frame.drop(columns="race").to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(InputError, match=r"'train.csv' lacks column 'race' \(or 'ethnicity'"):
        load_local("mimic_iv_ed", tmp_path)


def test_label_outside_the_coding_names_column_and_row(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "test.csv", "outcome_hospitalization", 2, "maybe")
    with pytest.raises(InputError, match=r"'test.csv' column 'outcome_hospitalization' holds "
                       r"'maybe' in data rows 3;"):
        load_local("mimic_iv_ed", tmp_path)


def test_blank_label_is_an_error_not_a_drop(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "train.csv", "outcome_hospitalization", 0, "")
    with pytest.raises(InputError, match=r"'outcome_hospitalization' .* data rows 1;"):
        load_local("mimic_iv_ed", tmp_path)


def test_gender_outside_the_coding_names_column_and_row(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "train.csv", "gender", 4, "X")
    with pytest.raises(InputError, match=r"'train.csv' column 'gender' holds 'X' in data rows 5"):
        load_local("mimic_iv_ed", tmp_path)


def test_text_in_a_feature_column_names_column_and_row(tmp_path: Path) -> None:
    fixture.write(tmp_path, layout="master")
    _edit(tmp_path / "master_dataset.csv", "triage_pain", 6, "unable")
    with pytest.raises(InputError, match=r"column 'triage_pain' holds 'unable' in data rows 7"):
        load_local("mimic_iv_ed", tmp_path)


def test_insurance_outside_the_coding_names_column(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "train.csv", "insurance", 1, "Self pay")
    with pytest.raises(InputError, match=r"column 'insurance' holds 'Self pay' in data rows 2"):
        load_local("mimic_iv_ed", tmp_path)


def test_a_stay_listed_twice_names_both_places(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "test.csv", "stay_id", 0, "30000102")
    with pytest.raises(InputError, match=r"'30000102' is listed more than once \('train.csv' "
                       r"row 1, 'test.csv' row 1\)"):
        load_local("mimic_iv_ed", tmp_path)


def test_ids_stay_as_written(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "train.csv", "subject_id", 0, "010000032")
    _edit(tmp_path / "train.csv", "stay_id", 0, "030000102")
    cohort = load_local("mimic_iv_ed", tmp_path)
    assert cohort.record_ids[0] == "030000102"
    assert cohort.patient_ids[cohort.patient[0]] == "010000032"
    assert cohort.patient[0] != cohort.patient[1]  # not the same patient as '10000032'
