"""Patient-level DP-SGD: clipping, accounting, the vectorised engine and its effect on exposure.

The fast paths are checked against slow, obvious references written here: per-unit
gradients by autograd one patient at a time, and a plain DP-SGD loop over one
``nn.Module`` at a time with ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F
from _margins import SEED, at_least, at_most, planted_or_decoy
from opacus.accountants import RDPAccountant
from scipy import stats

from miaudit import attacks, risk
from miaudit.datasets import make_synthetic_tabular
from miaudit.errors import InputError
from miaudit.models import ModelSpec, SeededDropout, build_module, dropout_mask
from miaudit.plan import make_plan
from miaudit.training import TrainingSpec, train_group
from miaudit.training.dp import (
    RDP_ORDERS,
    STREAM_NOISE,
    STREAM_SAMPLE,
    DPSpec,
    accounting,
    clipped_gradients,
    privacy_report,
    train_group_dp,
)
from miaudit.training.optim import adam_options
from miaudit.training.seeds import STREAM_DROPOUT, STREAM_INIT, model_generator
from miaudit.training.stacked import init_stacked, stacked_forward

F_IN = 6


def _module_with(spec: ModelSpec, params: list[torch.Tensor], j: int) -> torch.nn.Module:
    """A plain module holding model j of stacked parameters."""
    module = build_module(spec, F_IN, 2)
    with torch.no_grad():
        for p, value in zip(module.parameters(), params, strict=True):
            p.copy_(value[j])
    return module


def _replay(mask: torch.Tensor):
    """A dropout forward that multiplies by a given mask."""

    def forward(h: torch.Tensor) -> torch.Tensor:
        return h * mask

    return forward


def _loop_clipped(spec, params, x, y, unit, clip, masks=None):
    """Per-unit gradients one unit at a time by autograd, clipped and summed (the oracle)."""
    sums, norms = [], torch.zeros(unit.shape)
    for j in range(x.shape[0]):
        module = _module_with(spec, params, j)
        drops = [m for m in module.modules() if isinstance(m, SeededDropout)]
        total = [torch.zeros_like(p) for p in module.parameters()]
        for u in sorted(set(unit[j].tolist()) - {-1}):
            rows = torch.nonzero(unit[j] == u).squeeze(1)
            if masks:  # replay this batch's masks, restricted to the unit's rows
                for layer, mask in zip(drops, masks, strict=True):
                    layer.forward = _replay(mask[j, rows])
            module.train()
            loss = F.cross_entropy(module(x[j, rows]), y[j, rows], reduction="sum")
            grads = torch.autograd.grad(loss, list(module.parameters()))
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).float()
            norms[j, rows] = norm
            factor = min(1.0, clip / (float(norm) + 1e-6))
            total = [t + factor * g for t, g in zip(total, grads, strict=True)]
        sums.append(total)
    return [torch.stack(parts) for parts in zip(*sums, strict=True)], norms


def _batch(rng: np.random.Generator, models: int, rows: int, units: int, pad: int):
    x = torch.from_numpy(rng.normal(size=(models, rows + pad, F_IN)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 2, size=(models, rows + pad)))
    unit = torch.from_numpy(rng.integers(0, units, size=(models, rows + pad)))
    unit[:, rows:] = -1
    return x, y, unit


SPECS = [
    ModelSpec(family="logistic", l2=0.0),
    ModelSpec(family="mlp", width=12, depth=2),
    ModelSpec(family="mlp", width=12, depth=1, dropout=0.3),
    ModelSpec(family="tabresnet", width=8, blocks=2, dropout=0.2),
]


@pytest.mark.parametrize("spec", SPECS, ids=["logistic", "mlp", "mlp-dropout", "tabresnet"])
@pytest.mark.parametrize("units", [40, 9], ids=["one-record-units", "shared-units"])
def test_vectorised_clipping_equals_a_per_patient_loop(spec: ModelSpec, units: int) -> None:
    rng = np.random.default_rng(units)
    x, y, unit = _batch(rng, models=3, rows=40, units=units, pad=5)
    if units == 40:  # every row its own unit
        unit[:, :40] = torch.arange(40)
    params = init_stacked(spec, F_IN, 2, [0, 1, 2], seed=3, device=torch.device("cpu"))
    masks = None
    if spec.dropout:
        gen = torch.Generator().manual_seed(0)
        layers = spec.depth if spec.family == "mlp" else spec.blocks
        masks = [dropout_mask((3, 45, spec.width), spec.dropout, gen) for _ in range(layers)]
    _, norms = clipped_gradients(spec, params, x, y, unit, 1.0, masks)
    clip = float(norms[unit >= 0].median())  # about half of the units get clipped
    fast, norms = clipped_gradients(spec, params, x, y, unit, clip, masks)
    slow, slow_norms = _loop_clipped(spec, params, x, y, unit, clip, masks)
    assert (norms[unit >= 0] > clip * 1.01).any() and (norms[unit >= 0] < clip * 0.99).any()
    torch.testing.assert_close(norms, slow_norms, rtol=2e-4, atol=1e-5)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5)


def test_pair_path_equals_diagonal_path_when_units_are_single() -> None:
    rng = np.random.default_rng(1)
    spec = ModelSpec(family="tabresnet", width=8, blocks=1)
    x, y, unit = _batch(rng, models=2, rows=16, units=16, pad=3)
    unit[:, :16] = torch.arange(16)
    params = init_stacked(spec, F_IN, 2, [4, 5], seed=0, device=torch.device("cpu"))
    diag, n1 = clipped_gradients(spec, params, x, y, unit, 1.0, shared_units=False)
    pairs, n2 = clipped_gradients(spec, params, x, y, unit, 1.0, shared_units=True)
    torch.testing.assert_close(n1, n2, rtol=1e-4, atol=1e-6)
    for a, b in zip(diag, pairs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_tapped_forward_is_the_stacked_forward() -> None:
    from miaudit.training.dp import _tap_forward

    rng = np.random.default_rng(2)
    for spec in SPECS:
        params = init_stacked(spec, F_IN, 2, [0, 1], seed=1, device=torch.device("cpu"))
        x = torch.from_numpy(rng.normal(size=(2, 64, F_IN)).astype(np.float32))
        ones = [torch.ones(2, 64, spec.width)] * (spec.depth if spec.family == "mlp" else spec.blocks)
        masks = ones if spec.dropout else None
        tapped, _ = _tap_forward(spec, params, x, masks)
        torch.testing.assert_close(tapped, stacked_forward(spec, params, x, masks))


def test_hand_written_mlp_backward_equals_autograd() -> None:
    from miaudit.training.dp import _autograd_taps, _mlp_taps

    rng = np.random.default_rng(3)
    spec = ModelSpec(family="mlp", width=10, depth=3, dropout=0.4)
    params = init_stacked(spec, F_IN, 2, [0, 1], seed=2, device=torch.device("cpu"))
    x, y, unit = _batch(rng, models=2, rows=20, units=20, pad=4)
    gen = torch.Generator().manual_seed(1)
    masks = [dropout_mask((2, 24, 10), 0.4, gen) for _ in range(3)]
    fast = _mlp_taps(params, x, y, unit >= 0, masks)
    slow = _autograd_taps(spec, params, x, y, unit >= 0, masks)
    assert len(fast) == len(slow) == 4
    for (_, a1, g1), (_, a2, g2) in zip(fast, slow, strict=True):
        torch.testing.assert_close(a1, a2)
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)
    assert (fast[-1][2][:, 20:] == 0).all()  # padding rows carry no gradient


def test_a_patient_with_many_records_moves_the_model_no_more_than_one_with_one() -> None:
    """Per-patient clipping bounds a patient's contribution; per-record clipping does not."""
    rng = np.random.default_rng(5)
    spec = ModelSpec(family="mlp", width=16, depth=1)
    params = init_stacked(spec, F_IN, 2, [0], seed=0, device=torch.device("cpu"))
    others = 30
    base_x = rng.normal(size=(others, F_IN)).astype(np.float32)
    base_y = rng.integers(0, 2, size=others)
    heavy = np.repeat(rng.normal(size=(1, F_IN)).astype(np.float32) * 4, 20, axis=0)  # 20 records
    light = rng.normal(size=(1, F_IN)).astype(np.float32) * 4  # 1 record

    def summed(extra: np.ndarray | None, per_record: bool) -> torch.Tensor:
        x, y, unit = base_x, base_y, np.arange(others)
        if extra is not None:
            x = np.concatenate([x, extra])
            y = np.concatenate([y, np.zeros(len(extra), dtype=np.int64)])
            new = np.arange(others, others + len(extra)) if per_record else np.full(len(extra), others)
            unit = np.concatenate([unit, new])
        grads, _ = clipped_gradients(
            spec, params, torch.from_numpy(x)[None], torch.from_numpy(np.asarray(y))[None],
            torch.from_numpy(unit)[None], 1.0,
        )
        return torch.cat([g.reshape(-1) for g in grads])

    without = summed(None, per_record=False)
    move_heavy = float((summed(heavy, per_record=False) - without).norm())
    move_light = float((summed(light, per_record=False) - without).norm())
    assert move_heavy <= 1.0 + 1e-4
    assert move_light <= 1.0 + 1e-4
    assert move_heavy == pytest.approx(move_light, rel=1e-3)  # both clipped to the bound
    # record-level clipping lets the 20 records through 20 times
    move_records = float((summed(heavy, per_record=True) - without).norm())
    assert move_records > 15.0


