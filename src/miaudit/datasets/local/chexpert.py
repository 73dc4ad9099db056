"""CheXpert v1.0 (Stanford AIMI): chest radiographs with 14 findings from the reports.

As in the paper (its ``chexpert`` notebook): every image of ``train.csv`` and ``valid.csv``,
frontal and lateral, except the rows whose ``Sex`` is ``Unknown`` (one patient of the
training set); the 14 findings multi-label, blank cells (not mentioned) as 0 and uncertain
(-1) as 1; 64×64 greyscale. The images of ``valid.csv`` are the official test split. The
patient is the ``patientNNNNN`` folder of ``Path``, the record ``Path`` as written. ``Path``
begins with the distribution's folder (``CheXpert-v1.0-small/…`` or ``CheXpert-v1.0/…``):
it is read relative to root, or, when root is that folder itself (where the CSVs lie), with
that first folder left out.

Attributes describe patients: ``sex`` and ``age`` of the patient's first study (the
``studyN`` folder, then the row order), ``ap_pa`` of the patient's first frontal image
(AP, PA, or Other: another code, or no frontal image; the paper's cohort table codes
``AP/PA`` the same way, per image), and, when root holds the AIMI demographics table
(``CHEXPERT DEMO.xlsx`` as AIMI ships it, read with openpyxl of the ``imaging`` extra, or
a CSV copy ``CHEXPERT DEMO.csv``; also with an underscore), ``race`` from
``PRIMARY_RACE`` by substring as the paper: "Black", then "White", then "Asian", a later match overriding an earlier one, everything else (and a patient
missing from the table) ``Other/Unknown``. Like the paper, sex and age come from the image
tables, not from the demographics' GENDER and AGE_AT_CXR.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.layout import (
    Layout,
    first_per_patient,
    image_cohort,
    patients,
    race_groups,
)
from miaudit.datasets.tabular import _rows_text
from miaudit.errors import InputError

FINDINGS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
            "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
            "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
SEXES = ("Male", "Female", "Unknown")
VIEWS = ("Frontal", "Lateral")
#: PRIMARY_RACE substrings in the order the paper applies them (a later match wins).
RACES = (("Black", "Black"), ("White", "White"), ("Asian", "Asian"))
DEMO = ("CHEXPERT DEMO.csv", "CHEXPERT_DEMO.csv")
DEMO_XLSX = ("CHEXPERT DEMO.xlsx", "CHEXPERT_DEMO.xlsx")
_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *FINDINGS)
_PATIENT = re.compile(r"(?:^|/)(patient\d+)(?:/|$)")
_STUDY = re.compile(r"(?:^|/)study(\d+)(?:/|$)")
_TABLE = ("one row per image: Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 findings "
          "(1.0, 0.0, -1.0 or blank)")

INFO = LocalInfo(
    name="chexpert",
    title="CheXpert v1.0 (chest radiographs)",
    modality="image",
    obtain="https://stanfordaimi.azurewebsites.net/datasets/8cbd9ed4-2eb9-4565-affc-111cf4f7ebe2 "
           "and, for race, the demographics at https://stanfordaimi.azurewebsites.net/datasets/"
           "192ada7c-4d43-466e-b8bb-b81992bb80cf (Stanford AIMI account; accept the Stanford "
           "University Dataset Research Use Agreement)",
    layout=(
        ("train.csv", f"the training images, {_TABLE}"),
        ("valid.csv", f"the official validation images (the test split), {_TABLE}"),
        ("{train,valid}/patientNNNNN/studyN/viewN_<frontal|lateral>.jpg", "the images named by "
         "Path (its first folder, CheXpert-v1.0[-small], is root itself or a folder under it)"),
        ("CHEXPERT DEMO.xlsx", "optional: one row per patient, PATIENT and PRIMARY_RACE (the "
         "AIMI demographics table; or a CSV copy, CHEXPERT DEMO.csv)"),
    ),
    patient_id="patientNNNNN folder of Path",
    task="14 findings (multi-label; blank as 0, uncertain as 1)",
    subgroups=("sex", "age", "ap_pa", "race"),  # race only with the demographics table
    test_split="valid.csv (234 images)",
)


def _codes(layout: Layout, path: Path, frame: pd.DataFrame, column: str, allowed: tuple[str, ...],
           expected: str) -> pd.Series:
    """The column's text, checked against the official coding."""
    text = frame[column].astype(str).str.strip()
    bad = np.flatnonzero(~text.isin(allowed).to_numpy() | frame[column].isna().to_numpy())
    if bad.size:
        raise layout.bad_values(path, column, bad, frame[column], expected)
    return text


def findings(layout: Layout, path: Path, frame: pd.DataFrame) -> np.ndarray:
    """[N, 14] 0/1 from the CheXpert labeller's coding (CheXpert, and MIMIC-CXR's CheXpert
    and NegBio tables): positive (1) and uncertain (-1) as 1, negative (0) and blank as 0."""
    out = np.zeros((len(frame), len(FINDINGS)), dtype=np.int64)
    for j, name in enumerate(FINDINGS):
        value = pd.to_numeric(frame[name], errors="coerce")
        bad = np.flatnonzero((frame[name].notna() & ~value.isin((1.0, 0.0, -1.0))).to_numpy())
        if bad.size:
            raise layout.bad_values(path, name, bad, frame[name], "1.0, 0.0, -1.0 or blank")
        out[:, j] = value.isin((1.0, -1.0)).to_numpy()
    return out


