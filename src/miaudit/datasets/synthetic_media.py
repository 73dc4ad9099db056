"""Synthetic image and ECG cohorts with known answers, and writers to real file formats.

Like :func:`miaudit.datasets.synthetic.make_synthetic_tabular`, each cohort has

* a common majority whose label follows an easy, visible rule (images: a bright blob is
  the finding; ECGs: a wide QRS with ST elevation);
* a small rare subgroup (attribute ``group`` = 'rare') with a distinct presentation
  (images: inverted contrast, a device marker and a texture; ECGs: an irregular rhythm
  without P waves) and a label rule of its own: the majority's finding comes and goes at
  random, and the label follows subtle per-patient features (the texture's weights, small
  changes of ECG shape) that a handful of rare patients cannot teach, so a model has to
  memorise them;
* a few atypical patients whose records look like nothing else (images: a grating; ECGs:
  large oscillations without beats) with random labels;
* a few mislabelled records: typical majority records with flipped labels, drawn from
  patients with a single record when there are enough of them, so that no near-copy
  with the right label contradicts the flip.

The last three are what a model memorises, so a sound audit ranks them as the most
exposed; :class:`~miaudit.datasets.synthetic.Planted` says which they are. A patient has
1..``max_records_per_patient`` records (uniform): near-copies like follow-up images or
repeated ECGs (a small shift, new noise). Attributes describe patients: ``sex`` (floor(P/2)
female), ``site`` (A/B/C in shares 0.5/0.3/0.2) and ``group`` ('majority' / 'rare';
atypical patients belong to the majority group).

The writers turn any image or signal cohort into the files :mod:`miaudit.datasets.media`
reads (PNG/DICOM/.npy folders with an ``index.csv``, MedMNIST ``.npz``, WFDB or ``.npy``
ECG folders, a stacked ``.npy``). They never overwrite: an existing file or non-empty
folder is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.media.optional import import_pydicom, import_wfdb
from miaudit.datasets.synthetic import Planted, check_settings
from miaudit.errors import InputError

#: Lead names of synthetic ECGs, in the order ``leads`` takes them.
LEAD_NAMES = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6", "III", "aVR", "aVL", "aVF")
#: Per-lead gain of the QRS complex, the P wave and the T wave (same order as LEAD_NAMES).
_QRS_GAIN = np.array([0.7, 1.0, -0.8, -0.4, 0.5, 1.1, 1.0, 0.8, 0.4, -0.9, 0.3, 0.7])
_P_GAIN = np.array([0.6, 1.0, 0.5, 0.5, 0.6, 0.7, 0.7, 0.6, 0.4, -0.8, 0.2, 0.7])
_T_GAIN = np.array([0.5, 0.7, -0.2, 0.6, 0.8, 0.9, 0.8, 0.6, 0.3, -0.6, 0.3, 0.5])

#: Names of the image findings (multi-label), one shape each (see ``_shape``).
IMAGE_FINDINGS = ("nodule", "effusion", "mass", "atelectasis", "edema", "pneumothorax")
#: Names of the ECG findings (multi-label), one change of morphology each.
ECG_FINDINGS = ("wide_qrs", "st_elevation", "t_inversion", "tall_p", "low_voltage")

#: Site shares of the patients (exact counts, the last level takes the remainder).
SITE_SHARES = (("A", 0.5), ("B", 0.3), ("C", 0.2))
#: Prevalence of each finding in the majority (multi-label) and of the binary finding.
PREVALENCE = 0.35
BINARY_PREVALENCE = 0.5

# Images: sizes are relative to the image side (coordinates in [0, 1]).
_BLOB_SIGMA = 0.09
_BLOB_AMPLITUDE = (0.35, 0.55)
_RING_SIZE = 0.15  # radius of the ring-shaped finding
#: Number of gratings whose per-patient weights make the rare subgroup's texture and rule.
RARE_TEXTURES = 8
_TEXTURE_AMPLITUDE = 0.06
_PIXEL_NOISE = 0.03
_MARKER = 0.2  # side of the rare subgroup's device marker (a dark square, top left)

# ECG waves: (time from the R peak in s, amplitude in mV, width sigma in s).
_P_WAVE = (-0.16, 0.12, 0.022)
_Q_WAVE = (-0.025, -0.10, 0.008)
_R_WAVE = (0.0, 1.0, 0.010)
_S_WAVE = (0.025, -0.20, 0.008)
_T_WAVE = (0.27, 0.30, 0.045)
_ST_SEGMENT = (0.12, 0.25, 0.05)
_ECG_NOISE = 0.02  # mV
#: Number of continuous shape coefficients per patient (they decide the rare labels).
RARE_MORPHOLOGY = 6
_MORPHOLOGY_SCALE = 0.15  # relative size of one standard deviation of a shape coefficient


# -- shared layout ------------------------------------------------------------------------


class _Layout:
    """Who is rare or atypical, how many records each patient has, and the ids."""

    def __init__(
        self,
        rng: np.random.Generator,
        num_patients: int,
        num_rare: int,
        num_atypical: int,
        max_records: int,
    ) -> None:
        p = num_patients
        order = rng.permutation(p)
        self.rare = np.sort(order[:num_rare]).astype(np.int64)
        self.atypical = np.sort(order[num_rare : num_rare + num_atypical]).astype(np.int64)
        self.kind = np.zeros(p, dtype=np.int8)  # 0 majority, 1 rare, 2 atypical
        self.kind[self.rare] = 1
        self.kind[self.atypical] = 2
        self.counts = (
            np.ones(p, dtype=np.int64)
            if max_records == 1
            else rng.integers(1, max_records + 1, size=p).astype(np.int64)
        )
        self.patient = np.repeat(np.arange(p, dtype=np.int64), self.counts)
        width = len(str(p - 1))
        self.patient_ids = np.array([f"P{i:0{width}d}" for i in range(p)], dtype=object)
        within = np.arange(self.patient.size) - np.repeat(
            np.cumsum(self.counts) - self.counts, self.counts
        )
        self.record_ids = np.array(
            [f"{self.patient_ids[i]}-{k}" for i, k in zip(self.patient, within, strict=True)],
            dtype=object,
        )
        sex = np.where(rng.permutation(p) < p // 2, "female", "male")
        counts = [round(share * p) for _, share in SITE_SHARES[:-1]]
        counts.append(p - sum(counts))
        site = rng.permutation(np.repeat([name for name, _ in SITE_SHARES], counts))
        group = np.where(self.kind == 1, "rare", "majority")
        self.site_index = np.searchsorted([name for name, _ in SITE_SHARES], site)
        self.attributes = pd.DataFrame(
            {
                "sex": pd.Series(sex[self.patient], dtype=str),
                "site": pd.Series(site[self.patient], dtype=str),
                "group": pd.Series(group[self.patient], dtype=str),
            }
        )

    def mislabel(
        self, rng: np.random.Generator, confident: np.ndarray, count: int, what: str
    ) -> np.ndarray:
        """``count`` confident majority records, from single-record patients when enough."""
        candidates = np.flatnonzero(confident & (self.kind[self.patient] == 0))
        single = candidates[self.counts[self.patient[candidates]] == 1]
        pool = single if single.size >= count else candidates
        if count > pool.size:
            raise InputError(
                f"{what}: num_mislabelled = {count} but only {pool.size} confidently labelled "
                "majority records exist; lower it or add patients."
            )
        return np.sort(rng.choice(pool, size=count, replace=False)).astype(np.int64)

    def planted(self, mislabelled: np.ndarray) -> Planted:
        return Planted(
            rare_patients=self.rare,
            atypical_patients=self.atypical,
            mislabelled_records=mislabelled,
        )


def _finding_labels(
    rng: np.random.Generator, num_patients: int, num_labels: int | None
) -> np.ndarray:
    """[P, K] 0/1 findings per patient (K = 1 for the binary finding)."""
    if num_labels is None:
        return (rng.random((num_patients, 1)) < BINARY_PREVALENCE).astype(np.int64)
    return (rng.random((num_patients, num_labels)) < PREVALENCE).astype(np.int64)


def _check_labels(what: str, num_labels: int | None, most: int) -> None:
    if num_labels is not None and not 2 <= num_labels <= most:
        raise InputError(
            f"{what}: num_labels = {num_labels}; use None (binary) or 2..{most} findings."
        )


# -- images -------------------------------------------------------------------------------


def _rare_rule(
    rng: np.random.Generator, num_patients: int, num_labels: int, dimensions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient coefficients [P, D] ~ N(0, 1) and the rare labels [P, K] they decide.

    Label k is 1 where the coefficients' projection on a random direction w_k exceeds the
    quantile that gives the finding its prevalence. With D coefficients and a handful of
    rare patients, no model can learn w_k: it has to memorise each rare patient.
    """
    coefficients = rng.standard_normal((num_patients, dimensions))
    directions = rng.standard_normal((dimensions, num_labels))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    prevalence = BINARY_PREVALENCE if num_labels == 1 else PREVALENCE
    threshold = NormalDist().inv_cdf(1 - prevalence)
    return coefficients, (coefficients @ directions > threshold).astype(np.int64)


