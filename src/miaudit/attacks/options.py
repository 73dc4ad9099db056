"""The options of LiRA and RMIA, each a frozen record validated once when it is made.

``LiraOptions`` (Carlini et al. 2022, "Membership Inference Attacks From First Principles")
and ``RmiaOptions`` (Zarifzadeh et al. 2024, "Low-Cost High-Power Membership Inference
Attacks") are passed as ``options=`` to :func:`~miaudit.attacks.lira`,
:func:`~miaudit.attacks.lira_target`, :func:`~miaudit.attacks.rmia` and
:func:`~miaudit.attacks.rmia_target`; ``run_attack`` builds them from keyword options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from miaudit.errors import InputError

__all__ = ["LiraOptions", "RmiaOptions", "check_rmia_options", "option_names"]

Estimator = Literal["mean", "median"]


def _check_flag(value: Any, name: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name}: expected True or False, got {value!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclass(frozen=True, kw_only=True)
class LiraOptions:
    """LiRA's options (see :mod:`miaudit.attacks.lira`).

    ``online``: compare the IN and OUT Gaussians (else one-sided against OUT only);
    ``fixed_variance``: one pooled variance per side and target instead of per record;
    ``estimator``: the side's location, "mean" or "median"; ``ddof``: 0 or 1 for the
    variances; ``min_std``: floor of every standard deviation (> 0); ``balanced``: in
    leave-one-model-out scoring, every target sees as many references on each side whether
    or not it trained on the record (one reference of the other side, its partner, is left
    out too), which removes the textbook estimator's bias below 0.5 under the null (False:
    the textbook leave-one-out of Carlini et al.'s code, kept for cross-checks).
    """

    online: bool = True
    fixed_variance: bool = False
    balanced: bool = True
    estimator: Estimator = "mean"
    ddof: int = 1
    min_std: float = 1e-6

    def __post_init__(self) -> None:
        _check_flag(self.online, "online")
        _check_flag(self.fixed_variance, "fixed_variance")
        _check_flag(self.balanced, "balanced")
        if self.estimator not in ("mean", "median"):
            raise InputError(f"estimator: expected 'mean' or 'median', got {self.estimator!r}")
        if isinstance(self.ddof, bool | np.bool_) or self.ddof not in (0, 1):
            raise InputError(f"ddof: expected 0 or 1, got {self.ddof!r}")
        if not (_is_real(self.min_std) and np.isfinite(self.min_std) and self.min_std > 0):
            raise InputError(
                f"min_std: expected a positive floor for standard deviations, got {self.min_std!r}"
            )


def check_rmia_options(gamma: Any, a: Any, trim: Any) -> None:
    """InputError unless γ > 0 is finite, a is None or in [0, 1] and trim is in [0, 0.5)."""
    if not (_is_real(gamma) and np.isfinite(gamma) and gamma > 0):
        raise InputError(f"gamma: expected a positive threshold on LR(x, z), got {gamma!r}")
    if a is not None and not (_is_real(a) and 0.0 <= a <= 1.0):
        raise InputError(f"a: expected the offline interpolation a in [0, 1], got {a!r}")
    if not (_is_real(trim) and 0.0 <= trim < 0.5):
        raise InputError(f"trim: expected the fraction cut from each end in [0, 0.5), got {trim!r}")


@dataclass(frozen=True, kw_only=True)
class RmiaOptions:
    """RMIA's options (see :mod:`miaudit.attacks.rmia`).

    ``online``: Pr(x) from IN and OUT references (else offline, from OUT and ``a``);
    ``gamma``: the threshold on LR(x, z); ``a``: offline interpolation in [0, 1], None to
    calibrate it without the target's membership; ``trim``: fraction cut from each end of
    a side's references before averaging, in [0, 0.5).
    """

    online: bool = False
    gamma: float = 1.0
    a: float | None = None
    trim: float = 0.0

    def __post_init__(self) -> None:
        _check_flag(self.online, "online")
        check_rmia_options(self.gamma, self.a, self.trim)


def option_names(cls: type) -> tuple[str, ...]:
    """The option fields of ``cls``, in declaration order."""
    return tuple(f.name for f in fields(cls))
