"""CheXpert read from a tiny copy of its official layout gives the paper's cohort."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PIL")

from layouts.chexpert import FINDINGS, write

from miaudit.datasets.local import load_local
from miaudit.errors import InputError


def _edit(path: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def _check(cohort, expected) -> None:
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.patient_ids
    assert cohort.class_names == FINDINGS
    np.testing.assert_array_equal(cohort.labels, expected.labels)
    assert cohort.labels.dtype == np.int64 and cohort.labels.shape == (len(expected.record_ids), 14)
    assert list(cohort.attributes.columns) == list(expected.attributes)
    for name, values in expected.attributes.items():
        assert cohort.attributes[name].tolist() == values, name
    assert cohort.holdout.tolist() == expected.holdout


def test_the_paper_cohort_from_the_download(tmp_path: Path) -> None:
    expected = write(tmp_path)
    cohort = load_local("chexpert", tmp_path)
    _check(cohort, expected)
    # the patient of unknown sex is dropped; lateral images are kept
    assert "patient00005" not in set(cohort.patient_ids)
    assert "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg" in cohort.record_ids
    assert cohort.attributes["age"].dtype == np.float64
    assert cohort.holdout_patients().sum() == 3


def test_pixels_decode_each_record_from_its_own_file(tmp_path: Path) -> None:
    expected = write(tmp_path)
    cohort = load_local("chexpert", tmp_path)
    assert cohort.inputs.dtype == np.uint8
    assert cohort.inputs.shape == (len(expected.record_ids), 1, 64, 64)
    means = cohort.inputs.reshape(len(cohort.inputs), -1).mean(axis=1)
    np.testing.assert_allclose(means, [expected.means[r] for r in cohort.record_ids], atol=2.0)
    assert not np.array_equal(cohort.inputs[0], cohort.inputs[1])


def test_paths_under_a_folder_of_root_and_the_full_version(tmp_path: Path) -> None:
    expected = write(tmp_path, folder="CheXpert-v1.0", nested=True)
    assert (tmp_path / "CheXpert-v1.0" / "train").is_dir() and not (tmp_path / "train").exists()
    cohort = load_local("chexpert", tmp_path)
    _check(cohort, expected)
    assert cohort.record_ids[0].startswith("CheXpert-v1.0/train/")


def test_without_the_demographics_table_there_is_no_race(tmp_path: Path) -> None:
    expected = write(tmp_path, demo=None)
    cohort = load_local("chexpert", tmp_path, decode=False)
    assert "race" not in cohort.attributes.columns
    _check(cohort, expected)


def test_the_demographics_table_under_its_other_name(tmp_path: Path) -> None:
    expected = write(tmp_path, demo="CHEXPERT_DEMO.csv")
    cohort = load_local("chexpert", tmp_path, decode=False)
    assert cohort.attributes["race"].tolist() == expected.attributes["race"]


def test_the_excel_demographics_table_as_aimi_ships_it(tmp_path: Path) -> None:
    expected = write(tmp_path, demo="CHEXPERT DEMO.xlsx")
    cohort = load_local("chexpert", tmp_path, decode=False)
    assert cohort.attributes["race"].tolist() == expected.attributes["race"]
    (tmp_path / "CHEXPERT DEMO.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    with pytest.raises(InputError, match=r"'CHEXPERT DEMO\.xlsx' is not a readable Excel workbook"):
        load_local("chexpert", tmp_path, decode=False)


@pytest.mark.parametrize("name", ["train.csv", "valid.csv"])
def test_a_missing_table_is_named(tmp_path: Path, name: str) -> None:
    write(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(InputError, match=rf"'{name}' not found; it should hold"):
        load_local("chexpert", tmp_path, decode=False)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    write(tmp_path)
    path = tmp_path / "valid.csv"
    pd.read_csv(path, dtype=str).drop(columns=["Pleural Effusion"]).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"'valid\.csv' lacks column\(s\) 'Pleural Effusion'"):
        load_local("chexpert", tmp_path, decode=False)


@pytest.mark.parametrize(("column", "value"), [("Edema", "2.0"), ("Sex", "M"),
                                               ("Frontal/Lateral", "Oblique"), ("Age", "old")])
def test_a_value_outside_the_coding_names_column_and_rows(tmp_path: Path, column: str,
                                                          value: str) -> None:
    write(tmp_path)
    _edit(tmp_path / "train.csv", 3, column, value)
    with pytest.raises(InputError, match=rf"'train\.csv' column '{column}' holds '{value}' in data rows 4;"):
        load_local("chexpert", tmp_path, decode=False)


def test_a_path_without_a_patient_folder_is_named(tmp_path: Path) -> None:
    write(tmp_path)
    _edit(tmp_path / "train.csv", 1, "Path", "CheXpert-v1.0-small/train/view1_frontal.jpg")
    with pytest.raises(InputError, match=r"'train\.csv' column 'Path' names no patientNNNNN folder "
                                         r"in data rows 2 "):
        load_local("chexpert", tmp_path, decode=False)


def test_an_undecodable_image_is_named(tmp_path: Path) -> None:
    expected = write(tmp_path)
    broken = expected.files[expected.record_ids[4]]
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match=rf"file '{re.escape(str(broken))}'.*not a readable image"):
        load_local("chexpert", tmp_path)


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    expected = write(tmp_path)
    gone = expected.files[expected.record_ids[-1]]
    gone.unlink()
    with pytest.raises(InputError, match=rf"file '{re.escape(str(gone))}'.*not found"):
        load_local("chexpert", tmp_path, decode=False)
