"""A tiny MIMIC-IV-ED benchmark copy: ``train.csv`` + ``test.csv`` (data_general_processing.py)
or ``master_dataset.csv[.gz]`` (extract_master_dataset.py), columns and codes as the pipeline
writes them (booleans as True/False, comorbidities as 0/1, blanks for missing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: The benchmark's 64 triage variables as named in its files (``gender`` is M/F there).
SOURCE_FEATURES = [
    "age", "gender", "n_ed_30d", "n_ed_90d", "n_ed_365d", "n_hosp_30d", "n_hosp_90d",
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
]
FEATURE_NAMES = ["gender_female" if c == "gender" else c for c in SOURCE_FEATURES]

# subject, gender, then per stay: stay_id, intime, split, age, race, insurance, hospitalised,
# comorbidity flags set to 1. Files list stays in the order given here (not by time).
PATIENTS = [
    ("10000032", "F", [
        ("30000102", "2180-07-23 05:54:00", "train", 52, "WHITE", None, False, ("cci_Cancer1",)),
        ("30000103", "2181-01-11 10:00:00", "train", 53, "WHITE", "Medicaid", True, ()),
        ("30000101", "2180-05-06 19:17:00", "test", 52, "WHITE", "Medicare", True, ()),
    ]),
    ("10000084", "M", [
        ("30000201", "2160-11-20 20:36:00", "train", 72, "BLACK/AFRICAN AMERICAN", "Medicaid",
         True, ()),
        ("30000202", "2160-12-27 18:32:00", "train", 72, "BLACK/AFRICAN AMERICAN", None, False,
         ("eci_Obesity",)),
    ]),
    ("10000117", "F", [
        ("30000303", "2184-02-02 08:15:00", "train", 49, "OTHER", "Medicare", True,
         ("cci_Cancer2",)),
        ("30000301", "2183-09-18 08:41:00", "train", 48, "ASIAN - CHINESE", None, False, ()),
        ("30000302", "2183-10-01 17:30:00", "test", 48, "ASIAN - CHINESE", "Other", True, ()),
    ]),
    ("10000248", "M", [
        ("30000401", "2192-03-03 12:00:00", "test", 34, "HISPANIC/LATINO - PUERTO RICAN",
         "Other", False, ()),
    ]),
    ("10000560", "F", [
        ("30000501", "2189-10-01 04:12:00", "train", 67, None, "Medicare", True, ()),
        ("30000502", "2189-10-15 22:40:00", "train", 67, None, None, False, ()),
    ]),
    ("10000635", "M", [
        ("30000601", "2136-06-10 09:09:00", "train", 80, "UNKNOWN", "Private", True, ()),
        ("30000602", "2137-01-20 14:00:00", "test", 81, "UNKNOWN", "Medicaid", False, ()),
    ]),
    ("10000690", "M", [
        ("30000701", "2150-11-02 01:00:00", "train", 86, "WHITE - RUSSIAN", "Medicare", False,
         ("eci_Obesity",)),
        ("30000702", "2151-03-07 11:11:00", "train", 86, "WHITE - RUSSIAN", "Medicare", True, ()),
    ]),
]
#: A child's stay, in master_dataset.csv only (the benchmark keeps age >= 18).
CHILD = ("10000800", "F", [("30000801", "2170-01-01 00:00:00", "train", 16, "WHITE", None,
                            False, ())])
#: What each patient's subgroups are (written by hand, from the rules in the adapter's doc).
ATTRIBUTES = {
    "10000032": ("White", "Female", "Medicare", "yes", "no", 52.0),
    "10000084": ("Black", "Male", "Medicaid", "no", "yes", 72.0),
    "10000117": ("Asian", "Female", "Other", "yes", "no", 48.0),
    "10000248": ("Other/Unknown", "Male", "Other", "no", "no", 34.0),
    "10000560": ("Other/Unknown", "Female", "Medicare", "no", "no", 67.0),
    "10000635": ("Other/Unknown", "Male", "Other", "no", "no", 80.0),
    "10000690": ("White", "Male", "Medicare", "no", "yes", 86.0),
}
ATTRIBUTE_NAMES = ("race", "sex", "insurance", "cancer", "obesity", "age")
#: Stays whose triage values are blank in master_dataset.csv (the benchmark imputes them later).
BLANKS = {"30000102": "triage_temperature", "30000401": "triage_pain", "30000602": "triage_o2sat"}


@dataclass
class Expected:
    record_ids: list[str]
    patient_ids: list[str]  # per record
    labels: list[int]  # 1 = hospitalised
    attributes: dict[str, list]  # per record
    holdout: list[bool] | None
    features: pd.DataFrame  # per record, FEATURE_NAMES, numbers as written (NaN = blank)
    files: list[str]


def _row(i: int, subject: str, gender: str, stay: tuple, master: bool, race_column: str,
         label: str) -> tuple[dict, dict]:
    stay_id, intime, _, age, race, insurance, hosp, flags = stay
    fahrenheit = master  # the raw triage table is in °F; the benchmark converts to °C
    temperature = 98.0 + i / 10 if fahrenheit else 36.5 + i / 20
    values: dict[str, object] = {
        "age": age, "gender": gender,
        "n_ed_30d": i % 2, "n_ed_90d": i % 3, "n_ed_365d": i % 5, "n_hosp_30d": i % 2,
        "n_hosp_90d": (i + 1) % 3, "n_hosp_365d": i % 4, "n_icu_30d": 0, "n_icu_90d": i % 2,
        "n_icu_365d": (i + 1) % 2,
        "triage_temperature": round(temperature, 2), "triage_heartrate": 60.0 + 3 * i,
        "triage_resprate": 14.0 + i % 6, "triage_o2sat": 100.0 - i % 5,
        "triage_sbp": 110.0 + 2 * i, "triage_dbp": 70.0 + i, "triage_pain": float(i % 11),
        "triage_acuity": float(1 + i % 5),
    }
    for j, column in enumerate(SOURCE_FEATURES[19:29]):
        values[column] = (i + j) % 4 == 0
    for column in SOURCE_FEATURES[29:]:
        values[column] = int(column in flags)
    values["eci_HTN2"] = i % 2
    if master and stay_id in BLANKS:
        values[BLANKS[stay_id]] = np.nan
    labels = {"bool": hosp, "int": int(hosp)}[label]
    row = {
        "index": 1000 + i, "subject_id": subject, "hadm_id": 20000000 + i if hosp else np.nan,
        "stay_id": stay_id, "intime": intime, "outtime": intime, "anchor_age": age,
        race_column: race if race is not None else np.nan,
        "insurance": insurance if insurance is not None else np.nan,
        "outcome_critical": False, "outcome_hospitalization": labels,
        "outcome_ed_revisit_3d": False, "chiefcomplaint": "Chest pain",
        **values,
        "eci_CHF": 0, "eci_Tumor1": 0, "n_med": i % 3, "triage_MAP": 90.0,
    }
    feats = {("gender_female" if k == "gender" else k): v for k, v in values.items()}
    feats["gender_female"] = 1.0 if gender == "F" else 0.0
    return row, {k: float(feats[k]) for k in FEATURE_NAMES}


def write(root: Path, layout: str = "split", gz: bool = False, race_column: str = "race",
          label: str = "bool") -> Expected:
    """``layout`` "split" writes train.csv + test.csv, "master" master_dataset.csv (``gz``:
    .csv.gz; sorted by subject and time as the pipeline writes it, with a child's stay)."""
    root.mkdir(parents=True, exist_ok=True)
    master = layout == "master"
    patients = [*PATIENTS, CHILD] if master else PATIENTS
    stays = [(s, g, stay) for s, g, ss in patients for stay in ss]
    if master:
        stays.sort(key=lambda x: (x[0], x[2][1]))
    rows = {"train": [], "test": [], "master": []}
    kept: dict[str, list] = {"train": [], "test": [], "master": []}
    for i, (subject, gender, stay) in enumerate(stays):
        row, feats = _row(i, subject, gender, stay, master, race_column, label)
        part = "master" if master else stay[2]
        rows[part].append(row)
        if stay[3] >= 18:
            kept[part].append((subject, stay, feats))
    order = ["master"] if master else ["train", "test"]
    files = []
    for part in order:
        name = f"{part}.csv" if not master else "master_dataset.csv" + (".gz" if gz else "")
        pd.DataFrame(rows[part]).to_csv(root / name, index=False)
        files.append(name)
    records = [r for part in order for r in kept[part]]
    attributes = {a: [ATTRIBUTES[s][k] for s, _, _ in records] for k, a in
                  enumerate(ATTRIBUTE_NAMES)}
    return Expected(
        record_ids=[stay[0] for _, stay, _ in records],
        patient_ids=[s for s, _, _ in records],
        labels=[int(stay[6]) for _, stay, _ in records],
        attributes=attributes,
        holdout=None if master else [stay[2] == "test" for _, stay, _ in records],
        features=pd.DataFrame([f for _, _, f in records], columns=FEATURE_NAMES),
        files=files,
    )
