"""A tiny EMBED Open Data copy: ``tables/`` with the clinical (one row per finding) and metadata
(one row per DICOM file) CSVs, and mammogram DICOM files at their ``anon_dicom_path``.

Nine patients; the paper's filters keep six of them (16 images): a diagnostic exam, a
density-5 exam, a blank density, a blank race, a male patient, an exam without images, an
XCCL view and a metadata row listed twice are all dropped. One patient's exam has two
finding rows with different assessments (the first one counts, as the paper's
de-duplication keeps it), one patient's exams are not in date order in the file (age is
the earliest exam's), one patient id starts with 0 (ids stay as written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PREFIX = "/mnt/NAS2/mammo/anon_dicom/"
MAMMO = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image For Presentation

# (empi_anon, RACE_DESC, GENDER_DESC) per patient.
PATIENTS = [
    ("10000001", "African American  or Black", "Female"),
    ("10000002", "Caucasian or White", "Female"),
    ("10000003", "Asian", "Female"),
    ("10000004", None, "Female"),
    ("10000005", "Caucasian or White", "Male"),
    ("10000006", "Native Hawaiian or Other Pacific Islander", "Female"),
    ("01000007", "African American or Black", "Female"),
    ("10000008", "Unknown, Unavailable or Unreported", "Female"),
    ("10000009", "Caucasian or White", "Female"),
]
# Clinical rows in file order: (empi, acc, desc, tissueden, asses, age, numfind, views).
# ``views`` are the exam's images (written once per exam, on its first finding row).
EXAMS = [
    ("10000001", "20000011", "MG Screening Bilateral", "2.0", "N", "51.2", 1, ["CC", "MLO"]),
    ("10000001", "20000012", "MG Screen Bilat w/ Tomo", "3.0", "N", "52.3", 1,
     ["CC", "MLO", "XCCL"]),
    ("10000001", "20000012", "MG Screen Bilat w/ Tomo", "3.0", "A", "52.3", 2, None),
    ("10000002", "20000021", "MG Diagnostic Left", "2.0", "S", "63.1", 1, ["CC", "MLO"]),
    ("10000002", "20000022", "MG SCREENING BILATERAL", "1.0", "B", "64.0", 1, ["CC", "MLO"]),
    ("10000003", "20000031", "MG Screening Bilateral", "5.0", "N", "44.0", 1, ["CC", "MLO"]),
    ("10000003", "20000032", "MG Screening Bilateral", "4.0", "N", "45.5", 1, ["CC", "MLO"]),
    ("10000004", "20000041", "MG Screening Bilateral", "2.0", "N", "50.0", 1, ["CC", "MLO"]),
    ("10000005", "20000051", "MG Screening Bilateral", "2.0", "N", "66.0", 1, ["CC", "MLO"]),
    ("10000006", "20000061", "MG Screening Bilateral", None, "N", "69.0", 1, ["CC", "MLO"]),
    ("10000006", "20000062", "MG Screening Bilateral", "2.0", "N", "70.1", 1, ["MLO", "CC"]),
    ("01000007", "20000072", "MG Screening Bilateral", "3.0", "P", "59.0", 1, ["CC", "MLO"]),
    ("01000007", "20000071", "MG Screening Bilateral", "3.0", "N", "58.0", 1, ["CC", "MLO"]),
    ("10000008", "20000081", "MG Screening Bilateral", "1.0", None, "40.0", 1, ["CC", "MLO"]),
    ("10000009", "20000091", "MG Screening Bilateral", "2.0", "N", "55.0", 1, None),
]
#: The exam whose CC image the metadata lists twice.
TWICE = "20000022"

#: The cohort's patients, in cohort order, with race, age and any-non-negative flag.
KEPT = {
    "10000001": ("Black", 51.2, "no"),
    "10000002": ("White", 64.0, "yes"),
    "10000003": ("Asian", 45.5, "no"),
    "10000006": ("Other/Unknown", 70.1, "no"),
    "01000007": ("Black", 58.0, "yes"),
    "10000008": ("Other/Unknown", 40.0, "missing"),
}
KEPT_EXAMS = {"20000011", "20000012", "20000022", "20000032", "20000062", "20000072",
              "20000071", "20000081"}


@dataclass
class Expected:
    """What the adapter should give for this copy."""

    record_ids: list[str] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)  # per record
    labels: list[int] = field(default_factory=list)
    race: list[str] = field(default_factory=list)
    age: list[float] = field(default_factory=list)
    any_non_negative: list[str] = field(default_factory=list)
    holdout: list[bool] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the DICOM file of each record
    clinical: Path = Path()
    metadata: Path = Path()


def _write_dicom(path: Path, pixels: np.ndarray, uid: str, patient: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MAMMO, uid
    ds.PatientID, ds.Modality = patient, "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _pixels(i: int) -> np.ndarray:
    """A 24×20 12-bit image of its own: a gradient at an angle plus noise seeded by i."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:24, 0:20]
    angle = 0.4 * i
    ramp = np.cos(angle) * y / 23 + np.sin(angle) * x / 19
    image = ramp - ramp.min() + 0.3 * rng.random((24, 20))
    return np.rint(4095 * image / image.max()).astype(np.uint16)


