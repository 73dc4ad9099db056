"""A small but consistent run directory built from synthetic arrays, for report and gate tests.

Every file an audit writes is here, computed from one set of arrays, so that anything the
report or the gate recomputes from the files must agree with what a test recomputes itself.
A planted set of patients (all on Medicaid) has records whose membership scores separate IN
from OUT almost perfectly; everyone else is barely distinguishable from chance. That is the
situation the audit exists to show: an aggregate AUC near 0.5 hiding a few exposed patients.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit import risk
from miaudit.plan import make_plan
from miaudit.results.redact import redact_ids
from miaudit.results.store import (
    write_csv,
    write_json,
    write_npy,
    write_npz,
    write_parquet,
    write_text,
)

NUM_PATIENTS = 500
NUM_MODELS = 16
PLANTED = 10
PLANTED_ATTRIBUTE = "insurance"
PLANTED_GROUP = "Medicaid"
ATTACKS = ("lira", "loss")
THRESHOLDS = (0.8, 0.9, 0.95, 0.99)
TOP_FRACTION = 0.02
REDACTION_KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
COHORT_NAME = "synthetic <ed> & co"


def _attributes(rng: np.random.Generator, num_patients: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], size=num_patients),
            "race": rng.choice(
                ["white", "black", "other"], size=num_patients, p=[0.75, 0.17, 0.08]
            ),
            "insurance": rng.choice(
                ["Private", "Medicare", "Medicaid"], size=num_patients, p=[0.5, 0.35, 0.15]
            ),
            "age": rng.integers(18, 91, size=num_patients).astype(np.int64),
            # as in SurvSet's RHC cohort: dollar signs and angle brackets in subgroup names
            "income": rng.choice(["<$11k", "$11-$25k", "$25-$50k", ">$50k"], size=num_patients),
        }
    )


def make_fake_run(
    tmp_path: Path,
    *,
    redacted: bool = False,
    seed: int = 0,
    num_patients: int = NUM_PATIENTS,
    num_models: int = NUM_MODELS,
    with_attributes: bool = True,
) -> Path:
    """Write a complete run directory under ``tmp_path`` and return its path."""
    rng = np.random.default_rng(seed)
    run = Path(tmp_path) / f"run-{seed}{'-redacted' if redacted else ''}"
    run.mkdir(parents=True, mode=0o700)

    per_patient = rng.choice([1, 2, 3], size=num_patients, p=[0.6, 0.3, 0.1])
    patient = np.repeat(np.arange(num_patients), per_patient).astype(np.int64)
    n = patient.size
    pattr = _attributes(rng, num_patients)
    group = np.flatnonzero(pattr[PLANTED_ATTRIBUTE].to_numpy() == PLANTED_GROUP)
    planted = np.sort(rng.choice(group, size=PLANTED, replace=False))
    atypical = rng.choice(np.setdiff1d(np.arange(num_patients), planted), size=15, replace=False)

    plan = make_plan(num_patients, num_models, seed)
    targets = np.arange(num_models, dtype=np.int64)
    membership = plan.keep[targets][:, patient]

    shift = np.full(n, 0.08)
    shift[np.isin(patient, atypical)] = 1.2
    shift[np.isin(patient, planted)] = 6.0
    scores = {}
    for k, name in enumerate(ATTACKS):
        strength = 1.0 if k == 0 else 0.5
        s = rng.normal(size=(len(targets), n)) + strength * shift * membership
        s[rng.random(s.shape) < 0.003] = np.nan  # a few undefined scores
        scores[name] = s.astype(np.float32)

    patient_numbers = rng.permutation(np.arange(10_000, 10_000 + num_patients))
    patient_ids = np.array([f"PT-{i}" for i in patient_numbers], dtype=object)
    record_ids = np.array([f"REC-{i:06d}" for i in range(n)], dtype=object)
    if redacted:
        patient_ids = redact_ids(patient_ids, REDACTION_KEY, "P-")
        record_ids = redact_ids(record_ids, REDACTION_KEY, "R-")

    labels = rng.choice(["alive", "died"], size=n, p=[0.65, 0.35])
    records = pd.DataFrame(
        {
            "record_id": record_ids,
            "patient": patient,
            "patient_id": patient_ids[patient],
            "label": labels,
        }
    )
    patients = pd.DataFrame(
        {
            "patient": np.arange(num_patients, dtype=np.int64),
            "patient_id": patient_ids,
            "records": per_patient.astype(np.int64),
        }
    )
    metrics = {}
    first = True
    for name in ATTACKS:
        rec = risk.record_auc(scores[name], membership)
        exposure, se = risk.patient_exposure(rec.auc, patient, se=rec.se, num_patients=num_patients)
        records[f"auc_{name}"] = rec.auc
        records[f"se_{name}"] = rec.se
        if first:
            records["n_in"] = rec.n_in.astype(np.int64)
            records["n_out"] = rec.n_out.astype(np.int64)
            patients["exposure"] = exposure
            patients["se"] = se
            first = False
        patients[f"exposure_{name}"] = exposure
        patients[f"se_{name}"] = se
        m = risk.attack_metrics(scores[name], membership)
        m["high_risk"] = risk.high_risk_counts(exposure, THRESHOLDS)
        metrics[name] = m
    if with_attributes:
        records = pd.concat(
            [records, pattr.iloc[patient].reset_index(drop=True).add_prefix("attr_")], axis=1
        )
        patients = pd.concat([patients, pattr.add_prefix("attr_")], axis=1)

    auroc = np.clip(rng.normal(0.78, 0.02, size=num_models), 0, 1)
    models = pd.DataFrame(
        {
            "model": np.arange(num_models, dtype=np.int64),
            "train_records": plan.keep[:, patient].sum(axis=1).astype(np.int64),
            "train_accuracy": np.clip(rng.normal(0.92, 0.01, size=num_models), 0, 1),
            "test_accuracy": np.clip(rng.normal(0.74, 0.015, size=num_models), 0, 1),
            "test_auroc": auroc,
        }
    )
    cohort = {
        "name": COHORT_NAME,
        "source": "synthetic",
        "records": int(n),
        "patients": int(num_patients),
        "classes": ["alive", "died"],
        "features": 12,
        "modality": "tabular",
        "attributes": list(pattr.columns) if with_attributes else [],
    }
    fingerprint = hashlib.sha256(f"fake-data-{seed}".encode()).hexdigest()
    config_hash = hashlib.sha256(f"fake-config-{seed}".encode()).hexdigest()
    summary = {
        "primary_attack": ATTACKS[0],
        "attacks": metrics,
        "diagnostic": {
            "auroc_mean": float(models["test_auroc"].mean()),
            "auroc_std": float(models["test_auroc"].std(ddof=1)),
            "accuracy_mean": float(models["test_accuracy"].mean()),
            "accuracy_std": float(models["test_accuracy"].std(ddof=1)),
            "train_accuracy_mean": float(models["train_accuracy"].mean()),
        },
        "patient_aggregate": "max",
        "record_auc": "empirical",
        "thresholds": list(THRESHOLDS),
        "top_fraction": TOP_FRACTION,
        "redacted": redacted,
        "models": num_models,
        "targets": len(targets),
        "cohort": cohort,
        "data_fingerprint": fingerprint,
        "config_hash": config_hash,
        "miaudit_version": "0.1.0",
    }
    config = (
        "[cohort.synthetic]\n"
        f"num_patients = {num_patients}\n"
        f"seed = {seed}\n\n"
        "[model]\n"
        'family = "mlp"\n'
        "width = 64\n\n"
        "[audit]\n"
        f"models = {num_models}\n"
        f"attacks = {json.dumps(list(ATTACKS))}\n"
        f"thresholds = {json.dumps(list(THRESHOLDS))}\n"
        f"top_fraction = {TOP_FRACTION}\n\n"
        "[report]\n"
        f"redact = {str(redacted).lower()}\n"
    )

    write_text(run / "config.toml", config)
    write_json(
        run / "run.json",
        {
            "identity": {
                "training_hash": config_hash,
                "data_fingerprint": fingerprint,
                "models": num_models,
            },
            "miaudit_version": "0.1.0",
            "created": "2026-11-28T12:00:00+00:00",
            "config_hash": config_hash,
            "data_fingerprint": fingerprint,
            "models": num_models,
            "cohort": cohort,
            "complete": True,
        },
    )
    write_npz(run / "plan.npz", keep=plan.keep.astype(bool), seed=np.array(seed, dtype=np.int64))
    (run / "scores").mkdir(mode=0o700)
    write_npy(run / "scores" / "targets.npy", targets)
    for name, s in scores.items():
        write_npy(run / "scores" / f"{name}.npy", s)
    write_parquet(run / "records.parquet", records)
    write_parquet(run / "patients.parquet", patients)
    write_csv(run / "patients.csv", patients)
    write_parquet(run / "models.parquet", models)
    write_json(run / "summary.json", summary)
    return run