# --- accounting -----------------------------------------------------------------------------

def test_spec_validation() -> None:
    with pytest.raises(pydantic.ValidationError, match="not both"):
        DPSpec(epsilon=1.0, noise_multiplier=1.0)
    with pytest.raises(pydantic.ValidationError):
        DPSpec(epsilon=0.0)
    with pytest.raises(pydantic.ValidationError):
        DPSpec(epsilon=float("inf"))
    with pytest.raises(pydantic.ValidationError):
        DPSpec(sample_rate=1.5)
    with pytest.raises(pydantic.ValidationError):
        DPSpec(epsilon=1.0, unknown=2)
    assert not DPSpec().enabled and DPSpec(epsilon=3).enabled


def _opacus_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return acc.get_epsilon(delta=delta, alphas=list(RDP_ORDERS))


@pytest.mark.parametrize("epsilon", [1.0, 3.0])
def test_sigma_is_calibrated_to_the_target(epsilon: float) -> None:
    acct = accounting(DPSpec(epsilon=epsilon), num_units=500, batch_size=50, epochs=4)
    assert acct.sample_rate == pytest.approx(0.1)
    assert acct.steps == 40
    assert acct.delta == pytest.approx(1 / 500)
    reached = _opacus_epsilon(acct.sigma, 0.1, 40, 1 / 500)
    assert 0.99 * epsilon <= reached <= epsilon
    assert acct.epsilon == pytest.approx(reached)
    # a little less noise would overspend
    assert _opacus_epsilon(acct.sigma * 0.97, 0.1, 40, 1 / 500) > epsilon


