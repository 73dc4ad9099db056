"""MIMIC-CXR-JPG 2.0.0 (PhysioNet): chest radiographs with 14 findings from the reports.

As in the paper (its ``mimic`` notebook): every image of ``mimic-cxr-2.0.0-metadata.csv.gz``
(377,110, every view), the patient ``subject_id``, the record ``dicom_id``, the NegBio
labels of the image's study (joined on subject_id and study_id; blank as 0, uncertain -1
as 1), 64×64 greyscale, in the findings order of CheXpert. An image whose study has no
label row is kept with all findings 0, as the paper's left join kept it (the release labels
a few studies fewer than it holds).

Subgroups come from MIMIC-IV, which the paper joined: ``race`` from ``admissions``: a
subject recorded with more than one distinct race (a blank counting as one) is
``Other/Unknown``, else the race by substring, BLACK → Black, WHITE → White, ASIAN → Asian
(a later match overriding an earlier one), anything else and a subject without admissions
``Other/Unknown``; ``insurance``: the subject's most frequent insurance (a tie: the value
first in the file; none: ``missing``); ``sex`` (M/F) and ``age`` (``anchor_age``, the age in
the subject's anchor year) from ``patients``, ``missing``/NaN for a subject not in it.

Departure: the paper tested its MIMIC-CXR models on CheXpert's test set; a cohort needs a
split of its own, so the images of ``split == "test"`` in ``mimic-cxr-2.0.0-split.csv.gz``
(official, patient-disjoint) are held out here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.chexpert import FINDINGS, findings
from miaudit.datasets.local.layout import (
    OTHER_RACE,
    Layout,
    image_cohort,
    patients,
    race_groups,
    text_attribute,
)
from miaudit.datasets.tabular import _listing
from miaudit.errors import InputError

SPLITS = ("train", "validate", "test")
#: MIMIC-IV race substrings in the order the paper applies them (a later match wins).
RACES = (("BLACK", "Black"), ("WHITE", "White"), ("ASIAN", "Asian"))
SEXES = {"M": "Male", "F": "Female"}
#: Where a copy may keep the MIMIC-IV tables, relative to root (each .csv.gz or .csv).
MIMIC_IV = ("", "hosp/", "mimic-iv/hosp/")
_METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
_LABELS = "mimic-cxr-2.0.0-negbio.csv.gz"
_SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
_IV_HELP = (" from MIMIC-IV (https://physionet.org/content/mimiciv/, the same credentialed "
            "access); copy MIMIC-IV's hosp/{name} into cohort.root or its hosp/ folder")

INFO = LocalInfo(
    name="mimic_cxr",
    title="MIMIC-CXR-JPG 2.0.0 (chest radiographs)",
    modality="image",
    obtain="https://physionet.org/content/mimic-cxr-jpg/2.0.0/ and, for the subgroups, "
           "https://physionet.org/content/mimiciv/ (PhysioNet credentialed access; sign the "
           "PhysioNet Credentialed Health Data Use Agreement 1.5.0)",
    layout=(
        (_METADATA, "one row per image: dicom_id, subject_id, study_id, ViewPosition, …"),
        (_LABELS, "one row per study: subject_id, study_id and the 14 NegBio findings "
         "(1.0, 0.0, -1.0 or blank)"),
        (_SPLIT, "one row per image: dicom_id, study_id, subject_id, split "
         "(train, validate or test)"),
        ("files/pXX/p<subject_id>/s<study_id>/<dicom_id>.jpg", "the images"),
        ("hosp/admissions.csv.gz", "MIMIC-IV admissions: subject_id, insurance, race "
         "(ethnicity before MIMIC-IV 2.0); also in root or mimic-iv/hosp/, or as .csv"),
        ("hosp/patients.csv.gz", "MIMIC-IV patients: subject_id, gender, anchor_age; also in "
         "root or mimic-iv/hosp/, or as .csv"),
    ),
    patient_id="subject_id",
    task="14 findings (NegBio labels, multi-label; blank as 0, uncertain as 1)",
    subgroups=("sex", "age", "race", "insurance"),
    test_split="split = 'test' of mimic-cxr-2.0.0-split.csv.gz (5,159 images; the paper used "
               "CheXpert's test set instead)",
)


def _text(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().where(values.notna())


def _labels(layout: Layout, metadata: pd.DataFrame) -> np.ndarray:
    """[N, 14] 0/1 NegBio findings of each image's study."""
    path = layout.file(_LABELS, holds=INFO.layout[1][1])
    frame = layout.table(path, ["subject_id", "study_id", *FINDINGS], INFO.layout[1][1], also=())
    keys = pd.MultiIndex.from_arrays([_text(frame["subject_id"]), _text(frame["study_id"])])
    repeated = np.flatnonzero(keys.duplicated(keep=False))
    if repeated.size:
        raise InputError(
            f"{layout.where}: '{_LABELS}' lists study {keys[repeated[0]][1]!r} of subject "
            f"{keys[repeated[0]][0]!r} more than once; each study has one label row. Restore "
            "the original file."
        )
    values = findings(layout, path, frame)
    row = keys.get_indexer(pd.MultiIndex.from_arrays([metadata["subject_id"], metadata["study_id"]]))
    values = np.vstack([values, np.zeros((1, len(FINDINGS)), dtype=np.int64)])  # row -1: none
    return values[row]


