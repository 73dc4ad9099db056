"""PTB-XL from a copy in the official layout: the paper's cohort, and each fault named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layouts import ptbxl

from miaudit.datasets.local import load_local
from miaudit.errors import InputError


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptbxl")
    return root, ptbxl.write(root)


def test_cohort_is_the_papers(copy):
    root, expected = copy
    cohort = load_local("ptbxl", root)
    assert list(cohort.record_ids) == expected.record_ids
    assert list(cohort.patient_ids[cohort.patient]) == expected.patient_of_record  # "15709.0" as written
    assert cohort.class_names == ("NORM", "MI", "STTC", "CD", "HYP")
    np.testing.assert_array_equal(cohort.labels, expected.labels)
    assert (cohort.labels.sum(axis=1) == 0).any()  # a record with no diagnostic code is kept
    held = [r for r, h in zip(cohort.record_ids, cohort.holdout, strict=True) if h]
    assert held == expected.test
    patients = cohort.patient_attributes().set_index("patient_id")
    for column in ("sex", "age", "extra_beats", "superclass"):
        assert patients[column].to_dict() == getattr(expected, column), column
    assert cohort.modality == "signal" and cohort.inputs.shape == (len(expected.record_ids), 12, 1000)
    assert cohort.feature_names[:3] == ("I", "II", "III")
    for i, record in enumerate(expected.record_ids):  # 100 Hz, mV, not normalised (as the paper)
        np.testing.assert_allclose(cohort.inputs[i], expected.signals[record], atol=1e-3)


def test_likelihood_zero_codes_count(tmp_path):
    """A code with likelihood 0.0 still sets its superclass (the paper has no threshold)."""
    expected = ptbxl.write(tmp_path)
    cohort = load_local("ptbxl", tmp_path)
    frame = pd.read_csv(tmp_path / "ptbxl_database.csv")
    row = int(np.flatnonzero(frame["scp_codes"].str.contains("'LVH': 0.0"))[0])
    assert cohort.labels[row, 4] == 1 == expected.labels[row, 4]


def _changed(root, column, value, row=0):
    frame = pd.read_csv(root / "ptbxl_database.csv", dtype=str)
    if value is None:
        frame = frame.drop(columns=[column])
    else:
        frame.loc[row, column] = value
    frame.to_csv(root / "ptbxl_database.csv", index=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: (r / "scp_statements.csv").unlink(), "'scp_statements.csv' not found; it should hold"),
        (lambda r: (r / "ptbxl_database.csv").unlink(), "'ptbxl_database.csv' not found"),
        (lambda r: _changed(r, "strat_fold", None), "lacks column\\(s\\) 'strat_fold'"),
        (lambda r: _changed(r, "sex", "2", row=3), "column 'sex' holds '2' in data rows 4.*0 \\(male\\) or 1"),
        (lambda r: _changed(r, "scp_codes", "NORM 100", row=1), "column 'scp_codes' holds 'NORM 100' in data rows 2"),
        (lambda r: _changed(r, "strat_fold", "11", row=0), "column 'strat_fold' holds '11'"),
        (lambda r: (r / "records100" / "00000" / "00002_lr.dat").write_bytes(b"\x00"),
         "00002_lr' \\(ptbxl ecg_id '2'\\): not a readable WFDB record"),
        (lambda r: (r / "records100" / "00000" / "00003_lr.hea").unlink(), "00003_lr' \\(ptbxl ecg_id '3'\\)"),
    ],
    ids=["no-statements", "no-database", "no-column", "bad-sex", "bad-codes", "bad-fold", "bad-record",
         "missing-record"],
)
def test_faults_name_the_file(tmp_path, change, match):
    ptbxl.write(tmp_path, patients=6)
    change(tmp_path)
    with pytest.raises(InputError, match=match):
        load_local("ptbxl", tmp_path)


def test_root_must_be_a_folder(tmp_path):
    with pytest.raises(InputError, match=r"cohort\.root '.*missing' does not exist"):
        load_local("ptbxl", tmp_path / "missing")
    with pytest.raises(InputError, match=r"set cohort\.root \(or --root\)"):
        load_local("ptbxl", None)
