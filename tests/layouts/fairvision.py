"""A tiny Harvard-FairVision30k copy: ``AMD``, ``DR``, ``Glaucoma`` folders, each with
``ReadMe/data_summary_<disease>.csv`` and ``Training``/``Validation``/``Test`` folders holding
``data_NNNNN.npz`` and ``slo_fundus_NNNNN.jpg`` (RGB JPEG whose channels differ, so reading
channel 0 is told apart from a luma conversion).

Four Glaucoma, three DR and five AMD files (12 patients, one image each), every split and
every class present; file numbers repeat across diseases (g_00001 and a_00001 are two
patients), one AMD row has a blank race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("healthy", "non-vision threatening dr", "vision threatening dr", "glaucoma",
           "early amd", "intermediate amd", "late amd")
LETTER = {"Glaucoma": "g", "DR": "d", "AMD": "a"}
# Per disease (folder, label column): rows of (number, age, gender, race, label, use).
ROWS = {
    ("Glaucoma", "glaucoma"): [
        ("00001", "38.59", "female", "asian", "no", "training"),
        ("00002", "56.82", "female", "white", "yes", "training"),
        ("00003", "34.60", "male", "black", "no", "validation"),
        ("00004", "79.82", "female", "black", "yes", "test"),
    ],
    ("DR", "dr"): [
        ("00001", "61.20", "male", "white", "non-vision threatening dr", "training"),
        ("00002", "47.15", "female", "black", "vision threatening dr", "validation"),
        ("00003", "70.03", "male", "asian", "non-vision threatening dr", "test"),
    ],
    ("AMD", "amd"): [
        ("00001", "86.04", "female", "white", "normal", "training"),
        ("00002", "74.32", "male", "white", "early amd", "training"),
        ("00003", "64.57", "female", None, "intermediate amd", "validation"),
        ("00004", "60.38", "female", "asian", "late amd", "test"),
        ("00005", "73.73", "male", "white", "late amd", "training"),
    ],
}
CODES = {"no": "healthy", "yes": "glaucoma", "normal": "healthy"}


@dataclass
class Expected:
    """What the adapter should give for this copy."""

    record_ids: list[str] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)  # per record (one each)
    labels: list[int] = field(default_factory=list)
    race: list[str] = field(default_factory=list)
    sex: list[str] = field(default_factory=list)
    disease: list[str] = field(default_factory=list)
    age: list[float] = field(default_factory=list)
    holdout: list[bool] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the SLO image of each record
    red: list[np.ndarray] = field(default_factory=list)  # channel 0 written, [H, W] uint8
    summaries: dict[str, Path] = field(default_factory=dict)  # folder → its summary CSV


def _slo(i: int) -> np.ndarray:
    """A 20×24 RGB image of its own: channel 0 a gradient at an angle, 1 and 2 its inverse
    and noise (a luma conversion would mostly cancel channel 0 out)."""
    y, x = np.mgrid[0:20, 0:24]
    angle = 0.5 * i
    ramp = np.cos(angle) * y / 19 + np.sin(angle) * x / 23
    red = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    noise = np.random.default_rng(i).random((20, 24))
    rgb = np.stack([red, 1 - red, noise], axis=-1)
    return np.rint(255 * rgb).astype(np.uint8)


def write(root: Path) -> Expected:
    """Write the copy under ``root`` and return what the adapter should read from it."""
    from PIL import Image

    root = Path(root)
    expected = Expected()
    image = 0
    for (folder, column), rows in ROWS.items():
        table = []
        for number, age, gender, race, label, use in rows:
            image += 1
            split = use.title()
            base = root / folder / split
            base.mkdir(parents=True, exist_ok=True)
            slo = _slo(image)
            Image.fromarray(slo, mode="RGB").save(base / f"slo_fundus_{number}.jpg", quality=95)
            np.savez(base / f"data_{number}.npz", slo_fundus=slo[..., 0],
                     oct_bscans=np.zeros((2, 4, 4), dtype=np.uint8))
            row = {"filename": f"data_{number}.npz", "age": age, "gender": gender,
                   "race": race, "ethnicity": "non-hispanic", "language": "english",
                   "maritalstatus": "single"}
            if column == "glaucoma":
                row["md"] = "-1.25"
            row[column], row["use"] = label, use
            table.append(row)
            expected.record_ids.append(f"{folder}/{split}/slo_fundus_{number}.jpg")
            expected.patient_ids.append(f"{LETTER[folder]}_{number}")
            expected.labels.append(CLASSES.index(CODES.get(label, label)))
            expected.race.append(race or "missing")
            expected.sex.append(gender)
            expected.disease.append(folder)
            expected.age.append(float(age))
            expected.holdout.append(use == "test")
            expected.files.append(base / f"slo_fundus_{number}.jpg")
            expected.red.append(slo[..., 0])
        readme = root / folder / "ReadMe"
        readme.mkdir(parents=True, exist_ok=True)
        summary = readme / f"data_summary_{column}.csv"
        pd.DataFrame(table).to_csv(summary, index=False)
        expected.summaries[folder] = summary
    return expected
