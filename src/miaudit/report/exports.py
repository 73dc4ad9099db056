"""The run's tables: per-record, per-patient and per-model results, scores and summary.

These files are the audit's result; the HTML report and the gate are rebuilt from them alone.
With redaction on, patient and record ids are replaced by keyed pseudonyms *before* anything
is written, so no real id lands in the run directory. The key lives outside the run directory
(``$MIAUDIT_REDACTION_KEY`` as hex, else ``~/.config/miaudit/redaction.key``), so one owner
gets the same pseudonyms across runs and can re-identify a patient by recomputing the HMAC,
while whoever receives the run folder cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from miaudit.errors import InputError
from miaudit.store import (
    RunStore,
    atomic_write,
    write_csv,
    write_json,
    write_npy,
    write_npz,
    write_parquet,
)

if TYPE_CHECKING:
    from miaudit.audit import AttackResult
    from miaudit.cohort import Cohort

KEY_ENV = "MIAUDIT_REDACTION_KEY"


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "miaudit" / "redaction.key"


def redaction_key() -> bytes:
    """The owner's pseudonymisation key (created once, 0600, outside any run directory)."""
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise InputError(
                f"${KEY_ENV}: not a hex string; set it to e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            ) from None
        if len(key) < 16:
            raise InputError(f"${KEY_ENV}: key too short; use at least 16 bytes (32 hex digits)")
        return key
    path = default_key_path()
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    atomic_write(path, lambda f: f.write(key.hex().encode()))
    return key


def redact_ids(ids: np.ndarray, key: bytes, prefix: str = "P-") -> np.ndarray:
    """Keyed pseudonyms: HMAC-SHA256(key, id), 12 hex digits (collisions are checked)."""
    out = np.array(
        [prefix + hmac.new(key, str(i).encode(), hashlib.sha256).hexdigest()[:12] for i in ids],
        dtype=object,
    )
    if len(set(out.tolist())) != len(set(map(str, ids))):
        raise RuntimeError("pseudonym collision; use a different redaction key")
    return out


def _label_column(cohort: Cohort) -> np.ndarray:
    names = np.asarray(cohort.class_names, dtype=object)
    if cohort.labels.ndim == 2:
        return np.array([",".join(names[row.astype(bool)]) for row in cohort.labels], dtype=object)
    return names[cohort.labels]


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda c: f"attr_{c}").reset_index(drop=True)


