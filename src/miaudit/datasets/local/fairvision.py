"""Harvard-FairVision30k: SLO fundus images of 30,000 patients, AMD, DR and glaucoma.

The distribution has one folder per disease (``AMD``, ``DR``, ``Glaucoma``), each with
``Training``/``Validation``/``Test`` folders holding ``data_NNNNN.npz`` (the OCT volume and
more) and the SLO fundus image ``slo_fundus_NNNNN.jpg``, and a summary table
``<Disease>/ReadMe/data_summary_<disease>.csv`` with a row per file (``filename``, ``age``,
``gender``, ``race``, the disease's label column, ``use``). As in the paper: the three
tables concatenated (Glaucoma, DR, AMD), one image per patient, the patient id the disease's
letter and the file number (``g_00001``, as the paper; the dataset gives no id that links
patients across diseases), and seven classes: healthy (glaucoma ``no``, AMD ``normal``),
non-vision-threatening DR, vision-threatening DR, glaucoma (``yes``), early, intermediate
and late AMD. The pixels are channel 0 of the SLO JPEG (the paper's reading), greyscale at
64×64; the official ``use == test`` is the test split, training and validation are audited.
Attributes: race (asian, black, white), sex (``gender``), the disease folder, and age.

Not applied: the paper's quality filter (it dropped 1,458 images whose full-resolution SLO
pixels have a standard deviation ≤ 3 or a mean ≤ 1); it needs every image decoded at full
size before the cohort exists, so the cohort here keeps all 30,000 images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.decode import read_image
from miaudit.datasets.local.layout import Layout, image_cohort, patients, text_attribute
from miaudit.errors import InputError

CLASSES = ("healthy", "non-vision threatening dr", "vision threatening dr", "glaucoma",
           "early amd", "intermediate amd", "late amd")
#: (folder, label column and table suffix, patient id letter), in the paper's order.
DISEASES = (("Glaucoma", "glaucoma", "g"), ("DR", "dr", "d"), ("AMD", "amd", "a"))
#: Each disease's label coding (as distributed) → class index; the DR table has no healthy.
CODING = {
    "glaucoma": {"no": 0, "yes": 3},
    "dr": {"non-vision threatening dr": 1, "vision threatening dr": 2},
    "amd": {"normal": 0, "early amd": 4, "intermediate amd": 5, "late amd": 6},
}
SPLITS = {"training": "Training", "validation": "Validation", "test": "Test"}
RACES, SEXES = ("asian", "black", "white"), ("female", "male")

INFO = LocalInfo(
    name="fairvision",
    title="Harvard-FairVision30k (SLO fundus)",
    modality="image",
    obtain="https://ophai.hms.harvard.edu/datasets/harvard-fairvision30k (request access on "
           "the site; non-commercial research use under its licence)",
    layout=(
        *((f"{folder}/ReadMe/data_summary_{column}.csv", "one row per file: filename, age, "
           f"gender, race, {column}, use") for folder, column, _ in DISEASES),
        ("<Disease>/{Training,Validation,Test}/slo_fundus_NNNNN.jpg",
         "the SLO fundus image of data_NNNNN.npz (the .npz is not read)"),
    ),
    patient_id="disease letter + file number, e.g. g_00001 (one image per patient)",
    task="7 classes: healthy, non-vision-threatening DR, vision-threatening DR, glaucoma, "
         "early/intermediate/late AMD",
    subgroups=("race", "sex", "disease", "age"),
    test_split="use = test (official; 9,000 images)",
)


def read_channel0(path: Path, what: str, size: tuple[int, int]) -> np.ndarray:
    """The first channel of the SLO image (the paper's reading; a grey JPEG is its own)."""
    return read_image(path, what, size)[:1]


def _summary(layout: Layout, folder: str, column: str, letter: str) -> pd.DataFrame:
    """One disease's table as records: number, split folder, class, attributes."""
    holds = f"one row per {folder} file: filename, age, gender, race, {column}, use"
    path = layout.file(f"{folder}/ReadMe/data_summary_{column}.csv", holds=holds)
    frame = layout.table(path, ["filename", "age", "gender", "race", column, "use"], holds)
    number = frame["filename"].str.strip().str.extract(r"^data_(\d+)\.npz$", expand=False)
    bad = np.flatnonzero(number.isna().to_numpy())
    if bad.size:
        raise layout.bad_values(path, "filename", bad, frame["filename"], "data_NNNNN.npz")
    repeated = number.duplicated(keep=False).to_numpy()
    if repeated.any():
        raise InputError(f"{layout.where}: '{path.name}' lists {number[repeated].iloc[0]!r} in "
                         "more than one row; each file is listed once. Restore the original.")
    checks = (("use", list(SPLITS), "training, validation or test"),
              (column, list(CODING[column]), ", ".join(CODING[column])),
              ("race", [*RACES, ""], "asian, black, white (or blank)"),
              ("gender", [*SEXES, ""], "female, male (or blank)"))
    text = {}
    for name, allowed, expected in checks:
        text[name] = frame[name].fillna("").astype(str).str.strip().str.lower()
        bad = np.flatnonzero(~text[name].isin(allowed).to_numpy())
        if bad.size:
            raise layout.bad_values(path, name, bad, frame[name], expected)
    split = text["use"].map(SPLITS)
    return pd.DataFrame({
        "record": folder + "/" + split + "/slo_fundus_" + number + ".jpg",
        "patient": letter + "_" + number,
        "label": text[column].map(CODING[column]).astype(np.int64),
        "test": (text["use"] == "test").to_numpy(),
        "race": text_attribute(frame["race"].str.strip().str.lower()),
        "sex": text_attribute(frame["gender"].str.strip().str.lower()),
        "disease": folder,
        "age": pd.to_numeric(frame["age"], errors="coerce").astype(np.float64),
    })


def load(root: Path) -> Cohort:
    """The paper's FairVision cohort from the copy under ``root`` (module doc)."""
    layout = Layout("fairvision", root)
    frame = pd.concat([_summary(layout, *d) for d in DISEASES], ignore_index=True)
    patient, patient_ids = patients(frame["patient"], f"fairvision '{layout.root}'", "filename")
    records = frame["record"].to_numpy(dtype=object)
    return image_cohort(
        "fairvision",
        source=f"fairvision:{layout.root}",
        paths=[layout.root / r for r in records],
        record_ids=records,
        patient=patient,
        patient_ids=patient_ids,
        labels=frame["label"].to_numpy(dtype=np.int64),
        class_names=CLASSES,
        attributes=frame[["race", "sex", "disease", "age"]],
        holdout=frame["test"].to_numpy(dtype=bool),
        channels=1,
        reader=read_channel0,
        reader_name="slo-channel0",
    )