def _shape(
    finding: int, v: np.ndarray, u: np.ndarray, cv: np.ndarray, cu: np.ndarray, binary: bool
) -> np.ndarray:
    """Finding ``finding``'s shape (peak 1) centred at (cv, cu): unaffected by flips and shifts.

    binary: a blob. Multi-label, in IMAGE_FINDINGS order: small blob, band along the bottom
    edge, large blob, horizontal bar, vertical bar, ring.
    """
    dv, du = v - cv, u - cu
    if binary:
        return np.exp(-(dv**2 + du**2) / (2 * _BLOB_SIGMA**2))
    if finding == 0:
        return np.exp(-(dv**2 + du**2) / (2 * 0.06**2))
    if finding == 1:
        return np.broadcast_to(1.0 / (1.0 + np.exp(-(v - 0.8) / 0.03)), dv.shape)
    if finding == 2:
        return np.exp(-(dv**2 + du**2) / (2 * 0.16**2))
    if finding == 3:
        return np.exp(-(dv**2) / (2 * 0.04**2) - du**2 / (2 * 0.2**2))
    if finding == 4:
        return np.exp(-(du**2) / (2 * 0.04**2) - dv**2 / (2 * 0.2**2))
    radius = np.sqrt(dv**2 + du**2)
    return np.exp(-((radius - _RING_SIZE) ** 2) / (2 * 0.035**2))


