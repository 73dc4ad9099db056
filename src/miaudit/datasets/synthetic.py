"""A synthetic tabular cohort with known answers: who should be exposed, and why.

The cohort mimics what makes real patients memorable to a model:

* a common majority whose label is an easy (linear) function of the features;
* a small rare subgroup (attribute ``group`` = 'rare') with a distinct presentation: its
  features are shifted far from the majority and its label follows its own rule, so a
  model learns it from few examples;
* a few atypical patients with outlying features in random directions and labels that
  no rule predicts;
* a few mislabelled records: typical, confidently classified majority records whose
  label is flipped.

The last three are what a model has to memorise, so a sound audit ranks them as the
most exposed; :class:`Planted` says which they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.errors import InputError

#: Distance of the rare subgroup's centre from the majority's (in feature standard deviations).
RARE_SHIFT = 4.0
#: Distance of atypical patients from the centre.
ATYPICAL_DISTANCE = 8.0
#: Spread of a patient's records around the patient (several records per patient).
RECORD_NOISE = 0.3
#: Label noise of the majority rule (standard deviation added to the linear score).
LABEL_NOISE = 0.25

#: Exact composition of the patient-level attributes (fractions of patients, rounded).
INSURANCE_SHARES = (("private", 0.50), ("public", 0.35), ("uninsured", 0.15))


@dataclass(frozen=True)
class Planted:
    """The planted memorable cases: patient indices and record indices, sorted."""

    rare_patients: np.ndarray
    atypical_patients: np.ndarray
    mislabelled_records: np.ndarray


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _orthogonal_unit(rng: np.random.Generator, against: list[np.ndarray], dim: int) -> np.ndarray:
    """A random unit vector orthogonal to ``against`` (Gram-Schmidt on a Gaussian draw)."""
    vector = rng.standard_normal(dim)
    for basis in against:
        vector = vector - (vector @ basis) * basis
    return _unit(vector)


def _shares(total: int, shares: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Exactly round(share·total) of each level (the last level takes the remainder)."""
    counts = [round(share * total) for _, share in shares[:-1]]
    counts.append(total - sum(counts))
    return np.repeat([name for name, _ in shares], counts)


def check_settings(
    what: str,
    num_patients: int,
    rare_fraction: float,
    num_atypical: int,
    num_mislabelled: int,
    max_records_per_patient: int,
) -> int:
    """InputError for impossible settings of any synthetic cohort; the number of rare patients."""
    if num_patients < 4:
        raise InputError(f"{what}: num_patients = {num_patients}; use at least 4.")
    if not 0 <= rare_fraction < 0.5:
        raise InputError(
            f"{what}: rare_fraction = {rare_fraction}; a rare subgroup is a minority: use a "
            "fraction in [0, 0.5)."
        )
    if num_atypical < 0 or num_mislabelled < 0:
        raise InputError(f"{what}: num_atypical and num_mislabelled must be ≥ 0.")
    if max_records_per_patient < 1:
        raise InputError(f"{what}: max_records_per_patient = {max_records_per_patient}; use ≥ 1.")
    num_rare = max(1, round(rare_fraction * num_patients)) if rare_fraction > 0 else 0
    if num_rare + num_atypical > num_patients - 2:
        raise InputError(
            f"{what}: {num_rare} rare + {num_atypical} atypical patients leave fewer than 2 of "
            f"{num_patients} patients in the majority; lower them or add patients."
        )
    return num_rare