def test_noise_multiplier_reports_epsilon_and_bounds() -> None:
    spec = DPSpec(noise_multiplier=1.1, delta=1e-4, sample_rate=0.02)
    report = privacy_report(spec, num_units=1000, batch_size=64, epochs=3)
    assert report["steps"] == 150 and report["sample_rate"] == 0.02
    assert report["epsilon"] == pytest.approx(_opacus_epsilon(1.1, 0.02, 150, 1e-4))
    assert 0.5 < report["max_auc"] <= report["max_auc_eps_delta"] < 1
    assert report["private"] and report["level"] == "patient"
    none = privacy_report(DPSpec(), num_units=1000, batch_size=64, epochs=3)
    assert not none["private"] and none["max_auc"] == 1.0 and none["epsilon"] is None


def test_record_level_accounts_records_and_prv_agrees_roughly() -> None:
    rdp = accounting(DPSpec(epsilon=2.0, level="record"), num_units=2000, batch_size=100, epochs=2)
    prv = accounting(DPSpec(epsilon=2.0, level="record", accountant="prv"), num_units=2000,
                     batch_size=100, epochs=2)
    assert rdp.delta == pytest.approx(1 / 2000)
    assert prv.sigma <= rdp.sigma  # PRV is the tighter accountant
    assert prv.sigma == pytest.approx(rdp.sigma, rel=0.2)


