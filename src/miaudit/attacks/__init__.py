"""Membership-inference attacks: pure functions of arrays, no training needed.

Conventions: ``signals`` [M, N, V]; ``keep`` [M, N] bool (True = the record was in model
m's training set); ``targets`` optional model indices (default: all M) → T. Every
leave-one-model-out function returns ``scores`` float64 [T, N], higher = more likely
member; for target t the references are all models but t. NaN marks an undefined score
(e.g. online LiRA for a record with no IN reference). Use them on arrays you already have::

    from miaudit import attacks
    scores = attacks.lira(signals, keep)                      # [M, N]
    scores = attacks.rmia(probs, keep, options=attacks.RmiaOptions(online=True))
    scores = attacks.run_attack("rmia", logits, labels, keep)  # computes the signal itself
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from miaudit.arrays import as_keep
from miaudit.attacks import registry
from miaudit.attacks.baselines import confidence_attack, loss_attack
from miaudit.attacks.lira import lira, lira_target
from miaudit.attacks.options import LiraOptions, RmiaOptions, option_names
from miaudit.attacks.pairwise import lira_pair_auc, supports
from miaudit.attacks.registry import Attack
from miaudit.attacks.rmia import calibrate_offline_a, rmia, rmia_target
from miaudit.errors import InputError
from miaudit.signals import compute_signal

__all__ = [
    "ATTACKS",
    "SIGNAL_OF",
    "Attack",
    "LiraOptions",
    "RmiaOptions",
    "attack_measures",
    "attack_scorer",
    "calibrate_offline_a",
    "confidence_attack",
    "lira",
    "lira_pair_auc",
    "lira_target",
    "loss_attack",
    "registry",
    "rmia",
    "rmia_target",
    "run_attack",
]

#: The built-in attacks' names and signals (the registry holds any added later).
ATTACKS: tuple[str, ...] = registry.names()
SIGNAL_OF: dict[str, str] = {name: registry.get(name).signal for name in ATTACKS}


def _keywords_of(fn: Callable[..., object]) -> list[str]:
    """The function's keyword-only parameters other than ``targets`` and ``options``."""
    params = inspect.signature(fn).parameters.values()
    return [
        p.name
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("targets", "options")
    ]


def run_attack(
    name: str,
    logits: ArrayLike,
    labels: ArrayLike,
    keep: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    **options: object,
) -> NDArray[np.float64]:
    """Scores [T, N] of the named attack, computing its signal from ``logits`` [M, N, V, K].

    ``name`` is any registered attack (:mod:`miaudit.attacks.registry`). ``options`` are
    the attack's option fields (e.g. ``fixed_variance=True`` for "lira", ``gamma`` for
    "rmia", built into its :class:`LiraOptions` / :class:`RmiaOptions` with the options the
    name fixes) or its other keywords (``population``, ``n_jobs``); unknown ones are refused
    with the list of accepted ones.
    """
    return attack_scorer(name, logits, labels, targets=targets, **options)(keep)


def _resolve(name: str, options: dict[str, object]) -> tuple[Attack, dict[str, object]]:
    """The attack and its function's keywords (``options=`` built with what the name fixes)."""
    attack = registry.get(name)
    fixed = dict(attack.fixed)
    fields = () if attack.options is None else option_names(attack.options)
    if attack.options is None:
        allowed = [k for k in _keywords_of(attack.function) if k not in fixed]
    else:
        allowed = [k for k in fields if k not in fixed] + _keywords_of(attack.function)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"attack {name!r}: option(s) {', '.join(unknown)} not accepted; accepted: "
            f"{', '.join(allowed) if allowed else 'none'}"
        )
    keywords = {k: v for k, v in options.items() if k not in fields}
    if attack.options is None:
        keywords.update(fixed)
    else:
        chosen = {k: v for k, v in options.items() if k in fields}
        keywords["options"] = attack.options(**chosen, **fixed)
    return attack, keywords


PairwiseMeasure = Callable[
    [ArrayLike], tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]
]


def attack_measures(
    name: str,
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    **options: object,
) -> tuple[Callable[[ArrayLike], NDArray[np.float64]], PairwiseMeasure | None]:
    """(``keep -> scores [T, N]``, ``keep -> (record AUC, n_in, n_out) [N]`` or None) of the
    named attack, its signal computed once for both and for every ``keep``.

    What :func:`run_attack` does, split so that the chance baseline can score the same
    signals under many permuted memberships. The second is the attack's leave-pair-out record
    AUC (LiRA, see :mod:`miaudit.attacks.pairwise`), free of the leave-one-out bias of its
    target scores; None for other attacks and for options without a pairwise form.
    """
    attack, keywords = _resolve(name, options)
    arr = np.asarray(logits)
    if arr.ndim != 4:
        raise InputError(
            f"logits: run_attack needs every model's logits [M, N, V, K], got shape "
            f"{arr.shape}; for one model with explicit references use lira_target or "
            f"rmia_target"
        )
    m, n = arr.shape[0], arr.shape[1]
    attack.require(m)
    signal = compute_signal(attack.signal, arr, labels)

    def score(keep: ArrayLike) -> NDArray[np.float64]:
        mask = as_keep(keep, m, n)
        if not attack.references:
            return attack.function(signal, targets=targets, **keywords)
        return attack.function(signal, mask, targets=targets, **keywords)

    opts = keywords.get("options")
    pairwise = attack.pairwise
    if pairwise is None or not isinstance(opts, LiraOptions) or not supports(opts):
        return score, None

    def measure(keep: ArrayLike):
        return pairwise(signal, as_keep(keep, m, n), targets=targets, options=opts)

    return score, measure


def attack_scorer(
    name: str,
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    **options: object,
) -> Callable[[ArrayLike], NDArray[np.float64]]:
    """``keep -> scores [T, N]`` of the named attack (see :func:`attack_measures`)."""
    return attack_measures(name, logits, labels, targets=targets, **options)[0]
