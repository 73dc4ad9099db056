"""Harvard-FairVision30k read from a tiny copy of the official layout: the three disease
tables, the paper's patient ids and seven classes, the official test split, channel 0 of
the SLO JPEG, and one clear error for each way a copy can be broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import fairvision as fixture

from miaudit.datasets.local import load_local
from miaudit.errors import InputError

pytest.importorskip("PIL")


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, fixture.Expected]:
    return tmp_path, fixture.write(tmp_path)


def _edit(path: Path, row: int, column: str, value: str) -> None:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(path, index=False)


def test_cohort_is_the_papers(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    cohort = load_local("fairvision", root)
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids) == expected.patient_ids  # one image per patient
    assert cohort.patient.tolist() == list(range(len(expected.patient_ids)))
    assert cohort.class_names == fixture.CLASSES
    assert cohort.labels.tolist() == expected.labels
    assert sorted(set(cohort.labels.tolist())) == list(range(7))
    assert cohort.attributes["race"].tolist() == expected.race
    assert cohort.attributes["sex"].tolist() == expected.sex
    assert cohort.attributes["disease"].tolist() == expected.disease
    np.testing.assert_allclose(cohort.attributes["age"].to_numpy(dtype=float), expected.age)
    assert cohort.holdout.tolist() == expected.holdout


def test_pixels_are_channel_0_of_the_slo_jpeg(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    from PIL import Image

    cohort = load_local("fairvision", root)
    assert cohort.inputs.dtype == np.uint8
    assert cohort.inputs.shape == (len(expected.record_ids), 1, 64, 64)
    flat = cohort.inputs.reshape(len(cohort.inputs), -1).astype(float)
    assert len({row.tobytes() for row in cohort.inputs}) == len(flat)
    for pixels, red in zip(flat, expected.red, strict=True):
        resized = np.asarray(Image.fromarray(red).resize((64, 64), Image.BILINEAR), dtype=float)
        # channel 0 (a luma conversion would be anti-correlated: channel 1 is its inverse)
        assert np.corrcoef(resized.ravel(), pixels)[0, 1] > 0.95


def test_missing_summary_names_it(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    expected.summaries["DR"].unlink()
    with pytest.raises(InputError, match=r"'DR/ReadMe/data_summary_dr\.csv' not found"):
        load_local("fairvision", root)


def test_missing_column_names_it(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    path = expected.summaries["AMD"]
    pd.read_csv(path, dtype=str).drop(columns="use").to_csv(path, index=False)
    with pytest.raises(InputError, match=r"data_summary_amd\.csv' lacks column\(s\) 'use'"):
        load_local("fairvision", root)


@pytest.mark.parametrize(("folder", "row", "column", "value"), [
    ("AMD", 2, "amd", "wet amd"),
    ("DR", 1, "dr", "normal"),
    ("Glaucoma", 3, "use", "train"),
    ("Glaucoma", 0, "race", "hispanic"),
    ("DR", 2, "filename", "data_3.jpg"),
])
def test_value_outside_the_coding_names_column_and_rows(
        copy: tuple[Path, fixture.Expected], folder: str, row: int, column: str,
        value: str) -> None:
    root, expected = copy
    _edit(expected.summaries[folder], row, column, value)
    with pytest.raises(InputError, match=rf"column '{column}' holds '{value}' in data rows "
                       rf"{row + 1};"):
        load_local("fairvision", root)


def test_repeated_file_is_an_error(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    _edit(expected.summaries["Glaucoma"], 1, "filename", "data_00001.npz")
    with pytest.raises(InputError, match=r"lists '00001' in more than one row"):
        load_local("fairvision", root)


def test_undecodable_image_names_its_path(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    broken = expected.files[6]
    broken.write_bytes(b"\x00garbage, not a JPEG")
    with pytest.raises(InputError, match=rf"{broken}.*not a readable image"):
        load_local("fairvision", root)


def test_missing_image_names_its_path(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    expected.files[9].unlink()
    with pytest.raises(InputError, match=rf"{expected.files[9]}.*not found"):
        load_local("fairvision", root)