def make_synthetic_images(
    num_patients: int = 300,
    *,
    image_size: tuple[int, int] = (16, 16),
    channels: Literal[1, 3] = 1,
    num_labels: int | None = None,
    rare_fraction: float = 0.05,
    num_atypical: int = 5,
    num_mislabelled: int = 5,
    max_records_per_patient: int = 2,
    seed: int = 0,
) -> tuple[Cohort, Planted]:
    """A validated image cohort [N, C, H, W] in [0, 1] and its planted cases, by ``seed``.

    Majority: a smooth background (brightness, gradient, site offset) plus a bright shape
    per present finding, at a random central place. Binary (``num_labels`` None): the
    finding is a blob, present in half the patients. Multi-label: each finding has its own
    shape (see ``_shape``; none changes under flips or shifts), present with prevalence
    0.35. Rare: inverted contrast, a dark marker in the top-left corner and a faint texture
    (a sum of RARE_TEXTURES fixed gratings with per-patient weights); the shapes come and
    go at random, and the labels follow the texture weights (``_rare_rule``). Atypical: a
    high-contrast grating, random labels. Mislabelled (binary): flipped negatives or
    clearly visible positives; multi-label: every finding of the record flipped. RGB
    images carry a per-patient tint.
    """
    what = "synthetic image cohort"
    num_rare = check_settings(
        what, num_patients, rare_fraction, num_atypical, num_mislabelled, max_records_per_patient
    )
    _check_labels(what, num_labels, len(IMAGE_FINDINGS))
    height, width = (int(s) for s in image_size)
    if height < 8 or width < 8:
        raise InputError(f"{what}: image_size = {image_size}; use at least 8×8 pixels.")
    if channels not in (1, 3):
        raise InputError(f"{what}: channels = {channels}; use 1 (gray) or 3 (RGB).")
    rng = np.random.default_rng(seed)
    layout = _Layout(rng, num_patients, num_rare, num_atypical, max_records_per_patient)
    p, patient, kind = num_patients, layout.patient, layout.kind
    binary = num_labels is None
    shown = _finding_labels(rng, p, num_labels)
    k = shown.shape[1]
    texture, rare_labels = _rare_rule(rng, p, k, RARE_TEXTURES)
    labels_p = np.where((kind == 1)[:, None], rare_labels, shown)

    # Patient-level appearance.
    brightness = rng.uniform(0.15, 0.3, p) + np.array([0.0, 0.03, -0.03])[layout.site_index]
    gradient = rng.normal(0.0, 0.06, (p, 2))
    amplitude = rng.uniform(*_BLOB_AMPLITUDE, (p, k))
    centre = rng.uniform(0.3, 0.7, (p, k, 2))
    gratings = np.stack(  # the rare texture's fixed gratings
        [
            rng.uniform(1.5, 4.0, RARE_TEXTURES),  # cycles per image
            rng.uniform(0, np.pi, RARE_TEXTURES),  # orientation
            rng.uniform(0, 2 * np.pi, RARE_TEXTURES),  # phase
        ],
        axis=1,
    )
    atypical = np.stack(
        [rng.uniform(2.5, 5.0, p), rng.uniform(0, np.pi, p), rng.uniform(0, 2 * np.pi, p)],
        axis=1,
    )
    atypical_labels = rng.integers(0, 2, size=(p, k))
    tint = rng.uniform(0.85, 1.15, (p, 3))

    # Records: near-copies with a small shift and their own noise.
    n = patient.size
    shift = rng.uniform(-0.5, 0.5, (n, 2)) / np.array([height, width])
    v = ((np.arange(height) + 0.5) / height)[None, :, None] - shift[:, 0, None, None]
    u = ((np.arange(width) + 0.5) / width)[None, None, :] - shift[:, 1, None, None]

    def grating(frequency: np.ndarray, angle: np.ndarray, phase: np.ndarray, rows: np.ndarray):
        along = u[rows] * np.cos(angle) + v[rows] * np.sin(angle)
        return np.sin(2 * np.pi * frequency * along + phase)

    image = (
        brightness[patient, None, None]
        + gradient[patient, 0, None, None] * (v - 0.5)
        + gradient[patient, 1, None, None] * (u - 0.5)
    )
    for j in range(k):
        cv = centre[patient, j, 0][:, None, None]
        cu = centre[patient, j, 1][:, None, None]
        weight = shown[patient, j] * amplitude[patient, j]
        image = image + weight[:, None, None] * _shape(j, v, u, cv, cu, binary)
    is_rare = kind[patient] == 1
    rows = np.flatnonzero(is_rare)
    for j, (frequency, angle, phase) in enumerate(gratings):
        weight = _TEXTURE_AMPLITUDE * texture[patient[rows], j]
        image[rows] += weight[:, None, None] * grating(frequency, angle, phase, rows)
    image[rows] = 1.0 - image[rows]
    marker_h, marker_w = max(2, round(_MARKER * height)), max(2, round(_MARKER * width))
    image[np.ix_(rows, np.arange(marker_h), np.arange(marker_w))] = 0.0
    is_atypical = kind[patient] == 2
    rows = np.flatnonzero(is_atypical)
    if rows.size:
        a = atypical[patient[rows]][:, :, None, None]
        image[rows] = 0.5 + 0.35 * grating(a[:, 0], a[:, 1], a[:, 2], rows)
    image = image + _PIXEL_NOISE * rng.standard_normal(image.shape)
    if channels == 3:
        image = image[:, None] * tint[patient][:, :, None, None]
    else:
        image = image[:, None]
    inputs = np.clip(image, 0.0, 1.0).astype(np.float32)

    labels = labels_p[patient].copy()
    labels[is_atypical] = atypical_labels[patient[is_atypical]]
    if binary:
        visible = amplitude[patient, 0] >= np.median(amplitude[:, 0])
        confident = (labels[:, 0] == 0) | visible
    else:
        confident = np.ones(n, dtype=bool)
    mislabelled = layout.mislabel(rng, confident, num_mislabelled, what)
    labels[mislabelled] = 1 - labels[mislabelled]
    if binary:
        labels = labels[:, 0]
        class_names: tuple[str, ...] = ("negative", "positive")
    else:
        class_names = IMAGE_FINDINGS[:k]

    cohort = Cohort(
        name="synthetic_images",
        inputs=inputs,
        labels=np.ascontiguousarray(labels, dtype=np.int64),
        patient=patient,
        patient_ids=layout.patient_ids,
        record_ids=layout.record_ids,
        attributes=layout.attributes,
        class_names=class_names,
        feature_names=("pixels",),
        modality="image",
        source=f"synthetic-images:seed={seed}",
    )
    cohort.validate()
    return cohort, layout.planted(mislabelled)