@pytest.mark.parametrize(
    ("spec", "units", "batch", "message"),
    [
        (DPSpec(epsilon=1.0), 40, 64, "batch_size = 64 exceeds the 40 patients"),
        (DPSpec(epsilon=1.0, sample_rate=0.001), 100, 8, "most steps train on noise"),
        (DPSpec(epsilon=1.0, delta=0.01), 1000, 8, r"delta = 0.01 exceeds 1/1000"),
        (DPSpec(epsilon=1.0), 1, 1, "at least 2"),
        (DPSpec(), 100, 8, "nothing to account"),
        (DPSpec(epsilon=1e-9, delta=1e-10, sample_rate=1.0), 100, 8, "no noise multiplier"),
    ],
)
def test_accounting_pitfalls_raise_clear_errors(spec, units, batch, message) -> None:
    with pytest.raises(InputError, match=message):
        accounting(spec, num_units=units, batch_size=batch, epochs=1000 if spec.epsilon == 1e-9 else 2)


# --- the engine -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    """A small cohort with 1-3 records per patient and a patient-level plan."""
    cohort, _ = make_synthetic_tabular(num_patients=60, num_features=F_IN, num_atypical=2,
                                       num_mislabelled=2, max_records_per_patient=3, seed=1)
    plan = make_plan(cohort.num_patients, 4, 0)
    return cohort, plan.record_keep(cohort.patient)


def _plain_dp_sgd(spec, training, privacy, cohort, keep_row, m, seed):
    """DP-SGD written plainly: one module, a loop over sampled patients, torch.optim.Adam."""
    x = torch.from_numpy(cohort.inputs)
    y = torch.from_numpy(cohort.labels.astype(np.int64))
    records = np.flatnonzero(keep_row)
    if privacy.level == "patient":
        _, unit = np.unique(cohort.patient[records], return_inverse=True)
    else:
        unit = np.arange(records.size)
    acct = accounting(privacy, num_units=int(unit.max()) + 1, batch_size=training.batch_size,
                      epochs=training.epochs)
    module = build_module(spec, F_IN, 2, generator=model_generator(seed, m, STREAM_INIT))
    for layer in module.modules():
        if isinstance(layer, SeededDropout):
            layer.generator = model_generator(seed, m, STREAM_DROPOUT)
    if spec.family == "logistic":
        groups = [{"params": [module.weight], "weight_decay": spec.l2},
                  {"params": [module.bias], "weight_decay": 0.0}]
    else:
        groups = [{"params": list(module.parameters()), "weight_decay": training.weight_decay}]
    opt = torch.optim.Adam(groups, lr=training.learning_rate, **adam_options(torch.device("cpu")))
    sample = model_generator(seed, m, STREAM_SAMPLE)
    noise = model_generator(seed, m, STREAM_NOISE)
    params = list(module.parameters())
    clip = privacy.max_grad_norm
    for _ in range(acct.steps):
        chosen = (torch.rand(acct.num_units, generator=sample) < acct.sample_rate).numpy()
        rows = torch.from_numpy(records[chosen[unit]])
        units = unit[chosen[unit]]
        total = [torch.zeros_like(p) for p in params]
        if len(rows):
            module.train()
            losses = F.cross_entropy(module(x[rows]), y[rows], reduction="none")
            for u in np.unique(units):
                grads = torch.autograd.grad(losses[torch.from_numpy(units == u)].sum(), params,
                                            retain_graph=True)
                norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
                factor = min(1.0, clip / (norm + 1e-6))
                total = [t + factor * g for t, g in zip(total, grads, strict=True)]
        flat = torch.randn(sum(p.numel() for p in params), generator=noise) * (acct.sigma * clip)
        for p, t, z in zip(params, total, torch.split(flat, [p.numel() for p in params]), strict=True):
            p.grad = (t + z.view_as(p)) / acct.expected_batch
        opt.step()
    module.eval()
    with torch.no_grad():
        return module(x).numpy()


