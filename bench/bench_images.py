"""Image benchmark on CPU: the chunked scorer against a per-image loop, and sequential
against grouped (vmapped) training of small WRNs, in one process.

    python bench/bench_images.py                      # MedMNIST-sized defaults
    python bench/bench_images.py --records 500 --loop 50 --threads 1

Scoring: V = 1, 2 and 18 views (identity; + flip; flip × 9 shifts), images scored per
second by ``score_modules`` (records in chunks sized from a byte budget, every view of a
chunk in turn) against the obvious loop (one image, one view, one forward call at a time),
timed on a subsample and extrapolated. Training: images per second (records × epochs summed
over models) of ``train_conv(grouped=False)`` (one module after another, the CPU default)
and ``train_conv(grouped=True)`` (vmap over the group) on the same models. Wall and process
CPU time are both printed: on a shared machine CPU time is the steadier number.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

from miaudit.models import ModelSpec, build_module, count_parameters
from miaudit.training import TrainingSpec, score_modules, train_conv
from miaudit.training.conv import score_rows
from miaudit.training.seeds import STREAM_INIT, model_generator
from miaudit.views import ViewSpec, make_views

T = TypeVar("T")

def images(records: int, shape: tuple[int, ...], models: int, seed: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images with a class-dependent blob, and balanced random halves."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(records, *shape)).astype(np.float32)
    y = rng.integers(0, 2, records)
    x[y == 1, :, 4:10, 4:10] += 1.0
    keep = np.zeros((models, records), dtype=bool)
    for m in range(0, models, 2):
        half = rng.permutation(records) < records // 2
        keep[m] = half
        if m + 1 < models:
            keep[m + 1] = ~half
    return x, y, keep


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """fn(), its wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_scoring(spec: ModelSpec, x: np.ndarray, loop: int) -> None:
    shape = tuple(x.shape[1:])
    module = build_module(spec, shape, 2, generator=model_generator(0, 0, STREAM_INIT)).eval()
    rows = score_rows(spec, shape, 1, torch.device("cpu"), len(x))
    print(f"\nscoring {len(x)} records {shape}, chunks of {rows} records")
    print(f"{'V':>3} {'batched img/s':>14} {'CPU s':>7} {'loop img/s':>11} {'ratio':>7} {'max |diff|':>11}")
    for spec_views in (ViewSpec(), ViewSpec(flip=True), ViewSpec(flip=True, shift=2)):
        views = make_views(spec_views, "image", shape)
        v = len(views)
        score_modules([module], x[:rows], views, rows=rows)  # warm up
        batched, wall, cpu = timed(lambda views=views: score_modules([module], x, views, rows=rows))

        def per_image(views: list = views) -> np.ndarray:
            out = np.empty((loop, len(views), 2), np.float32)
            with torch.no_grad():
                for i in range(loop):
                    one = torch.from_numpy(x[i : i + 1])
                    for j, view in enumerate(views):
                        out[i, j] = module(view(one))[0].numpy()
            return out

        slow, slow_wall, _ = timed(per_image)
        diff = float(np.abs(slow - batched[0, :loop]).max())
        fast = len(x) * v / wall
        naive = loop * v / slow_wall
        print(f"{v:>3} {fast:>14,.0f} {cpu:>7.2f} {naive:>11,.0f} {fast / naive:>6.1f}× {diff:>11.1e}")


def bench_training(spec: ModelSpec, x: np.ndarray, y: np.ndarray, keep: np.ndarray,
                   training: TrainingSpec) -> None:
    views = make_views(ViewSpec(flip=True), "image", tuple(x.shape[1:]))
    seen = int(keep.sum()) * training.epochs
    print(f"\ntraining {len(keep)} models × {training.epochs} epoch(s) on {keep.sum(1).mean():.0f} "
          f"records each, batch {training.batch_size}, flip augmentation, scoring V=2 included")
    results = {}
    for grouped in (False, True):
        logits, wall, cpu = timed(lambda g=grouped: train_conv(
            spec, training, x, y, keep, list(range(len(keep))), 0, views=views, grouped=g))
        results[grouped] = (logits, wall)
        name = "grouped (vmap)" if grouped else "sequential"
        print(f"  {name:<15} {wall:7.1f} s wall {cpu:7.1f} s CPU  {seen / wall:8,.0f} img/s")
    (seq, seq_wall), (grp, grp_wall) = results[False], results[True]
    agree = float((seq.argmax(-1) == grp.argmax(-1)).mean())
    print(f"  grouped / sequential speed: {seq_wall / grp_wall:.2f}×, identical argmax {agree:.1%}, "
          f"max |logit diff| {np.abs(seq - grp).max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="records scored")
    parser.add_argument("--loop", type=int, default=100, help="records of the per-image loop")
    parser.add_argument("--train-records", type=int, default=1000)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--shape", default="1,28,28", help="C,H,W")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    spec = ModelSpec(family="wrn", width=args.width, blocks=args.blocks)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"model: wrn width {spec.width} blocks {spec.blocks} "
          f"({count_parameters(spec, shape, 2):,} parameters)")
    x, y, keep = images(max(args.records, args.train_records), shape, args.models, 0)
    bench_scoring(spec, x[: args.records], args.loop)
    training = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size)
    n = args.train_records
    bench_training(spec, x[:n], y[:n], keep[:, :n], training)


if __name__ == "__main__":
    main()
