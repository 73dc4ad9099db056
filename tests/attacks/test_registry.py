"""The attack registry: names, lookups, registration, and the model-count rules it holds."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit import attacks
from miaudit.attacks import registry
from miaudit.config import AuditSpec
from miaudit.errors import InputError
from miaudit.plan import make_plan
from miaudit.signals import compute_signal


def balanced_world(m: int, patients: int = 12, seed: int = 0):
    """Logits [M, N, 1, 2], labels and a balanced record-level keep (two records per patient)."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(patients), 2)
    keep = make_plan(patients, m, seed).record_keep(patient)
    logits = rng.normal(size=(m, patient.size, 1, 2)).astype(np.float32)
    labels = rng.integers(0, 2, patient.size)
    return logits, labels, keep


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_ATTACKS", dict(registry._ATTACKS))


def test_builtin_names_and_signals():
    assert registry.names() == attacks.ATTACKS
    assert attacks.ATTACKS == (
        "lira", "lira_offline", "rmia", "rmia_online", "loss", "confidence", "lira_textbook"
    )
    assert attacks.SIGNAL_OF == {n: registry.get(n).signal for n in registry.names()}
    assert registry.get("lira_offline").fixed == {"online": False}
    assert "Carlini" in registry.get("lira").paper and "Zarifzadeh" in registry.get("rmia").paper
    with pytest.raises(TypeError):
        registry.get("lira").fixed["online"] = False  # a frozen record


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError, match="not known; choose one of lira, lira_offline, rmia"):
        registry.get("mentr")
    with pytest.raises(InputError, match="choose one of"):
        attacks.run_attack("mentr", *balanced_world(4))


def test_registering_an_attack_makes_run_attack_use_it(scratch_registry):
    seen = {}

    def negated_confidence(signal, *, targets=None, scale=1.0):
        seen["signal"] = signal
        return -scale * attacks.confidence_attack(signal, targets=targets)

    registry.register(
        registry.Attack(
            name="underconfidence",
            function=negated_confidence,
            signal="probability",
            references=False,
            per_side=0,
            paper="a test",
        )
    )
    logits, labels, keep = balanced_world(4)
    got = attacks.run_attack("underconfidence", logits, labels, keep, targets=[1], scale=2.0)
    prob = compute_signal("probability", logits, labels)
    np.testing.assert_array_equal(seen["signal"], prob)
    np.testing.assert_array_equal(got, -2.0 * attacks.confidence_attack(prob, targets=[1]))
    with pytest.raises(InputError, match="accepted: scale"):
        attacks.run_attack("underconfidence", logits, labels, keep, gamma=1.0)
    with pytest.raises(InputError, match="already registered"):
        registry.register(registry.get("underconfidence"))
    registry.register(registry.get("lira"), replace=True)


def test_records_are_checked():
    with pytest.raises(InputError, match="signal 'logits'"):
        registry.Attack(name="x", function=len, signal="logits", paper="")
    with pytest.raises(InputError, match="plain name"):
        registry.Attack(name="two words", function=len, signal="loss", paper="")
    with pytest.raises(InputError, match="expected an Attack"):
        registry.register("lira")


@pytest.mark.parametrize("name", registry.names())
def test_min_models_is_what_the_attack_refuses(name):
    attack = registry.get(name)
    few, enough = balanced_world(attack.min_models - 2), balanced_world(attack.min_models)
    with pytest.raises(InputError, match=f"at least {attack.min_models}"):
        attacks.run_attack(name, *few)
    if attack.references:  # the function itself refuses too, not only the pipeline
        signal = compute_signal(attack.signal, few[0], few[1])
        with pytest.raises(InputError, match=f"at least {attack.min_models}"):
            attack.function(signal, few[2], options=attack.options(**attack.fixed))
    assert attacks.run_attack(name, *enough).shape == (attack.min_models, 24)


@pytest.mark.parametrize("name", registry.names())
@pytest.mark.parametrize("fixed_variance", [False, True])
def test_plan_min_models_leaves_every_score_defined(name, fixed_variance):
    attack = registry.get(name)
    options = {"fixed_variance": True} if fixed_variance and name.startswith("lira") else {}
    m = attack.plan_min_models(options)
    scores = attacks.run_attack(name, *balanced_world(m), **options)
    assert not np.isnan(scores).any()
    if m - 2 >= attack.min_models:  # one pair of models fewer leaves some records undefined
        assert np.isnan(attacks.run_attack(name, *balanced_world(m - 2), **options)).any()


def test_per_record_lira_rule_is_the_configs():
    config = pytest.importorskip("miaudit.config")
    for name in config.LIRA_PER_RECORD:
        assert registry.get(name).plan_min_models() == config.LIRA_MIN_MODELS
    for name in set(registry.names()) - set(config.LIRA_PER_RECORD):
        assert registry.get(name).plan_min_models() < config.LIRA_MIN_MODELS


def test_the_config_checks_attacks_against_the_registry(scratch_registry):
    registry.register(
        registry.Attack(
            name="careful",
            function=attacks.confidence_attack,
            signal="probability",
            references=False,
            per_side=3,
            paper="a test",
        )
    )
    assert registry.get("careful").plan_min_models() == 8
    with pytest.raises(ValueError, match=r"too few for careful: .* needs 3 per side; use audit.models ≥ 8"):
        AuditSpec(models=6, attacks=["careful", "loss"])
    assert AuditSpec(models=8, attacks=["careful"]).attacks == ["careful"]
    with pytest.raises(ValueError, match=r"unknown attack\(s\) \['mentr'\]; choose from \[.*'careful'\]"):
        AuditSpec(attacks=["mentr"])