@pytest.mark.parametrize(
    ("spec", "level"),
    [
        (ModelSpec(family="mlp", width=8, depth=1, dropout=0.2), "patient"),
        (ModelSpec(family="tabresnet", width=8, blocks=1), "patient"),
        (ModelSpec(family="logistic", l2=1e-3), "record"),
    ],
    ids=["mlp-dropout", "tabresnet", "logistic-record"],
)
def test_engine_equals_plain_dp_sgd_model_by_model(small, spec, level) -> None:
    cohort, keep = small
    training = TrainingSpec(epochs=2, batch_size=8, learning_rate=0.01)
    privacy = DPSpec(noise_multiplier=0.8, max_grad_norm=0.5, level=level)
    fast = train_group_dp(spec, training, privacy, cohort.inputs, cohort.labels, cohort.patient,
                          keep, [0, 1, 2, 3], seed=11)
    assert fast.shape == (4, cohort.num_records, 1, 2)
    for m in (0, 3):
        slow = _plain_dp_sgd(spec, training, privacy, cohort, keep[m], m, seed=11)
        np.testing.assert_allclose(fast[m, :, 0], slow, rtol=1e-4, atol=1e-4)


def test_results_do_not_depend_on_the_group(small) -> None:
    cohort, keep = small
    spec, training = ModelSpec(width=8, depth=1), TrainingSpec(epochs=2, batch_size=8)
    privacy = DPSpec(epsilon=4.0)
    args = (spec, training, privacy, cohort.inputs, cohort.labels, cohort.patient)
    whole = train_group_dp(*args, keep, [0, 1, 2, 3], seed=0)
    alone = train_group_dp(*args, keep[2:3], [2], seed=0)
    chunked = train_group_dp(*args, keep, [0, 1, 2, 3], seed=0, max_models=1)
    np.testing.assert_array_equal(whole[2], alone[0])
    np.testing.assert_allclose(whole, chunked, rtol=1e-5, atol=1e-6)
    other_seed = train_group_dp(*args, keep[2:3], [2], seed=1)
    assert not np.allclose(alone, other_seed)


def test_engine_guards(small) -> None:
    cohort, keep = small
    spec, training = ModelSpec(width=8, depth=1), TrainingSpec(epochs=1, batch_size=8)
    args = (cohort.inputs, cohort.labels, cohort.patient)
    with pytest.raises(InputError, match="train_group"):
        train_group_dp(spec, training, DPSpec(), *args, keep, [0, 1, 2, 3], seed=0)
    split = keep.copy()
    multi = np.flatnonzero(np.bincount(cohort.patient) > 1)[0]
    split[0, np.flatnonzero(cohort.patient == multi)[0]] ^= True
    with pytest.raises(InputError, match=f"patient {multi} has records both IN and OUT"):
        train_group_dp(spec, training, DPSpec(epsilon=1.0), *args, split, [0, 1, 2, 3], seed=0)
    weights = np.ones(cohort.num_patients)
    weights[0] = 5
    with pytest.raises(InputError, match="weighted sampling"):
        train_group_dp(spec, training, DPSpec(epsilon=1.0), *args, keep, [0, 1, 2, 3], seed=0,
                       sample_weights=weights)
    with pytest.raises(InputError, match="weight_decay"):
        train_group_dp(ModelSpec(family="logistic"), training.model_copy(update={"weight_decay": 0.1}),
                       DPSpec(epsilon=1.0), *args, keep, [0, 1, 2, 3], seed=0)
    with pytest.raises(InputError, match="patient"):
        train_group_dp(spec, training, DPSpec(epsilon=1.0), cohort.inputs, cohort.labels,
                       cohort.patient[:-1], keep, [0, 1, 2, 3], seed=0)


