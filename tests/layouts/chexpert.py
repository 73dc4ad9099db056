"""A tiny CheXpert v1.0 copy: ``train.csv``, ``valid.csv``, the JPEGs under ``train/`` and
``valid/``, and optionally the demographics table, as the AIMI download lays them out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
            "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
            "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
#: (split, patient, study, view file, Sex, Age, Frontal/Lateral, AP/PA) in file order; as in
#: the official train.csv, a patient's later study may come first.
IMAGES = (
    ("train", "patient00001", 1, "view1_frontal.jpg", "Female", 68, "Frontal", "AP"),
    ("train", "patient00002", 2, "view1_frontal.jpg", "Female", 87, "Frontal", "AP"),
    ("train", "patient00002", 1, "view1_frontal.jpg", "Female", 83, "Frontal", "PA"),
    ("train", "patient00002", 1, "view2_lateral.jpg", "Female", 83, "Lateral", None),
    ("train", "patient00003", 1, "view1_frontal.jpg", "Male", 41, "Frontal", "AP"),
    ("train", "patient00004", 1, "view1_lateral.jpg", "Male", 55, "Lateral", None),
    ("train", "patient00005", 1, "view1_frontal.jpg", "Unknown", 0, "Frontal", "AP"),
    ("train", "patient00006", 1, "view1_frontal.jpg", "Male", 30, "Frontal", None),
    ("train", "patient00006", 2, "view1_frontal.jpg", "Male", 31, "Frontal", "PA"),
    ("train", "patient00007", 3, "view1_frontal.jpg", "Female", 50, "Frontal", "AP"),
    ("train", "patient00007", 1, "view2_lateral.jpg", "Female", 48, "Lateral", None),
    ("train", "patient00007", 2, "view1_frontal.jpg", "Female", 49, "Frontal", "PA"),
    ("valid", "patient64541", 1, "view1_frontal.jpg", "Male", 73, "Frontal", "AP"),
    ("valid", "patient64541", 1, "view2_lateral.jpg", "Male", 73, "Lateral", None),
    ("valid", "patient64542", 1, "view1_frontal.jpg", "Female", 70, "Frontal", "PA"),
    ("valid", "patient64543", 1, "view1_frontal.jpg", "Male", 60, "Frontal", "AP"),
)
#: PRIMARY_RACE of the demographics table (patient00007 is not in it); "Black, White" is
#: made up to show that a later match overrides an earlier one.
PRIMARY_RACE = {
    "patient00001": "Other", "patient00002": "White, non-Hispanic",
    "patient00003": "Black or African American", "patient00004": "Asian",
    "patient00005": "White", "patient00006": None, "patient64541": "Asian, Hispanic",
    "patient64542": "Black, White", "patient64543": "Patient Refused",
}
RACE = {"patient00001": "Other/Unknown", "patient00002": "White", "patient00003": "Black",
        "patient00004": "Asian", "patient00006": "Other/Unknown", "patient00007": "Other/Unknown",
        "patient64541": "Asian", "patient64542": "White", "patient64543": "Other/Unknown"}
#: Each kept patient's sex, age at the first study and AP/PA of the first frontal image.
PATIENTS = {
    "patient00001": ("Female", 68.0, "AP"), "patient00002": ("Female", 83.0, "PA"),
    "patient00003": ("Male", 41.0, "AP"), "patient00004": ("Male", 55.0, "Other"),
    "patient00006": ("Male", 30.0, "Other"), "patient00007": ("Female", 48.0, "PA"),
    "patient64541": ("Male", 73.0, "AP"), "patient64542": ("Female", 70.0, "PA"),
    "patient64543": ("Male", 60.0, "AP"),
}


@dataclass
class Expected:
    record_ids: list[str]  # Path as written, in file order (train, then valid)
    patient_ids: list[str]  # each record's patient
    labels: np.ndarray  # [N, 14] 0/1
    attributes: dict[str, list]  # sex, age, ap_pa (and race with the demographics table)
    holdout: list[bool]
    files: dict[str, Path]  # record id → the image file written
    means: dict[str, float]  # record id → mean pixel value written


def _codes(i: int, split: str) -> list[float]:
    """The 14 findings of image i: 1.0, 0.0, -1.0 and blank in turn (valid.csv: 1.0/0.0)."""
    cycle = (1.0, 0.0) if split == "valid" else (1.0, 0.0, -1.0, np.nan)
    return [cycle[(i + 3 * j) % len(cycle)] for j in range(len(FINDINGS))]


def write(root: Path, *, folder: str = "CheXpert-v1.0-small", nested: bool = False,
          demo: str | None = "CHEXPERT DEMO.csv") -> Expected:
    """Write the copy: ``Path`` begins with ``folder``; the CSVs lie in root, and the images
    in root itself (the download: root is that folder) or, ``nested``, in root/``folder``.
    ``demo``: the demographics file name (``.csv`` or ``.xlsx``; None: no table)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {"train": [], "valid": []}
    expected = Expected([], [], np.zeros((0, len(FINDINGS)), dtype=np.int64),
                        {"sex": [], "age": [], "ap_pa": []}, [], {}, {})
    labels = []
    for i, (split, patient, study, view, sex, age, frontal, ap_pa) in enumerate(IMAGES):
        written = f"{folder}/{split}/{patient}/study{study}/{view}"
        file = (root / written) if nested else (root / written.split("/", 1)[1])
        file.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.full((24, 20), 20 + 13 * i, dtype=np.uint8)
        pixels[2 + i % 10: 8 + i % 10, 3:9] = 250 - 9 * i
        Image.fromarray(pixels, mode="L").save(file, quality=95)
        codes = _codes(i, split)
        rows[split].append({"Path": written, "Sex": sex, "Age": age, "Frontal/Lateral": frontal,
                            "AP/PA": ap_pa, **dict(zip(FINDINGS, codes, strict=True))})
        if sex == "Unknown":
            continue
        expected.record_ids.append(written)
        expected.patient_ids.append(patient)
        labels.append([1 if c in (1.0, -1.0) else 0 for c in codes])
        for name, value in zip(("sex", "age", "ap_pa"), PATIENTS[patient], strict=True):
            expected.attributes[name].append(value)
        expected.holdout.append(split == "valid")
        expected.files[written] = file
        expected.means[written] = float(pixels.mean())
    for split, table in rows.items():
        pd.DataFrame(table).to_csv(root / f"{split}.csv", index=False)
    expected.labels = np.array(labels, dtype=np.int64)
    if demo is not None:
        expected.attributes["race"] = [RACE[p] for p in expected.patient_ids]
        table = pd.DataFrame({
            "PATIENT": list(PRIMARY_RACE), "GENDER": "Unknown", "AGE_AT_CXR": 50,
            "PRIMARY_RACE": list(PRIMARY_RACE.values()), "ETHNICITY": "Non-Hispanic/Non-Latino",
        })
        if demo.endswith(".csv"):
            table.to_csv(root / demo, index=False)
        else:
            table.to_excel(root / demo, index=False)  # as AIMI ships it (openpyxl)
    return expected
