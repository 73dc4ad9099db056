"""EMBED Open Data (Emory Breast Imaging Dataset): screening mammograms, BI-RADS breast density.

The AWS Open Data release has two tables under ``tables/`` (the clinical one has a row per
radiologist finding, the metadata one a row per DICOM file) and the DICOM files at
``cohort_N/<empi_anon>/<study>/<series>/<SOPInstanceUID>.dcm`` (``images/cohort_N/…`` in the
bucket). The ``_reduced`` tables the paper read are used when present, else the full ones.
The paper's cohort, built here in the paper's order:

1. clinical rows of screening exams only (``desc`` contains "screen", any case);
2. left-merged with the metadata on ``acc_anon`` and ``empi_anon`` (every image of the exam,
   once per finding row), then de-duplicated on ``anon_dicom_path`` (the exam's first
   finding row speaks for the image);
3. rows with a missing ``RACE_DESC`` dropped; only ``ViewPosition`` MLO or CC kept; density
   5 (the code for a male breast) and ``GENDER_DESC`` Male dropped; a missing density dropped.

The label is the BI-RADS density ``tissueden`` 1–4 as classes A–D; a record is one DICOM
image (``anon_dicom_path`` as written), its patient ``empi_anon``. Images are read from the
DICOM files (never from a PNG copy) as greyscale at the paper's 64×48 (H×W). Attributes are
the patient's race (Black, White, Asian, Other/Unknown, from ``RACE_DESC``), the age at the
patient's earliest cohort exam, and whether any of the patient's cohort exams has a BI-RADS
assessment ``asses`` other than N (negative). The release has no test split: as the paper,
500 patients are drawn with numpy's legacy generator (``np.random.seed(420)``,
``np.random.choice(patients, 500, replace=False)``) over the patient ids in the cohort's
order; a copy with fewer than 1000 patients holds out a tenth of them (rounded up), drawn
the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.layout import (
    OTHER_RACE,
    Layout,
    any_per_patient,
    first_per_patient,
    image_cohort,
    patients,
)
from miaudit.datasets.tabular import _rows_text
from miaudit.errors import InputError

CLASSES = ("A", "B", "C", "D")
#: ``RACE_DESC`` (spaces collapsed: the file writes "African American  or Black") → group.
RACES = {"African American or Black": "Black", "Caucasian or White": "White", "Asian": "Asian"}
VIEWS = ("MLO", "CC")
#: BI-RADS assessments: A (0, additional evaluation), N (1, negative), B, P, S, M, K (2–6), X.
ASSESSMENTS = ("A", "N", "B", "P", "S", "M", "K", "X")
#: The paper's image size (H, W), its seed and number of test patients.
SIZE = (64, 48)
SEED, TEST_PATIENTS = 420, 500

_CLINICAL = ("tables/EMBED_OpenData_clinical_reduced.csv", "tables/EMBED_OpenData_clinical.csv")
_METADATA = ("tables/EMBED_OpenData_metadata_reduced.csv", "tables/EMBED_OpenData_metadata.csv")
_CLINICAL_COLUMNS = ("empi_anon", "acc_anon", "desc", "tissueden", "asses", "RACE_DESC",
                     "GENDER_DESC", "age_at_study")
_METADATA_COLUMNS = ("empi_anon", "acc_anon", "anon_dicom_path", "ViewPosition")

INFO = LocalInfo(
    name="embed",
    title="EMBED Open Data (screening mammography)",
    modality="image",
    obtain="https://registry.opendata.aws/emory-breast-imaging-dataset-embed/ (register with "
           "Emory HITI and accept the EMBED Research Use Agreement; non-commercial research)",
    layout=(
        (_CLINICAL[0], "one row per finding: empi_anon, acc_anon, desc, tissueden, asses, "
         "RACE_DESC, GENDER_DESC, age_at_study (or EMBED_OpenData_clinical.csv)"),
        (_METADATA[0], "one row per DICOM file: empi_anon, acc_anon, anon_dicom_path, "
         "ViewPosition (or EMBED_OpenData_metadata.csv)"),
        ("cohort_N/<empi_anon>/…/<SOPInstanceUID>.dcm", "the DICOM images: anon_dicom_path after "
         "its 'anon_dicom/' (also under images/ as in the bucket, or the path as written)"),
    ),
    patient_id="empi_anon",
    task="4 classes: BI-RADS density A, B, C, D (tissueden 1-4)",
    subgroups=("race", "age", "any_non_negative"),
    test_split="none official: 500 patients drawn as the paper (np.random.seed(420))",
)


def held_out_patients(num_patients: int) -> np.ndarray:
    """The paper's test patients (indices in cohort order): numpy's legacy generator seeded
    420 draws 500 without replacement (a tenth, rounded up, under 1000 patients)."""
    count = TEST_PATIENTS if num_patients >= 2 * TEST_PATIENTS else math.ceil(num_patients / 10)
    return np.random.RandomState(SEED).choice(num_patients, count, replace=False)


def _screening_images(layout: Layout, clinical: pd.DataFrame, metadata: pd.DataFrame,
                      clinical_path: Path) -> pd.DataFrame:
    """Steps 1–3 of the module doc: one row per kept image, with its clinical row number."""
    exams = clinical.loc[:, list(_CLINICAL_COLUMNS)].assign(_row=np.arange(len(clinical)))
    screen = exams["desc"].str.contains("screen", case=False, na=False, regex=False)
    merged = exams[screen.to_numpy()].merge(metadata.loc[:, list(_METADATA_COLUMNS)],
                                            how="left", on=["acc_anon", "empi_anon"])
    rows = merged.drop_duplicates(subset="anon_dicom_path").reset_index(drop=True)
    view = rows["ViewPosition"]  # compared as written, as the paper did
    rows = rows[(rows["RACE_DESC"].notna() & view.isin(VIEWS)).to_numpy()]
    density = pd.to_numeric(rows["tissueden"], errors="coerce")
    bad = (rows["tissueden"].notna() & ~density.isin([1, 2, 3, 4, 5])).to_numpy()
    if bad.any():
        raise layout.bad_values(clinical_path, "tissueden", np.unique(rows["_row"].to_numpy()[bad]),
                                clinical["tissueden"], "1 to 4 (BI-RADS A-D), 5 (male), or blank")
    male = rows["GENDER_DESC"] == "Male"
    kept = (density.isin([1, 2, 3, 4]) & ~male).to_numpy()
    return rows[kept].assign(_density=density[kept].astype(int)).reset_index(drop=True)


def _tail(written: str) -> str | None:
    """The part of ``anon_dicom_path`` after its ``anon_dicom/`` folder (None: it has none)."""
    found = re.search(r"(?:^|/)anon_dicom/(.+)$", written)
    return found.group(1) if found else None


def _resolver(layout: Layout, first: str) -> Callable[[str], Path]:
    """How ``anon_dicom_path`` maps under root, decided on the first record's file: the path
    after ``anon_dicom/`` under root, or under ``images/`` (the bucket's folder), or the
    path as written relative to root."""
    prefixes = (layout.root, layout.root / "images")
    tried: list[Path] = []
    tail = _tail(first)
    for prefix in prefixes if tail is not None else ():
        tried.append(prefix / str(tail))
        if tried[-1].is_file():
            return lambda p, prefix=prefix: prefix / (_tail(p) or p.lstrip("/"))
    tried.append(layout.root / first.lstrip("/"))
    if tried[-1].is_file():
        return lambda p: layout.root / p.lstrip("/")
    raise InputError(
        f"{layout.where}: the DICOM file of the first image ({first!r}) is at none of "
        f"{', '.join(repr(str(t)) for t in tried)}; download the images (the bucket's "
        "images/cohort_1 and cohort_2 folders) so that cohort_N/ or images/cohort_N/ lies "
        "under cohort.root."
    )


def _flags(layout: Layout, path: Path, rows: pd.DataFrame, clinical: pd.DataFrame,
           patient: np.ndarray) -> np.ndarray:
    """Each record's patient's 'any cohort exam assessed other than N' (yes/no/missing)."""
    asses = rows["asses"].str.strip()
    bad = (asses.notna() & ~asses.isin(ASSESSMENTS)).to_numpy()
    if bad.any():
        raise layout.bad_values(path, "asses", np.unique(rows["_row"].to_numpy()[bad]), clinical["asses"],
                                f"one of {', '.join(ASSESSMENTS)}, or blank")
    known = asses.notna().to_numpy()
    out = np.where(any_per_patient(patient, known & (asses != "N").to_numpy()), "yes", "no")
    return np.where(any_per_patient(patient, known), out, "missing").astype(object)


def load(root: Path) -> Cohort:
    """The paper's EMBED cohort from the copy under ``root`` (module doc)."""
    layout = Layout("embed", root)
    clinical_path = layout.file(*_CLINICAL, holds=INFO.layout[0][1])
    metadata_path = layout.file(*_METADATA, holds=INFO.layout[1][1])
    clinical = layout.table(clinical_path, _CLINICAL_COLUMNS, INFO.layout[0][1], also=())
    metadata = layout.table(metadata_path, _METADATA_COLUMNS, INFO.layout[1][1], also=())
    rows = _screening_images(layout, clinical, metadata, clinical_path)
    if len(rows) == 0:
        raise InputError(f"{layout.where}: no image is left after the paper's filters (screening "
                         "exams, MLO/CC views, race recorded, density 1-4, female); check that "
                         f"'{metadata_path.name}' is the metadata of '{clinical_path.name}'.")
    missing = np.flatnonzero(rows["anon_dicom_path"].isna().to_numpy())
    if missing.size:
        raise InputError(f"{layout.where}: '{metadata_path.name}' has an MLO/CC image without "
                         f"'anon_dicom_path' for the exams of clinical data rows "
                         f"{_rows_text(np.unique(rows['_row'].to_numpy()[missing]))}; restore the file.")
    patient, patient_ids = patients(rows["empi_anon"], f"embed '{clinical_path}'", "empi_anon")
    held = np.zeros(len(patient_ids), dtype=bool)
    held[held_out_patients(len(patient_ids))] = True
    written = rows["anon_dicom_path"].astype(str).to_numpy(dtype=object)
    where = _resolver(layout, str(written[0]))
    race = rows["RACE_DESC"].astype(str).map(lambda r: RACES.get(" ".join(r.split()), OTHER_RACE))
    race = first_per_patient(patient, race.to_numpy(dtype=object))
    age = pd.to_numeric(rows["age_at_study"], errors="coerce").to_numpy(dtype=np.float64)
    attributes = pd.DataFrame({
        "race": race,
        "age": first_per_patient(patient, age, order=age).astype(np.float64),
        "any_non_negative": _flags(layout, clinical_path, rows, clinical, patient),
    })
    return image_cohort(
        "embed",
        source=f"embed:{layout.root}",
        paths=[where(str(p)) for p in written],
        record_ids=written,
        patient=patient,
        patient_ids=patient_ids,
        labels=rows["_density"].to_numpy(dtype=np.int64) - 1,
        class_names=CLASSES,
        attributes=attributes,
        holdout=held[patient],
        channels=1,
        size=SIZE,
    )
