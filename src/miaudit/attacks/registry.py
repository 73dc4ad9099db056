"""The attacks by name: what each one runs, reads, fixes, needs and cites.

An :class:`Attack` is a frozen record; :func:`register` adds one, :func:`get` looks one up
(an unknown name is an InputError listing the known ones) and :func:`names` lists them in
registration order. ``run_attack`` in :mod:`miaudit.attacks` and the configuration read
everything about an attack from here, so a registered attack is usable by name at once::

    from miaudit.attacks import registry
    registry.register(registry.Attack(name="my_lira", function=lira, signal="logit_confidence",
                                      fixed={"online": True}, per_side=2, paper="..."))

Two model-count rules are kept as data:

- ``min_models``: the fewest models the leave-one-model-out pipeline accepts (each target's
  references are the other models, and records need IN and OUT references among them);
  the attack refuses fewer;
- ``per_side``: the references a record needs on each side its score uses, which with a
  balanced plan (every record IN for M/2 models, one of them the target) gives the fewest
  models for which every record's score is defined, :meth:`Attack.plan_min_models`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, is_dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from miaudit.attacks.baselines import confidence_attack, loss_attack
from miaudit.attacks.counts import MIN_MODELS, require_models
from miaudit.attacks.lira import lira
from miaudit.attacks.options import LiraOptions, RmiaOptions
from miaudit.attacks.pairwise import lira_pair_auc
from miaudit.attacks.rmia import rmia
from miaudit.errors import InputError
from miaudit.signals import SIGNALS

__all__ = ["Attack", "get", "names", "register"]

CARLINI_2022 = (
    'Carlini et al. 2022, "Membership Inference Attacks From First Principles" (IEEE S&P)'
)
ZARIFZADEH_2024 = (
    'Zarifzadeh et al. 2024, "Low-Cost High-Power Membership Inference Attacks" (ICML)'
)
YEOM_2018 = (
    'Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to '
    'Overfitting" (IEEE CSF)'
)
SONG_MITTAL_2021 = (
    'Song & Mittal 2021, "Systematic Evaluation of Privacy Risks of Machine Learning Models" '
    "(USENIX Security)"
)


@dataclass(frozen=True, kw_only=True)
class Attack:
    """One attack by name.

    ``function(signal, keep, *, targets=..., **keywords)`` returns scores [T, N] (without
    ``keep`` when ``references`` is False: a reference-free baseline). ``signal`` names the
    :mod:`miaudit.signals` statistic it reads. ``options``: the frozen options class the
    function takes as ``options=`` (e.g. :class:`LiraOptions`), or None when its options
    are plain keywords; ``fixed`` holds the options the name fixes (e.g. ``online=False``
    for "lira_offline"). ``per_side`` is the references a record
    needs on each side its score uses, given the options (see the module doc).
    ``pairwise(signal, keep, *, targets, options)``: the attack's leave-pair-out record AUC
    (``(auc, n_in, n_out)`` [N]), free of the leave-one-out bias of its target scores.
    """

    name: str
    function: Callable[..., NDArray[np.float64]]
    signal: str
    paper: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    options: type | None = None
    references: bool = True
    min_models: int = MIN_MODELS
    per_side: int | Callable[[Mapping[str, Any]], int] = 1
    pairwise: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise InputError(f"attack name: {self.name!r} is not a plain name such as 'lira'")
        if self.signal not in SIGNALS:
            raise InputError(
                f"attack {self.name!r}: signal {self.signal!r} is not one of {', '.join(SIGNALS)}"
            )
        if not callable(self.function):
            raise InputError(f"attack {self.name!r}: function {self.function!r} is not callable")
        if isinstance(self.min_models, bool) or not isinstance(self.min_models, int):
            raise InputError(f"attack {self.name!r}: min_models must be an integer")
        if self.options is not None and not is_dataclass(self.options):
            raise InputError(f"attack {self.name!r}: options must be an options dataclass")
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))

    def references_per_side(self, options: Mapping[str, Any] | None = None) -> int:
        """References a record needs on each side its score uses, with ``options``."""
        if callable(self.per_side):
            return int(self.per_side({**(options or {}), **self.fixed}))
        return int(self.per_side)

    def plan_min_models(self, options: Mapping[str, Any] | None = None) -> int:
        """Fewest models of a balanced plan that leave every record's score defined.

        With every record IN for M/2 models and the target one of them, a record keeps
        M/2 − 1 references on the target's side, so it needs M/2 − 1 ≥ per side, and never
        fewer than ``min_models``.
        """
        return max(self.min_models, 2 * (self.references_per_side(options) + 1))

    def require(self, m: int) -> None:
        """InputError when ``m`` models are too few for this attack's pipeline."""
        require_models(m, attack=self.name, minimum=self.min_models)


_ATTACKS: dict[str, Attack] = {}


def register(attack: Attack, *, replace: bool = False) -> Attack:
    """Make ``attack`` usable by its name; an existing name needs ``replace=True``."""
    if not isinstance(attack, Attack):
        raise InputError(f"register: expected an Attack record, got {type(attack).__name__}")
    if attack.name in _ATTACKS and not replace:
        raise InputError(
            f"attack {attack.name!r} is already registered; pass replace=True to replace it"
        )
    _ATTACKS[attack.name] = attack
    return attack


def get(name: str) -> Attack:
    """The attack registered as ``name``."""
    try:
        return _ATTACKS[name]
    except (KeyError, TypeError):
        raise InputError(
            f"attack {name!r} is not known; choose one of {', '.join(names())}"
        ) from None


def names() -> tuple[str, ...]:
    """Registered attack names, in registration order."""
    return tuple(_ATTACKS)


def _lira_per_side(options: Mapping[str, Any]) -> int:
    """A per-record Gaussian needs 2 references per side; one shared variance needs 1."""
    return 1 if options.get("fixed_variance", False) else 2


register(
    Attack(
        name="lira",
        function=lira,
        signal="logit_confidence",
        pairwise=lira_pair_auc,
        fixed={"online": True},
        options=LiraOptions,
        per_side=_lira_per_side,
        paper=CARLINI_2022,
    )
)
register(
    Attack(
        name="lira_offline",
        function=lira,
        signal="logit_confidence",
        pairwise=lira_pair_auc,
        fixed={"online": False},
        options=LiraOptions,
        per_side=_lira_per_side,
        paper=CARLINI_2022,
    )
)
register(
    Attack(
        name="rmia",
        function=rmia,
        signal="probability",
        fixed={"online": False},
        options=RmiaOptions,
        paper=ZARIFZADEH_2024,
    )
)
register(
    Attack(
        name="rmia_online",
        function=rmia,
        signal="probability",
        fixed={"online": True},
        options=RmiaOptions,
        paper=ZARIFZADEH_2024,
    )
)
register(
    Attack(
        name="loss",
        function=loss_attack,
        signal="loss",
        references=False,
        per_side=0,
        paper=YEOM_2018,
    )
)
register(
    Attack(
        name="confidence",
        function=confidence_attack,
        signal="probability",
        references=False,
        per_side=0,
        paper=SONG_MITTAL_2021,
    )
)
# The textbook leave-one-out online LiRA (biased below 0.5 under the null), for cross-checks
# against published numbers and other implementations.
register(
    Attack(
        name="lira_textbook",
        function=lira,
        signal="logit_confidence",
        fixed={"online": True, "balanced": False},
        options=LiraOptions,
        per_side=_lira_per_side,
        paper=CARLINI_2022,
    )
)
