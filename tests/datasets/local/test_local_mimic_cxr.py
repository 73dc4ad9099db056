"""MIMIC-CXR-JPG read from a tiny copy of its official layout gives the paper's cohort."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PIL")

from layouts.mimic_cxr import FINDINGS, METADATA, NEGBIO, SPLIT, write

from miaudit.datasets.local import load_local
from miaudit.errors import InputError


def _rewrite(path: Path, change) -> None:
    """Rewrite a table (gzip kept) as ``change`` returns it."""
    change(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def _set(row: int, column: str, value: str):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame
    return change


def _check(cohort, expected) -> None:
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.patient_ids
    assert cohort.class_names == FINDINGS
    np.testing.assert_array_equal(cohort.labels, expected.labels)
    assert list(cohort.attributes.columns) == ["sex", "age", "race", "insurance"]
    for name in ("sex", "race", "insurance"):
        assert cohort.attributes[name].tolist() == expected.attributes[name], name
    np.testing.assert_array_equal(cohort.attributes["age"].to_numpy(), expected.attributes["age"])
    assert cohort.holdout.tolist() == expected.holdout


def test_the_paper_cohort_from_the_download(tmp_path: Path) -> None:
    expected = write(tmp_path)
    cohort = load_local("mimic_cxr", tmp_path)
    _check(cohort, expected)  # the labels are NegBio's (the chexpert file differs)
    assert cohort.num_records == 16 and cohort.num_patients == 9
    assert cohort.attributes["age"].dtype == np.float64


def test_pixels_decode_each_record_from_its_own_file(tmp_path: Path) -> None:
    expected = write(tmp_path)
    cohort = load_local("mimic_cxr", tmp_path)
    assert cohort.inputs.dtype == np.uint8
    assert cohort.inputs.shape == (len(expected.record_ids), 1, 64, 64)
    means = cohort.inputs.reshape(len(cohort.inputs), -1).mean(axis=1)
    np.testing.assert_allclose(means, [expected.means[r] for r in cohort.record_ids], atol=2.0)
    assert not np.array_equal(cohort.inputs[0], cohort.inputs[1])


@pytest.mark.parametrize(("folder", "compressed", "race_column"), [
    ("", False, "race"), ("mimic-iv/hosp", True, "race"), ("hosp", True, "ethnicity")])
def test_the_mimic_iv_tables_where_a_copy_keeps_them(tmp_path: Path, folder: str, compressed: bool,
                                                     race_column: str) -> None:
    expected = write(tmp_path, mimic_iv=folder, compressed=compressed, race_column=race_column)
    _check(load_local("mimic_cxr", tmp_path, decode=False), expected)


@pytest.mark.parametrize("name", ["admissions", "patients"])
def test_missing_mimic_iv_tables_say_where_to_put_them(tmp_path: Path, name: str) -> None:
    write(tmp_path)
    (tmp_path / "hosp" / f"{name}.csv.gz").unlink()
    with pytest.raises(InputError, match=rf"'hosp/{name}\.csv\.gz'.*MIMIC-IV.*copy MIMIC-IV's "
                                         rf"hosp/{name}\.csv\.gz into cohort\.root"):
        load_local("mimic_cxr", tmp_path, decode=False)


@pytest.mark.parametrize("name", [METADATA, NEGBIO, SPLIT])
def test_a_missing_table_is_named(tmp_path: Path, name: str) -> None:
    write(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(InputError, match=rf"'{re.escape(name)}' not found; it should hold"):
        load_local("mimic_cxr", tmp_path, decode=False)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    write(tmp_path)
    _rewrite(tmp_path / SPLIT, lambda f: f.drop(columns=["split"]))
    with pytest.raises(InputError, match=r"'mimic-cxr-2\.0\.0-split\.csv\.gz' lacks column\(s\) 'split'"):
        load_local("mimic_cxr", tmp_path, decode=False)


def test_admissions_without_race_or_ethnicity(tmp_path: Path) -> None:
    write(tmp_path)
    _rewrite(tmp_path / "hosp" / "admissions.csv.gz", lambda f: f.drop(columns=["race"]))
    with pytest.raises(InputError, match=r"'admissions\.csv\.gz' lacks column 'race' \(or 'ethnicity'"):
        load_local("mimic_cxr", tmp_path, decode=False)


@pytest.mark.parametrize(("file", "column", "value"), [
    (NEGBIO, "Edema", "2.0"), (SPLIT, "split", "val"), ("hosp/patients.csv.gz", "gender", "X"),
    ("hosp/patients.csv.gz", "anchor_age", "old")])
def test_a_value_outside_the_coding_names_column_and_rows(tmp_path: Path, file: str, column: str,
                                                          value: str) -> None:
    write(tmp_path)
    _rewrite(tmp_path / file, _set(2, column, value))
    name = re.escape(Path(file).name)
    with pytest.raises(InputError, match=rf"'{name}' column '{column}' holds '{value}' in data rows 3;"):
        load_local("mimic_cxr", tmp_path, decode=False)


def test_an_image_whose_study_has_no_labels_is_kept_with_no_findings(tmp_path: Path) -> None:
    """As the paper's left join: the release labels a few studies fewer than it holds."""
    expected = write(tmp_path)
    _rewrite(tmp_path / NEGBIO, lambda f: f.drop(index=[2]))
    study = pd.read_csv(tmp_path / METADATA, dtype=str)["study_id"].unique()[2]
    cohort = load_local("mimic_cxr", tmp_path, decode=False)
    unlabelled = pd.read_csv(tmp_path / METADATA, dtype=str)["study_id"].eq(study).to_numpy()
    assert unlabelled.sum() == 2
    assert expected.labels[unlabelled].any() and (cohort.labels[unlabelled] == 0).all()
    np.testing.assert_array_equal(cohort.labels[~unlabelled], expected.labels[~unlabelled])
    assert list(cohort.record_ids) == expected.record_ids


def test_an_image_without_a_split_row_is_named(tmp_path: Path) -> None:
    expected = write(tmp_path)
    _rewrite(tmp_path / SPLIT, lambda f: f.drop(index=[5]))
    with pytest.raises(InputError, match=rf"'{re.escape(SPLIT)}' has no row for 1 image\(s\).*"
                                         rf"'{expected.record_ids[5]}'"):
        load_local("mimic_cxr", tmp_path, decode=False)


def test_an_undecodable_image_is_named(tmp_path: Path) -> None:
    expected = write(tmp_path)
    broken = expected.files[expected.record_ids[6]]
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match=rf"file '{re.escape(str(broken))}'.*not a readable image"):
        load_local("mimic_cxr", tmp_path)