def make_synthetic_tabular(
    num_patients: int = 2000,
    *,
    num_features: int = 20,
    rare_fraction: float = 0.02,
    num_atypical: int = 10,
    num_mislabelled: int = 10,
    max_records_per_patient: int = 1,
    seed: int = 0,
) -> tuple[Cohort, Planted]:
    """A validated synthetic cohort and its planted cases, deterministic by ``seed``.

    Patients: round(rare_fraction·P) rare (at least 1 if the fraction is > 0), then
    ``num_atypical`` atypical ones among the rest; ``num_mislabelled`` records are drawn
    from the majority's records that lie farther than the median from the decision
    boundary, so their flipped label contradicts a confident rule. Each patient has
    1..max_records_per_patient records (uniform), spread RECORD_NOISE around the patient.
    Attributes (patient-level): ``sex`` (floor(P/2) female), ``insurance`` (exactly
    round(0.50·P) private, round(0.35·P) public, the rest uninsured), ``group``
    ('rare' / 'common') and ``age`` (whole years 18-90, numeric).
    """
    num_rare = check_settings(
        "synthetic cohort",
        num_patients,
        rare_fraction,
        num_atypical,
        num_mislabelled,
        max_records_per_patient,
    )
    if num_features < 2:
        raise InputError(f"synthetic cohort: num_features = {num_features}; use at least 2.")
    rng = np.random.default_rng(seed)
    p, f = num_patients, num_features

    # Directions: the majority's rule, the rare subgroup's shift, and the rare rule.
    rule = _unit(rng.standard_normal(f))
    shift = _orthogonal_unit(rng, [rule], f)
    rare_rule = _orthogonal_unit(rng, [rule, shift], f) if f >= 3 else shift

    order = rng.permutation(p)
    rare = np.sort(order[:num_rare])
    atypical = np.sort(order[num_rare : num_rare + num_atypical])
    kind = np.zeros(p, dtype=np.int8)  # 0 common, 1 rare, 2 atypical
    kind[rare] = 1
    kind[atypical] = 2

    centre = rng.standard_normal((p, f))
    centre[rare] += RARE_SHIFT * shift
    outward = rng.standard_normal((atypical.size, f))
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    centre[atypical] = ATYPICAL_DISTANCE * outward + 0.5 * rng.standard_normal((atypical.size, f))
    atypical_label = rng.integers(0, 2, size=p)

    counts = (
        np.ones(p, dtype=np.int64)
        if max_records_per_patient == 1
        else rng.integers(1, max_records_per_patient + 1, size=p)
    )
    patient = np.repeat(np.arange(p, dtype=np.int64), counts)
    inputs = centre[patient]
    if max_records_per_patient > 1:
        inputs = inputs + RECORD_NOISE * rng.standard_normal(inputs.shape)

    score = inputs @ rule + LABEL_NOISE * rng.standard_normal(patient.size)
    labels = (score > 0).astype(np.int64)
    record_kind = kind[patient]
    is_rare = record_kind == 1
    labels[is_rare] = ((inputs[is_rare] - RARE_SHIFT * shift) @ rare_rule > 0).astype(np.int64)
    is_atypical = record_kind == 2
    labels[is_atypical] = atypical_label[patient[is_atypical]]

    margin = np.abs(inputs @ rule)
    common = np.flatnonzero(record_kind == 0)
    confident = common[margin[common] > np.median(margin[common])]
    if num_mislabelled > confident.size:
        raise InputError(
            f"synthetic cohort: num_mislabelled = {num_mislabelled} but only {confident.size} "
            "confidently classified majority records exist; lower it or add patients."
        )
    mislabelled = np.sort(rng.choice(confident, size=num_mislabelled, replace=False))
    labels[mislabelled] = 1 - labels[mislabelled]

    width = len(str(p - 1))
    patient_ids = np.array([f"P{i:0{width}d}" for i in range(p)], dtype=object)
    within = np.arange(patient.size) - np.repeat(np.cumsum(counts) - counts, counts)
    record_ids = np.array(
        [f"{patient_ids[i]}-{k}" for i, k in zip(patient, within, strict=True)], dtype=object
    )
    sex = np.where(rng.permutation(p) < p // 2, "female", "male")
    insurance = rng.permutation(_shares(p, INSURANCE_SHARES))
    group = np.where(kind == 1, "rare", "common")
    age = rng.integers(18, 91, size=p).astype(np.int64)
    attributes = pd.DataFrame(
        {
            "sex": pd.Series(sex[patient], dtype=str),
            "insurance": pd.Series(insurance[patient], dtype=str),
            "group": pd.Series(group[patient], dtype=str),
            "age": age[patient],
        }
    )
    cohort = Cohort(
        name="synthetic",
        inputs=inputs.astype(np.float32),
        labels=labels,
        patient=patient,
        patient_ids=patient_ids,
        record_ids=record_ids,
        attributes=attributes,
        class_names=("negative", "positive"),
        feature_names=tuple(f"x{j:02d}" for j in range(f)),
        modality="table",
        source=f"synthetic:seed={seed}",
        table=pd.DataFrame(inputs.astype(np.float32), columns=[f"x{j:02d}" for j in range(f)]),
    )
    cohort.validate()
    return cohort, Planted(
        rare_patients=rare.astype(np.int64),
        atypical_patients=atypical.astype(np.int64),
        mislabelled_records=mislabelled.astype(np.int64),
    )
