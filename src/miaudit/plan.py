"""Which patients each reference model trains on: balanced, seeded, patient-level.

Every patient is IN for exactly M/2 of the M models, so each record gets the same number
of IN and OUT scores (the record AUC compares those two sets); all records of a patient
go in or out together, because the audit asks about patients, not rows. Model sizes are
balanced too: each model trains on floor(P/2) or ceil(P/2) patients, so no model is
systematically bigger (and better fitted) than another.

A plan may set aside *held-out* patients that no model ever trains on: the models'
diagnostic performance measured on them is an unbiased estimate that no reference model's
training set touched (used when comparing capacities or privacy budgets). Held-out patients
have no IN scores, so they get no exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from miaudit.arrays import as_patient
from miaudit.errors import InputError


@dataclass(frozen=True, eq=False)
class MembershipPlan:
    """``keep[m, p]``: patient p is IN the training set of model m."""

    keep: np.ndarray
    seed: int
    holdout: np.ndarray | None = None  # [P] bool: patients no model trains on

    @property
    def audited(self) -> np.ndarray:
        """[P] bool: patients that take part in the membership plan."""
        if self.holdout is None:
            return np.ones(self.num_patients, dtype=bool)
        return ~self.holdout

    @property
    def num_models(self) -> int:
        return int(self.keep.shape[0])

    @property
    def num_patients(self) -> int:
        return int(self.keep.shape[1])

    def record_keep(self, patient: np.ndarray) -> np.ndarray:
        """[M, N] bool: each record follows its patient (``patient`` is the cohort's [N] index)."""
        index, top = as_patient(patient)
        if top > self.num_patients:
            raise InputError(
                f"plan: it covers {self.num_patients} patients but the cohort's patient index "
                f"spans {index.min()}..{index.max()}; the plan was made for another cohort. "
                "Rerun the audit with --force to make a new plan."
            )
        return self.keep[:, index]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an ``.npz`` (no pickles)."""
        arrays = {"keep": self.keep.astype(bool), "seed": np.array(self.seed, dtype=np.int64)}
        if self.holdout is not None:
            arrays["holdout"] = self.holdout.astype(bool)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> MembershipPlan:
        """Rebuild a plan from :meth:`to_arrays`, checking it is still a balanced plan."""
        missing = [key for key in ("keep", "seed") if key not in arrays]
        if missing:
            raise InputError(
                f"plan file lacks {', '.join(missing)} (has {', '.join(sorted(arrays)) or 'nothing'}); "
                "it was not written by miaudit. Rerun the audit with --force."
            )
        keep = np.asarray(arrays["keep"])
        if keep.ndim != 2 or keep.dtype != bool:
            raise InputError(
                f"plan file: keep must be a 2-D bool array, got {keep.dtype} {keep.shape}. "
                "Rerun the audit with --force."
            )
        holdout = np.asarray(arrays["holdout"]).astype(bool) if "holdout" in arrays else None
        if holdout is not None and (holdout.shape != keep.shape[1:] or keep[:, holdout].any()):
            raise InputError(
                "plan file: a held-out patient is IN for some model. The plan file is damaged: "
                "rerun the audit with --force."
            )
        check_balanced(keep if holdout is None else keep[:, ~holdout])
        return cls(keep=keep, seed=int(np.asarray(arrays["seed"])), holdout=holdout)


def check_balanced(keep: np.ndarray) -> None:
    """InputError unless every patient is IN for exactly half of the models."""
    num_models = keep.shape[0]
    if num_models < 2 or num_models % 2:
        raise InputError(f"plan: {num_models} models; a plan needs an even number ≥ 2.")
    ins = keep.sum(axis=0)
    bad = np.flatnonzero(ins != num_models // 2)
    if bad.size:
        raise InputError(
            f"plan: patient {bad[0]} is IN for {ins[bad[0]]} of {num_models} models (expected "
            f"{num_models // 2}); {bad.size} patients are off. The plan file is damaged: rerun "
            "the audit with --force."
        )


def make_plan(
    num_patients: int, num_models: int, seed: int, *, holdout_fraction: float = 0.0,
    holdout: np.ndarray | None = None,
) -> MembershipPlan:
    """A balanced plan from ``np.random.default_rng(seed)`` alone.

    With ``holdout_fraction`` > 0, that share of patients (drawn from a separate stream,
    so the choice does not depend on M) is held out of every model, and the balanced plan
    below is made over the remaining patients. ``holdout`` ([P] bool) names the held-out
    patients instead (a dataset's official test split).

    Each patient draws a uniformly random half of the models (exact column sums M/2).
    Model sizes then differ by about sqrt(P)/2; they are evened out by moving patients,
    one random column at a time, from the largest model to the smallest one among
    patients IN the first and OUT of the second. Each move keeps every patient's count at
    M/2 and shrinks the spread, so the loop ends with every model at floor(P/2) or
    ceil(P/2) patients (all exactly P/2 when P is even), having changed few of the
    draws (0.6% of the entries for P = 5,735 and M = 200; 1.6% for P = 1,000, M = 16).
    """
    if isinstance(num_models, bool) or not isinstance(num_models, int | np.integer):
        raise InputError(f"plan: models must be an integer, got {num_models!r}.")
    if num_models < 2 or num_models % 2:
        raise InputError(
            f"plan: models = {num_models}; every patient is IN for exactly half of the models, "
            f"so use an even number ≥ 2 (e.g. {max(2, num_models + num_models % 2)})."
        )
    if not 0.0 <= holdout_fraction < 0.9:
        raise InputError(
            f"plan: holdout_fraction = {holdout_fraction}; use a share in [0, 0.9), e.g. 0.2."
        )
    if holdout is not None and holdout_fraction > 0:
        raise InputError("plan: give holdout or holdout_fraction, not both.")
    if holdout is not None:
        holdout = np.asarray(holdout, dtype=bool)
        if holdout.shape != (num_patients,):
            raise InputError(f"plan: holdout must be [P = {num_patients}] bool, got {holdout.shape}.")
        if (~holdout).sum() < 2:
            raise InputError(
                f"plan: {int((~holdout).sum())} patient(s) outside the held-out test split; "
                "an audit needs at least 2 (check the dataset's split)."
            )
    if holdout_fraction > 0:
        holdout = np.zeros(num_patients, dtype=bool)
        count = round(holdout_fraction * num_patients)
        holdout[np.random.default_rng([seed, 1]).choice(num_patients, count, replace=False)] = True
    if holdout is not None and holdout.any():
        inner = make_plan(int((~holdout).sum()), num_models, seed)
        keep = np.zeros((num_models, num_patients), dtype=bool)
        keep[:, ~holdout] = inner.keep
        return MembershipPlan(keep=keep, seed=int(seed), holdout=holdout)
    if num_patients < 2:
        raise InputError(f"plan: {num_patients} patient(s); an audit needs at least 2.")
    rng = np.random.default_rng(seed)
    half = num_models // 2
    ranks = np.argsort(rng.random((num_models, num_patients)), axis=0)
    keep = ranks < half

    sizes = keep.sum(axis=1)
    while True:
        big, small = int(np.argmax(sizes)), int(np.argmin(sizes))
        gap = int(sizes[big] - sizes[small])
        if gap <= 1:
            break
        movable = np.flatnonzero(keep[big] & ~keep[small])
        moved = rng.choice(movable, size=gap // 2, replace=False)
        keep[big, moved] = False
        keep[small, moved] = True
        sizes[big] -= moved.size
        sizes[small] += moved.size
    return MembershipPlan(keep=keep, seed=int(seed))