# -- ECGs ---------------------------------------------------------------------------------


def _gauss(t: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """Sum over beats of exp(-(t - centre)² / 2σ²): [T] from t [T] and centres [B]."""
    return np.exp(-((t[None, :] - centre[:, None]) ** 2) / (2 * sigma**2)).sum(axis=0)


def _beat_times(
    rng: np.random.Generator, duration: float, rr: float, irregular: bool
) -> np.ndarray:
    """R-peak times covering [-1 s, duration + 1 s): regular (2 % jitter) or irregular (AF)."""
    times = [rng.uniform(-1.0, -1.0 + rr)]
    while times[-1] < duration + 1.0:
        step = rng.uniform(0.35, 0.9) if irregular else rr * (1 + 0.02 * rng.standard_normal())
        times.append(times[-1] + step)
    return np.asarray(times)


def _ecg_record(
    rng: np.random.Generator,
    t: np.ndarray,
    rr: float,
    morphology: np.ndarray,
    shape: np.ndarray,
    gains: np.ndarray,
    rare: bool,
) -> np.ndarray:
    """[L, T] mV of one record: P-QRS-T beats shaped by the morphology flags, wander, noise.

    ``shape`` holds the patient's continuous coefficients (RARE_MORPHOLOGY of them): T
    amplitude, R amplitude, S depth, T timing, QRS width and ST level, each a small change.
    """
    wide, st, t_inv, tall_p, low = (bool(m) for m in morphology)
    c = _MORPHOLOGY_SCALE * shape
    beats = _beat_times(rng, float(t[-1]), rr, irregular=rare)
    width = (3.0 if wide else 1.0) * (1 + 0.5 * c[4])
    r_amp = (0.8 if wide else 1.0) * (1 + c[1])
    qrs = (
        _Q_WAVE[1] * _gauss(t, beats + _Q_WAVE[0], _Q_WAVE[2] * width)
        + _R_WAVE[1] * r_amp * _gauss(t, beats + _R_WAVE[0], _R_WAVE[2] * width)
        + _S_WAVE[1] * (1 + 2 * c[2]) * _gauss(t, beats + _S_WAVE[0], _S_WAVE[2] * width)
    )
    at, amp, sigma = _ST_SEGMENT
    qrs = qrs + (amp * st + 0.1 * c[5]) * _gauss(t, beats + at, sigma)
    at, amp, sigma = _T_WAVE
    t_amp = (-1.0 if t_inv else 1.0) * amp * (1 + c[0])
    t_wave = t_amp * _gauss(t, beats + at + 0.1 * c[3], sigma)
    if rare:  # atrial fibrillation: no P waves, fibrillatory baseline
        phase = np.cumsum(rng.normal(2 * np.pi * 6.0 * (t[1] - t[0]), 0.05, t.size))
        p_wave = 0.06 * np.sin(phase)
    else:
        at, amp, sigma = _P_WAVE
        p_wave = (2.5 if tall_p else 1.0) * amp * _gauss(t, beats + at, sigma)
    scale = 0.4 if low else 1.0
    signal = (
        scale * (gains[:, 0, None] * qrs + gains[:, 2, None] * t_wave) + gains[:, 1, None] * p_wave
    )
    wander = rng.uniform(0.05, 0.15) * np.sin(
        2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi)
    )
    return signal + wander[None, :] + _ECG_NOISE * rng.standard_normal(signal.shape)