def write(root: Path, *, reduced: bool = True, images: str = "cohort") -> Expected:
    """Write the copy under ``root``. ``reduced``: the ``_reduced`` tables (the paper's), else
    the full names; ``images``: where the DICOM files lie — ``cohort`` (``cohort_1/…``, the
    data descriptor's layout), ``images`` (``images/cohort_1/…``, the S3 bucket's) or
    ``literal`` (``anon_dicom_path`` as written, relative to root)."""
    root = Path(root)
    race = {p: r for p, r, _ in PATIENTS}
    gender = {p: g for p, _, g in PATIENTS}
    suffix = "_reduced" if reduced else ""
    clinical_rows, metadata_rows, written = [], [], {}
    image = 0
    for empi, acc, desc, density, asses, age, numfind, views in EXAMS:
        clinical_rows.append({
            "empi_anon": empi, "acc_anon": acc, "desc": desc, "numfind": numfind,
            "side": "B" if numfind == 1 else "L", "asses": asses, "tissueden": density,
            "bside": None, "GENDER_DESC": gender[empi], "RACE_DESC": race[empi],
            "ETHNIC_GROUP_DESC": "Non-Hispanic or Latino", "MARITAL_STATUS_DESC": "Married",
            "age_at_study": age, "study_date_anon": f"2018-0{numfind}-1{acc[-1]}",
            "procdate_anon": None, "cohort_num": 1, "path_severity": None,
            "total_L_find": 0, "total_R_find": 0, "first_3_zip": "303",
        })
        for view in views or []:
            image += 1
            sop = f"1.2.826.0.1.3680043.8.498.{image}"
            anon = f"{PREFIX}cohort_1/{empi}/1.2.847.{acc}/1.2.844.{acc}.{view}/{sop}.dcm"
            row = {
                "empi_anon": empi, "acc_anon": acc, "cohort_num": 1,
                "study_date_anon": "2018-01-10", "StudyDescription": desc,
                "SeriesDescription": f"{view} view", "FinalImageType": "2D",
                "ImageLateralityFinal": "L" if image % 2 else "R", "ViewPosition": view,
                "spot_mag": None, "anon_dicom_path": anon, "num_roi": 0, "ROI_coords": "()",
                "SRC_DST": None, "match_level": None, "Manufacturer": "HOLOGIC, Inc.",
                "ManufacturerModelName": "Selenia Dimensions", "PatientSex": "F",
            }
            metadata_rows.append(row)
            if acc == TWICE and view == "CC":
                metadata_rows.append(dict(row))
            written[anon] = (image, empi)
    tables = root / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    clinical = tables / f"EMBED_OpenData_clinical{suffix}.csv"
    metadata = tables / f"EMBED_OpenData_metadata{suffix}.csv"
    # As distributed: a leading unnamed index column; the metadata in its own order.
    pd.DataFrame(clinical_rows).to_csv(clinical, index=True)
    pd.DataFrame(metadata_rows[::-1]).to_csv(metadata, index=True)
    folder = {"cohort": root, "images": root / "images"}.get(images)
    expected = Expected(clinical=clinical, metadata=metadata)
    for anon, (i, empi) in written.items():
        tail = anon.removeprefix(PREFIX)
        path = folder / tail if folder is not None else root / anon.lstrip("/")
        _write_dicom(path, _pixels(i), anon.rsplit("/", 1)[1][:-4], empi)
        written[anon] = (i, empi, path)
    # Records: the kept exams in clinical order, each exam's images in metadata file order.
    in_file = list(dict.fromkeys(r["anon_dicom_path"] for r in metadata_rows[::-1]))
    seen: set[str] = set()
    for _, acc, _, density, *_rest in EXAMS:
        if acc not in KEPT_EXAMS or acc in seen:
            continue
        seen.add(acc)
        for anon in in_file:
            if f"/1.2.847.{acc}/" not in anon or anon.split("/")[-2].endswith("XCCL"):
                continue
            _, owner, path = written[anon]
            group, age, flag = KEPT[owner]
            expected.record_ids.append(anon)
            expected.patient_ids.append(owner)
            expected.labels.append(int(float(density)) - 1)
            expected.race.append(group)
            expected.age.append(age)
            expected.any_non_negative.append(flag)
            expected.files.append(path)
    # The paper's draw: legacy numpy seeded 420 over the patients in cohort order; six
    # patients hold out a tenth, rounded up (one).
    state = np.random.get_state()  # noqa: NPY002 (restored below)
    np.random.seed(420)  # noqa: NPY002 (the paper's call)
    held = set(np.random.choice(pd.unique(np.array(expected.patient_ids)), 1,  # noqa: NPY002
                                replace=False))
    np.random.set_state(state)  # noqa: NPY002
    expected.holdout = [p in held for p in expected.patient_ids]
    return expected
