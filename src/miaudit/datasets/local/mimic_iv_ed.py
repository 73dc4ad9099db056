"""MIMIC-IV-ED benchmark (Xie et al. 2022): hospitalisation predicted at emergency triage.

The paper audited the benchmark's first task: from the 64 variables known at triage (age,
sex, past ED / hospital / ICU visits, triage vitals and acuity, ten chief complaints, the
Charlson and Elixhauser comorbidities) predict ``outcome_hospitalization``. The cohort is
what the public mimic4ed-benchmark pipeline builds from PhysioNet's MIMIC-IV and MIMIC-IV-ED
(``extract_master_dataset.py`` → ``master_dataset.csv``; ``data_general_processing.py`` →
``train.csv`` and ``test.csv``). One record per ED stay (``stay_id``), patients by
``subject_id``.

Two layouts are read. ``train.csv`` + ``test.csv`` (preferred): every row of both is kept and
the rows of ``test.csv`` are the official test split. That split is the benchmark's random
80/20 sample of *stays* (seed 10, after its age ≥ 18 filter), so a patient can have stays in
both; the audit holds out every patient with a test stay. ``master_dataset.csv`` (or
``.csv.gz``) alone: the benchmark's cohort filter is applied, stays with ``age`` ≥ 18 are
kept (a stay under 18 or without an age is dropped, as ``df['age'] >= 18`` does), and there
is no official split: the benchmark draws it only in ``data_general_processing.py``.
Its other steps there (Fahrenheit → Celsius, clipping outliers, mean-imputing vitals) are
value transforms that miaudit does not repeat; run that script to audit the paper's values.

Missing values: the paper imputed nothing beyond the benchmark. A blank feature cell (rare
in ``train.csv``/``test.csv``, whose vitals the benchmark already imputed; common in a raw
``master_dataset.csv``) is left blank here and miaudit's table encoder
(:func:`~miaudit.datasets.tabular.cohort_from_frame`) fills it with the column's median over
the whole cohort and adds a ``<column>:missing`` 0/1 feature; a column that is constant
after that is dropped. Boolean cells (``True``/``False``, as pandas writes the chief
complaints) are read as 1/0; any other text in a feature column is an error.

Subgroups describe patients: race, sex, insurance and age of the patient's first stay (by
``intime`` where the file has it, else file order), race folded by substring (BLACK → Black,
WHITE → White, ASIAN → Asian, a later match overriding, else Other/Unknown), insurance as
Medicare / Medicaid / Other (missing and MIMIC-IV 3's Private / No charge → Other); cancer
(any stay with ``cci_Cancer1`` or ``cci_Cancer2`` = 1) and obesity (any stay with
``eci_Obesity`` = 1) as yes/no.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local import LocalInfo
from miaudit.datasets.local.layout import Layout, any_per_patient, first_per_patient, race_groups
from miaudit.datasets.tabular import TableSpec, cohort_from_frame
from miaudit.errors import InputError, shown_id

#: The 64 triage-time variables of the benchmark's hospitalisation task, in its order
#: (``gender`` is binarised: F = 1).
FEATURES: tuple[str, ...] = (
    "age", "gender_female", "n_ed_30d", "n_ed_90d", "n_ed_365d", "n_hosp_30d", "n_hosp_90d",
    "n_hosp_365d", "n_icu_30d", "n_icu_90d", "n_icu_365d", "triage_temperature",
    "triage_heartrate", "triage_resprate", "triage_o2sat", "triage_sbp", "triage_dbp",
    "triage_pain", "triage_acuity", "chiefcom_chest_pain", "chiefcom_abdominal_pain",
    "chiefcom_headache", "chiefcom_shortness_of_breath", "chiefcom_back_pain", "chiefcom_cough",
    "chiefcom_nausea_vomiting", "chiefcom_fever_chills", "chiefcom_syncope",
    "chiefcom_dizziness", "cci_MI", "cci_CHF", "cci_PVD", "cci_Stroke", "cci_Dementia",
    "cci_Pulmonary", "cci_Rheumatic", "cci_PUD", "cci_Liver1", "cci_DM1", "cci_DM2",
    "cci_Paralysis", "cci_Renal", "cci_Cancer1", "cci_Liver2", "cci_Cancer2", "cci_HIV",
    "eci_Arrhythmia", "eci_Valvular", "eci_PHTN", "eci_HTN1", "eci_HTN2", "eci_NeuroOther",
    "eci_Hypothyroid", "eci_Lymphoma", "eci_Coagulopathy", "eci_Obesity", "eci_WeightLoss",
    "eci_FluidsLytes", "eci_BloodLoss", "eci_Anemia", "eci_Alcohol", "eci_Drugs",
    "eci_Psychoses", "eci_Depression",
)
LABEL = "outcome_hospitalization"
CLASS_NAMES = ("not_hospitalized", "hospitalized")
#: Race by substring, applied in this order (a later match overrides an earlier one).
RACES = (("BLACK", "Black"), ("WHITE", "White"), ("ASIAN", "Asian"))
INSURANCE = {"Medicare": "Medicare", "Medicaid": "Medicaid", "Other": "Other",
             "Private": "Other", "No charge": "Other"}
RACE_COLUMNS = ("race", "ethnicity")  # MIMIC-IV ≥ 2.0 / the older pipeline on MIMIC-IV 1.0
_COLUMNS = ("subject_id", "stay_id", "gender", "insurance", LABEL,
            *(c if c != "gender_female" else "gender" for c in FEATURES))
_HOLDS = ("one row per ED stay: subject_id, stay_id, gender, age, race (or ethnicity), "
          "insurance, outcome_hospitalization and the 64 triage variables")
_SPLIT = "the mimic4ed-benchmark's data_general_processing.py output, " + _HOLDS

INFO = LocalInfo(
    name="mimic_iv_ed",
    title="MIMIC-IV-ED benchmark (emergency department triage)",
    modality="table",
    obtain=("https://physionet.org/content/mimic-iv-ed/ and https://physionet.org/content/"
            "mimiciv/ (credentialed access, PhysioNet Credentialed Health Data Use Agreement "
            "1.5.0), then the pipeline https://github.com/nliulab/mimic4ed-benchmark"),
    layout=(
        ("train.csv", "the benchmark's training stays (data_general_processing.py): " + _HOLDS),
        ("test.csv", "the benchmark's test stays, same columns: the official test split"),
        ("master_dataset.csv[.gz]", "instead of train/test: extract_master_dataset.py's "
         "output (stays with age >= 18 kept; no official split)"),
    ),
    patient_id="subject_id",
    task="hospitalisation after the ED stay (outcome_hospitalization), binary",
    subgroups=("race", "sex", "insurance", "cancer", "obesity", "age"),
    test_split=("test.csv (the benchmark's random 80/20 stay split, seed 10); none with "
                "master_dataset.csv alone (run data_general_processing.py for it)"),
)


def _race_column(layout: Layout, path: Path, frame: pd.DataFrame) -> str:
    for column in RACE_COLUMNS:
        if column in frame.columns:
            return column
    raise InputError(
        f"{layout.where}: '{path.name}' lacks column 'race' (or 'ethnicity', its name in the "
        "pipeline's MIMIC-IV 1.0 version); it should hold each stay's race from MIMIC-IV "
        "admissions. Rebuild the file with the mimic4ed-benchmark pipeline."
    )


def _numbers(layout: Layout, path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    """A feature column as float (True/False → 1/0, blank → NaN); other text is an error."""
    text = frame[column].str.strip()
    folded = text.str.lower().replace({"true": "1", "false": "0"})
    values = pd.to_numeric(folded, errors="coerce")
    bad = np.flatnonzero((text.notna() & values.isna()).to_numpy())
    if bad.size:
        raise layout.bad_values(
            path, column, bad, frame[column],
            "numbers, True/False, or blank where not recorded (a raw master_dataset.csv can "
            "hold MIMIC-IV-ED's free-text triage pain: use the benchmark's train.csv/test.csv)")
    return values.to_numpy(dtype=np.float64)


def _coded(layout: Layout, path: Path, frame: pd.DataFrame, column: str,
           coding: dict[str, object], expected: str, blank: object = None,
           casefold: bool = False) -> np.ndarray:
    """A column mapped through its official ``coding`` (blank → ``blank`` if given)."""
    text = frame[column].str.strip()
    mapped = (text.str.lower() if casefold else text).map(coding)
    if blank is not None:
        mapped = mapped.where(text.notna(), blank)
    bad = np.flatnonzero(mapped.isna().to_numpy())
    if bad.size:
        raise layout.bad_values(path, column, bad, frame[column], expected)
    return mapped.to_numpy(dtype=object)


def _race(values: pd.Series) -> np.ndarray:
    return race_groups(values.fillna("").astype(str).str.upper(), RACES)


def _read(layout: Layout, path: Path, holds: str) -> pd.DataFrame:
    """One file's stays: ids, label, features as numbers and the raw attribute columns."""
    frame = layout.table(path, _COLUMNS, holds)
    race = _race_column(layout, path, frame)
    out = pd.DataFrame({"file": path.name, "row": np.arange(len(frame))})
    for column in ("subject_id", "stay_id"):
        out[column] = frame[column].str.strip()
        blank = np.flatnonzero(out[column].isna().to_numpy() | (out[column] == "").to_numpy())
        if blank.size:
            raise layout.bad_values(path, column, blank, frame[column], "a MIMIC-IV id in every row")
    out[LABEL] = _coded(layout, path, frame, LABEL, {"true": 1, "false": 0, "1": 1, "0": 0},
                        "True/False (or 1/0)", casefold=True).astype(np.int64)
    for column in FEATURES:
        if column == "gender_female":
            out[column] = _coded(layout, path, frame, "gender", {"F": 1.0, "M": 0.0},
                                 "'M' or 'F'").astype(np.float64)
        else:
            out[column] = _numbers(layout, path, frame, column)
    out["race"] = _race(frame[race])
    out["sex"] = np.where(out["gender_female"].to_numpy() == 1, "Female", "Male").astype(object)
    out["insurance"] = _coded(layout, path, frame, "insurance", INSURANCE,
                              "'Medicare', 'Medicaid' or 'Other' ('Private', 'No charge' in "
                              "MIMIC-IV 3), blank for a stay without admission", blank="Other")
    out["intime"] = frame["intime"].str.strip() if "intime" in frame.columns else np.nan
    return out


