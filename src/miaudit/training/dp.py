"""Patient-level DP-SGD for a group of reference models at once.

A membership audit asks about patients, so the privacy unit here is a patient by default:
at every step each of a model's patients joins the batch independently with probability q
(Poisson sampling of *patients*, with all their IN records), the gradient of a patient is
the sum over their records in the batch, it is clipped to norm C as one vector, and
Gaussian noise N(0, σ²C²) is added to the sum of clipped gradients before it is divided
by the expected batch q·P and handed to Adam. A patient with twenty records therefore
moves the model no more than a patient with one. ``level="record"`` clips and samples
records instead (the usual DP-SGD), which protects a record but lets a patient with many
records through k-fold; it is the comparison the audit shows.

The accounting is opacus's (RDP or PRV) for the subsampled Gaussian at the *patient*
sampling rate, with σ calibrated from a target (ε, δ); δ defaults to 1/P. ``epochs`` are
expected passes, so a model takes ``int(epochs / q)`` steps, as Opacus counts them.

Speed: G models train as stacked [G, ...] weights (as in ``stacked.py``). Per-patient
gradient norms come from ghost clipping: one backward pass to the pre-activations (written
out by hand for MLPs, by autograd for the tabular ResNet) gives, for a linear layer with
inputs a_i and output gradients g_i, the per-record gradient g_i a_iᵀ, whose norm needs
only ‖g_i‖²(‖a_i‖² + 1), and for patients with several records in the batch the cross
terms (g_i·g_j)(a_i·a_j + 1) over pairs of their records. The clipped sum is then one matmul
Σ_i c_i g_i a_iᵀ with the clip factors c_i; per-record gradients are never materialised.

Reproducibility: model m draws its initialisation, its Poisson samples, its dropout masks
and its noise from its own CPU generators seeded by (seed, m, stream), so its result does
not depend on which models train beside it, nor on the device.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from miaudit import privacy as bounds
from miaudit.config import DPSpec, TrainingSpec
from miaudit.errors import InputError
from miaudit.models import ModelSpec, dropout_mask
from miaudit.training.data import check_inputs
from miaudit.training.devices import cpu_threads, default_max_models, select_device
from miaudit.training.optim import make_optimizer
from miaudit.training.seeds import STREAM_DROPOUT, STREAM_ORDER, model_generator
from miaudit.training.stacked import dropout_widths, init_stacked, predict_stacked

__all__ = [
    "STREAM_NOISE",
    "STREAM_SAMPLE",
    "Accounting",
    "DPSpec",
    "accounting",
    "clipped_gradients",
    "epsilon_profile",
    "privacy_report",
    "train_group_dp",
]

STREAM_SAMPLE = STREAM_ORDER
"""Poisson draws take the place of the batch order of the non-private engine."""
STREAM_NOISE = 3

CLIP_EPS = 1e-6
"""Added to a norm before dividing by it (Opacus' value), so zero gradients stay finite."""

RDP_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *range(12, 64),
    64, 80, 96, 128, 160, 192, 256, 384, 512, 1024,
)
"""Opacus' default RDP orders extended upwards: small ε with large σ needs high orders."""

MAX_SIGMA = 1e6


# --------------------------------------------------------------------------- accounting


@dataclass(frozen=True)
class Accounting:
    """The noise and guarantee of one model's DP-SGD run."""

    sigma: float
    sample_rate: float
    steps: int
    epsilon: float
    delta: float
    accountant: str
    num_units: int

    @property
    def expected_batch(self) -> float:
        """Expected number of units per step; the sum of clipped gradients is divided by it."""
        return self.sample_rate * self.num_units


def _opacus() -> Any:
    try:
        from opacus import accountants
    except ImportError:  # pragma: no cover - opacus is installed with miaudit's DP support
        raise InputError(
            "privacy: differentially private training needs opacus's accountants; install "
            "them with `pip install 'opacus>=1.5,<2'`"
        ) from None
    return accountants


@functools.lru_cache(maxsize=1024)
def _epsilon_for(sigma: float, q: float, steps: int, delta: float, accountant: str) -> float:
    acc = _opacus().create_accountant(mechanism=accountant)
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if accountant == "rdp":
            eps = acc.get_epsilon(delta=delta, alphas=list(RDP_ORDERS))
        else:
            eps = acc.get_epsilon(delta=delta)
    return max(0.0, float(eps))


