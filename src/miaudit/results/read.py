"""Reading a run's results back: every file checked, every mismatch named with its fix.

The report, the gate and ``miaudit report`` read a run only through :func:`load_run`, so a
damaged or mixed-up run directory is refused in one place, with a message naming the file
and what to do (names and meaning: :mod:`miaudit.results.layout`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit import risk
from miaudit.errors import InputError
from miaudit.results import layout as L
from miaudit.results.store import load_npz
from miaudit.risk.chance import NullRecords

__all__ = ["RunFiles", "load_run", "patient_attributes"]


@dataclass(eq=False)
class RunFiles:
    """The files of one finished run, checked for consistency; scores load on first use."""

    path: Path
    summary: dict[str, Any]
    run: dict[str, Any]
    config_text: str
    keep: np.ndarray
    targets: np.ndarray
    records: pd.DataFrame
    patients: pd.DataFrame
    models: pd.DataFrame
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _membership: np.ndarray | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        """Whether the run finished: its record says so (a run being rerun, or killed while
        writing its results, says ``complete: false`` and may mix two scorings)."""
        return self.run.get("complete") is True

    @property
    def attacks(self) -> list[str]:
        return list(self.summary["attacks"])

    @property
    def primary(self) -> str:
        return str(self.summary["primary_attack"])

    @property
    def thresholds(self) -> list[float]:
        return sorted(
            float(t) for t in self.summary.get("thresholds", risk.DEFAULT_RISK_THRESHOLDS)
        )

    @property
    def top_fraction(self) -> float:
        return float(self.summary.get("top_fraction", 0.01))

    def check_attack(self, attack: str, where: str) -> str:
        if attack not in self.summary["attacks"]:
            raise InputError(
                f"{where}: attack {attack!r} is not in the run {self.path} (it has "
                f"{', '.join(self.attacks)}); name one of those."
            )
        return attack

    def scores(self, attack: str) -> np.ndarray:
        """Membership scores [T, N] of ``attack`` (float64; NaN = undefined)."""
        self.check_attack(attack, "scores")
        if attack not in self._scores:
            f = self.path / L.scores_file(attack)
            arr = _load_npy(f, "rerun `miaudit audit` on this run to rewrite its scores")
            expected = (len(self.targets), len(self.records))
            if arr.shape != expected:
                raise InputError(
                    f"{f}: shape {arr.shape}, but the run has {expected[0]} targets and "
                    f"{expected[1]} records (records.parquet); the scores belong to another run."
                    " Rerun `miaudit audit` with --force."
                )
            self._scores[attack] = arr.astype(np.float64)
        return self._scores[attack]

    def membership(self) -> np.ndarray:
        """[T, N] bool: record n was IN target t's training set (its patient's keep)."""
        if self._membership is None:
            patient = self.records[L.PATIENT].to_numpy(np.int64)
            self._membership = self.keep[self.targets][:, patient]
        return self._membership

    def exposure(self, attack: str) -> tuple[np.ndarray, np.ndarray]:
        """Patient exposure [P] and its standard error [P] for ``attack``."""
        self.check_attack(attack, "exposure")
        return (
            self.patients[L.exposure_column(attack)].to_numpy(np.float64),
            self.patients[L.se_column(attack)].to_numpy(np.float64),
        )

    def null(self, attack: str) -> NullRecords | None:
        """``attack``'s record AUCs under permuted membership; None for a run without a null."""
        self.check_attack(attack, "null")
        path = self.path / L.null_file(attack)
        if not path.is_file():
            if self.summary["attacks"][attack].get("chance"):
                raise InputError(
                    f"{path}: missing, but the run's summary has a chance baseline for "
                    f"{attack!r}; rerun `miaudit audit` on this run to rewrite it"
                )
            return None
        arrays = load_npz(path)
        shape = None
        for key in ("auc", "n_in", "n_out"):
            arr = arrays.get(key)
            if arr is None or arr.ndim != 2 or arr.shape[1] != len(self.records):
                raise InputError(
                    f"{path}: array {key!r} missing or not [permutations, {len(self.records)}] "
                    "(one value per record); rerun `miaudit audit` on this run to rewrite it"
                )
            if shape is not None and arr.shape != shape:
                raise InputError(f"{path}: arrays of different shapes; rerun `miaudit audit`")
            shape = arr.shape
        return NullRecords(
            auc=arrays["auc"].astype(np.float64),
            n_in=arrays["n_in"].astype(np.int64),
            n_out=arrays["n_out"].astype(np.int64),
        )

    def p_values(self, attack: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record p [N], patient p [P], patient q [P]) of ``attack``'s chance baseline."""
        out = []
        for table, frame, column in (
            (L.RECORDS, self.records, L.p_column(attack)),
            (L.PATIENTS, self.patients, L.p_column(attack)),
            (L.PATIENTS, self.patients, L.q_column(attack)),
        ):
            if column not in frame.columns:
                raise InputError(
                    f"{self.path / table}: column {column!r} missing, but the run has a chance "
                    f"baseline for {attack!r}; rerun `miaudit audit` on this run to rewrite it"
                )
            out.append(frame[column].to_numpy(np.float64))
        return out[0], out[1], out[2]

    def attributes(self) -> pd.DataFrame:
        """The patients' subgroup attributes (``attr_`` prefix removed), index 0..P-1."""
        return patient_attributes(self.patients)

    # -- deployed-model runs ------------------------------------------------------------
    @property
    def deployed(self) -> bool:
        """Whether this is a deployed-model run (``miaudit audit-model``)."""
        return self.summary.get("kind") == L.DEPLOYED_KIND

    def column(self, name: str) -> np.ndarray:
        """A column of the patient table a deployed run adds (role, member, score, …)."""
        if name not in self.patients.columns:
            raise InputError(
                f"{self.path / L.PATIENTS}: column {name!r} missing; this is not a complete "
                "`miaudit audit-model` run. Rerun it to rewrite the tables."
            )
        return self.patients[name].to_numpy()

    def confound_arrays(self) -> dict[str, np.ndarray]:
        """The control's record arrays of a deployed run, one value per record each."""
        path = self.path / L.CONFOUND
        if not path.is_file():
            raise InputError(f"{path}: missing; rerun `miaudit audit-model` to rewrite it")
        arrays = load_npz(path)
        n = len(self.records)
        for key in ("neither_scores", "classifier_probability"):
            if key not in arrays or arrays[key].shape != (n,):
                raise InputError(
                    f"{path}: array {key!r} missing or not one value per record ({n}); rerun "
                    "`miaudit audit-model` to rewrite it"
                )
        return arrays

    def references(self) -> pd.DataFrame:
        """A deployed run's reference models and neither model (references.parquet)."""
        path = self.path / L.REFERENCES
        if not path.is_file():
            raise InputError(f"{path}: missing; rerun `miaudit audit-model` to rewrite it")
        return pd.read_parquet(path)


