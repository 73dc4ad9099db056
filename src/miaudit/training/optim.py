"""Optimisers over stacked per-model parameters, each model updated as if trained alone.

``StackedAdam`` matches ``torch.optim.Adam``. ``StackedSGD`` is the paper's optimiser (Keras'
SGD): momentum in Keras' form, decoupled weight decay, a per-model learning-rate schedule
and a moving average of the weights; ``make_optimizer`` picks one from ``[training]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from miaudit.training.devices import _one_thread

__all__ = ["ModuleAdam", "ModuleSGD", "StackedAdam", "StackedSGD", "adam_options",
           "fused_adam_supported", "make_optimizer", "module_optimizer", "scheduled_lr",
           "total_steps"]

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def fused_adam_supported(device: torch.device) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` (one pass over memory per step) runs here."""
    return hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")


class StackedAdam:
    """Adam over stacked [G, ...] parameters with a step count per model.

    Each model gets the update ``torch.optim.Adam`` would give it alone. With ``fused`` (the
    default where available) PyTorch's fused Adam kernel, the one behind
    ``torch.optim.Adam(fused=True)``, runs over each model's own slice of every tensor: one
    pass over memory, and every model's elements are processed as if it were alone (the
    kernel's vectorised and tail elements round differently, so slices spanning models
    would make a model's last bits depend on its neighbours). Without it, the operations of
    the default single-tensor algorithm are replayed with per-model bias corrections
    computed in double precision like PyTorch does, matching
    ``torch.optim.Adam(foreach=False)``. ``adam_options`` gives the matching optimiser for
    a plain reference loop.
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float, weight_decays: Sequence[float],
                 *, fused: bool | None = None) -> None:
        self.params = list(params)
        self.lr = lr
        self.weight_decays = list(weight_decays)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        models = self.params[0].shape[0]
        self.steps = [0] * models
        device = self.params[0].device
        self.fused = fused_adam_supported(device) if fused is None else fused
        groups: dict[float, list[int]] = {}
        for i, wd in enumerate(self.weight_decays):
            groups.setdefault(wd, []).append(i)
        self._groups = list(groups.items())
        if self.fused:  # per-model views, made once
            self._step_counts = torch.zeros(models, dtype=torch.float32, device=device)
            self._step_views = [self._step_counts[m] for m in range(models)]
            self._views = [
                [[t[m] for m in range(models)] for t in tensors]
                for tensors in (self.params, self.exp_avg, self.exp_avg_sq)
            ]

    def finish(self) -> None:
        """Nothing to put in place at the end (the moving average is SGD's)."""

    @torch.no_grad()
    def step(
        self,
        lo: int,
        hi: int,
        grads: Sequence[torch.Tensor],
        grad_views: Sequence[Sequence[torch.Tensor]] | None = None,
    ) -> None:
        """Update models ``lo..hi-1`` with their gradients (each [hi-lo, ...]).

        ``grad_views[i][j]``, when given, is ``grads[i][j]`` made once by a caller that
        reuses its gradient buffers (it saves building the views every step).
        """
        for m in range(lo, hi):
            self.steps[m] += 1
        if not self.fused:
            self._exact_step(lo, hi, grads)
            return
        if grad_views is None:
            grad_views = [list(g.contiguous().unbind(0)) for g in grads]  # kernel walks raw memory
        beta1, beta2 = ADAM_BETAS
        self._step_counts[lo:hi] += 1
        params, exp_avg, exp_avg_sq = self._views
        count = hi - lo
        with _one_thread(self.params[0].device):
            self._fused(lo, hi, count, grad_views, params, exp_avg, exp_avg_sq, beta1, beta2)

    def _fused(self, lo: int, hi: int, count: int, grad_views: Sequence[Sequence[torch.Tensor]],
               params: list[list[torch.Tensor]], exp_avg: list[list[torch.Tensor]],
               exp_avg_sq: list[list[torch.Tensor]], beta1: float, beta2: float) -> None:
        for wd, members in self._groups:
            torch._fused_adam_(
                [v for i in members for v in params[i][lo:hi]],
                [v for i in members for v in grad_views[i][:count]],
                [v for i in members for v in exp_avg[i][lo:hi]],
                [v for i in members for v in exp_avg_sq[i][lo:hi]],
                [],
                [v for _ in members for v in self._step_views[lo:hi]],
                amsgrad=False, lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=wd,
                eps=ADAM_EPS, maximize=False,
            )

    def _exact_step(self, lo: int, hi: int, grads: Sequence[torch.Tensor]) -> None:
        beta1, beta2 = ADAM_BETAS
        counts = [float(t) for t in self.steps[lo:hi]]
        device = self.params[0].device
        neg_step_size = torch.tensor(
            [-(self.lr / (1 - beta1**t)) for t in counts], dtype=torch.float64, device=device
        )
        bc2_sqrt = torch.tensor(
            [(1 - beta2**t) ** 0.5 for t in counts], dtype=torch.float64, device=device
        )
        scalars: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        for param, grad, exp_avg, exp_avg_sq, wd in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, self.weight_decays, strict=True
        ):
            p, m, v = param[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
            if wd != 0:
                grad = grad.add(p, alpha=wd)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if p.dtype not in scalars:  # PyTorch rounds its double scalars to the tensor's dtype
                scalars[p.dtype] = (neg_step_size.to(p.dtype), bc2_sqrt.to(p.dtype))
            step_size, bias_correction = scalars[p.dtype]
            shape = (hi - lo,) + (1,) * (p.dim() - 1)
            denom = (v.sqrt() / bias_correction.view(shape)).add_(ADAM_EPS)
            # addcdiv_ takes one scalar; (value · m) / denom is the same arithmetic per model.
            p.add_(step_size.view(shape) * m / denom)


def adam_options(device: torch.device) -> dict[str, bool]:
    """Options making a lone ``torch.optim.Adam`` match ``StackedAdam``'s default update."""
    return {"fused": True} if fused_adam_supported(device) else {"foreach": False}


def scheduled_lr(base: float, step: int, total: int, schedule: str, warmup: float) -> float:
    """The learning rate at (0-based) ``step`` of ``total``: constant, or the paper's cosine
    decay ``base · cos(7π/16 · t/T) · min(1, (t/T) / warmup)`` (it ends near 0.2 · base)."""
    if schedule == "constant":
        return base
    progress = step / max(total, 1)
    ramp = 1.0 if warmup <= 0 else min(max(progress / warmup, 0.0), 1.0)
    return base * math.cos(7 * math.pi / 16 * progress) * ramp


class StackedSGD:
    """SGD over stacked [G, ...] parameters, each model at its own step of its own schedule.

    Per model and step t (Keras' SGD, the optimiser of the paper's code): lr = the
    schedule's rate at t; with weight decay wd, ``p -= lr·wd·p`` first (decoupled); then
    ``v = μ·v − lr·g`` and ``p += v``. With ``ema`` = d, a moving average ``a = d·a +
    (1 − d)·p`` of the weights after each step (``a = p`` after the first), which
    :meth:`finish` puts in place of the weights: the model is scored with its average.
    ``total_steps[m]`` is model m's number of steps (its schedule's T).
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float, weight_decays: Sequence[float],
                 *, momentum: float, total_steps: Sequence[int], schedule: str = "constant",
                 warmup: float = 0.0, ema: float | None = None) -> None:
        self.params = list(params)
        self.lr, self.momentum, self.schedule, self.warmup = lr, momentum, schedule, warmup
        self.weight_decays = list(weight_decays)
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.average = [p.detach().clone() for p in self.params] if ema is not None else None
        self.ema = ema
        self.total = [int(t) for t in total_steps]
        self.steps = [0] * self.params[0].shape[0]

    @torch.no_grad()
    def step(self, lo: int, hi: int, grads: Sequence[torch.Tensor],
             grad_views: Sequence[Sequence[torch.Tensor]] | None = None) -> None:
        """Update models ``lo..hi-1`` with their gradients (each [hi-lo, ...]); ``grad_views``
        is :class:`StackedAdam`'s and unused here."""
        rates = [scheduled_lr(self.lr, self.steps[m], self.total[m], self.schedule, self.warmup)
                 for m in range(lo, hi)]
        firsts = [self.steps[m] == 0 for m in range(lo, hi)]
        device = self.params[0].device
        for i, (param, grad) in enumerate(zip(self.params, grads, strict=True)):
            p, v = param[lo:hi], self.velocity[i][lo:hi]
            shape = (hi - lo,) + (1,) * (p.dim() - 1)
            lr = torch.tensor(rates, dtype=p.dtype, device=device).view(shape)
            if self.weight_decays[i]:
                p.sub_(p * (lr * self.weight_decays[i]))
            v.mul_(self.momentum).sub_(lr * grad.to(p.dtype))
            p.add_(v)
            if self.average is not None and self.ema is not None:
                a = self.average[i][lo:hi]
                decay = torch.tensor([0.0 if f else self.ema for f in firsts], dtype=p.dtype,
                                     device=device).view(shape)
                a.mul_(decay).add_(p * (1 - decay))
        for m in range(lo, hi):
            self.steps[m] += 1

    @torch.no_grad()
    def finish(self) -> None:
        """Put each model's moving average of its weights in place of them (with ``ema``)."""
        if self.average is not None:
            for param, average in zip(self.params, self.average, strict=True):
                param.copy_(average)


def make_optimizer(training: Any, params: Sequence[torch.Tensor], weight_decays: Sequence[float],
                   total_steps: Sequence[int]) -> StackedAdam | StackedSGD:
    """The stacked optimiser ``[training]`` names (``total_steps``: each model's T)."""
    if training.optimizer == "sgd":
        return StackedSGD(params, training.learning_rate, weight_decays,
                          momentum=training.momentum, total_steps=total_steps,
                          schedule=training.schedule, warmup=training.warmup, ema=training.ema)
    return StackedAdam(params, training.learning_rate, weight_decays)


def total_steps(counts: Sequence[int] | np.ndarray, batch_size: int, epochs: int) -> list[int]:
    """Each model's number of steps: ``epochs · ceil(n_m / B)`` (a schedule's T)."""
    return [int(epochs * -(-int(n) // batch_size)) for n in counts]


class ModuleSGD:
    """:class:`StackedSGD` for one plain module (the reference loops), as a torch optimiser
    is used: ``zero_grad``, ``backward``, ``step``; then ``finish``."""

    def __init__(self, training: Any, groups: Sequence[tuple[Sequence[torch.Tensor], float]],
                 total: int) -> None:
        self.params = [p for params, _ in groups for p in params]
        decays = [wd for params, wd in groups for _ in params]
        with torch.no_grad():
            views = [p.unsqueeze(0) for p in self.params]  # [1, ...] views of the weights
        self.stacked = make_optimizer(training, views, decays, [total])

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.stacked.step(0, 1, [p.grad.unsqueeze(0) for p in self.params])

    def finish(self) -> None:
        self.stacked.finish()


class ModuleAdam(torch.optim.Adam):
    """``torch.optim.Adam`` for one plain module, with the ``finish`` :class:`ModuleSGD` has
    (Adam has nothing to put in place)."""

    def finish(self) -> None:
        """Nothing to put in place at the end."""


def module_optimizer(training: Any, groups: Sequence[tuple[Sequence[torch.Tensor], float]],
                     records: int, device: torch.device) -> ModuleAdam | ModuleSGD:
    """The optimiser ``[training]`` names for one plain module trained on ``records`` records:
    ``groups`` are (parameters, weight decay); call ``finish`` after the last step."""
    if training.optimizer == "sgd":
        return ModuleSGD(training, groups,
                         total_steps([records], training.batch_size, training.epochs)[0])
    return ModuleAdam([{"params": list(params), "weight_decay": wd} for params, wd in groups],
                      lr=training.learning_rate, **adam_options(device))
