"""How many models the leave-one-model-out attacks need.

Each target's references are the other models, and records need IN and OUT references among
them, so fewer than ``MIN_MODELS`` models is refused. The attack registry holds this rule
(and the stricter one of a per-record Gaussian) per attack as data.
"""

from __future__ import annotations

from miaudit.errors import InputError

MIN_MODELS = 4


def require_models(m: int, *, attack: str, minimum: int = MIN_MODELS) -> None:
    """Leave-one-model-out needs references on both sides of most records: M ≥ 4."""
    if m < minimum:
        raise InputError(
            f"{attack}: got {m} models; leave-one-model-out needs at least {minimum} "
            f"(each target's references are the other models, and records need IN and OUT "
            f"references among them) - train more reference models, or score one model "
            f"against explicit references with lira_target / rmia_target"
        )