def _read(layout: Layout, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One of the two CSVs, checked, without the rows of unknown sex; and its findings."""
    path = layout.file(name, holds=_TABLE)
    frame = layout.table(path, _COLUMNS, _TABLE)
    sex = _codes(layout, path, frame, "Sex", SEXES, "Male, Female or Unknown")
    view = _codes(layout, path, frame, "Frontal/Lateral", VIEWS, "Frontal or Lateral")
    age = pd.to_numeric(frame["Age"], errors="coerce")
    bad = np.flatnonzero((frame["Age"].notna() & age.isna()).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "Age", bad, frame["Age"], "the age in years (a number)")
    text = frame["Path"].fillna("").astype(str).str.strip()
    ids = text.str.extract(_PATIENT, expand=False)
    bad = np.flatnonzero(ids.isna().to_numpy())
    if bad.size:
        raise InputError(
            f"{layout.where}: '{name}' column 'Path' names no patientNNNNN folder in data rows "
            f"{_rows_text(bad)} (e.g. {text.iloc[bad[0]]!r}); each path reads "
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg. Restore the file."
        )
    kept = (sex != "Unknown").to_numpy()
    frame = frame.assign(Path=text, Sex=sex, Age=age, patient=ids, test=name == "valid.csv",
                         **{"Frontal/Lateral": view})
    return frame[kept], findings(layout, path, frame)[kept]


def _image_paths(root: Path, written: pd.Series) -> list[Path]:
    """``Path`` under root, or without its first folder where root is that folder."""
    first = written.str.split("/", n=1).str[0]
    strip = {f: not (root / f).is_dir() and f.startswith("CheXpert-v1.0") for f in first.unique()}
    return [root / (p.split("/", 1)[1] if strip[f] else p) for p, f in zip(written, first, strict=True)]


def _race(layout: Layout, patient_ids: np.ndarray) -> np.ndarray | None:
    """Each patient's race group from the demographics table (CSV, or the .xlsx AIMI
    ships), or None without one."""
    holds = "one row per patient: PATIENT (e.g. patient00001) and PRIMARY_RACE"
    path = layout.optional(*DEMO)
    if path is not None:
        demo = layout.table(path, ["PATIENT", "PRIMARY_RACE"], holds)
    else:
        xlsx = layout.optional(*DEMO_XLSX)
        if xlsx is None:
            return None
        demo = layout.workbook(xlsx, ["PATIENT", "PRIMARY_RACE"], holds)
    demo = demo.assign(PATIENT=demo["PATIENT"].astype(str).str.strip()).drop_duplicates("PATIENT")
    primary = pd.Series(patient_ids).map(demo.set_index("PATIENT")["PRIMARY_RACE"])
    return race_groups(primary, RACES)


def _rank(*keys: np.ndarray) -> np.ndarray:
    """Each record's place when sorted by ``keys`` (the last most significant), then row."""
    order = np.lexsort((np.arange(len(keys[0])), *keys))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


def load(root: Path) -> Cohort:
    """The paper's CheXpert cohort from the copy under ``root`` (module doc)."""
    layout = Layout("chexpert", root)
    parts = [_read(layout, name) for name in ("train.csv", "valid.csv")]
    frame = pd.concat([p[0] for p in parts], ignore_index=True)
    labels = np.concatenate([p[1] for p in parts])
    patient, patient_ids = patients(frame["patient"], f"chexpert under '{layout.root}'", "Path")
    study = pd.to_numeric(frame["Path"].str.extract(_STUDY, expand=False), errors="coerce")
    study = study.fillna(np.inf).to_numpy()  # a path without studyN: after the numbered ones
    lateral = (frame["Frontal/Lateral"] == "Lateral").to_numpy()
    view = frame["AP/PA"].astype(str).str.strip()
    ap_pa = np.where(lateral, "Other", view.where(view.isin(["AP", "PA"]), "Other")).astype(object)
    by_study, frontal_first = _rank(study), _rank(study, lateral)
    attributes = pd.DataFrame({
        "sex": first_per_patient(patient, frame["Sex"], by_study).astype(str),
        "age": first_per_patient(patient, frame["Age"], by_study).astype(np.float64),
        "ap_pa": first_per_patient(patient, ap_pa, frontal_first).astype(str),
    })
    race = _race(layout, patient_ids)
    if race is not None:
        attributes["race"] = race[patient]
    return image_cohort(
        "chexpert",
        source=f"chexpert:{layout.root}",
        paths=_image_paths(layout.root, frame["Path"]),
        record_ids=frame["Path"].to_numpy(dtype=object),
        patient=patient,
        patient_ids=patient_ids,
        labels=labels,
        class_names=FINDINGS,
        attributes=attributes,
        holdout=frame["test"].to_numpy(dtype=bool),
        channels=1,
    )
