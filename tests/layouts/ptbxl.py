"""A tiny PTB-XL 1.0.3 copy: ``ptbxl_database.csv``, ``scp_statements.csv``, 100 Hz WFDB records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
#: SCP statements: code → (diagnostic, diagnostic_class); SR and PACE are not diagnostic.
STATEMENTS = {
    "NORM": (1.0, "NORM"), "IMI": (1.0, "MI"), "ASMI": (1.0, "MI"), "NDT": (1.0, "STTC"),
    "LAFB": (1.0, "CD"), "LVH": (1.0, "HYP"), "SR": (None, None), "PACE": (None, None),
}
#: Each record's scp_codes (likelihoods as written by PTB-XL, 0.0 included).
CODES = [
    {"NORM": 100.0, "SR": 0.0}, {"IMI": 50.0, "SR": 0.0}, {"NDT": 100.0}, {"LAFB": 100.0, "LVH": 0.0},
    {"NORM": 80.0}, {"ASMI": 15.0, "NDT": 35.0}, {"SR": 0.0}, {"LVH": 100.0, "PACE": 100.0},
]


@dataclass
class Expected:
    record_ids: list[str]
    patient_of_record: list[str]
    labels: np.ndarray  # [N, 5]
    sex: dict[str, str]  # patient → sex
    age: dict[str, float]
    extra_beats: dict[str, str]
    superclass: dict[str, str]
    test: list[str]  # record ids in fold 10
    signals: dict[str, np.ndarray]  # record id → [12, 1000] mV as written


def write(root: Path, patients: int = 14, seed: int = 0) -> Expected:
    """Two ECGs for the first few patients, one for the rest; the last two patients in fold 10."""
    import wfdb

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, signals = [], {}
    ecg = 0
    t = np.arange(1000) / 100.0
    for p in range(patients):
        pid = f"{15709 + 37 * p}.0"  # PTB-XL writes patient_id as a float
        for visit in range(2 if p < 5 else 1):
            ecg += 1
            codes = CODES[(p + visit) % len(CODES)]
            labels = [int(any(STATEMENTS[c][1] == s for c in codes)) for s in SUPERCLASSES]
            wave = np.stack([np.sin(2 * np.pi * (1 + j / 4 + 0.5 * labels[1]) * t) * (0.5 + labels[0])
                             for j in range(12)])
            wave = np.round(wave + 0.05 * rng.standard_normal(wave.shape), 3)
            name = f"{ecg:05d}_lr"
            folder = root / "records100" / f"{(ecg // 1000) * 1000:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(name, fs=100, units=["mV"] * 12, sig_name=LEADS, p_signal=wave.T,
                        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                        write_dir=str(folder))
            signals[str(ecg)] = wave
            rows.append({
                "ecg_id": ecg, "patient_id": pid,
                "age": 300.0 if p == 3 else float(40 + p + visit), "sex": p % 2,
                "height": np.nan, "weight": 70.0, "nurse": np.nan, "site": 0.0,
                "device": "CS-12   E", "recording_date": f"1990-01-{visit + 1:02d} 10:00:00",
                "report": "sinusrhythmus", "scp_codes": repr(codes), "heart_axis": np.nan,
                "validated_by_human": True,
                "extra_beats": "1ES" if (p == 2 and visit == 1) else np.nan,
                "pacemaker": np.nan,
                "strat_fold": 10 if p >= patients - 2 else 1 + p % 9,
                "filename_lr": f"records100/{(ecg // 1000) * 1000:05d}/{name}",
                "filename_hr": f"records500/{(ecg // 1000) * 1000:05d}/{ecg:05d}_hr",
            })
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "ptbxl_database.csv", index=False)
    statements = pd.DataFrame(
        {"description": list(STATEMENTS), "diagnostic": [v[0] for v in STATEMENTS.values()],
         "form": np.nan, "rhythm": np.nan,
         "diagnostic_class": [v[1] for v in STATEMENTS.values()]},
        index=list(STATEMENTS),
    )
    statements.to_csv(root / "scp_statements.csv")  # the code is the unnamed first column
    labels = np.array([[int(any(STATEMENTS[c][1] == s for c in eval(r["scp_codes"])))
                        for s in SUPERCLASSES] for r in rows], dtype=np.int64)
    by_patient: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_patient.setdefault(r["patient_id"], []).append(i)
    sex = {p: ("male" if rows[ix[0]]["sex"] == 0 else "female") for p, ix in by_patient.items()}
    age = {p: min(rows[ix[0]]["age"], 90.0) for p, ix in by_patient.items()}
    extra = {p: "yes" if any(isinstance(rows[i]["extra_beats"], str) for i in ix) else "no"
             for p, ix in by_patient.items()}
    union = {p: "+".join(sorted(s for j, s in enumerate(SUPERCLASSES) if labels[ix, j].any())) or "none"
             for p, ix in by_patient.items()}
    return Expected(
        record_ids=[str(r["ecg_id"]) for r in rows],
        patient_of_record=[r["patient_id"] for r in rows],
        labels=labels, sex=sex, age=age, extra_beats=extra, superclass=union,
        test=[str(r["ecg_id"]) for r in rows if r["strat_fold"] == 10],
        signals=signals,
    )
