"""EMBED read from a tiny copy of the official layout: the paper's filters, ids as written,
density labels, patient attributes, the paper's seeded test draw, DICOM pixels at 64×48, and
one clear error for each way a copy can be broken."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import embed as fixture

from miaudit.datasets.local import info, load_local
from miaudit.datasets.local.embed import held_out_patients
from miaudit.errors import InputError

pytest.importorskip("pydicom")


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, fixture.Expected]:
    return tmp_path, fixture.write(tmp_path)


def test_cohort_is_the_papers(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    cohort = load_local("embed", root)
    assert list(cohort.record_ids) == expected.record_ids
    assert [cohort.patient_ids[p] for p in cohort.patient] == expected.patient_ids
    assert list(cohort.patient_ids) == list(dict.fromkeys(expected.patient_ids))
    assert "01000007" in cohort.patient_ids  # ids stay as written
    assert cohort.class_names == ("A", "B", "C", "D")
    assert cohort.labels.tolist() == expected.labels
    assert cohort.attributes["race"].tolist() == expected.race
    np.testing.assert_allclose(cohort.attributes["age"].to_numpy(dtype=float), expected.age)
    assert cohort.attributes["any_non_negative"].tolist() == expected.any_non_negative
    assert cohort.holdout.tolist() == expected.holdout
    assert sum(expected.holdout) > 0 and not all(expected.holdout)
    assert info("embed").patient_id == "empi_anon"


def test_dropped_rows_follow_the_papers_rules(copy: tuple[Path, fixture.Expected]) -> None:
    root, _ = copy
    cohort = load_local("embed", root, decode=False)
    ids = set(cohort.patient_ids)
    # no race, male, and an exam without images drop whole patients
    assert not ids & {"10000004", "10000005", "10000009"}
    records = "\n".join(cohort.record_ids)
    for exam in ("20000021", "20000031", "20000041", "20000061"):  # diagnostic, 5, blank race/density
        assert f"/1.2.847.{exam}/" not in records
    assert "XCCL" not in records
    assert len(set(cohort.record_ids)) == len(cohort.record_ids) == 16  # the listed-twice image once


def test_pixels_decode_from_the_dicom_files(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    cohort = load_local("embed", root)
    assert cohort.inputs.dtype == np.uint8
    assert cohort.inputs.shape == (len(expected.record_ids), 1, 64, 48)  # the paper's H × W
    flat = cohort.inputs.reshape(len(cohort.inputs), -1)
    assert len({row.tobytes() for row in flat}) == len(flat)  # every image its own
    assert flat.min() == 0 and flat.max() == 255  # min-max per image, as the DICOM reader does


@pytest.mark.parametrize("images", ["images", "literal"])
def test_images_under_images_or_the_path_as_written(tmp_path: Path, images: str) -> None:
    expected = fixture.write(tmp_path, reduced=False, images=images)
    cohort = load_local("embed", tmp_path, decode=False)
    assert list(cohort.record_ids) == expected.record_ids
    assert [Path(p) for p in cohort.pending.paths] == expected.files
    assert load_local("embed", tmp_path).inputs.shape[0] == 16


def test_the_papers_draw_of_500_test_patients() -> None:
    state = np.random.get_state()  # noqa: NPY002 (restored below)
    np.random.seed(420)  # noqa: NPY002 (the paper's call, on its cohort's 19,429 patients)
    paper = np.random.choice(np.arange(19429), 500, replace=False)  # noqa: NPY002
    np.random.set_state(state)  # noqa: NPY002
    drawn = held_out_patients(19429)
    assert drawn.tolist() == paper.tolist()
    assert held_out_patients(1000).size == 500
    assert held_out_patients(999).size == 100 and held_out_patients(6).size == math.ceil(0.6)


def test_missing_table_names_it(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    expected.metadata.unlink()
    with pytest.raises(InputError, match=r"EMBED_OpenData_metadata_reduced\.csv.*not found"):
        load_local("embed", root)


def test_missing_column_names_it(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    table = pd.read_csv(expected.clinical, dtype=str).drop(columns="tissueden")
    table.to_csv(expected.clinical, index=False)
    with pytest.raises(InputError, match=r"lacks column\(s\) 'tissueden'"):
        load_local("embed", root)


def test_density_outside_the_coding_names_column_and_rows(
        copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    table = pd.read_csv(expected.clinical, dtype=str, keep_default_na=False)
    table.loc[4, "tissueden"] = "7"  # the kept screening exam of patient 10000002
    table.to_csv(expected.clinical, index=False)
    with pytest.raises(InputError, match=r"'tissueden' holds '7' in data rows 5;"):
        load_local("embed", root)


def test_assessment_outside_the_coding_names_column_and_rows(
        copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    table = pd.read_csv(expected.clinical, dtype=str, keep_default_na=False)
    table.loc[12, "asses"] = "Z"
    table.to_csv(expected.clinical, index=False)
    with pytest.raises(InputError, match=r"'asses' holds 'Z' in data rows 13;"):
        load_local("embed", root)


def test_undecodable_dicom_names_its_path(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    broken = expected.files[5]
    broken.write_bytes(b"not a dicom file at all")
    cohort = load_local("embed", root, decode=False)  # the tables read; pixels come later
    with pytest.raises(InputError, match=str(broken)):
        cohort.decoded()


def test_missing_dicom_names_its_path(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    expected.files[3].unlink()
    with pytest.raises(InputError, match=rf"{expected.files[3]}.*not found"):
        load_local("embed", root)


def test_no_images_under_root_says_where_it_looked(copy: tuple[Path, fixture.Expected]) -> None:
    root, expected = copy
    expected.files[0].unlink()
    tail = expected.record_ids[0].split("anon_dicom/", 1)[1]
    with pytest.raises(InputError, match=rf"none of .*{root / 'images' / tail}"):
        load_local("embed", root)
