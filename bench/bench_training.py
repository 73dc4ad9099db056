"""Training engine benchmark: the group engine against plain loops, in one process.

    python bench/bench_training.py                 # RHC-sized defaults (a few minutes on 2 cores)
    python bench/bench_training.py --group 200 --sequential 5

Prints, per model: train_group (stacked MLP) against two plain PyTorch loops on the same
synthetic RHC-sized data (train_sequential: one nn.Module and fused torch.optim.Adam at a
time, the engine's own reference; and the same loop with torch.optim.Adam's defaults), their
agreement, the FLOP/s the engine reaches against a measured float32 matmul peak (its share
of the FLOP floor), and batched Newton logistic regression against scikit-learn in a loop.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from miaudit.models import ModelSpec, build_module
from miaudit.training import TrainingSpec, train_group, train_sequential, train_vmap


def cohort(records: int, features: int, models: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised features, a 65 % majority label with signal, and balanced random halves."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(records, features)).astype(np.float32)
    score = x[:, :10] @ rng.normal(size=10) * 0.3 + rng.normal(size=records)
    y = (score > np.quantile(score, 0.35)).astype(np.int64)
    keep = np.zeros((models, records), dtype=bool)
    for m in range(0, models, 2):  # every record IN for exactly half of the models
        half = rng.permutation(records) < records // 2
        keep[m] = half
        if m + 1 < models:
            keep[m + 1] = ~half
    return x, y, keep


def matmul_peak(repeats: int = 5, size: int = 2048) -> float:
    """Best float32 GEMM throughput (FLOP/s) with torch's current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def mlp_flops(features: int, width: int, depth: int, classes: int, trained: float, scored: int) -> float:
    """FLOPs of training on ``trained`` record passes and scoring ``scored`` records.

    Forward 2 FLOPs per multiply-add; backward 2 for weight gradients plus 2 for input
    gradients of every layer but the first (the records need no gradient).
    """
    sizes = [features] + [width] * depth + [classes]
    macs = [a * b for a, b in itertools.pairwise(sizes)]
    per_record = 2 * sum(macs) + 2 * sum(macs) + 2 * sum(macs[1:])
    return trained * per_record + scored * 2 * sum(macs)


