"""Signals with a known answer: the worlds that calibrate the scoring core.

A statistician checks an audit's p-values, false-discovery control and bias on data where the
truth is known: pure noise (no membership effect at all) and noise with a planted effect on a
known set of patients. :func:`signal_world` draws such signals under miaudit's own balanced
patient-level plan, so a check here checks the design the audit runs (``bench/bench_null.py``
and the tests of :mod:`miaudit.risk.chance` use it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import InputError
from miaudit.plan import make_plan


@dataclass(frozen=True, eq=False)
class SignalWorld:
    """``signals`` [M, N, 1], ``keep`` [M, N], ``patient`` [N], ``planted`` [P] bool."""

    signals: np.ndarray
    keep: np.ndarray
    patient: np.ndarray
    planted: np.ndarray

    @property
    def num_patients(self) -> int:
        return int(self.planted.size)


def signal_world(
    models: int,
    patients: int,
    *,
    records_per_patient: int = 1,
    correlation: float = 0.5,
    effect: float = 0.0,
    planted_fraction: float = 0.05,
    seed: int = 0,
) -> SignalWorld:
    """Standard-normal signals for every model and record under a balanced plan.

    Records of one patient share a patient effect (``correlation`` between them) and their
    membership. With ``effect`` > 0, a ``planted_fraction`` of patients get ``effect`` added
    to every record's signal on the models that trained on them: a record's true AUC is
    then Φ(effect / √2), and every other record's is exactly ½.
    """
    if records_per_patient < 1 or patients < 4 or not 0.0 <= correlation < 1.0:
        raise InputError(
            "signal_world: needs ≥ 4 patients, ≥ 1 record per patient and a correlation in [0, 1)"
        )
    rng = np.random.default_rng([seed, 0x5349_4D])
    plan = make_plan(patients, models, seed)
    patient = np.repeat(np.arange(patients), records_per_patient)
    keep = plan.keep[:, patient]
    own = rng.standard_normal((models, patient.size))
    if records_per_patient > 1 and correlation > 0:
        shared = rng.standard_normal((models, patients))[:, patient]
        x = shared * np.sqrt(correlation) + own * np.sqrt(1.0 - correlation)
    else:
        x = own
    planted = np.zeros(patients, dtype=bool)
    if effect:
        count = max(1, round(planted_fraction * patients))
        planted[rng.choice(patients, count, replace=False)] = True
        x = x + effect * (keep & planted[patient][None, :])
    return SignalWorld(signals=x[:, :, None], keep=keep, patient=patient, planted=planted)
