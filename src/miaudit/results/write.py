"""Writing a run's results: the tables, scores and summary that everything else reads.

These files are the audit's result (names and meaning: :mod:`miaudit.results.layout`); the
HTML report and the gate are rebuilt from them alone. Ids are pseudonymised (when asked)
before any table is built, so no real id is ever written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.jsonable import jsonable
from miaudit.results import layout as L
from miaudit.results.redact import run_ids
from miaudit.results.store import (
    RunStore,
    write_csv,
    write_json,
    write_npy,
    write_npz,
    write_parquet,
    write_text,
)
from miaudit.scored import AttackResult

__all__ = ["build_tables", "jsonable", "write_deployed_outputs", "write_outputs", "write_sweep"]


def _label_column(cohort: Cohort) -> np.ndarray:
    names = np.asarray(cohort.class_names, dtype=object)
    if cohort.labels.ndim == 2:
        return np.array([",".join(names[row.astype(bool)]) for row in cohort.labels], dtype=object)
    return names[cohort.labels]


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=L.attribute_column).reset_index(drop=True)


def _patient_attributes(cohort: Cohort) -> pd.DataFrame:
    pattr = cohort.patient_attributes()
    return _attributes(pattr[[c for c in cohort.attributes.columns if c in pattr.columns]])


def _record_base(cohort: Cohort, patient_ids: np.ndarray, record_ids: np.ndarray) -> dict[str, Any]:
    return {
        L.RECORD_ID: record_ids,
        L.PATIENT: cohort.patient.astype(np.int64),
        L.PATIENT_ID: patient_ids[cohort.patient],
        L.LABEL: _label_column(cohort),
    }


def _patient_base(cohort: Cohort, patient_ids: np.ndarray) -> dict[str, Any]:
    return {
        L.PATIENT: np.arange(cohort.num_patients, dtype=np.int64),
        L.PATIENT_ID: patient_ids,
        L.RECORD_COUNT: cohort.records_per_patient().astype(np.int64),
    }


def build_tables(
    cohort: Cohort,
    results: dict[str, AttackResult],
    primary: str,
    *,
    redact: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-record and per-patient tables (ids pseudonymised when ``redact``)."""
    patient_ids, record_ids = run_ids(cohort.patient_ids, cohort.record_ids, redact=redact)
    records = pd.DataFrame(_record_base(cohort, patient_ids, record_ids))
    first = next(iter(results.values()))
    for name, r in results.items():
        records[L.record_auc_column(name)] = r.record.auc
        records[L.record_se_column(name)] = r.record.se
        if r.record_interval is not None:
            records[L.low_column(name)], records[L.high_column(name)] = r.record_interval
        if r.chance is not None:
            records[L.p_column(name)] = r.chance.record_p
    records[L.N_IN] = first.record.n_in.astype(np.int64)
    records[L.N_OUT] = first.record.n_out.astype(np.int64)
    records = pd.concat([records, _attributes(cohort.attributes)], axis=1)

    patients = pd.DataFrame(
        {
            **_patient_base(cohort, patient_ids),
            L.EXPOSURE: results[primary].exposure,
            L.SE: results[primary].exposure_se,
        }
    )
    if results[primary].interval is not None:
        patients[L.LOW], patients[L.HIGH] = results[primary].interval
    top = results[primary].chance
    if top is not None:
        patients[L.P_VALUE] = top.patient_p
        patients[L.Q_VALUE] = top.patient_q
    for name, r in results.items():
        patients[L.exposure_column(name)] = r.exposure
        patients[L.se_column(name)] = r.exposure_se
        if r.interval is not None:
            patients[L.low_column(name)], patients[L.high_column(name)] = r.interval
        if r.chance is not None:
            patients[L.p_column(name)] = r.chance.patient_p
            patients[L.q_column(name)] = r.chance.patient_q
    patients = pd.concat([patients, _patient_attributes(cohort)], axis=1)
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
    write_npy(store.file(L.TARGETS), first.targets.astype(np.int64))
    written = {L.TARGETS}
    for name, r in results.items():
        write_npy(store.file(L.scores_file(name)), r.scores.astype(np.float32))
        written.add(L.scores_file(name))
        if r.null is not None:
            write_npz(
                store.file(L.null_file(name)), auc=r.null.auc, n_in=r.null.n_in, n_out=r.null.n_out
            )
            written.add(L.null_file(name))
    store.remove_stale(L.SCORES, keep=written)
    write_parquet(store.file(L.RECORDS), records)
    write_parquet(store.file(L.PATIENTS), patients)
    write_csv(store.file(L.PATIENTS_CSV), patients)
    write_parquet(store.file(L.MODELS), performance)
    write_json(store.file(L.SUMMARY), jsonable(summary))
    return patients


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

    The files keep the full audit's layout, so :func:`miaudit.results.read.load_run` (the
    report, the gate) reads them alike: one target (``scores/targets.npy`` = [0],
    ``scores/ATTACK.npy`` [1, N]) and ``exposure_ATTACK`` per patient. Only members can be
    exposed, so ``exposure_ATTACK`` holds the members' exposure (NaN for everyone else) and a
    gate's counts and subgroup checks are about the target's training patients; ``exposure``
    holds every candidate's, the non-members' being the null they are measured against.
    Population patients are no candidates: their scores, p-values and exposure are NaN.
    ``models.parquet`` describes the released model alone, ``references.parquet`` the
    references and the neither model. ``confound.npz`` holds the neither model's record
    scores and the input classifier's out-of-fold probabilities, from which the report's
    findings recompute the control.
    """
    attack = summary["primary_attack"]
    patient_ids, record_ids = run_ids(cohort.patient_ids, cohort.record_ids, redact=redact)
    role_names = np.array([L.ROLE_NAMES[int(r)] for r in role], dtype=object)
    member = role == L.ROLE_MEMBER
    records = pd.DataFrame(
        {
            **_record_base(cohort, patient_ids, record_ids),
            L.ROLE: role_names[cohort.patient],
            L.MEMBER: member[cohort.patient],
            L.SCORE: scored["target_record"],
            L.P_VALUE: scored["target_record_p"],
            L.FPR: scored["target_record_fpr"],
            L.EXPOSURE: scored["target_record_exposure"],
        }
    )
    records = pd.concat([records, _attributes(cohort.attributes)], axis=1)
    exposure = scored["target_exposure"]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(exposure * (1.0 - exposure) / scored["target_n_null"])
    patients = pd.DataFrame(
        {
            **_patient_base(cohort, patient_ids),
            L.ROLE: role_names,
            L.MEMBER: member,
            L.SCORE: scored["target_score"],
            L.P_VALUE: scored["target_p"],
            L.FPR: scored["target_fpr"],
            L.EXPOSURE: exposure,
            L.SE: se,
            L.exposure_column(attack): np.where(member, exposure, np.nan),
            L.se_column(attack): np.where(member, se, np.nan),
        }
    )
    patients = pd.concat([patients, _patient_attributes(cohort)], axis=1)
    write_npy(store.file(L.TARGETS), np.zeros(1, dtype=np.int64))
    write_npy(store.file(L.scores_file(attack)), scored["target_record"][None].astype(np.float64))
    write_npz(
        store.file(L.CONFOUND),
        **{k: np.asarray(v, dtype=np.float64) for k, v in confound_arrays.items()},
    )
    write_parquet(store.file(L.RECORDS), records)
    write_parquet(store.file(L.PATIENTS), patients)
    write_csv(store.file(L.PATIENTS_CSV), patients)
    is_target = (performance[L.ROLE] == "target").to_numpy()
    write_parquet(store.file(L.MODELS), performance[is_target].reset_index(drop=True))
    write_parquet(store.file(L.REFERENCES), performance[~is_target].reset_index(drop=True))
    write_json(store.file(L.SUMMARY), jsonable(summary))
    return records, patients


SVG_NAMESPACES = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '


def write_sweep(
    out: Path, table: pd.DataFrame, meta: dict[str, Any], chart: str, page: str | None = None
) -> None:
    """A sweep's collected table (Parquet, CSV, JSON with ``meta``), its chart and its page.

    The chart is drawn for inlining (namespaces implied by HTML); the file ``sweep.svg``
    gets them back so that a browser opens it on its own.
    """
    out = Path(out)
    write_parquet(out / L.SWEEP_TABLE, table)
    write_csv(out / L.SWEEP_CSV, table)
    points = table.to_dict(orient="records")
    write_json(out / L.SWEEP_JSON, jsonable({**meta, "points": points}, nonfinite="text"))
    standalone = chart
    if "xmlns=" not in chart.split(">", 1)[0]:
        standalone = chart.replace("<svg ", f"<svg {SVG_NAMESPACES}", 1)
    write_text(out / L.SWEEP_CHART, standalone)
    if page is not None:
        write_text(out / L.SWEEP_PAGE, page)