# --- DP against the bound on a synthetic cohort with planted exposed patients ---------------

def _exposure(logits, cohort, keep, attack="lira"):
    scores = attacks.run_attack(attack, logits, cohort.labels, keep)
    record = risk.record_auc(scores, keep)
    return risk.patient_exposure(record, cohort.patient, num_patients=cohort.num_patients)


def test_patient_level_dp_brings_exposed_patients_down_to_the_bound() -> None:
    """Planted patients are exposed without DP; at ε = 1 nobody exceeds the bound beyond its SE.

    Exposure is estimated from 16 IN and 16 OUT scores per patient, so single patients can
    exceed a true bound by chance: for every attack, every patient must stay within the
    Bonferroni-corrected z·SE of the bound over all patients, the planted patients within the
    one corrected over them, no more patients beyond one SE than the one-sided 16% chance
    allows, and the mean exposure (an average of unbiased estimates) below the bound.
    """
    cohort, planted = make_synthetic_tabular(num_patients=160, num_features=8, num_atypical=6,
                                             num_mislabelled=6, seed=SEED)
    models = 32
    plan = make_plan(cohort.num_patients, models, 0)
    keep = plan.record_keep(cohort.patient)
    spec = ModelSpec(width=32, depth=1)
    training = TrainingSpec(epochs=20, batch_size=16, learning_rate=0.005)
    exposed = planted_or_decoy(
        np.r_[planted.atypical_patients, cohort.patient[planted.mislabelled_records]],
        cohort.num_patients,
    )

    plain = train_group(spec, training, cohort.inputs, cohort.labels, keep, list(range(models)), 0)
    before, _ = _exposure(plain, cohort, keep)
    at_least("median exposure of the planted patients without DP", np.median(before[exposed]),
             0.9, strict=False)

    privacy = DPSpec(epsilon=1.0)
    private = train_group_dp(spec, training, privacy, cohort.inputs, cohort.labels, cohort.patient,
                             keep, list(range(models)), 0)
    report = privacy_report(privacy, num_units=int(plan.keep.sum(1).min()),
                            batch_size=training.batch_size, epochs=training.epochs)
    bound = report["max_auc"]
    assert 0.5 < bound < report["max_auc_eps_delta"] < 0.75
    z_all = stats.norm.isf(0.05 / cohort.num_patients)
    z_planted = stats.norm.isf(0.05 / exposed.size)  # Bonferroni over the planted patients
    for attack in ("lira", "lira_offline", "rmia", "loss"):
        after, se = _exposure(private, cohort, keep, attack)
        at_most(f"{attack}: largest exposure - (bound + z·SE)",
                np.max(after - bound - z_all * se), 0.0, strict=False)
        at_most(f"{attack}: largest planted exposure - (bound + z·SE)",
                np.max(after[exposed] - bound - z_planted * se[exposed]), 0.0, strict=False)
        at_most(f"{attack}: share of patients beyond bound + SE", np.mean(after > bound + se),
                stats.norm.sf(1.0), strict=False)
        at_most(f"{attack}: mean exposure - bound", after.mean() - bound, 0.0, strict=False)
        at_least(f"{attack}: drop of the planted median exposure",
                 np.median(before[exposed]) - np.median(after[exposed]), 0.25)


def test_accounting_uses_each_models_own_patients(small) -> None:
    cohort, keep = small
    units = [len(np.unique(cohort.patient[keep[m]])) for m in range(4)]
    expected = [accounting(DPSpec(noise_multiplier=1.0), num_units=u, batch_size=8, epochs=1) for u in units]
    assert all(math.isclose(a.sample_rate, 8 / u) for a, u in zip(expected, units, strict=True))
