"""The permutation null of an audit: its attacks rescored with membership shuffled among patients.

Each permutation gives every eligible patient the plan column (the models it was IN for) of
another, drawn uniformly: the design is unchanged — every patient IN for the same number of
models, each model's training-set size, a patient's records together, held-out patients
held out — and only the link between membership and signal is broken. The attack is rescored
on the same signals, so the null carries the estimator's own quirks (a leave-one-out bias
under the null shows in the null too and cancels in the p-values). :mod:`miaudit.risk.chance`
turns the null record AUCs into p-values, null counts and false-discovery control.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from miaudit import attacks, risk
from miaudit.risk.chance import NullRecords

# The permutations' random stream, apart from every other use of the audit seed.
CHANCE_STREAM = 0x6368616E6365


def permuted_keep(
    record_keep: NDArray[np.bool_],
    patient: NDArray[np.intp],
    num_patients: int,
    eligible: NDArray[np.bool_],
    rng: np.random.Generator,
) -> NDArray[np.bool_]:
    """[M, N] ``record_keep`` with the eligible patients' plan columns shuffled among them."""
    columns = np.zeros((record_keep.shape[0], num_patients), dtype=bool)
    columns[:, patient] = record_keep
    who = np.flatnonzero(eligible)
    shuffled = columns.copy()
    shuffled[:, who] = columns[:, who[rng.permutation(who.size)]]
    return shuffled[:, patient]


def permutation_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of permutation ``index``: the same for every attack of one audit."""
    return np.random.default_rng([CHANCE_STREAM, index, int(seed) & ((1 << 64) - 1)])


def record_measure(
    name: str,
    logits: np.ndarray,
    labels: np.ndarray,
    targets: NDArray[np.intp],
    *,
    method: Literal["empirical", "gaussian"] = "empirical",
    holdout_records: NDArray[np.bool_] | None = None,
    **options: object,
) -> tuple[Callable[[ArrayLike], NDArray[np.float64]], Callable[..., risk.RecordAUC]]:
    """(``keep -> scores``, ``keep -> record AUC``) of one attack, the same for the audit and its null.

    The empirical record AUC of an attack with a leave-pair-out form (LiRA) is that form,
    unbiased under the null; otherwise the record AUC of the target scores. Held-out records
    get no score.
    """
    scorer, pairwise = attacks.attack_measures(name, logits, labels, targets=targets, **options)
    if method != "empirical":
        pairwise = None
    held = holdout_records is not None and bool(holdout_records.any())

    def scores(keep: ArrayLike) -> NDArray[np.float64]:
        s = scorer(keep)
        if held:
            s[:, holdout_records] = np.nan
        return s

    def measure(
        keep: NDArray[np.bool_], scored: NDArray[np.float64] | None = None
    ) -> risk.RecordAUC:
        """``scored``: the attack's scores of this ``keep`` where already computed."""
        if pairwise is not None:
            auc, n_in, n_out = pairwise(keep)
            if held:
                auc[holdout_records] = np.nan
            return risk.pairwise_record_auc(auc, n_in, n_out)
        s = scores(keep) if scored is None else scored
        return risk.record_auc(s, keep[targets], method=method)

    return scores, measure


def null_records(
    measure: Callable[..., risk.RecordAUC],
    record_keep: NDArray[np.bool_],
    patient: NDArray[np.intp],
    num_patients: int,
    *,
    permutations: int,
    seed: int,
    holdout_records: NDArray[np.bool_] | None = None,
) -> NullRecords:
    """Record AUCs [B, N] by ``measure`` under ``permutations`` shuffled memberships."""
    n = record_keep.shape[1]
    eligible = np.ones(num_patients, dtype=bool)
    if holdout_records is not None and holdout_records.any():
        eligible[patient[holdout_records]] = False
    auc = np.empty((permutations, n))
    n_in = np.empty((permutations, n), dtype=np.int64)
    n_out = np.empty((permutations, n), dtype=np.int64)
    for b in range(permutations):
        keep = permuted_keep(record_keep, patient, num_patients, eligible, permutation_rng(seed, b))
        record = measure(keep)
        auc[b], n_in[b], n_out[b] = record.auc, record.n_in, record.n_out
    return NullRecords(auc=auc, n_in=n_in, n_out=n_out)