def _files(layout: Layout) -> tuple[list[Path], str]:
    """The benchmark's train.csv + test.csv, else master_dataset.csv[.gz]."""
    first = layout.file("train.csv", "master_dataset.csv", "master_dataset.csv.gz",
                        holds="the benchmark's cohort: train.csv and test.csv from "
                        "data_general_processing.py, or master_dataset.csv from "
                        "extract_master_dataset.py")
    if first.name == "train.csv" or layout.optional("test.csv") is not None:
        return [layout.file("train.csv", holds="the training stays, " + _SPLIT),
                layout.file("test.csv", holds="the test stays (official test split), " + _SPLIT)
                ], "split"
    return [first], "master"


def load(root: Path) -> Cohort:
    """The paper's MIMIC-IV-ED cohort from the copy under ``root`` (module doc)."""
    layout = Layout("mimic_iv_ed", root)
    paths, kind = _files(layout)
    parts = [_read(layout, path, INFO.layout[0 if kind == "split" else 2][1]) for path in paths]
    if kind == "master":
        parts[0] = parts[0][(parts[0]["age"] >= 18).to_numpy()].reset_index(drop=True)
        if parts[0].empty:
            raise InputError(f"{layout.where}: '{paths[0].name}' has no stay with age >= 18; "
                             "the benchmark's cohort is adults only. Check the file.")
    frame = pd.concat(parts, ignore_index=True)
    repeated = frame["stay_id"].duplicated(keep=False).to_numpy()
    if repeated.any():
        same = frame[frame["stay_id"] == frame["stay_id"][repeated].iloc[0]]
        rows = ", ".join(f"'{f}' row {r + 1}" for f, r in zip(same["file"], same["row"], strict=True))
        raise InputError(f"{layout.where}: stay_id {shown_id(same['stay_id'].iloc[0], 'R-')} is listed more "
                         f"than once ({rows}); each ED stay is one row of the benchmark's files. "
                         "Restore the original files.")
    names = " + ".join(p.name for p in paths)
    spec = TableSpec.model_validate({"path": paths[0], "label": LABEL, "patient_id": "subject_id",
                                     "record_id": "stay_id", "features": list(FEATURES)})
    cohort = cohort_from_frame(frame[["subject_id", "stay_id", LABEL, *FEATURES]], spec,
                               name="mimic_iv_ed", source=f"mimic_iv_ed:{layout.root} ({names})")
    patient = cohort.patient
    intime = frame["intime"]
    order = None
    if intime.notna().any():
        key = intime.fillna("\uffff").astype(str).to_numpy()
        order = np.argsort(np.argsort(key, kind="stable"), kind="stable")
    cancer = (frame["cci_Cancer1"] == 1).to_numpy() | (frame["cci_Cancer2"] == 1).to_numpy()
    obesity = (frame["eci_Obesity"] == 1).to_numpy()
    attributes = pd.DataFrame({
        **{c: first_per_patient(patient, frame[c], order).astype(str).astype(object)
           for c in ("race", "sex", "insurance")},
        "cancer": np.where(any_per_patient(patient, cancer), "yes", "no").astype(object),
        "obesity": np.where(any_per_patient(patient, obesity), "yes", "no").astype(object),
        "age": first_per_patient(patient, frame["age"], order).astype(np.float64),
    })
    holdout = None
    if kind == "split":
        holdout = np.repeat([False, True], [len(parts[0]), len(parts[1])])
    return replace(cohort, attributes=attributes, class_names=CLASS_NAMES, holdout=holdout)
