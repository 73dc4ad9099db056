"""PTB-XL (PhysioNet, v1.0.3): 12-lead ECGs at 100 Hz, five diagnostic superclasses.

As in the paper: every record of ``ptbxl_database.csv`` (21,799 ECGs of 18,869 patients),
read from its 100 Hz WFDB file (``filename_lr``, 1,000 samples of 12 leads in mV) without
normalisation; the labels are the five superclasses NORM, MI, STTC, CD, HYP, multi-label:
a record has a superclass when any key of its ``scp_codes`` is a diagnostic statement
(``diagnostic == 1`` in ``scp_statements.csv``) of that class, whatever its likelihood (a
record with none keeps all-zero labels). Fold 10 of ``strat_fold`` (patient-stratified) is
the test split. Sex is coded 0 = male, 1 = female (the dataset paper, Wagner et al. 2020).

Attributes describe patients: sex and age of the patient's first ECG (age 300, the
dataset's code for over 89, is read as 90), whether any of the patient's ECGs has extra
beats (``extra_beats`` non-empty), and the patient's superclasses over all their ECGs
(e.g. ``MI+NORM``, or ``none``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.layout import (
    Layout,
    any_per_patient,
    first_per_patient,
    patients,
)
from miaudit.datasets.media.spec import MediaSpec
from miaudit.datasets.media.waveforms import assemble_signals
from miaudit.datasets.media.wfdb import _wfdb_signal
from miaudit.datasets.tabular import _rows_text
from miaudit.errors import InputError, shown_id

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
SAMPLING_RATE = 100.0
LENGTH = 1000
#: PTB-XL's code for an age over 89 (HIPAA), and the age it is read as.
AGE_OVER_89, AGE_OVER_89_AS = 300.0, 90.0

INFO = LocalInfo(
    name="ptbxl",
    title="PTB-XL 1.0.3 (12-lead ECG)",
    modality="signal",
    obtain="https://physionet.org/content/ptb-xl/1.0.3/ (open access, CC BY 4.0)",
    layout=(
        ("ptbxl_database.csv", "one row per ECG: ecg_id, patient_id, age, sex, scp_codes, "
         "strat_fold, filename_lr, extra_beats"),
        ("scp_statements.csv", "the SCP statements: code, diagnostic, diagnostic_class"),
        ("records100/NNNNN/NNNNN_lr.{hea,dat}", "the 100 Hz WFDB records named by filename_lr"),
    ),
    patient_id="patient_id",
    task="5 superclasses NORM/MI/STTC/CD/HYP (multi-label)",
    subgroups=("sex", "age", "extra_beats", "superclass"),
    test_split="strat_fold 10 (2,198 ECGs)",
)

_DATABASE = ("ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr",
             "extra_beats")


def _superclass_of(layout: Layout, path: Path) -> dict[str, str]:
    """Diagnostic SCP code → its superclass, from ``scp_statements.csv``."""
    frame = layout.table(path, ["diagnostic", "diagnostic_class"], "one row per SCP "
                         "statement, its code in the first column")
    codes = frame.iloc[:, 0].astype(str).str.strip()
    diagnostic = pd.to_numeric(frame["diagnostic"], errors="coerce").to_numpy() == 1
    classes = frame["diagnostic_class"].astype(str).str.strip()
    bad = np.flatnonzero(diagnostic & ~classes.isin(SUPERCLASSES).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "diagnostic_class", bad, frame["diagnostic_class"],
                                f"one of {', '.join(SUPERCLASSES)} for a diagnostic statement")
    return dict(zip(codes[diagnostic], classes[diagnostic], strict=True))


def _labels(layout: Layout, path: Path, scp: pd.Series, classes: dict[str, str]) -> np.ndarray:
    """[N, 5] multi-hot superclasses from each record's ``scp_codes`` dict."""
    labels = np.zeros((len(scp), len(SUPERCLASSES)), dtype=np.int64)
    column = {c: j for j, c in enumerate(SUPERCLASSES)}
    bad: list[int] = []
    for i, text in enumerate(scp.tolist()):
        try:
            codes = ast.literal_eval(str(text))  # a dict literal; literal_eval runs no code
        except (ValueError, SyntaxError):
            codes = None
        if not isinstance(codes, dict):
            bad.append(i)
            continue
        for code in codes:
            superclass = classes.get(str(code))
            if superclass is not None:
                labels[i, column[superclass]] = 1
    if bad:
        raise layout.bad_values(path, "scp_codes", np.array(bad), scp,
                                "a dict of SCP codes and likelihoods, e.g. {'NORM': 100.0}")
    return labels