@functools.lru_cache(maxsize=256)
def _calibrate(epsilon: float, delta: float, q: float, steps: int, accountant: str) -> float:
    """Smallest σ (to 1% in ε) whose ε at δ is at most ``epsilon``: Opacus' bisection."""
    low, high = 0.0, 10.0
    eps_high = math.inf
    while eps_high > epsilon:
        high *= 2
        if high > MAX_SIGMA:
            raise InputError(
                f"privacy.epsilon = {epsilon:g}: no noise multiplier up to {MAX_SIGMA:g} reaches "
                f"it in {steps} steps at sample rate {q:.3g} (δ = {delta:.3g}); raise epsilon, "
                "train fewer epochs or use a smaller training.batch_size"
            )
        eps_high = _epsilon_for(high, q, steps, delta, accountant)
    while epsilon - eps_high > 0.01 * epsilon:
        mid = (low + high) / 2
        eps = _epsilon_for(mid, q, steps, delta, accountant)
        if eps < epsilon:
            high, eps_high = mid, eps
        else:
            low = mid
        if high - low < 1e-6 * high:
            break
    return high


def accounting(privacy: DPSpec, *, num_units: int, batch_size: int, epochs: int) -> Accounting:
    """σ, sampling rate, steps and (ε, δ) of one model that trains on ``num_units`` units.

    ``num_units`` is the number of patients (records for ``level="record"``) the model
    trains on. The guards here are the accounting mistakes users make with Opacus: a batch
    larger than the data (no subsampling, yet accounted as if there were), an expected
    batch below one unit, a δ so large that leaking a whole patient satisfies it.
    """
    if not privacy.enabled:
        raise InputError(
            "privacy: neither epsilon nor noise_multiplier is set, so there is nothing to "
            "account; set privacy.epsilon (e.g. 3) for DP training"
        )
    units = privacy.unit
    if num_units < 2:
        raise InputError(
            f"privacy: each model trains on {num_units} {units}; DP-SGD needs at least 2 "
            "(use a larger cohort)"
        )
    if privacy.sample_rate is None:
        if batch_size > num_units:
            raise InputError(
                f"training.batch_size = {batch_size} exceeds the {num_units} {units} each model "
                f"trains on; DP-SGD samples {units} at rate batch_size / {num_units}, which "
                f"must be below 1: use a batch_size such as {max(1, num_units // 10)}"
            )
        q = batch_size / num_units
    else:
        q = privacy.sample_rate
    if q * num_units < 1:
        raise InputError(
            f"privacy.sample_rate = {q:.3g}: with {num_units} {units} per model a step would "
            f"hold {q * num_units:.2f} {units} on average, so most steps train on noise alone; "
            f"use a sample rate of at least {1 / num_units:.3g}"
        )
    delta = privacy.delta if privacy.delta is not None else 1.0 / num_units
    if delta > 1.0 / num_units:
        raise InputError(
            f"privacy.delta = {delta:.3g} exceeds 1/{num_units} (one over the {units} each "
            "model trains on): a mechanism that publishes one random unit outright meets "
            f"it; use δ ≤ {1.0 / num_units:.3g} (the default) or smaller"
        )
    steps = max(1, int(epochs / q))
    if privacy.noise_multiplier is not None:
        sigma = float(privacy.noise_multiplier)
        epsilon = _epsilon_for(sigma, q, steps, delta, privacy.accountant)
    else:
        assert privacy.epsilon is not None
        sigma = _calibrate(float(privacy.epsilon), delta, q, steps, privacy.accountant)
        epsilon = _epsilon_for(sigma, q, steps, delta, privacy.accountant)
    return Accounting(sigma, q, steps, epsilon, delta, privacy.accountant, int(num_units))


@functools.lru_cache(maxsize=256)
def _rdp_profile(sigma: float, q: float, steps: int) -> tuple[float, ...]:
    from opacus.accountants.analysis import rdp

    _opacus()
    orders = list(RDP_ORDERS)
    curve = rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in bounds.DELTA_GRID:
            eps, _ = rdp.get_privacy_spent(orders=orders, rdp=curve, delta=float(d))
            out.append(max(0.0, float(eps)))
    return tuple(out)