def default_adam_loop(spec: ModelSpec, training: TrainingSpec, x: np.ndarray, y: np.ndarray,
                      keep: np.ndarray, seed: int) -> np.ndarray:
    """The loop most code bases write: torch.optim.Adam() with its defaults, one model at a time."""
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    out = []
    for m, rows in enumerate(keep):
        torch.manual_seed(seed * 100_003 + m)
        module = build_module(spec, x.shape[1], 2)
        optimizer = torch.optim.Adam(module.parameters(), lr=training.learning_rate)
        records = torch.from_numpy(np.flatnonzero(rows))
        for _ in range(training.epochs):
            shuffled = records[torch.randperm(len(records))]
            for start in range(0, len(shuffled), training.batch_size):
                batch = shuffled[start : start + training.batch_size]
                loss = torch.nn.functional.cross_entropy(module(inputs[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            out.append(module.eval()(inputs).numpy())
    return np.stack(out)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5735)
    parser.add_argument("--features", type=int, default=70)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--group", type=int, default=64, help="models trained by train_group")
    parser.add_argument("--sequential", type=int, default=3, help="models trained one by one")
    parser.add_argument("--max-models", type=int, default=None, help="models per batched matmul")
    parser.add_argument("--vmap-models", type=int, default=32, help="models trained by train_vmap")
    parser.add_argument("--logistic-models", type=int, default=200)
    parser.add_argument("--sklearn-models", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved repeats; the fastest of each is kept (shared machines)")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f} at start")
    models = max(args.group, args.sequential, args.logistic_models, args.sklearn_models)
    x, y, keep = cohort(args.records, args.features, models, args.seed)
    classes = 2
    spec = ModelSpec(family="mlp", width=args.width, depth=args.depth)
    training = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size)
    print(f"data: N={args.records}, F={args.features}; MLP {args.features}-"
          + "-".join([str(args.width)] * args.depth) + f"-{classes}, {args.epochs} epochs, "
          f"batch {args.batch_size}, ~{keep.sum(1).mean():.0f} IN records per model")

    peak = matmul_peak()
    print(f"\nfloat32 matmul peak (2048², best of 5): {peak / 1e9:.1f} GFLOP/s")

    # --- MLP: engine vs plain loop ----------------------------------------------------
    t_seq = t_grp = t_plain = float("inf")
    for _ in range(args.repeats):
        _, elapsed = timed(lambda: default_adam_loop(
            spec, training, x, y, keep[: args.sequential], args.seed))
        t_plain = min(t_plain, elapsed)
        seq, elapsed = timed(lambda: train_sequential(
            spec, training, x, y, keep[: args.sequential], range(args.sequential), args.seed))
        t_seq = min(t_seq, elapsed)
        grp, elapsed = timed(lambda: train_group(
            spec, training, x, y, keep[: args.group], range(args.group), args.seed,
            max_models=args.max_models))
        t_grp = min(t_grp, elapsed)
    per_seq, per_grp = t_seq / args.sequential, t_grp / args.group
    per_plain = t_plain / args.sequential
    same = grp[: args.sequential]
    agree = (same.argmax(-1) == seq.argmax(-1)).mean()
    acc_seq = (seq[:, :, 0].argmax(-1) == y).mean()
    acc_grp = (same[:, :, 0].argmax(-1) == y).mean()
    exact = np.array_equal(same, seq)
    flops = mlp_flops(args.features, args.width, args.depth, classes,
                      keep[: args.group].sum(1).mean() * args.epochs, args.records)
    print("\nMLP training, per model")
    print(f"  plain loop, torch.optim.Adam() defaults ({args.sequential} models): {per_plain:8.3f} s"
          f"  -> engine {per_plain / per_grp:.1f}x faster")
    print(f"  train_sequential, fused Adam as the engine ({args.sequential} models): {per_seq:8.3f} s"
          f"  -> engine {per_seq / per_grp:.1f}x faster")
    print(f"  train_group ({args.group} models): {per_grp:8.3f} s")
    print(f"  same models: accuracy {acc_grp:.4f} vs {acc_seq:.4f}, identical predictions "
          f"{agree:.2%}, bit-identical logits: {exact}")
    print(f"  FLOPs per model {flops / 1e9:.2f} GFLOP -> engine {flops / per_grp / 1e9:.1f} GFLOP/s "
          f"= {flops / per_grp / peak:.0%} of the matmul peak; plain loop "
          f"{flops / per_seq / 1e9:.1f} GFLOP/s = {flops / per_seq / peak:.0%}")
    print(f"  (FLOP floor: {flops / peak * 1e3:.0f} ms per model at the matmul peak)")

    # --- logistic: batched Newton vs scikit-learn in a loop ---------------------------
    logistic = ModelSpec(family="logistic", l2=1e-4)
    lg = args.logistic_models
    s = args.sklearn_models
    solvers = (("lbfgs", 1e-4), ("lbfgs", 1e-10), ("newton-cholesky", 1e-8))
    t_newton = float("inf")
    refs: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        newton, elapsed = timed(lambda: train_group(logistic, TrainingSpec(), x, y, keep[:lg], range(lg), args.seed))
        t_newton = min(t_newton, elapsed)
        for solver, tol in solvers:
            coefs = []
            start = time.perf_counter()
            for m in range(s):
                rows = keep[m]
                fit = LogisticRegression(C=1 / (logistic.l2 * rows.sum()), solver=solver, tol=tol,
                                         max_iter=10_000)
                fit.fit(x[rows], y[rows])
                coefs.append(np.concatenate([fit.coef_[0], fit.intercept_]))
            elapsed = (time.perf_counter() - start) / s
            z = x @ np.stack(coefs)[:, :-1].T + np.stack(coefs)[:, -1]
            gap = float(np.abs(z.T - newton[:s, :, 0, 1]).max())
            name = f"{solver} tol={tol:g}"
            refs[name] = (min(elapsed, refs.get(name, (float("inf"), 0.0))[0]), gap)
    if args.vmap_models:
        vm = args.vmap_models
        factory = lambda: build_module(spec, args.features, classes)  # noqa: E731
        _, t_vmap = timed(lambda: train_vmap(factory, training, x, y, keep[:vm], range(vm), args.seed))
        print(f"  train_vmap, same MLP as a user nn.Module ({vm} models): {t_vmap / vm:8.3f} s"
              f"  -> {per_seq / (t_vmap / vm):.1f}x train_sequential")
    print(f"  load average now {os.getloadavg()[0]:.2f} (other processes on the cores slow both sides)")
    print(f"\nbinary logistic regression (l2={logistic.l2}), per model")
    print(f"  batched Newton, train_group ({lg} models): {t_newton / lg * 1e3:8.2f} ms")
    for name, (elapsed, gap) in refs.items():
        print(f"  sklearn {name:26s} ({s} models): {elapsed * 1e3:8.2f} ms -> Newton "
              f"{elapsed / (t_newton / lg):5.1f}x faster; max |logit gap| {gap:.1e}")


if __name__ == "__main__":
    main()
