"""A tiny MIMIC-CXR-JPG 2.0.0 copy: the four ``mimic-cxr-2.0.0-*.csv.gz`` tables, the JPEGs
under ``files/pXX/p<subject>/s<study>/``, and MIMIC-IV's ``admissions`` and ``patients``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: The label columns in the order of the official negbio/chexpert files.
FILE_ORDER = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
              "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity",
              "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax",
              "Support Devices")
#: The cohort's order (CheXpert's).
FINDINGS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
            "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
            "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
#: subject → its studies, each (study_id, split, views of its images).
STUDIES = {
    "10000032": [("50414267", "train", ("PA", "LATERAL")), ("53189527", "train", ("AP",))],
    "10000764": [("57375967", "train", ("AP", "LL"))],
    "10001217": [("52067803", "validate", ("PA",)), ("58913004", "validate", ("AP",))],
    "11000011": [("51234567", "test", ("PA", "LATERAL"))],
    "12000034": [("55555555", "train", (None,))],
    "13000045": [("56789012", "train", ("AP",)), ("50000001", "train", ("AP",))],
    "14000056": [("59999999", "test", ("AP",))],
    "15000067": [("54444444", "train", ("PA", "LATERAL"))],
    "16000078": [("53333333", "train", ("AP",))],
}
#: subject → its admissions, each (insurance, race); 12000034 has none. "BLACK, WHITE" is
#: made up to show that a later match overrides an earlier one.
ADMISSIONS = {
    "10000032": [("Other", "WHITE"), ("Medicaid", "WHITE"), ("Medicaid", "WHITE")],
    "10000764": [("Medicare", "WHITE"), ("Other", "UNKNOWN")],
    "10001217": [(None, "BLACK/AFRICAN AMERICAN"), ("Medicaid", "BLACK/AFRICAN AMERICAN")],
    "11000011": [("Other", "ASIAN - CHINESE")],
    "13000045": [(None, "HISPANIC/LATINO - PUERTO RICAN")],
    "14000056": [("Medicare", "BLACK/AFRICAN"), ("Medicare", "BLACK/CAPE VERDEAN")],
    "15000067": [("Other", "BLACK, WHITE"), ("Medicare", "BLACK, WHITE"),
                 ("Medicare", "BLACK, WHITE"), ("Other", "BLACK, WHITE")],
    "16000078": [("Medicaid", None)],
}
#: subject → (gender, anchor_age); 13000045 is not in patients.
PATIENTS = {"10000032": ("F", 52), "10000764": ("M", 86), "10001217": ("F", 55),
            "11000011": ("M", 31), "12000034": ("F", 40), "14000056": ("M", 67),
            "15000067": ("F", 24), "16000078": ("M", 19)}
#: What the cohort should make of them: (sex, age, race, insurance).
SUBGROUPS = {
    "10000032": ("Female", 52.0, "White", "Medicaid"),
    "10000764": ("Male", 86.0, "Other/Unknown", "Medicare"),
    "10001217": ("Female", 55.0, "Black", "Medicaid"),
    "11000011": ("Male", 31.0, "Asian", "Other"),
    "12000034": ("Female", 40.0, "Other/Unknown", "missing"),
    "13000045": ("missing", np.nan, "Other/Unknown", "missing"),
    "14000056": ("Male", 67.0, "Other/Unknown", "Medicare"),
    "15000067": ("Female", 24.0, "White", "Other"),
    "16000078": ("Male", 19.0, "Other/Unknown", "Medicaid"),
}
METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
NEGBIO = "mimic-cxr-2.0.0-negbio.csv.gz"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"


@dataclass
class Expected:
    record_ids: list[str]  # dicom_id in metadata order
    patient_ids: list[str]  # each record's subject_id
    labels: np.ndarray  # [N, 14] 0/1 in FINDINGS order, from NegBio
    attributes: dict[str, list]  # sex, age, race, insurance
    holdout: list[bool]
    files: dict[str, Path]  # dicom_id → the image written
    means: dict[str, float]  # dicom_id → mean pixel value written


def _dicom_id(i: int) -> str:
    digest = hashlib.sha1(f"dicom-{i}".encode()).hexdigest()  # 40 hex digits, as dicom_id
    return "-".join(digest[k: k + 8] for k in range(0, 40, 8))


def _study_codes(k: int) -> list[float]:
    """NegBio codes of study k in FILE_ORDER: 1.0, 0.0, -1.0 and blank in turn."""
    cycle = (1.0, 0.0, -1.0, np.nan)
    return [cycle[(k + 2 * j) % 4] for j in range(len(FILE_ORDER))]


def write(root: Path, *, mimic_iv: str = "hosp", compressed: bool = True,
          race_column: str = "race") -> Expected:
    """Write the copy. ``mimic_iv``: the folder under root of the MIMIC-IV tables ("" for
    root itself, "hosp", "mimic-iv/hosp"), ``.csv.gz`` or (not ``compressed``) ``.csv``;
    ``race_column``: "race" (MIMIC-IV 2.x) or "ethnicity" (1.0)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    metadata, split_rows, negbio, chexpert = [], [], [], []
    expected = Expected([], [], np.zeros((0, 14), dtype=np.int64),
                        {"sex": [], "age": [], "race": [], "insurance": []}, [], {}, {})
    labels, i = [], 0
    for k, (subject, study, split, views) in enumerate(
            (s, t, p, v) for s, studies in STUDIES.items() for t, p, v in studies):
        codes = _study_codes(k)
        negbio.append({"subject_id": subject, "study_id": study, **dict(zip(FILE_ORDER, codes, strict=True))})
        # the CheXpert labeller's file differs, so a test can tell which one was read
        chexpert.append({"subject_id": subject, "study_id": study,
                         **{n: (0.0 if c == 1.0 else 1.0) for n, c in zip(FILE_ORDER, codes, strict=True)}})
        by_name = dict(zip(FILE_ORDER, codes, strict=True))
        for view in views:
            dicom = _dicom_id(i)
            file = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
            file.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.full((20, 24), 15 + 12 * i, dtype=np.uint8)
            pixels[1 + i % 12: 6 + i % 12, 4:10] = 255 - 11 * i
            Image.fromarray(pixels, mode="L").save(file, quality=95)
            metadata.append({
                "dicom_id": dicom, "subject_id": subject, "study_id": study,
                "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": view,
                "Rows": 3056, "Columns": 2544, "StudyDate": 21800506, "StudyTime": 213014.531,
                "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
                "ViewCodeSequence_CodeMeaning": "postero-anterior",
                "PatientOrientationCodeSequence_CodeMeaning": "Erect",
            })
            split_rows.append({"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": split})
            expected.record_ids.append(dicom)
            expected.patient_ids.append(subject)
            labels.append([1 if by_name[n] in (1.0, -1.0) else 0 for n in FINDINGS])
            for name, value in zip(("sex", "age", "race", "insurance"), SUBGROUPS[subject], strict=True):
                expected.attributes[name].append(value)
            expected.holdout.append(split == "test")
            expected.files[dicom] = file
            expected.means[dicom] = float(pixels.mean())
            i += 1
    expected.labels = np.array(labels, dtype=np.int64)
    for name, rows in ((METADATA, metadata), (NEGBIO, negbio), (CHEXPERT, chexpert), (SPLIT, split_rows)):
        pd.DataFrame(rows).to_csv(root / name, index=False)
    admissions = pd.DataFrame([
        {"subject_id": s, "hadm_id": str(20000000 + 97 * n + j), "admittime": "2180-05-06 22:23:00",
         "admission_type": "URGENT", "insurance": ins, "language": "ENGLISH", race_column: race,
         "hospital_expire_flag": 0}
        for n, (s, stays) in enumerate(ADMISSIONS.items()) for j, (ins, race) in enumerate(stays)])
    patients = pd.DataFrame([{"subject_id": s, "gender": g, "anchor_age": a, "anchor_year": 2180,
                              "anchor_year_group": "2014 - 2016", "dod": None}
                             for s, (g, a) in PATIENTS.items()])
    folder = root / mimic_iv
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if compressed else ".csv"
    admissions.to_csv(folder / f"admissions{suffix}", index=False)
    patients.to_csv(folder / f"patients{suffix}", index=False)
    return expected