def make_synthetic_ecg(
    num_patients: int = 300,
    *,
    leads: int = 3,
    length: int = 500,
    sampling_rate: float = 100.0,
    num_labels: int | None = None,
    rare_fraction: float = 0.05,
    num_atypical: int = 5,
    num_mislabelled: int = 5,
    max_records_per_patient: int = 2,
    seed: int = 0,
) -> tuple[Cohort, Planted]:
    """A validated ECG cohort [N, leads, length] in mV and its planted cases, by ``seed``.

    Majority: sinus rhythm at 55-95 bpm (per patient), P-QRS-T waves as Gaussians with
    per-lead gains (LEAD_NAMES order), small continuous changes of shape per patient (see
    ``_ecg_record``), baseline wander and noise. Binary (``num_labels`` None): the finding
    is a wide QRS with ST elevation, in half the patients. Multi-label: ECG_FINDINGS[:K],
    each its own change of morphology, prevalence 0.35. Rare: atrial fibrillation
    (irregular RR, no P waves, fibrillatory baseline); the findings' morphology comes and
    goes at random and the labels follow the patient's continuous shape coefficients
    (``_rare_rule``). Atypical: a few large oscillations (1-8 Hz) without beats, random
    labels. Records of a patient share rhythm and morphology, with their own beat phase,
    wander and noise. ``source`` records the sampling rate, which the ECG writers read.
    """
    what = "synthetic ECG cohort"
    num_rare = check_settings(
        what, num_patients, rare_fraction, num_atypical, num_mislabelled, max_records_per_patient
    )
    _check_labels(what, num_labels, len(ECG_FINDINGS))
    if not 1 <= leads <= len(LEAD_NAMES):
        raise InputError(f"{what}: leads = {leads}; use 1..{len(LEAD_NAMES)}.")
    if not sampling_rate > 0 or length < 2 * sampling_rate:
        raise InputError(
            f"{what}: {length} samples at {sampling_rate} Hz; use a positive rate and at "
            "least 2 seconds of signal (length ≥ 2·sampling_rate)."
        )
    rng = np.random.default_rng(seed)
    layout = _Layout(rng, num_patients, num_rare, num_atypical, max_records_per_patient)
    p, patient, kind = num_patients, layout.patient, layout.kind
    findings = _finding_labels(rng, p, num_labels)
    k = findings.shape[1]
    shape, rare_labels = _rare_rule(rng, p, k, RARE_MORPHOLOGY)
    labels_p = np.where((kind == 1)[:, None], rare_labels, findings)

    morphology = np.zeros((p, len(ECG_FINDINGS)), dtype=np.int64)
    if num_labels is None:
        morphology[:, 0] = morphology[:, 1] = findings[:, 0]
    else:
        morphology[:, :k] = findings
    rr = 60.0 / rng.uniform(55, 95, p)
    gains = np.stack([_QRS_GAIN, _P_GAIN, _T_GAIN], axis=1)[:leads]
    gains = gains[None] * rng.uniform(0.9, 1.1, (p, leads, 1)) * rng.uniform(0.8, 1.2, (p, 1, 1))
    oscillation = np.stack(
        [
            rng.uniform(1.0, 8.0, (p, 3)),  # Hz
            rng.uniform(0.3, 1.0, (p, 3)),  # mV
            rng.uniform(0, 2 * np.pi, (p, 3)),
        ],
        axis=-1,
    )
    lead_mix = rng.uniform(-1.0, 1.0, (p, leads, 3))
    atypical_labels = rng.integers(0, 2, size=(p, k))

    t = np.arange(length) / sampling_rate
    n = patient.size
    inputs = np.empty((n, leads, length), dtype=np.float64)
    for i in range(n):
        j = patient[i]
        if kind[j] == 2:
            offset = rng.uniform(0, 0.05)
            freq, amp, phase = (oscillation[j, :, c, None] for c in range(3))
            waves = amp * np.sin(2 * np.pi * freq * (t[None, :] + offset) + phase)  # [3, T]
            inputs[i] = lead_mix[j] @ waves + _ECG_NOISE * rng.standard_normal((leads, length))
        else:
            inputs[i] = _ecg_record(
                rng, t, rr[j], morphology[j], shape[j], gains[j], rare=kind[j] == 1
            )

    labels = labels_p[patient].copy()
    is_atypical = kind[patient] == 2
    labels[is_atypical] = atypical_labels[patient[is_atypical]]
    mislabelled = layout.mislabel(rng, np.ones(n, dtype=bool), num_mislabelled, what)
    labels[mislabelled] = 1 - labels[mislabelled]
    if num_labels is None:
        labels = labels[:, 0]
        class_names: tuple[str, ...] = ("negative", "positive")
    else:
        class_names = ECG_FINDINGS[:num_labels]

    cohort = Cohort(
        name="synthetic_ecg",
        inputs=inputs.astype(np.float32),
        labels=np.ascontiguousarray(labels, dtype=np.int64),
        patient=patient,
        patient_ids=layout.patient_ids,
        record_ids=layout.record_ids,
        attributes=layout.attributes,
        class_names=class_names,
        feature_names=LEAD_NAMES[:leads],
        modality="signal",
        source=f"synthetic-ecg:seed={seed}:fs={float(sampling_rate)!r}",
    )
    cohort.validate()
    return cohort, layout.planted(mislabelled)