def epsilon_profile(acct: Accounting) -> tuple[np.ndarray, np.ndarray]:
    """(ε, δ) pairs that all hold for the run: RDP at ``DELTA_GRID`` plus the run's own pair.

    Every pair is an upper bound for the same mechanism, so the run is DP under all of them
    at once; :func:`miaudit.privacy.bound_from_accountant` turns them into the max AUC.
    """
    eps = np.r_[_rdp_profile(acct.sigma, acct.sample_rate, acct.steps), acct.epsilon]
    deltas = np.r_[bounds.DELTA_GRID, acct.delta]
    return eps, deltas


def privacy_report(privacy: DPSpec, *, num_units: int, batch_size: int, epochs: int) -> dict[str, Any]:
    """What a run records about its privacy: σ, steps, rate, (ε, δ), accountant, bounds.

    ``max_auc`` is the bound the audit draws: the largest attack AUC the mechanism permits,
    from its whole (ε(δ), δ) profile (tighter than ``max_auc_eps_delta``, the bound implied
    by the single pair). ``gdp_mu`` and ``max_auc_gdp`` are the central-limit description,
    for information. A non-private run reports ``private: false`` and ``max_auc`` 1.
    """
    base: dict[str, Any] = {
        "private": privacy.enabled,
        "level": privacy.level,
        "unit": privacy.unit,
        "accountant": privacy.accountant,
        "max_grad_norm": privacy.max_grad_norm,
        "num_units": int(num_units),
        "batch_size": int(batch_size),
        "epochs": int(epochs),
    }
    if not privacy.enabled:
        return {
            **base,
            "sigma": 0.0,
            "steps": None,
            "sample_rate": None,
            "epsilon": None,
            "delta": None,
            "max_auc": 1.0,
            "max_auc_eps_delta": 1.0,
        }
    acct = accounting(privacy, num_units=num_units, batch_size=batch_size, epochs=epochs)
    eps, deltas = epsilon_profile(acct)
    mu = bounds.gdp_mu(acct.sample_rate, acct.sigma, acct.steps)
    return {
        **base,
        "sigma": acct.sigma,
        "steps": acct.steps,
        "sample_rate": acct.sample_rate,
        "expected_batch": acct.expected_batch,
        "epsilon": acct.epsilon,
        "epsilon_target": privacy.epsilon,
        "delta": acct.delta,
        "max_auc": bounds.bound_from_accountant(eps, deltas),
        "max_auc_eps_delta": float(bounds.max_auc(acct.epsilon, acct.delta)),
        "gdp_mu": mu,
        "max_auc_gdp": float(bounds.max_auc_gdp(mu)),
        "bound": "trade-off envelope of the accountant's (ε(δ), δ) profile",
    }


# --------------------------------------------------------------------------- clipping