def patient_attributes(patients: pd.DataFrame) -> pd.DataFrame:
    """The subgroup attributes of a patient table (``attr_`` prefix removed), index 0..P-1."""
    cols = [c for c in patients.columns if c.startswith(L.ATTRIBUTE_PREFIX)]
    frame = patients[cols].rename(columns=lambda c: c[len(L.ATTRIBUTE_PREFIX) :])
    return frame.reset_index(drop=True)


def _missing_fix(run_dir: Path) -> str:
    return f"it is not a finished run; run `miaudit audit --out {run_dir}` to finish it"


def _load_json(f: Path) -> dict[str, Any]:
    try:
        obj = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(
            f"{f}: not valid JSON ({err}); rerun `miaudit audit` to rewrite it"
        ) from None
    if not isinstance(obj, dict):
        raise InputError(f"{f}: expected a JSON object; rerun `miaudit audit` to rewrite it")
    return obj


def _load_npy(f: Path, fix: str) -> np.ndarray:
    if not f.is_file():
        raise InputError(f"{f}: missing; {fix}")
    try:
        return np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{f}: unreadable or not a plain numeric array ({err}); {fix}") from None


def _load_parquet(f: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(f)
    except Exception as err:  # pyarrow raises several unrelated types for damaged files
        raise InputError(
            f"{f}: unreadable Parquet file ({type(err).__name__}); rerun `miaudit audit` to "
            "rewrite it"
        ) from None


def _require_columns(frame: pd.DataFrame, columns: list[str], f: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{f}: column(s) {', '.join(missing)} missing; the file was not written by this "
            "version of miaudit. Rerun `miaudit audit` to rewrite it."
        )


def load_run(run_dir: Path | str) -> RunFiles:
    """Read and cross-check a run directory (InputError names the file and the fix)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(
            f"{path}: not a directory; pass a run directory made by `miaudit audit --out DIR`"
        )
    missing = [name for name in L.REQUIRED if not (path / name).is_file()]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}; {_missing_fix(path)}")
    summary = _load_json(path / L.SUMMARY)
    for key in ("primary_attack", "attacks"):
        if key not in summary:
            raise InputError(
                f"{path / L.SUMMARY}: key {key!r} missing; rerun `miaudit audit` to "
                "rewrite the summary"
            )
    if not isinstance(summary["attacks"], dict) or not summary["attacks"]:
        raise InputError(f"{path / L.SUMMARY}: 'attacks' lists no attack; rerun the audit")
    if summary["primary_attack"] not in summary["attacks"]:
        raise InputError(
            f"{path / L.SUMMARY}: primary_attack {summary['primary_attack']!r} is not among "
            f"the attacks ({', '.join(summary['attacks'])}); rerun `miaudit audit`"
        )
    run = _load_json(path / L.RUN)
    plan = load_npz(path / L.PLAN)
    if "keep" not in plan:
        raise InputError(f"{path / L.PLAN}: no 'keep' array; rerun the audit with --force")
    keep = np.asarray(plan["keep"]).astype(bool)
    targets = _load_npy(path / L.TARGETS, _missing_fix(path)).astype(np.int64)
    records = _load_parquet(path / L.RECORDS)
    patients = _load_parquet(path / L.PATIENTS)
    models = _load_parquet(path / L.MODELS)
    attacks = list(summary["attacks"])
    _require_columns(records, [L.PATIENT], path / L.RECORDS)
    _require_columns(
        patients,
        [L.PATIENT, L.PATIENT_ID, L.RECORD_COUNT]
        + [c for a in attacks for c in (L.exposure_column(a), L.se_column(a))],
        path / L.PATIENTS,
    )
    _require_columns(models, [L.MODEL, L.TEST_AUROC], path / L.MODELS)
    if keep.ndim != 2 or keep.shape[1] != len(patients):
        raise InputError(
            f"{path / L.PLAN}: keep has shape {keep.shape} but patients.parquet has "
            f"{len(patients)} patients; the files come from different runs. Rerun the audit."
        )
    if not np.array_equal(patients[L.PATIENT].to_numpy(), np.arange(len(patients))):
        raise InputError(
            f"{path / L.PATIENTS}: rows are not in patient index order 0..P-1; rerun "
            "`miaudit audit` to rewrite it"
        )
    patient = records[L.PATIENT].to_numpy()
    if len(records) and (patient.min() < 0 or patient.max() >= len(patients)):
        raise InputError(
            f"{path / L.RECORDS}: patient index outside 0..{len(patients) - 1}; the files "
            "come from different runs. Rerun the audit."
        )
    if targets.ndim != 1 or len(targets) == 0 or targets.min() < 0 or targets.max() >= len(keep):
        raise InputError(
            f"{path / L.TARGETS}: target model indices must lie in 0..{len(keep) - 1}"
            "; the files come from different runs. Rerun the audit."
        )
    files = RunFiles(
        path=path,
        summary=summary,
        run=run,
        config_text=(path / L.CONFIG).read_text(encoding="utf-8"),
        keep=keep,
        targets=targets,
        records=records,
        patients=patients,
        models=models,
    )
    if summary.get("redacted"):
        ids = patients[L.PATIENT_ID].astype(str)
        bad = ~ids.str.fullmatch(L.PSEUDONYM.pattern)
        if bad.any():
            # The offending value is not printed: it may be a real identifier.
            raise InputError(
                f"{path / L.PATIENTS}: summary.json says the run is redacted, but "
                f"{int(bad.sum())} patient_id value(s) (first at row {int(np.flatnonzero(bad)[0])})"
                " are not pseudonyms; the files are inconsistent. Rerun `miaudit audit --redact`."
            )
    return files
