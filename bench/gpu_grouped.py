"""Grouped WRN training on one GPU: many models at once against one after another.

    python bench/gpu_grouped.py --out gpu_grouped.json            # on a CUDA machine
    python bench/gpu_grouped.py --smoke --out /tmp/smoke.json     # tiny run on CPU (checks the script)

Trains ``--models`` (default 64) WRN image models on their own random halves of a synthetic
CIFAR-sized cohort with ``train_conv(grouped=True)`` (stacked parameters, one vmapped step
for the whole group, bf16 autocast on CUDA), then the first ``--sequential`` (default 8) of
the same models one after another with ``train_conv(grouped=False)`` on the same GPU and
precision. The sequential time is extrapolated linearly to all models (each model is trained
alone, so its cost does not depend on how many follow) and both are reported as models per
minute, with their ratio. Both timings include scoring every record (V = 1) and exclude
building the cohort; a short warm-up run first pays for CUDA context and kernel selection.
The shared models' predictions are compared (identical argmax share), as a check that the
two paths train the same models. The JSON written to ``--out`` holds every number printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from miaudit.models import ModelSpec, count_parameters
from miaudit.training import TrainingSpec, train_conv


def cohort(records: int, shape: tuple[int, ...], models: int, classes: int, seed: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images with a class-coloured blob, and balanced random halves (every record IN half the time)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(records, *shape)).astype(np.float32)
    y = rng.integers(0, classes, records)
    h = shape[1]
    for k in range(1, classes):
        x[y == k, k % shape[0], (k * 3) % (h - 6) : (k * 3) % (h - 6) + 6, 2:8] += 1.0
    keep = np.zeros((models, records), dtype=bool)
    for m in range(0, models, 2):
        half = rng.permutation(records) < records // 2
        keep[m] = half
        if m + 1 < models:
            keep[m + 1] = ~half
    return x, y, keep


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_train(device: str, **kwargs: Any) -> tuple[np.ndarray, float]:
    _sync(device)
    start = time.perf_counter()
    logits = train_conv(device=device, **kwargs)
    _sync(device)
    return logits, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=64, help="models trained at once (grouped)")
    parser.add_argument("--sequential", type=int, default=8, help="of them, trained one by one")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--shape", default="3,32,32", help="C,H,W")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-models", type=int, default=None, help="models per vmapped step")
    parser.add_argument("--device", default=None, help="default: cuda")
    parser.add_argument("--out", type=Path, default=Path("gpu_grouped.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU")
    args = parser.parse_args()
    if args.smoke:
        args.models, args.sequential, args.records = 4, 2, 64
        args.shape, args.classes, args.width, args.blocks = "1,12,12", 2, 4, 1
        args.epochs, args.batch_size, args.device = 1, 16, args.device or "cpu"
    device = args.device or "cuda"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run on a GPU machine, or pass --smoke")
        torch.backends.cudnn.benchmark = True
    shape = tuple(int(s) for s in args.shape.split(","))
    spec = ModelSpec(family="wrn", width=args.width, blocks=args.blocks)
    training = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size)
    x, y, keep = cohort(args.records, shape, args.models, args.classes, 0)
    common = dict(model=spec, training=training, inputs=x, labels=y, seed=0,
                  max_models=args.max_models)

    warm = min(args.models, 2)
    timed_train(device, keep=keep[:warm, :256], model_index=list(range(warm)), grouped=True,
                **{**common, "inputs": x[:256], "labels": y[:256]})
    timed_train(device, keep=keep[:1, :256], model_index=[0], grouped=False,
                **{**common, "inputs": x[:256], "labels": y[:256]})
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    grouped, grouped_s = timed_train(device, keep=keep, model_index=list(range(args.models)),
                                     grouped=True, **common)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    s = args.sequential
    sequential, sequential_s = timed_train(device, keep=keep[:s], model_index=list(range(s)),
                                           grouped=False, **common)
    per_model_seq = sequential_s / s
    result = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
        "mixed_precision": device.startswith("cuda"),
        "models": args.models,
        "sequential_models": s,
        "records": args.records,
        "records_per_model": float(keep.sum(1).mean()),
        "shape": list(shape),
        "classes": args.classes,
        "width": args.width,
        "blocks": args.blocks,
        "parameters": count_parameters(spec, shape, args.classes),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "grouped_seconds": grouped_s,
        "sequential_seconds_measured": sequential_s,
        "sequential_seconds_extrapolated": per_model_seq * args.models,
        "grouped_models_per_minute": 60 * args.models / grouped_s,
        "sequential_models_per_minute": 60 / per_model_seq,
        "speedup": per_model_seq * args.models / grouped_s,
        "grouped_images_per_second": float(keep.sum()) * args.epochs / grouped_s,
        "argmax_agreement_shared_models": float(
            (grouped[:s].argmax(-1) == sequential.argmax(-1)).mean()),
        "max_abs_logit_diff_shared_models": float(np.abs(grouped[:s] - sequential).max()),
        "peak_gpu_memory_gib": peak / 2**30,
        "cpu_count": os.cpu_count(),
    }
    for key, value in result.items():
        print(f"{key:>34}: {value:,.4g}" if isinstance(value, float) else f"{key:>34}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
