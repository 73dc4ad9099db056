"""HAM10000 (Tschandl et al. 2018): 10,015 dermatoscopic images of pigmented skin lesions.

Not audited in the paper; offered as an extra dermatology cohort beside Fitzpatrick17k. The
Harvard Dataverse distribution (doi:10.7910/DVN/DBW86T) is ``HAM10000_metadata`` (a CSV,
also saved as ``HAM10000_metadata.csv``) and the images ``<image_id>.jpg`` split over
``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/`` (or gathered in ``images/``).
Every row is kept. The only grouping id is ``lesion_id``: several images show one lesion, so
a lesion stands for the patient (the dataset has no patient id, and one patient's different
lesions count as different "patients" here). The label is ``dx``, seven classes; 64×64 RGB.
There is no official test split in this distribution: the ISIC 2018 challenge's test
images are a separate download without ``lesion_id``.

Subgroups describe lesions, from the lesion's first image (file order): ``sex`` as written
(male / female / unknown; blank → missing), ``age_group`` in decades ('0-9', '10-19', …;
blank → missing; age can differ between images of a lesion) and ``localization``.
"""

from __future__ import annotations

import os
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
    text_attribute,
)
from miaudit.datasets.tabular import MISSING, _listing, _rows_text
from miaudit.errors import InputError, shown_ids

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
SEXES = ("male", "female", "unknown")
METADATA = ("HAM10000_metadata", "HAM10000_metadata.csv")
#: Folders under root that hold ``<image_id>.jpg``: the two official parts, or one folder.
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images")
_COLUMNS = ("lesion_id", "image_id", "dx", "age", "sex", "localization")
_HOLDS = "one row per image: lesion_id, image_id, dx, dx_type, age, sex, localization"

INFO = LocalInfo(
    name="ham10000",
    title="HAM10000 (dermatoscopy)",
    modality="image",
    obtain="https://doi.org/10.7910/DVN/DBW86T (Harvard Dataverse; CC BY-NC 4.0)",
    layout=(
        ("HAM10000_metadata", _HOLDS + " (also as HAM10000_metadata.csv)"),
        ("HAM10000_images_part_1/<image_id>.jpg", "the images, with part 2 (or all in images/)"),
        ("HAM10000_images_part_2/<image_id>.jpg", "the rest of the images"),
    ),
    patient_id="lesion_id (the only grouping id; several images per lesion)",
    task="7 classes: akiec, bcc, bkl, df, mel, nv, vasc",
    subgroups=("sex", "age_group", "localization"),
    test_split="none (the ISIC 2018 test images are a separate download)",
    in_paper=False,
)


def _metadata(layout: Layout, path: Path) -> pd.DataFrame:
    """The metadata CSV as text; the official file has no suffix, which ``Layout.table``
    (by suffix) cannot read, so that one is read here the same way."""
    if path.suffix == ".csv":
        return layout.table(path, _COLUMNS, _HOLDS)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(
            f"{layout.where}: '{path.name}' is not readable as a comma-separated table "
            f"({type(error).__name__}); it should hold {_HOLDS}. Download it again."
        ) from error
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing or frame.empty:
        problem = f"lacks column(s) {_listing(missing)}" if missing else "has no data rows"
        raise InputError(
            f"{layout.where}: '{path.name}' {problem}; it should hold {_HOLDS}. Its columns: "
            f"{_listing([str(c) for c in frame.columns])}."
        )
    return frame.reset_index(drop=True)


def _image_paths(layout: Layout, image_ids: np.ndarray) -> list[Path]:
    """Each image's file: the first of the image folders that has ``<image_id>.jpg``."""
    found: dict[str, Path] = {}
    folders = [layout.root / f for f in IMAGE_FOLDERS if (layout.root / f).is_dir()]
    if not folders:
        raise InputError(
            f"{layout.where}: none of {_listing(list(IMAGE_FOLDERS))} is a folder; they should "
            "hold the images <image_id>.jpg. Unpack HAM10000_images_part_1.zip and "
            "HAM10000_images_part_2.zip under cohort.root."
        )
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower().endswith(".jpg"):
                    found.setdefault(entry.name[:-4], Path(entry.path))
    absent = [i for i in image_ids if i not in found]
    if absent:
        raise InputError(
            f"{layout.where}: {len(absent)} image(s) of the metadata are in none of "
            f"{_listing([f.name for f in folders])}: {shown_ids(absent, prefix='R-')} "
            "(<image_id>.jpg). Unpack both image parts of the distribution under cohort.root."
        )
    return [found[i] for i in image_ids]


def _age_groups(layout: Layout, path: Path, values: pd.Series) -> np.ndarray:
    age = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((values.notna() & (age.isna() | (age < 0))).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "age", bad, values, "ages in years (e.g. 45.0), or blank")
    decade = (age // 10 * 10).to_numpy()
    return np.array([MISSING if np.isnan(d) else f"{int(d)}-{int(d) + 9}" for d in decade],
                    dtype=object)


def load(root: Path) -> Cohort:
    """The HAM10000 cohort from the copy under ``root`` (module doc)."""
    layout = Layout("ham10000", root)
    path = layout.file(*METADATA, holds=_HOLDS)
    frame = _metadata(layout, path)
    dx = frame["dx"].str.strip()
    labels = pd.Index(CLASSES).get_indexer(dx)
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        raise layout.bad_values(path, "dx", bad, frame["dx"], ", ".join(CLASSES))
    sex = frame["sex"].str.strip()
    bad = np.flatnonzero((sex.notna() & ~sex.isin(SEXES)).to_numpy())
    if bad.size:
        raise layout.bad_values(path, "sex", bad, frame["sex"], ", ".join(SEXES) + " (or blank)")
    where = f"ham10000 '{path}'"
    image_ids = frame["image_id"].str.strip()
    blank = np.flatnonzero(image_ids.isna().to_numpy() | (image_ids == "").to_numpy())
    if blank.size:
        raise InputError(f"{where}: column 'image_id' is empty in data rows {_rows_text(blank)}; "
                         "every row names its image. Restore the original metadata file.")
    repeated = np.flatnonzero(image_ids.duplicated(keep=False).to_numpy())
    if repeated.size:
        raise InputError(f"{where}: column 'image_id' repeats values in data rows "
                         f"{_rows_text(repeated)}; each image is listed once in the official "
                         "file. Restore the original metadata file.")
    patient, patient_ids = patients(frame["lesion_id"].str.strip(), where, "lesion_id")
    record_ids = image_ids.to_numpy(dtype=object)
    attributes = pd.DataFrame({
        "sex": first_per_patient(patient, text_attribute(sex)),
        "age_group": first_per_patient(patient, _age_groups(layout, path, frame["age"])),
        "localization": first_per_patient(patient, text_attribute(frame["localization"].str.strip())),
    })
    return image_cohort(
        "ham10000",
        source=f"ham10000:{layout.root}",
        paths=_image_paths(layout, record_ids),
        record_ids=record_ids,
        patient=patient,
        patient_ids=patient_ids,
        labels=labels.astype(np.int64),
        class_names=CLASSES,
        attributes=attributes,
        holdout=None,
        channels=3,
    )
