"""Statistical assertions of the model-training tests, measurable across numeric paths.

A model trained through another BLAS or SIMD path (another CPU, ``MKL_CBWR``,
``ATEN_CPU_CAPABILITY``) differs in the last bits, and a few hundred training steps amplify
that; an AUC asserted with a margin of 0.002 then passes on one machine and fails on the
next. So every statistical assertion of a test that trains models goes through
:func:`at_least` / :func:`at_most`, which assert as usual and, when ``MIAUDIT_MARGINS`` names
a file, also append the value, the threshold and the numeric path to it (JSON lines).
``tests/margins.py`` runs those tests under several numeric paths and cohort seeds and
prints, per assertion, the worst value seen against its threshold.

Two environment variables change the tests' inputs for that measurement only:

* ``MIAUDIT_TEST_SEED`` (default 0) is added to the seed of every synthetic cohort;
* ``MIAUDIT_TEST_DECOY=1`` swaps the planted patients a ranking test looks for with as many
  ordinary patients: the effect the test checks is gone, and the test must fail.

and ``MIAUDIT_MARGINS_RECORD_ONLY=1`` records every check without asserting it, so that one
failing check does not hide the values of the checks after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Offset added to the seed of every synthetic cohort of a statistical test.
SEED = int(os.environ.get("MIAUDIT_TEST_SEED", "0"))
#: Whether ranking tests look for decoys instead of the planted patients.
DECOY = os.environ.get("MIAUDIT_TEST_DECOY", "") == "1"
#: Whether checks only record their values (a measurement run), without asserting.
RECORD_ONLY = os.environ.get("MIAUDIT_MARGINS_RECORD_ONLY", "") == "1"


def _record(name: str, value: float, op: str, threshold: float) -> None:
    path = os.environ.get("MIAUDIT_MARGINS")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    row = {
        "test": test,
        "check": name,
        "value": float(value),
        "op": op,
        "threshold": float(threshold),
        "path": os.environ.get("MIAUDIT_NUMERIC_PATH", "native"),
        "seed": SEED,
        "decoy": DECOY,
    }
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def at_least(name: str, value: float, threshold: float, *, strict: bool = True) -> None:
    """Assert ``value > threshold`` (``>=`` unless strict), recording both."""
    _record(name, value, ">" if strict else ">=", threshold)
    ok = value > threshold if strict else value >= threshold
    assert ok or RECORD_ONLY, f"{name}: {value:.6g} {'≤' if strict else '<'} {threshold:.6g}"


def at_most(name: str, value: float, threshold: float, *, strict: bool = True) -> None:
    """Assert ``value < threshold`` (``<=`` unless strict), recording both."""
    _record(name, value, "<" if strict else "<=", threshold)
    ok = value < threshold if strict else value <= threshold
    assert ok or RECORD_ONLY, f"{name}: {value:.6g} {'≥' if strict else '>'} {threshold:.6g}"


def planted_or_decoy(planted: np.ndarray, num_patients: int) -> np.ndarray:
    """The planted patient indices, or (under ``MIAUDIT_TEST_DECOY=1``) as many others."""
    planted = np.unique(np.asarray(planted, dtype=np.int64))
    _record("looks for planted patients", float(planted.size), "ranking", 0.0)
    if not DECOY:
        return planted
    others = np.setdiff1d(np.arange(num_patients), planted)
    rng = np.random.default_rng(12345 + SEED)
    return np.sort(rng.choice(others, size=planted.size, replace=False))