# -- writers ------------------------------------------------------------------------------


def _fresh_folder(folder: str | Path) -> Path:
    """Create ``folder``; an existing non-empty folder (or a file there) is an InputError."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        state = "is a file" if not folder.is_dir() else "exists and is not empty"
        raise InputError(
            f"folder '{folder}' {state}; miaudit never overwrites data: choose a new folder "
            "or empty this one yourself."
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fresh_file(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InputError(f"file '{path}': name it with the {suffix} suffix.")
    if path.exists():
        raise InputError(
            f"file '{path}' exists; miaudit never overwrites data: choose a new file name."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _require_modality(cohort: Cohort, modality: str, writer: str) -> None:
    if cohort.modality != modality:
        raise InputError(
            f"{writer}: cohort {cohort.name!r} holds {cohort.modality} records; this writer "
            f"writes {modality} cohorts."
        )


def _index_frame(
    cohort: Cohort, paths: Sequence[str] | None, extra: dict | None = None
) -> pd.DataFrame:
    """index.csv rows: path, label(s), patient_id, record_id, attributes (, extra columns).

    Single-label: a ``label`` column with class names. Multi-label: one 0/1 column per
    class and a ``findings`` column joined by '|' ('No Finding' when none), so both ways
    of reading multi-label indexes can be used.
    """
    columns: list[tuple[str, object]] = []
    if paths is not None:
        columns.append(("path", list(paths)))
    if cohort.multilabel:
        for j, name in enumerate(cohort.class_names):
            if "|" in name:
                raise InputError(
                    f"cohort {cohort.name!r}: class name {name!r} contains '|', which the "
                    "index's findings column uses as separator; rename the class."
                )
            columns.append((name, cohort.labels[:, j]))
        findings = [
            "|".join(n for n, y in zip(cohort.class_names, row, strict=True) if y) or "No Finding"
            for row in cohort.labels
        ]
        columns.append(("findings", findings))
    else:
        columns.append(("label", np.asarray(cohort.class_names, dtype=object)[cohort.labels]))
    columns.append(("patient_id", np.asarray(cohort.patient_ids, dtype=object)[cohort.patient]))
    columns.append(("record_id", np.asarray(cohort.record_ids, dtype=object)))
    columns.extend((name, cohort.attributes[name].to_numpy()) for name in cohort.attributes)
    columns.extend((extra or {}).items())
    names = [name for name, _ in columns]
    clash = sorted({name for name in names if names.count(name) > 1})
    if clash:
        raise InputError(
            f"cohort {cohort.name!r}: {', '.join(repr(c) for c in clash)} would be two columns "
            "of the index (a class or attribute has the name of another column); rename it."
        )
    return pd.DataFrame(dict(columns))


def _write_index(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "index.csv"
    frame.to_csv(path, index=False)
    return path


def _file_names(n: int, folder: str, suffix: str) -> list[str]:
    width = max(6, len(str(n - 1)))
    return [f"{folder}/r{i:0{width}d}{suffix}" for i in range(n)]


def quantize(inputs: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] floats → uint8 / uint16 by rounding x·(2^bits − 1), the way the writers store pixels."""
    scale = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.rint(np.clip(inputs.astype(np.float64), 0.0, 1.0) * scale).astype(dtype)