def build_tables(
    cohort: Cohort,
    results: dict[str, AttackResult],
    primary: str,
    *,
    redact: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-record and per-patient tables (ids pseudonymised when ``redact``)."""
    patient_ids = np.asarray(cohort.patient_ids, dtype=object).astype(str)
    record_ids = np.asarray(cohort.record_ids, dtype=object).astype(str)
    if redact:
        key = redaction_key()
        patient_ids = redact_ids(patient_ids, key, "P-")
        record_ids = redact_ids(record_ids, key, "R-")
    records = pd.DataFrame(
        {
            "record_id": record_ids,
            "patient": cohort.patient.astype(np.int64),
            "patient_id": patient_ids[cohort.patient],
            "label": _label_column(cohort),
        }
    )
    first = next(iter(results.values()))
    for name, r in results.items():
        records[f"auc_{name}"] = r.record.auc
        records[f"se_{name}"] = r.record.se
    records["n_in"] = first.record.n_in.astype(np.int64)
    records["n_out"] = first.record.n_out.astype(np.int64)
    records = pd.concat([records, _attributes(cohort.attributes)], axis=1)

    pattr = cohort.patient_attributes()
    patients = pd.DataFrame(
        {
            "patient": np.arange(cohort.num_patients, dtype=np.int64),
            "patient_id": patient_ids,
            "records": cohort.records_per_patient().astype(np.int64),
            "exposure": results[primary].exposure,
            "se": results[primary].exposure_se,
        }
    )
    for name, r in results.items():
        patients[f"exposure_{name}"] = r.exposure
        patients[f"se_{name}"] = r.exposure_se
    attr_cols = [c for c in cohort.attributes.columns if c in pattr.columns]
    patients = pd.concat([patients, _attributes(pattr[attr_cols])], axis=1)
    return records, patients


def write_outputs(
    store: RunStore,
    cohort: Cohort,
    results: dict[str, AttackResult],
    performance: pd.DataFrame,
    summary: dict[str, Any],
    *,
    redact: bool,
) -> pd.DataFrame:
    """Write scores, tables and summary into the run directory; return the patient table."""
    primary = summary["primary_attack"]
    records, patients = build_tables(cohort, results, primary, redact=redact)
    first = next(iter(results.values()))
    write_npy(store.file("scores", "targets.npy"), first.targets.astype(np.int64))
    for name, r in results.items():
        write_npy(store.file("scores", f"{name}.npy"), r.scores.astype(np.float32))
    write_parquet(store.file("records.parquet"), records)
    write_parquet(store.file("patients.parquet"), patients)
    write_csv(store.file("patients.csv"), patients)
    write_parquet(store.file("models.parquet"), performance)
    write_json(store.file("summary.json"), _jsonable(summary))
    return patients


def _jsonable(obj: Any) -> Any:
    """Plain JSON types (NaN stays NaN: the summary keeps undefined values undefined)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


# --------------------------------------------------------------------------- deployed model


def write_deployed_outputs(
    store: RunStore,
    cohort: Cohort,
    *,
    role: np.ndarray,
    scored: dict[str, Any],
    confound_arrays: dict[str, np.ndarray],
    performance: pd.DataFrame,
    summary: dict[str, Any],
    redact: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the tables of a deployed-model run; return (records, patients).

    The files keep the full audit's layout, so ``load_run`` (the report, the gate) reads
    them alike: one target (``scores/targets.npy`` = [0], ``scores/ATTACK.npy`` [1, N]) and
    ``exposure_ATTACK`` per patient. Only members can be exposed, so ``exposure_ATTACK``
    holds the members' exposure (NaN for everyone else) and a gate's counts and subgroup
    checks are about the target's training patients; ``exposure`` holds every candidate's,
    the non-members' being the null they are measured against. Population patients are no
    candidates: their scores, p-values and exposure are NaN. ``models.parquet`` describes
    the released model alone, ``references.parquet`` the references and the neither model.
    ``confound.npz`` holds the neither model's record scores and the input classifier's
    out-of-fold probabilities, from which the report recomputes the control.
    """
    from miaudit.deployed import ROLE_MEMBER, ROLE_NAMES

    attack = summary["primary_attack"]
    patient_ids = np.asarray(cohort.patient_ids, dtype=object).astype(str)
    record_ids = np.asarray(cohort.record_ids, dtype=object).astype(str)
    if redact:
        key = redaction_key()
        patient_ids = redact_ids(patient_ids, key, "P-")
        record_ids = redact_ids(record_ids, key, "R-")
    role_names = np.array([ROLE_NAMES[int(r)] for r in role], dtype=object)
    member = role == ROLE_MEMBER
    records = pd.DataFrame(
        {
            "record_id": record_ids,
            "patient": cohort.patient.astype(np.int64),
            "patient_id": patient_ids[cohort.patient],
            "label": _label_column(cohort),
            "role": role_names[cohort.patient],
            "member": member[cohort.patient],
            "score": scored["target_record"],
            "p_value": scored["target_record_p"],
            "fpr": scored["target_record_fpr"],
            "exposure": scored["target_record_exposure"],
        }
    )
    records = pd.concat([records, _attributes(cohort.attributes)], axis=1)
    exposure = scored["target_exposure"]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(exposure * (1.0 - exposure) / scored["target_n_null"])
    pattr = cohort.patient_attributes()
    patients = pd.DataFrame(
        {
            "patient": np.arange(cohort.num_patients, dtype=np.int64),
            "patient_id": patient_ids,
            "records": cohort.records_per_patient().astype(np.int64),
            "role": role_names,
            "member": member,
            "score": scored["target_score"],
            "p_value": scored["target_p"],
            "fpr": scored["target_fpr"],
            "exposure": exposure,
            "se": se,
            f"exposure_{attack}": np.where(member, exposure, np.nan),
            f"se_{attack}": np.where(member, se, np.nan),
        }
    )
    attr_cols = [c for c in cohort.attributes.columns if c in pattr.columns]
    patients = pd.concat([patients, _attributes(pattr[attr_cols])], axis=1)
    write_npy(store.file("scores", "targets.npy"), np.zeros(1, dtype=np.int64))
    write_npy(store.file("scores", f"{attack}.npy"), scored["target_record"][None].astype(np.float64))
    write_npz(
        store.file("confound.npz"),
        **{k: np.asarray(v, dtype=np.float64) for k, v in confound_arrays.items()},
    )
    write_parquet(store.file("records.parquet"), records)
    write_parquet(store.file("patients.parquet"), patients)
    write_csv(store.file("patients.csv"), patients)
    is_target = (performance["role"] == "target").to_numpy()
    write_parquet(store.file("models.parquet"), performance[is_target].reset_index(drop=True))
    write_parquet(store.file("references.parquet"), performance[~is_target].reset_index(drop=True))
    write_json(store.file("summary.json"), _jsonable(summary))
    return records, patients
