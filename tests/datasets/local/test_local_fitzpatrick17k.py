"""Fitzpatrick17k from a copy in the official layout: the paper's cohort, and each fault named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layouts import fitzpatrick17k

from miaudit.datasets.local import load_local
from miaudit.errors import InputError


@pytest.mark.parametrize("folder", ["images", "finalfitz17k", "."])
def test_cohort_is_the_papers(tmp_path, folder):
    expected = fitzpatrick17k.write(tmp_path, folder=folder)
    cohort = load_local("fitzpatrick17k", tmp_path)
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.record_ids  # one image per patient
    assert cohort.class_names == ("non-neoplastic", "malignant", "benign")
    assert cohort.labels.tolist() == expected.labels
    assert cohort.attributes["skin_type"].tolist() == expected.skin_type
    assert [r for r, h in zip(cohort.record_ids, cohort.holdout, strict=True) if h] == expected.test
    assert cohort.inputs.dtype == np.uint8 and cohort.inputs.shape == (len(expected.record_ids), 3, 64, 64)
    for i, record in enumerate(expected.record_ids):  # each decoded image is its own file's
        mean = cohort.inputs[i].reshape(3, -1).mean(axis=1)
        np.testing.assert_allclose(mean, expected.images[record].reshape(-1, 3).mean(axis=0), atol=4)


def test_download_success_rows_only(tmp_path):
    expected = fitzpatrick17k.write(tmp_path, download_success=True)
    cohort = load_local("fitzpatrick17k", tmp_path)
    assert list(cohort.record_ids) == expected.record_ids and len(expected.record_ids) == 20


def test_pixels_wait_for_decoding(tmp_path):
    fitzpatrick17k.write(tmp_path)
    pending = load_local("fitzpatrick17k", tmp_path, decode=False)
    assert pending.pending is not None and pending.inputs.strides == (0, 0, 0, 0)
    decoded = pending.decoded()
    assert decoded.fingerprint() == pending.fingerprint()  # the identity is known before decoding
    assert decoded.inputs.std() > 0


def _edit(root, column, row, value):
    frame = pd.read_csv(root / "fitzpatrick17k.csv", dtype=str)
    frame.loc[row, column] = value
    frame.to_csv(root / "fitzpatrick17k.csv", index=False)


def test_faults_name_the_file(tmp_path):
    expected = fitzpatrick17k.write(tmp_path)
    broken = tmp_path / "images" / f"{expected.record_ids[4]}.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=f"file '{broken}' \\(fitzpatrick17k record '{expected.record_ids[4]}'\\)"
                       ": not a readable image"):
        load_local("fitzpatrick17k", tmp_path)
    broken.unlink()
    with pytest.raises(InputError, match=f"{expected.record_ids[4]}.jpg' .*not found"):
        load_local("fitzpatrick17k", tmp_path)
    _edit(tmp_path, "three_partition_label", 2, "neoplastic")
    with pytest.raises(InputError, match="'three_partition_label' holds 'neoplastic' in data rows 3"):
        load_local("fitzpatrick17k", tmp_path)
    _edit(tmp_path, "three_partition_label", 2, "benign")
    _edit(tmp_path, "fitzpatrick_scale", 6, "7")
    with pytest.raises(InputError, match="'fitzpatrick_scale' holds '7' in data rows 7"):
        load_local("fitzpatrick17k", tmp_path)
    (tmp_path / "fitzpatrick17k.csv").unlink()
    with pytest.raises(InputError, match=r"'fitzpatrick17k\.csv' not found; it should hold"):
        load_local("fitzpatrick17k", tmp_path)