def _sex(layout: Layout, path: Path, values: pd.Series) -> np.ndarray:
    text = values.astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    bad = np.flatnonzero(~text.isin(["0", "1"]).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "sex", bad, values, "0 (male) or 1 (female)")
    return np.where(text.to_numpy() == "0", "male", "female").astype(object)


def _signal_loader(path: Path, what: str):
    return lambda: _wfdb_signal(path, what)


def load(root: Path) -> Cohort:
    """The paper's PTB-XL cohort from the copy under ``root`` (module doc)."""
    layout = Layout("ptbxl", root)
    database = layout.file("ptbxl_database.csv", holds=INFO.layout[0][1])
    statements = layout.file("scp_statements.csv", holds=INFO.layout[1][1])
    frame = layout.table(database, _DATABASE, INFO.layout[0][1])
    where = f"ptbxl '{database}'"
    labels = _labels(layout, database, frame["scp_codes"], _superclass_of(layout, statements))
    patient, patient_ids = patients(frame["patient_id"], where, "patient_id")
    fold = pd.to_numeric(frame["strat_fold"], errors="coerce")
    bad = np.flatnonzero(~fold.isin(range(1, 11)).to_numpy())
    if bad.size:
        raise layout.bad_values(database, "strat_fold", bad, frame["strat_fold"], "1 to 10")
    age = pd.to_numeric(frame["age"], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    age[age == AGE_OVER_89] = AGE_OVER_89_AS
    extra = frame["extra_beats"].fillna("").astype(str).str.strip().to_numpy() != ""
    union = np.zeros((len(patient_ids), len(SUPERCLASSES)), dtype=np.int64)
    np.maximum.at(union, patient, labels)
    names = np.array(["+".join(sorted(c for c, y in zip(SUPERCLASSES, row, strict=True) if y))
                      or "none" for row in union], dtype=object)
    attributes = pd.DataFrame({
        "sex": first_per_patient(patient, _sex(layout, database, frame["sex"])).astype(str),
        "age": first_per_patient(patient, age).astype(np.float64),
        "extra_beats": np.where(any_per_patient(patient, extra), "yes", "no").astype(object),
        "superclass": names[patient],
    })
    files = frame["filename_lr"].astype(str).str.strip()
    empty = np.flatnonzero((files == "").to_numpy() | frame["filename_lr"].isna().to_numpy())
    if empty.size:
        raise InputError(f"{where}: column 'filename_lr' is empty in data rows "
                         f"{_rows_text(empty)}; restore the file from the distribution.")
    record_ids = frame["ecg_id"].astype(str).str.strip().to_numpy(dtype=object)
    describe = [f"WFDB record '{layout.root / f}' (ptbxl ecg_id {shown_id(r, 'R-')})"
                for f, r in zip(files, record_ids, strict=True)]
    loaders = [_signal_loader(layout.root / f, d) for f, d in zip(files, describe, strict=True)]
    spec = MediaSpec(path=database, modality="signal", sampling_rate=SAMPLING_RATE,
                     length=LENGTH, standardize=False)
    inputs, leads = assemble_signals(loaders, describe, spec)
    return Cohort(
        name="ptbxl",
        inputs=inputs,
        labels=labels,
        patient=patient,
        patient_ids=patient_ids,
        record_ids=record_ids,
        attributes=attributes,
        class_names=SUPERCLASSES,
        feature_names=leads,
        modality="signal",
        source=f"ptbxl:{layout.root}",
        holdout=(fold == 10).to_numpy(),
    )