def write_image_folder(
    cohort: Cohort,
    folder: str | Path,
    fmt: Literal["png", "dcm", "npy"] = "png",
    *,
    bits: Literal[8, 16] = 8,
) -> Path:
    """Write one file per record under ``folder/images`` and ``folder/index.csv``; its path.

    png: 8-bit gray/RGB, or 16-bit gray; dcm: Secondary Capture (MONOCHROME2 or RGB, 8 or
    16 bits, PatientID set); npy: the float32 [C, H, W] record as it is (``bits`` unused).
    """
    _require_modality(cohort, "image", "write_image_folder")
    if fmt not in ("png", "dcm", "npy"):
        raise InputError(f"write_image_folder: fmt = {fmt!r}; use 'png', 'dcm' or 'npy'.")
    if bits not in (8, 16):
        raise InputError(f"write_image_folder: bits = {bits}; use 8 or 16.")
    channels = cohort.inputs.shape[1]
    if fmt == "png" and bits == 16 and channels == 3:
        raise InputError(
            "write_image_folder: 16-bit PNG is written for gray images only; use bits = 8 or "
            "fmt = 'dcm' for RGB."
        )
    names = _file_names(cohort.num_records, "images", f".{fmt}")
    index = _index_frame(cohort, names)
    if fmt == "dcm":
        import_pydicom("write_image_folder")
    folder = _fresh_folder(folder)
    (folder / "images").mkdir()
    if fmt == "npy":
        for name, record in zip(names, cohort.inputs, strict=True):
            np.save(folder / name, record)
    elif fmt == "png":
        from PIL import Image

        pixels = quantize(cohort.inputs, bits)
        for name, record in zip(names, pixels, strict=True):
            plane = record[0] if channels == 1 else np.moveaxis(record, 0, -1)
            Image.fromarray(np.ascontiguousarray(plane)).save(folder / name)
    else:
        pixels = quantize(cohort.inputs, bits)
        patient_ids = np.asarray(cohort.patient_ids)[cohort.patient]
        for i, (name, record) in enumerate(zip(names, pixels, strict=True)):
            _write_dicom(
                folder / name, record, str(patient_ids[i]), str(cohort.record_ids[i]), bits
            )
    return _write_index(index, folder)


