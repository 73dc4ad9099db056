"""The HAM10000 adapter reads the Dataverse layout: metadata, lesions, classes, two image parts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import ham10000 as fixture

from miaudit.datasets.local import info, load_local
from miaudit.errors import InputError


def _check(cohort, expected: fixture.Expected) -> None:
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.patient_ids
    assert cohort.labels.dtype == np.int64
    assert cohort.labels.tolist() == expected.labels
    assert cohort.class_names == expected.class_names
    assert list(cohort.attributes.columns) == list(fixture.ATTRIBUTE_NAMES)
    for name, values in expected.attributes.items():
        assert cohort.attributes[name].tolist() == values, name
    assert cohort.holdout is None


def _edit(path: Path, column: str, row: int, value: object) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("metadata", ["HAM10000_metadata", "HAM10000_metadata.csv"])
def test_the_official_layout_gives_the_cohort(tmp_path: Path, metadata: str) -> None:
    expected = fixture.write(tmp_path, metadata=metadata)
    cohort = load_local("ham10000", tmp_path)
    _check(cohort, expected)
    assert cohort.num_patients == len(fixture.LESIONS) < cohort.num_records
    assert cohort.inputs.dtype == np.uint8
    assert cohort.inputs.shape == (len(expected.record_ids), 3, 64, 64)
    flat = cohort.inputs.reshape(cohort.num_records, -1)
    assert len({row.tobytes() for row in flat}) == cohort.num_records  # distinct images differ
    # colour as written: red rises and green falls from image to image
    red = cohort.inputs[:, 0, 40:, :].mean(axis=(1, 2))
    green = cohort.inputs[:, 1].mean(axis=(1, 2))
    assert np.all(np.diff(red) > 0) and np.all(np.diff(green) < 0)
    assert info("ham10000").in_paper is False


def test_images_in_a_single_folder(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path, single_folder=True)
    cohort = load_local("ham10000", tmp_path, decode=False)
    _check(cohort, expected)
    assert cohort.pending is not None
    assert cohort.decoded().inputs.shape == (len(expected.record_ids), 3, 64, 64)


def test_missing_metadata_is_named(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    (tmp_path / "HAM10000_metadata").unlink()
    with pytest.raises(InputError, match=r"'HAM10000_metadata' or 'HAM10000_metadata.csv' not found"):
        load_local("ham10000", tmp_path)


@pytest.mark.parametrize("metadata", ["HAM10000_metadata", "HAM10000_metadata.csv"])
def test_missing_column_is_named(tmp_path: Path, metadata: str) -> None:
    fixture.write(tmp_path, metadata=metadata)
    frame = pd.read_csv(tmp_path / metadata, dtype=str)
    frame.drop(columns="dx").to_csv(tmp_path / metadata, index=False)
    with pytest.raises(InputError, match=rf"'{metadata}' lacks column\(s\) 'dx'"):
        load_local("ham10000", tmp_path)


def test_dx_outside_the_coding_names_column_and_rows(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "HAM10000_metadata", "dx", 3, "melanoma")
    with pytest.raises(InputError, match=r"column 'dx' holds 'melanoma' in data rows 4;"):
        load_local("ham10000", tmp_path)


def test_sex_and_age_outside_the_coding_are_errors(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "HAM10000_metadata", "sex", 1, "M")
    with pytest.raises(InputError, match=r"column 'sex' holds 'M' in data rows 2;"):
        load_local("ham10000", tmp_path)
    fixture.write(tmp_path)
    _edit(tmp_path / "HAM10000_metadata", "age", 6, "old")
    with pytest.raises(InputError, match=r"column 'age' holds 'old' in data rows 7;"):
        load_local("ham10000", tmp_path)


def test_missing_image_is_named(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path)
    expected.paths["ISIC_0031633"].unlink()
    with pytest.raises(InputError, match=r"1 image\(s\) .* 'ISIC_0031633'"):
        load_local("ham10000", tmp_path)


def test_no_image_folder_is_named(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        (tmp_path / part).rename(tmp_path / f"{part}_moved")
    with pytest.raises(InputError, match=r"'HAM10000_images_part_1', 'HAM10000_images_part_2', "
                       r"'images' is a folder"):
        load_local("ham10000", tmp_path)


def test_undecodable_image_names_its_path(tmp_path: Path) -> None:
    expected = fixture.write(tmp_path)
    bad = expected.paths["ISIC_0028498"]
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(InputError, match=rf"{re.escape(str(bad))}.*not a readable image"):
        load_local("ham10000", tmp_path)


def test_repeated_image_id_is_an_error(tmp_path: Path) -> None:
    fixture.write(tmp_path)
    _edit(tmp_path / "HAM10000_metadata", "image_id", 1, "ISIC_0027419")
    with pytest.raises(InputError, match=r"'image_id' repeats values in data rows 1, 2;"):
        load_local("ham10000", tmp_path)