def _holdout(layout: Layout, metadata: pd.DataFrame) -> np.ndarray:
    """[N] bool: the image is in the official test split."""
    path = layout.file(_SPLIT, holds=INFO.layout[2][1])
    frame = layout.table(path, ["dicom_id", "split"], INFO.layout[2][1], also=())
    split = _text(frame["split"])
    bad = np.flatnonzero(~split.isin(SPLITS).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "split", bad, frame["split"], ", ".join(SPLITS))
    by_image = pd.Series(split.to_numpy(), index=_text(frame["dicom_id"])).groupby(level=0).first()
    of_image = metadata["dicom_id"].map(by_image)
    if of_image.isna().any():
        lacking = metadata["dicom_id"][of_image.isna()].tolist()
        raise InputError(
            f"{layout.where}: '{_SPLIT}' has no row for {len(lacking)} image(s) of "
            f"'{_METADATA}': dicom_id {_listing(lacking, 5)}. Restore both files from the same "
            "release."
        )
    return (of_image == "test").to_numpy()


def _mimic_iv(layout: Layout, name: str, columns: list[str], holds: str) -> tuple[Path, pd.DataFrame]:
    candidates = [f"{d}{name}{z}" for d in MIMIC_IV for z in (".csv.gz", ".csv")]
    path = layout.file(*candidates, holds=holds + _IV_HELP.format(name=f"{name}.csv.gz"))
    return path, layout.table(path, columns, holds, also=("race", "ethnicity"))


def _race(frame: pd.DataFrame, column: str) -> pd.Series:
    """subject_id → the paper's race group (subjects with admissions)."""
    distinct = frame.drop_duplicates(["subject_id", column])
    several = distinct["subject_id"].duplicated(keep=False).to_numpy()
    race = distinct[column].where(~several, "OTHER/UNKNOWN")
    group = race_groups(race, RACES)
    return pd.Series(group, index=distinct["subject_id"].to_numpy()).groupby(level=0).first()


def _insurance(frame: pd.DataFrame) -> pd.Series:
    """subject_id → the subject's most frequent insurance (a tie: the first in the file)."""
    known = frame[frame["insurance"].notna()].assign(row=lambda f: np.arange(len(f)))
    counts = known.groupby(["subject_id", "insurance"], sort=False)["row"].agg(["size", "min"])
    counts = counts.reset_index().sort_values(["subject_id", "size", "min"],
                                              ascending=[True, False, True])
    return counts.drop_duplicates("subject_id").set_index("subject_id")["insurance"]


def _attributes(layout: Layout, subject: pd.Series) -> pd.DataFrame:
    """sex, age, race and insurance of each image's subject, from MIMIC-IV."""
    holds = "MIMIC-IV admissions: one row per admission, subject_id, insurance and race"
    path, admissions = _mimic_iv(layout, "admissions", ["subject_id", "insurance"], holds)
    column = next((c for c in ("race", "ethnicity") if c in admissions.columns), None)
    if column is None:
        raise InputError(f"{layout.where}: '{path.name}' lacks column 'race' (or 'ethnicity', its "
                         "name before MIMIC-IV 2.0); it should hold " + holds + ".")
    admissions = admissions.assign(subject_id=_text(admissions["subject_id"]),
                                   insurance=_text(admissions["insurance"]))
    holds = "MIMIC-IV patients: one row per subject, subject_id, gender and anchor_age"
    path, table = _mimic_iv(layout, "patients", ["subject_id", "gender", "anchor_age"], holds)
    ids = _text(table["subject_id"])
    if ids.duplicated().any():
        raise InputError(f"{layout.where}: '{path.name}' lists subject "
                         f"{ids[ids.duplicated()].iloc[0]!r} more than once; restore the file.")
    gender = _text(table["gender"])
    bad = np.flatnonzero((gender.notna() & ~gender.isin(list(SEXES))).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "gender", bad, table["gender"], "M or F")
    age = pd.to_numeric(table["anchor_age"], errors="coerce")
    bad = np.flatnonzero((table["anchor_age"].notna() & age.isna()).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "anchor_age", bad, table["anchor_age"], "an age in years")
    sex = subject.map(pd.Series(gender.map(SEXES).to_numpy(), index=ids))
    return pd.DataFrame({
        "sex": text_attribute(sex),
        "age": subject.map(pd.Series(age.to_numpy(np.float64), index=ids)).to_numpy(np.float64),
        "race": subject.map(_race(admissions, column)).fillna(OTHER_RACE).to_numpy(dtype=object),
        "insurance": text_attribute(subject.map(_insurance(admissions))),
    })


def load(root: Path) -> Cohort:
    """The paper's MIMIC-CXR cohort from the copy under ``root`` (module doc)."""
    layout = Layout("mimic_cxr", root)
    path = layout.file(_METADATA, holds=INFO.layout[0][1])
    frame = layout.table(path, ["dicom_id", "subject_id", "study_id"], INFO.layout[0][1], also=())
    for column in ("dicom_id", "subject_id", "study_id"):
        empty = np.flatnonzero(frame[column].isna().to_numpy())
        if empty.size:
            raise layout.bad_values(path, column, empty, frame[column], f"a {column} in every row")
    metadata = pd.DataFrame({c: _text(frame[c]) for c in ("dicom_id", "subject_id", "study_id")})
    patient, patient_ids = patients(metadata["subject_id"], f"mimic_cxr '{path}'", "subject_id")
    images = [layout.root / "files" / f"p{s[:2]}" / f"p{s}" / f"s{t}" / f"{d}.jpg"
              for d, s, t in metadata.itertuples(index=False)]
    return image_cohort(
        "mimic_cxr",
        source=f"mimic_cxr:{layout.root}",
        paths=images,
        record_ids=metadata["dicom_id"].to_numpy(dtype=object),
        patient=patient,
        patient_ids=patient_ids,
        labels=_labels(layout, metadata),
        class_names=FINDINGS,
        attributes=_attributes(layout, metadata["subject_id"]),
        holdout=_holdout(layout, metadata),
        channels=1,
    )