def _tap_forward(
    spec: ModelSpec,
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    masks: Sequence[torch.Tensor] | None,
) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """``stacked_forward`` of G models on x [G, B, F] that also records each layer's taps.

    A tap is (kind, input, output) of a layer whose parameters follow in ``params``:
    ("linear", a, z = a Wᵀ + b) or ("norm", x̂, y = x̂·w + b), in parameter order.
    """
    taps: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    drop = iter(masks or [])

    def linear(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = torch.baddbmm(b.unsqueeze(1), a, w.transpose(1, 2))
        taps.append(("linear", a, z))
        return z

    def norm(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        xhat = F.layer_norm(h, (h.shape[-1],))
        y = xhat * w.unsqueeze(1) + b.unsqueeze(1)
        taps.append(("norm", xhat, y))
        return y

    if spec.family in ("logistic", "mlp"):
        hidden = len(params) // 2 - 1
        for layer in range(hidden):
            x = torch.relu(linear(x, params[2 * layer], params[2 * layer + 1]))
            if masks:
                x = x * next(drop)
        return linear(x, params[-2], params[-1]), taps
    x = linear(x, params[0], params[1])
    for block in range(spec.blocks):
        nw, nb, w1, b1, w2, b2 = params[2 + 6 * block : 8 + 6 * block]
        h = torch.relu(linear(norm(x, nw, nb), w1, b1))
        if masks:
            h = h * next(drop)
        x = x + linear(h, w2, b2)
    return linear(torch.relu(norm(x, params[-4], params[-3])), params[-2], params[-1]), taps


def clipped_gradients(
    spec: ModelSpec,
    params: Sequence[torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    unit: torch.Tensor,
    max_grad_norm: float,
    masks: Sequence[torch.Tensor] | None = None,
    *,
    shared_units: bool | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Sum over units of each unit's clipped gradient, for G stacked models at once.

    inputs [G, B, F] and labels [G, B] are each model's batch; ``unit`` [G, B] says which
    privacy unit (patient) each row belongs to, −1 for padding rows. A unit's gradient is
    the gradient of the sum of its rows' cross-entropy losses, clipped to ``max_grad_norm``
    as one vector over all parameters. Returns the summed clipped gradients (shaped like
    ``params``) and each row's unit gradient norm before clipping [G, B] (0 for padding).
    ``shared_units`` says whether some unit has several rows (computed when None): only
    then are the cross terms between rows of one unit needed.
    """
    valid = unit >= 0
    if shared_units is None:
        shared_units = _has_shared_units(unit)
    if spec.family in ("logistic", "mlp"):
        taps = _mlp_taps(params, inputs, labels, valid, masks)
    else:
        taps = _autograd_taps(spec, params, inputs, labels, valid, masks)
    with torch.no_grad():
        # Row i's gradient of a linear layer is g_i a_iᵀ (weight) and g_i (bias), so
        # ⟨row i, row j⟩ = (g_i·g_j)(a_i·a_j + 1); of a LayerNorm, u_i = g_i ⊙ x̂_i and g_i,
        # so ⟨row i, row j⟩ = u_i·u_j + g_i·g_j. One pair of factors per term:
        factors: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        per_row: list[torch.Tensor] = []  # what each tap's per-row weight gradients are made of
        for kind, a, g in taps:
            if kind == "linear":
                factors.append((g, a))
                per_row.append(a)
            else:
                u = g * a
                factors += [(u, None), (g, None)]
                per_row.append(u)
        squared = torch.zeros(unit.shape, dtype=inputs.dtype, device=inputs.device)
        for first, second in factors:
            squared += _sq_norm(first) * (1 if second is None else _sq_norm(second) + 1)
        if shared_units:
            squared = _unit_totals(squared, factors, unit, valid)
        norms = squared.clamp_min(0).sqrt() * valid
        factor = (max_grad_norm / (norms + CLIP_EPS)).clamp(max=1.0) * valid
        grads: list[torch.Tensor] = []
        for (kind, _, g), a in zip(taps, per_row, strict=True):
            weighted = g * factor.unsqueeze(-1)
            if kind == "linear":
                grads += [torch.bmm(weighted.transpose(1, 2), a), weighted.sum(1)]
            else:
                grads += [(a * factor.unsqueeze(-1)).sum(1), weighted.sum(1)]
    return grads, norms


def _unit_totals(
    squared: torch.Tensor,
    factors: list[tuple[torch.Tensor, torch.Tensor | None]],
    unit: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Each row's unit norm² = Σ of its unit's rows' norms² + 2 Σ over pairs of its rows.

    Rows are sorted by unit, so the rows of a unit are a run and its pairs are the rows d
    apart within a run, for d = 1 .. (longest run − 1): the cost grows with the records a
    patient has in the batch, not with the batch squared as a full Gram matrix would.
    """
    ordered, perm = unit.sort(dim=1, stable=True)
    rows = unit.shape[1]
    totals = squared * valid
    flat = totals.view(-1)
    for d in range(1, rows):
        same = (ordered[:, d:] == ordered[:, :-d]) & (ordered[:, d:] >= 0)
        if not bool(same.any()):
            break
        base = same.nonzero()[:, 0] * rows  # flat index of each pair's model
        left, right = perm[:, :-d][same] + base, perm[:, d:][same] + base
        cross = torch.zeros(left.shape, dtype=squared.dtype, device=squared.device)
        for first, second in factors:
            term = _pair_dot(first, left, right)
            cross += term if second is None else term * (_pair_dot(second, left, right) + 1)
        flat.index_add_(0, left, 2 * cross)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = torch.empty_like(perm).scatter_(1, perm, starts.cumsum(1) - 1)  # row -> its run 0..B-1
    per_unit = torch.zeros_like(totals).scatter_add_(1, run, totals)
    return per_unit.gather(1, run) * valid


def _pair_dot(t: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Dot products of rows ``left[k]`` and ``right[k]`` of t [G, B, W] (flat row indices)."""
    rows = t.reshape(-1, t.shape[-1])
    return torch.linalg.vecdot(rows[left], rows[right])


def _sq_norm(t: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm over the last axis (one pass, no squared temporary)."""
    return torch.linalg.vector_norm(t, dim=-1).square_()


def _autograd_taps(
    spec: ModelSpec,
    params: Sequence[torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    masks: Sequence[torch.Tensor] | None,
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(kind, layer input, gradient of the summed loss at the layer output) by autograd."""
    x = inputs.detach().requires_grad_()
    logits, taps = _tap_forward(spec, params, x, masks)
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none"
    ).view(labels.shape)
    outputs = torch.autograd.grad((losses * valid).sum(), [out for _, _, out in taps])
    return [(kind, a.detach(), g) for (kind, a, _), g in zip(taps, outputs, strict=True)]


@torch.no_grad()
def _mlp_taps(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    masks: Sequence[torch.Tensor] | None,
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The same taps for MLPs (and softmax regression), backward written out by hand.

    d(sum of cross-entropies)/d logits = softmax − one-hot on valid rows; back through a
    layer it is multiplied by Wᵀ, the dropout mask and the ReLU's 0/1 slope. No autograd
    graph is built.
    """
    hidden = len(params) // 2 - 1
    inputs, relus = [x], []
    for layer in range(hidden):
        relu = torch.baddbmm(params[2 * layer + 1].unsqueeze(1), inputs[-1],
                             params[2 * layer].transpose(1, 2)).relu_()
        relus.append(relu)
        inputs.append(relu * masks[layer] if masks else relu)
    logits = torch.baddbmm(params[-1].unsqueeze(1), inputs[-1], params[-2].transpose(1, 2))
    delta = torch.softmax(logits, -1)
    delta.scatter_add_(-1, labels.unsqueeze(-1), -torch.ones_like(delta[..., :1]))
    delta.mul_(valid.unsqueeze(-1))
    deltas = [delta]
    for layer in range(hidden, 0, -1):
        upstream = torch.bmm(deltas[0], params[2 * layer])
        if masks:
            upstream.mul_(masks[layer - 1])
        deltas.insert(0, torch.ops.aten.threshold_backward.grad_input(
            upstream, relus[layer - 1], 0, grad_input=upstream))
    return [("linear", a, g) for a, g in zip(inputs, deltas, strict=True)]


def _has_shared_units(unit: torch.Tensor) -> bool:
    ordered = unit.sort(dim=1).values
    return bool(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any())


# --------------------------------------------------------------------------- training


@dataclass
class _Member:
    """One model of the group: its units, records, accounting and random streams."""

    index: int
    records: np.ndarray  # IN record indices, ascending
    unit: np.ndarray  # local unit of each IN record, 0..U-1
    acct: Accounting
    sample: torch.Generator
    noise: torch.Generator
    drop: torch.Generator
    shared: bool  # some unit has several records


def _check_patient(patient: Any, n: int) -> np.ndarray:
    arr = np.asarray(patient)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"patient: expected one integer patient index per record (shape ({n},)), got "
            f"{arr.dtype} with shape {arr.shape}; pass the cohort's patient array"
        )
    if n and arr.min() < 0:
        raise InputError(f"patient: index {int(arr.min())} is negative; patient indices run 0..P-1")
    return arr.astype(np.int64)


def _check_follow(keep: np.ndarray, patient: np.ndarray, model_index: Sequence[int]) -> None:
    """Records must follow their patient: a patient half IN would be half protected."""
    num_patients = int(patient.max()) + 1
    for row, m in zip(keep, model_index, strict=True):
        ins = np.bincount(patient, weights=row, minlength=num_patients)
        counts = np.bincount(patient, minlength=num_patients)
        split = np.flatnonzero((ins > 0) & (ins < counts))
        if split.size:
            raise InputError(
                f"keep: patient {int(split[0])} has records both IN and OUT of model {m}; "
                "patient-level DP needs whole patients in or out (expand a patient-level "
                "plan with MembershipPlan.record_keep) or use privacy.level = 'record'"
            )


def _check_weights(weights: Any, privacy: DPSpec) -> None:
    if weights is None:
        return
    w = np.asarray(weights, dtype=np.float64)
    if w.size and np.ptp(w) > 0:
        target = (
            f"privacy.epsilon = {privacy.epsilon:g}" if privacy.epsilon is not None
            else f"privacy.noise_multiplier = {privacy.noise_multiplier:g}"
        )
        raise InputError(
            f"sample_weights: {target} is accounted for every {privacy.unit[:-1]} drawn at "
            "the same Poisson rate, but weighted sampling draws some far more often, so "
            "their privacy loss would exceed the one reported; train with uniform sampling "
            "(drop the weights) under DP"
        )


def _members(data: Any, patient: np.ndarray, privacy: DPSpec, training: TrainingSpec) -> list[_Member]:
    members = []
    for position, m in enumerate(data.model_index):
        records = np.flatnonzero(data.keep[position])
        if privacy.level == "patient":
            _, unit = np.unique(patient[records], return_inverse=True)
        else:
            unit = np.arange(records.size)
        unit = unit.astype(np.int64)
        num_units = int(unit.max()) + 1
        acct = accounting(
            privacy, num_units=num_units, batch_size=training.batch_size, epochs=training.epochs
        )
        members.append(
            _Member(
                index=m,
                records=records,
                unit=unit,
                acct=acct,
                sample=model_generator(data.seed, m, STREAM_SAMPLE),
                noise=model_generator(data.seed, m, STREAM_NOISE),
                drop=model_generator(data.seed, m, STREAM_DROPOUT),
                shared=num_units < records.size,
            )
        )
    return members


def _draw_batch(member: _Member) -> tuple[np.ndarray, np.ndarray]:
    """This step's Poisson sample of the member's units: (record indices, local units)."""
    chosen = (torch.rand(member.acct.num_units, generator=member.sample) < member.acct.sample_rate).numpy()
    take = chosen[member.unit]
    return member.records[take], member.unit[take]


def train_group_dp(
    model: ModelSpec,
    training: TrainingSpec,
    privacy: DPSpec,
    inputs: np.ndarray,
    labels: np.ndarray,
    patient: np.ndarray,
    keep: np.ndarray,
    model_index: Sequence[int],
    seed: int,
    *,
    device: str | None = None,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
    num_classes: int | None = None,
    max_models: int | None = None,
    sample_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Train G models with DP-SGD (per-patient clipping, Poisson sampling); logits [G, N, V, K].

    Arguments as :func:`miaudit.training.train_group`, plus ``privacy``, the cohort's
    ``patient`` index [N] and ``keep`` [G, N] (records follow their patients). The logistic
    family trains by the gradient path (its ridge ``l2`` as Adam's coupled penalty on the
    weights), never by Newton, which has no private counterpart here. ``sample_weights``
    exists to refuse weighted sampling, which the accountant cannot describe.
    """
    if not privacy.enabled:
        raise InputError(
            "privacy: train_group_dp needs privacy.epsilon or privacy.noise_multiplier; "
            "without either, train with train_group"
        )
    _check_weights(sample_weights, privacy)
    data = check_inputs(inputs, labels, keep, model_index, seed, num_classes, table=True)
    patient = _check_patient(patient, data.inputs.shape[0])
    if privacy.level == "patient":
        _check_follow(data.keep, patient, data.model_index)
    if model.family == "logistic" and training.weight_decay != 0.0:
        raise InputError(
            "training.weight_decay: not used by the logistic family, whose penalty is the ridge "
            "strength model.l2; set model.l2 instead and leave weight_decay at 0"
        )
    target = select_device(device)
    with cpu_threads():
        limit = max_models or default_max_models(target)
        members = _members(data, patient, privacy, training)
        params, order = _train(model, training, privacy, data, members, target, limit)
        x = torch.from_numpy(data.inputs).to(target)
        logits = predict_stacked(model, params, x, list(views) if views else None, max_models=limit)
    out = np.empty_like(logits.numpy())
    out[order] = logits.numpy()
    return out


def _train(
    spec: ModelSpec,
    training: TrainingSpec,
    privacy: DPSpec,
    data: Any,
    members: list[_Member],
    device: torch.device,
    limit: int,
) -> tuple[list[torch.Tensor], np.ndarray]:
    """The DP-SGD loop; models sorted by step count so the active ones are a prefix."""
    steps = np.array([mb.acct.steps for mb in members])
    order = np.argsort(-steps, kind="stable")
    members = [members[i] for i in order]
    steps = steps[order]
    widths = dropout_widths(spec)
    params = init_stacked(
        spec, data.inputs.shape[1], data.num_classes, [mb.index for mb in members], data.seed, device
    )
    if spec.family == "logistic":  # ridge on weights, not on the intercept
        decays = [spec.l2 if p.dim() == 3 else 0.0 for p in params]
    else:
        decays = [training.weight_decay] * len(params)
    adam = make_optimizer(training, params, decays, [int(t) for t in steps])
    shapes = [tuple(p.shape[1:]) for p in params]
    sizes = [math.prod(s) for s in shapes]
    inputs = torch.from_numpy(data.inputs).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    clip = privacy.max_grad_norm
    noise_buffer = torch.empty((min(limit, len(members)), sum(sizes)))
    stds = torch.tensor([mb.acct.sigma * clip for mb in members], dtype=torch.float32)
    scales = torch.tensor([1.0 / mb.acct.expected_batch for mb in members], dtype=torch.float32,
                          device=device)

    for step in range(int(steps[0])):
        active = int((steps > step).sum())
        for lo in range(0, active, limit):
            hi = min(active, lo + limit)
            group = members[lo:hi]
            batches = [_draw_batch(mb) for mb in group]
            width = max(len(rows) for rows, _ in batches)
            if width:
                index = torch.zeros((hi - lo, width), dtype=torch.int64)
                unit = torch.full((hi - lo, width), -1, dtype=torch.int64)
                for j, (rows, units) in enumerate(batches):
                    index[j, : rows.size] = torch.from_numpy(rows)
                    unit[j, : rows.size] = torch.from_numpy(units)
                masks = _dropout_masks(spec, widths, group, batches, width, device)
                index, unit = index.to(device), unit.to(device)
                shared = any(mb.shared for mb in group) and _has_shared_units(unit)
                grads, _ = clipped_gradients(
                    spec, [p[lo:hi] for p in params], inputs[index], labels[index], unit, clip,
                    masks, shared_units=shared,
                )
            else:  # nobody sampled: the step is noise alone
                grads = [torch.zeros((hi - lo, *s), device=device) for s in shapes]
            drawn = noise_buffer[: hi - lo]
            for row, mb in zip(drawn, group, strict=True):
                row.normal_(generator=mb.noise)  # the draws of torch.randn from this generator
            noise = drawn.mul_(stds[lo:hi, None]).to(device)
            scale = scales[lo:hi]
            for g, part, s in zip(grads, torch.split(noise, sizes, dim=1), shapes, strict=True):
                g.add_(part.reshape(-1, *s)).mul_(scale.view((-1,) + (1,) * len(s)))
            adam.step(lo, hi, grads)
    adam.finish()
    return params, order


def _dropout_masks(
    spec: ModelSpec,
    widths: list[int],
    group: list[_Member],
    batches: list[tuple[np.ndarray, np.ndarray]],
    width: int,
    device: torch.device,
) -> list[torch.Tensor] | None:
    """Each model's dropout masks for its own batch rows (drawn from its own generator), padded."""
    if not widths:
        return None
    drawn = []
    for mb, (rows, _) in zip(group, batches, strict=True):
        layer_masks = []
        for w in widths:
            mask = torch.zeros((width, w))
            mask[: rows.size] = dropout_mask((rows.size, w), spec.dropout, mb.drop)
            layer_masks.append(mask)
        drawn.append(layer_masks)
    return [torch.stack(layer).to(device) for layer in zip(*drawn, strict=True)]
