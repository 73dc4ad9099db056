"""The run directory's layout: every file and column name miaudit writes, in one place.

A run directory is the audit's result. The HTML report, the release gate, ``miaudit report``
and the user's own analyses read it long after the run that wrote it, sometimes with a newer
miaudit, so its layout is a compatibility contract:

* **May be added** — new files, new columns, new keys in ``summary.json`` and ``run.json``.
  Readers ignore what they do not know, and treat a missing optional file or key as "not
  computed by the version that wrote the run", never as an error of the run.
* **Never changes meaning** — a name below, once written, keeps its meaning, its unit and
  its shape: ``exposure`` is a patient's attack AUC on [0, 1] (0.5 = chance),
  ``patient`` is the 0-based patient index of the plan's ``keep`` columns, scores are
  higher-is-more-likely-member. A changed meaning gets a new name.
* **Never removed** — a file or column the readers below require stays written, so a run
  made today is rebuilt by every later ``miaudit report``.
* **Ids stay strings** — ``record_id`` and ``patient_id`` are written as text exactly as read
  (or as keyed pseudonyms, ``P-`` / ``R-`` + 12 hex digits, in a redacted run).

Two kinds of run share the layout: a full audit (``kind`` absent from ``summary.json``) and
a deployed-model audit (``kind = "deployed"``), which adds the per-candidate columns and the
files of its control.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- files

RUN = "run.json"
MANIFEST = "manifest.json"
"""Every file miaudit wrote in the folder, with its SHA-256 (``results/ownership.py``)."""
"""The run record: identity (training hash, data fingerprint, models), version, timings."""
LOCK = "run.lock"
CONFIG = "config.toml"
"""The resolved config the run was made with."""
PLAN = "plan.npz"
"""``keep`` [M, P] bool (deployed: row 0 the target's roster), optional ``holdout`` [P]."""
SHARDS = "shards"
"""Logits shards ``models-FIRST-LAST.npz``: ``logits`` [G, N, V, K] and ``model_index`` [G]."""
RECIPE_DIR = "recipe"
"""Command recipes: one folder per model, ``model_NNNNN/`` with its ``logits.npy`` [N, V, K]
and the program's ``stdout.txt`` / ``stderr.txt``; a model accepted once is not run again."""
CACHE_DIR = "cache"
"""Decoded pixels of image cohorts read from files (``results/pixels.py``); kept by --force."""
SCORES = "scores"
TARGETS = f"{SCORES}/targets.npy"
"""Model indices [T] of the scored targets (rows of every ``scores/ATTACK.npy``)."""
RECORDS = "records.parquet"
PATIENTS = "patients.parquet"
PATIENTS_CSV = "patients.csv"
"""The patient table again, for spreadsheets."""
MODELS = "models.parquet"
"""One row per model: diagnostic performance on its OUT records (deployed: the target)."""
REFERENCES = "references.parquet"
"""Deployed runs: the reference models and the neither model."""
CONFOUND = "confound.npz"
"""Deployed runs: ``neither_scores`` [N] and ``classifier_probability`` [N] of the control."""
SUMMARY = "summary.json"
REPORT = "report.html"
DEPLOYED_KIND = "deployed"
"""``summary.json`` ``kind`` of a deployed-model run."""

SWEEP_TABLE = "sweep.parquet"
"""A sweep folder's collected table, one row per point (each point is a run of its own)."""
SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"
"""The sweep table again with its grid (``spec``); NaN written as null, infinity as "inf"."""
SWEEP_CHART = "sweep.svg"
SWEEP_PAGE = "sweep.html"
"""The sweep's page: its chart and table, self-contained like a run's report."""

REQUIRED = (SUMMARY, RUN, CONFIG, PLAN, RECORDS, PATIENTS, MODELS, TARGETS)
"""What every finished run holds; a reader refuses a directory that lacks one."""


def null_file(attack: str) -> str:
    """The attack's record AUCs under permuted membership (``auc``, ``n_in``, ``n_out`` [B, N])."""
    return f"{SCORES}/{attack}.null.npz"


def scores_file(attack: str) -> str:
    """Scores [T, N] of ``attack`` (float32 in a full audit, float64 in a deployed run)."""
    return f"{SCORES}/{attack}.npy"


# --------------------------------------------------------------------------- columns

RECORD_ID = "record_id"
PATIENT = "patient"
PATIENT_ID = "patient_id"
LABEL = "label"
"""Class name(s) of the record; multi-label records join theirs with ","."""
N_IN = "n_in"
N_OUT = "n_out"
"""How many targets a record was IN / OUT for."""
RECORD_COUNT = "records"
"""Records per patient."""
EXPOSURE = "exposure"
"""The primary attack's exposure (deployed: every candidate's, against the non-members)."""
SE = "se"
ATTRIBUTE_PREFIX = "attr_"
"""Subgroup attributes, as read (``attr_race``, ``attr_insurance`` …)."""
# deployed runs
ROLE = "role"
MEMBER = "member"
SCORE = "score"
P_VALUE = "p_value"
Q_VALUE = "q_value"
LOW = "low"
HIGH = "high"
FPR = "fpr"
MODEL = "model"
TEST_AUROC = "test_auroc"


def record_auc_column(attack: str) -> str:
    """A record's attack AUC over the targets (full audit)."""
    return f"auc_{attack}"


def record_se_column(attack: str) -> str:
    return f"se_{attack}"


def low_column(attack: str) -> str:
    """Lower end of the 95 % interval of a record's AUC or a patient's exposure."""
    return f"low_{attack}"


def high_column(attack: str) -> str:
    """Upper end of the 95 % interval of a record's AUC or a patient's exposure."""
    return f"high_{attack}"


def p_column(attack: str) -> str:
    """A record's or patient's p-value of exposure beyond chance under ``attack``."""
    return f"p_{attack}"


def q_column(attack: str) -> str:
    """A patient's false-discovery-adjusted p-value (q-value) under ``attack``."""
    return f"q_{attack}"


def exposure_column(attack: str) -> str:
    """A patient's exposure under ``attack`` (deployed: members only, NaN elsewhere)."""
    return f"exposure_{attack}"


def se_column(attack: str) -> str:
    return f"se_{attack}"


def attribute_column(name: str) -> str:
    return f"{ATTRIBUTE_PREFIX}{name}"


# --------------------------------------------------------------------------- values

ROLE_POPULATION, ROLE_MEMBER, ROLE_NONMEMBER = 0, 1, 2
"""A deployed run's patient roles as stored in ``plan.npz`` ``role`` [P] int8."""
ROLE_NAMES = {ROLE_POPULATION: "population", ROLE_MEMBER: "member", ROLE_NONMEMBER: "non-member"}
"""The same roles as written in the ``role`` column."""
MODEL_ROLES = ("target", "reference", "neither")
"""The ``role`` column of a deployed run's models and references tables."""
PSEUDONYM = re.compile(r"^P-[0-9a-f]{12}$")
"""A redacted ``patient_id``."""
