"""Fitzpatrick17k (Groh et al. 2021): clinical skin images with Fitzpatrick skin types.

The distribution is ``fitzpatrick17k.csv`` and the image URLs in it; a local copy holds the
images as ``<md5hash>.jpg``. As in the paper: one image per patient (``md5hash``; the
dataset carries no patient id), the three coarse classes of ``three_partition_label``
(non-neoplastic, malignant, benign), 64×64 RGB, and the images whose ``qc`` is
``1 Diagnostic`` (a dermatologist confirmed the diagnosis) as the test split. Where the CSV
has the paper's ``download_success`` column, only rows marked True are kept; without it
every row must have its image (a missing one is an error, never a silent drop). The
subgroup is the skin type in the paper's three groups, I–II, III–IV and V–VI, from
``fitzpatrick_scale`` (-1, not labelled, is ``unknown``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.layout import Layout, image_cohort, patients
from miaudit.errors import InputError

CLASSES = ("non-neoplastic", "malignant", "benign")
SKIN_TYPES = {"1": "I-II", "2": "I-II", "3": "III-IV", "4": "III-IV", "5": "V-VI", "6": "V-VI",
              "-1": "unknown"}
TEST_QC = "1 Diagnostic"
#: Folders under root that may hold the downloaded ``<md5hash>.jpg`` files, in this order.
IMAGE_FOLDERS = ("images", "finalfitz17k", "data/finalfitz17k", ".")

INFO = LocalInfo(
    name="fitzpatrick17k",
    title="Fitzpatrick17k (dermatology)",
    modality="image",
    obtain="https://github.com/mattgroh/fitzpatrick17k (CSV with image URLs; research use)",
    layout=(
        ("fitzpatrick17k.csv", "one row per image: md5hash, fitzpatrick_scale, "
         "three_partition_label, nine_partition_label, qc"),
        ("images/<md5hash>.jpg", "the downloaded images (also finalfitz17k/ or root itself)"),
    ),
    patient_id="md5hash (one image per patient)",
    task="3 classes: non-neoplastic, malignant, benign",
    subgroups=("skin_type",),
    test_split="qc = '1 Diagnostic' (348 images)",
)


def _image_folder(layout: Layout, first: str) -> Path:
    for folder in IMAGE_FOLDERS:
        if (layout.root / folder / f"{first}.jpg").is_file():
            return layout.root / folder
    tried = ", ".join(f"'{layout.root / f / (first + '.jpg')}'" for f in IMAGE_FOLDERS)
    raise InputError(
        f"{layout.where}: the image of the first row is in none of {tried}; download the "
        "images named <md5hash>.jpg into images/ under cohort.root."
    )


def load(root: Path) -> Cohort:
    """The paper's Fitzpatrick17k cohort from the copy under ``root`` (module doc)."""
    layout = Layout("fitzpatrick17k", root)
    csv = layout.file("fitzpatrick17k.csv", holds=INFO.layout[0][1])
    frame = layout.table(csv, ["md5hash", "fitzpatrick_scale", "three_partition_label", "qc"],
                         INFO.layout[0][1])
    if "download_success" in frame.columns:
        kept = frame["download_success"].astype(str).str.strip().str.lower() == "true"
        frame = frame[kept.to_numpy()].reset_index(drop=True)
    label = frame["three_partition_label"].astype(str).str.strip()
    bad = np.flatnonzero(~label.isin(CLASSES).to_numpy())
    if bad.size:
        raise layout.bad_values(csv, "three_partition_label", bad,
                                frame["three_partition_label"], ", ".join(CLASSES))
    scale = frame["fitzpatrick_scale"].astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    bad = np.flatnonzero(~scale.isin(list(SKIN_TYPES)).to_numpy())
    if bad.size:
        raise layout.bad_values(csv, "fitzpatrick_scale", bad, frame["fitzpatrick_scale"],
                                "1 to 6, or -1 (not labelled)")
    where = f"fitzpatrick17k '{csv}'"
    patient, patient_ids = patients(frame["md5hash"], where, "md5hash")
    if len(patient_ids) != len(frame):
        raise InputError(f"{where}: column 'md5hash' repeats values; each image is listed once "
                         "in the official file. Restore the original CSV.")
    ids = frame["md5hash"].astype(str).str.strip().to_numpy(dtype=object)
    folder = _image_folder(layout, str(ids[0]))
    position = {c: j for j, c in enumerate(CLASSES)}
    return image_cohort(
        "fitzpatrick17k",
        source=f"fitzpatrick17k:{layout.root}",
        paths=[folder / f"{i}.jpg" for i in ids],
        record_ids=ids,
        patient=patient,
        patient_ids=patient_ids,
        labels=np.array([position[v] for v in label], dtype=np.int64),
        class_names=CLASSES,
        attributes=pd.DataFrame({"skin_type": scale.map(SKIN_TYPES).to_numpy(dtype=object)}),
        holdout=(frame["qc"].astype(str).str.strip() == TEST_QC).to_numpy(),
        channels=3,
    )