def _write_dicom(
    path: Path, pixels: np.ndarray, patient_id: str, record_id: str, bits: int
) -> None:
    """A Secondary Capture image: explicit VR little endian, uncompressed, deterministic UIDs."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    instance = generate_uid(entropy_srcs=["miaudit", patient_id, record_id])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = DicomDataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = instance
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["miaudit-study", patient_id])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["miaudit-series", patient_id, record_id])
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    channels, rows, columns = pixels.shape
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = channels
    ds.PhotometricInterpretation = "MONOCHROME2" if channels == 1 else "RGB"
    if channels == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    plane = pixels[0] if channels == 1 else np.moveaxis(pixels, 0, -1)
    ds.PixelData = np.ascontiguousarray(plane).astype(f"<u{bits // 8}").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_medmnist_npz(
    cohort: Cohort,
    path: str | Path,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> Path:
    """A MedMNIST-style .npz: uint8 images, labels [n, 1] (class index) or [n, K] (0/1).

    Records go to train / val / test in contiguous blocks in record order
    (round(f·N) train, round(f·N) val, the rest test), so reading the parts back in that
    order restores the cohort's order. Patients are not stored (MedMNIST has none).
    """
    _require_modality(cohort, "image", "write_medmnist_npz")
    fractions = np.asarray(split_fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-9:
        raise InputError(
            f"write_medmnist_npz: split_fractions = {split_fractions}; give three fractions "
            "(train, val, test) ≥ 0 that sum to 1."
        )
    path = _fresh_file(path, ".npz")
    n = cohort.num_records
    n_train, n_val = round(fractions[0] * n), round(fractions[1] * n)
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }
    pixels = quantize(cohort.inputs, 8)
    images = pixels[:, 0] if pixels.shape[1] == 1 else np.moveaxis(pixels, 1, -1)
    labels = cohort.labels if cohort.multilabel else cohort.labels[:, None]
    arrays: dict[str, np.ndarray] = {}
    for split, (lo, hi) in bounds.items():
        arrays[f"{split}_images"] = np.ascontiguousarray(images[lo:hi])
        arrays[f"{split}_labels"] = np.ascontiguousarray(labels[lo:hi]).astype(np.uint8)
    with open(path, "xb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    return path


_FS_IN_SOURCE = re.compile(r":fs=([0-9.eE+-]+)")


def _sampling_rate(cohort: Cohort, sampling_rate: float | None, writer: str) -> float:
    """The given rate, else the one a synthetic ECG cohort records in its ``source``."""
    if sampling_rate is not None:
        if not sampling_rate > 0:
            raise InputError(f"{writer}: sampling_rate = {sampling_rate}; use a rate > 0 Hz.")
        return float(sampling_rate)
    found = _FS_IN_SOURCE.search(cohort.source)
    if found is None:
        raise InputError(
            f"{writer}: cohort {cohort.name!r} does not record its sampling rate; pass "
            "sampling_rate (Hz)."
        )
    return float(found.group(1))


def write_ecg_folder(
    cohort: Cohort,
    folder: str | Path,
    fmt: Literal["wfdb", "npy"] = "wfdb",
    *,
    sampling_rate: float | None = None,
) -> Path:
    """Write one record per file under ``folder/records`` and ``folder/index.csv``; its path.

    wfdb: ``wfdb.wrsamp`` 16-bit records with the lead names, units mV and ``fs``; the
    index's path is the record name without suffix (as PTB-XL's). npy: float32 [L, T] per
    record and a ``sampling_rate`` column. ``sampling_rate`` None: the rate recorded by
    :func:`make_synthetic_ecg`.
    """
    _require_modality(cohort, "signal", "write_ecg_folder")
    if fmt not in ("wfdb", "npy"):
        raise InputError(f"write_ecg_folder: fmt = {fmt!r}; use 'wfdb' or 'npy'.")
    fs = _sampling_rate(cohort, sampling_rate, "write_ecg_folder")
    n = cohort.num_records
    names = _file_names(n, "records", ".npy" if fmt == "npy" else "")
    extra = {"sampling_rate": [fs] * n} if fmt == "npy" else None
    index = _index_frame(cohort, names, extra)
    wfdb = import_wfdb("write_ecg_folder") if fmt == "wfdb" else None
    folder = _fresh_folder(folder)
    records = folder / "records"
    records.mkdir()
    if wfdb is None:
        for name, record in zip(names, cohort.inputs, strict=True):
            np.save(folder / name, record)
        return _write_index(index, folder)
    leads = [str(name) for name in cohort.feature_names]
    for name, record in zip(names, cohort.inputs, strict=True):
        wfdb.wrsamp(
            Path(name).name,
            fs=fs,
            units=["mV"] * len(leads),
            sig_name=leads,
            p_signal=np.asarray(record, dtype=np.float64).T,
            fmt=["16"] * len(leads),
            write_dir=str(records),
        )
    return _write_index(index, folder)


def write_stacked_npy(
    cohort: Cohort, folder: str | Path, *, sampling_rate: float | None = None
) -> Path:
    """``folder/inputs.npy`` (the cohort's float32 inputs) and ``folder/index.csv``; its path.

    Read it back with ``array = folder/inputs.npy``. Signal cohorts get a ``sampling_rate``
    column (``sampling_rate`` None: the rate recorded by :func:`make_synthetic_ecg`).
    """
    extra = None
    if cohort.modality == "signal":
        fs = _sampling_rate(cohort, sampling_rate, "write_stacked_npy")
        extra = {"sampling_rate": [fs] * cohort.num_records}
    elif cohort.modality != "image":
        raise InputError(
            f"write_stacked_npy: cohort {cohort.name!r} holds {cohort.modality} records; this "
            "writer writes image and signal cohorts."
        )
    frame = _index_frame(cohort, None, extra)
    folder = _fresh_folder(folder)
    np.save(folder / "inputs.npy", cohort.inputs)
    return _write_index(frame, folder)
