"""Batched Newton (IRLS) for binary ridge logistic regression on a shared design matrix.

Model m minimises ``mean_{i in IN_m} [softplus(z_i) - y_i z_i] + l2/2 * ||w_m||^2`` with
``z = X w_m + b_m`` (intercept not penalised): the objective scikit-learn's
``LogisticRegression(C=1/(l2 * n_m))`` solves. All G models share X, so logits and
gradients of the whole group are single matrix products; the [D, D] Hessians are formed
per model from its IN rows. Each model stops on its own once its Newton step is below
tolerance, so the result is the same whatever group it is solved in.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fit_logistic_newton"]


def _objective(z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, theta: torch.Tensor,
               l2: float) -> torch.Tensor:
    """Per-model objective; z [N, G], y [N, G], weight [N, G] (1/n_m on IN rows), theta [G, D]."""
    loss = F.binary_cross_entropy_with_logits(z, y, weight=weight, reduction="none").sum(0)
    return loss + 0.5 * l2 * (theta[:, :-1] ** 2).sum(1)


def fit_logistic_newton(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    keep: torch.Tensor,
    l2: float,
    *,
    tol: float = 1e-9,
    max_iter: int = 100,
    design_cache_bytes: int = 256 << 20,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit G binary ridge logistic regressions; returns (coef [G, F], intercept [G], iterations [G]).

    inputs [N, F], labels [N] in {0, 1}, keep [G, N] bool. Gradients and objectives are in
    float64; Hessians are one float32 GEMM over the shared design (an inexact Hessian
    changes the path, not the fixed point: convergence is tested on the float64 Newton
    step). Steps are damped by backtracking so that each model's objective
    decreases (Armijo), which keeps Newton safe far from the optimum.
    """
    device = inputs.device
    x = torch.cat([inputs.double(), torch.ones((inputs.shape[0], 1), dtype=torch.float64, device=device)], 1)
    x32 = x.float()
    y = labels.double()
    models, d = keep.shape[0], x.shape[1]
    counts = keep.sum(1).double()
    weight = (keep.double() / counts[:, None]).T.contiguous()  # [N, G]
    # Hessians share the design: H_m = sum_i s_mi x_i x_i^T, so with the products of feature
    # pairs u_i = (x_ij x_ik)_{j<=k} [N, T] all upper triangles are one GEMM S [G, N] @ U.
    upper = torch.triu_indices(d, d, device=device)
    pairs = upper.shape[1]
    rows_per_chunk = max(1, min(x.shape[0], design_cache_bytes // (4 * pairs)))
    cached = rows_per_chunk >= x.shape[0]
    products = (x32[:, upper[0]] * x32[:, upper[1]]) if cached else None
    # column of the upper triangle holding entry (j, k) of the symmetric Hessian
    position = torch.zeros((d, d), dtype=torch.int64, device=device)
    position[upper[0], upper[1]] = torch.arange(pairs, device=device)
    position[upper[1], upper[0]] = torch.arange(pairs, device=device)
    position = position.reshape(-1)
    ridge = torch.full((d,), l2, dtype=torch.float64, device=device)
    ridge[-1] = 0.0
    # A tiny floor keeps the intercept's Newton system solvable when a model sees one class.
    ridge_diag = torch.diag(ridge + 1e-12)

    theta = torch.zeros((models, d), dtype=torch.float64, device=device)
    rate = ((y @ weight).clamp(1e-6, 1 - 1e-6))  # each model's share of positives
    theta[:, -1] = torch.log(rate / (1 - rate))  # start from the intercept-only fit
    targets = y[:, None].expand(-1, models)
    f0: torch.Tensor | None = None
    iterations = torch.zeros(models, dtype=torch.int64, device=device)
    active = torch.ones(models, dtype=torch.bool, device=device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        z = x @ theta.T  # [N, G]
        p = torch.sigmoid(z)
        grad = x.T.mm((p - targets).mul_(weight)).T + ridge * theta  # [G, D]
        curvature = torch.addcmul(p, p, p, value=-1).mul_(weight).T.float()  # p(1-p)w, [G, N]
        busy = torch.nonzero(active).squeeze(1)
        if busy.numel() < models:
            curvature = curvature[busy]
        triangle = torch.zeros((busy.numel(), pairs), dtype=torch.float32, device=device)
        for start in range(0, x.shape[0], rows_per_chunk):
            stop = start + rows_per_chunk
            chunk = products if products is not None else (
                x32[start:stop, upper[0]] * x32[start:stop, upper[1]])
            triangle += curvature[:, start:stop] @ chunk
        hessian = ridge_diag.expand(models, d, d).clone()
        hessian[busy] += triangle.double()[:, position].view(-1, d, d)
        chol, info = torch.linalg.cholesky_ex(hessian)
        if bool((info != 0).any()):  # pragma: no cover - ridge_diag keeps H positive definite
            chol, _ = torch.linalg.cholesky_ex(hessian + 1e-8 * torch.eye(d, dtype=hessian.dtype, device=device))
        step = torch.cholesky_solve(grad.unsqueeze(2), chol).squeeze(2)  # [G, D]

        # Backtracking: largest t in 1, 1/2, 1/4, ... with sufficient decrease, per model.
        direction = x @ step.T
        if f0 is None:
            f0 = _objective(z, targets, weight, theta, l2)
        slope = (grad * step).sum(1)
        t = torch.ones(models, dtype=torch.float64, device=device)
        # Near the optimum the predicted decrease drops below float64 resolution of the
        # objective; there the full Newton step is taken (quadratic convergence region).
        pending = active & (slope > 1e-12 * (1 + f0.abs()))
        accepted = f0.clone()
        for _ in range(40):
            f = _objective(z - t * direction, targets, weight, theta - t[:, None] * step, l2)
            accepted = torch.where(pending | (t == 1), f, accepted)
            pending &= ~(f <= f0 - 1e-4 * t * slope)
            if not bool(pending.any()):
                break
            t = torch.where(pending, t * 0.5, t)
        f0 = torch.where(active, accepted, f0)  # the objective at the new θ
        update = t[:, None] * step
        theta = torch.where(active[:, None], theta - update, theta)
        iterations += active.long()
        active &= update.abs().amax(1) > tol * (1 + theta.abs().amax(1))
    if bool(active.any()):
        warnings.warn(
            f"Newton logistic regression: {int(active.sum())} model(s) did not converge in {max_iter} "
            "iterations (a model whose IN records are separable with l2=0, or one class only); "
            "raise ModelSpec.l2",
            RuntimeWarning,
            stacklevel=2,
        )
    return theta[:, :-1], theta[:, -1], iterations.cpu()


def logits_from_coef(inputs: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Binary logistic logits [G, N, 1, 2] as [0, z] (softmax of them gives P(y=1) = sigmoid(z))."""
    z = np.einsum("nf,gf->gn", inputs.astype(np.float64), coef) + intercept[:, None]
    out = np.zeros((coef.shape[0], inputs.shape[0], 1, 2), dtype=np.float32)
    out[:, :, 0, 1] = z
    return out
