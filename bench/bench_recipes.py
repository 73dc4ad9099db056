"""Recipe benchmark: the user's own estimators and commands against the plain loop, in one process.

    python bench/bench_recipes.py                    # 200 models of each estimator on RHC
    python bench/bench_recipes.py --models 40 --command-models 20

For each estimator (scikit-learn's HistGradientBoostingClassifier, LightGBM when installed)
it trains the same reference models on the built-in RHC cohort twice: the sequential loop a
user would write (clone, seed, fit, predict_proba, one model after another, the library's
default threads) and ``train_estimators`` (one single-threaded worker process per core),
and prints both wall times and their ratio. For the command kind it runs a trivial training
script through ``train_commands`` and directly with ``subprocess``, and prints miaudit's
overhead per model.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone

from miaudit.datasets import load_builtin
from miaudit.plan import make_plan
from miaudit.recipes.command import CommandRecipe, train_commands
from miaudit.recipes.estimator import EstimatorRecipe, train_estimators
from miaudit.recipes.workers import available_cores
from miaudit.seeding import recipe_seed

SCRIPT = """
import sys, pathlib, numpy as np
out = pathlib.Path(sys.argv[1])
np.save(out / "logits.npy", np.zeros((int(sys.argv[2]), 2), dtype=np.float32))
"""


def plain_loop(estimator, x, y, keep, seed) -> np.ndarray:
    """What a user writes by hand: each model a clone with its own seed, one after another."""
    out = []
    for m in range(len(keep)):
        est = clone(estimator).set_params(random_state=recipe_seed(seed, m))
        est.fit(x[keep[m]], y[keep[m]])
        p = est.predict_proba(x)
        out.append(np.log(np.clip(p, 1e-12, 1.0)))
    return np.stack(out)


def estimators(models: int) -> list[tuple[str, str, dict, object]]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    found = [("HistGradientBoosting", "sklearn.ensemble:HistGradientBoostingClassifier",
              {"max_depth": 6}, HistGradientBoostingClassifier(max_depth=6))]
    try:
        import lightgbm

        found.append(("LightGBM", "lightgbm:LGBMClassifier", {"max_depth": 6, "verbose": -1},
                      lightgbm.LGBMClassifier(max_depth=6, verbose=-1)))
    except ImportError:
        print("LightGBM not installed (pip install 'miaudit[gbm]'): skipped")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--command-models", type=int, default=40)
    args = parser.parse_args()
    cohort = load_builtin("rhc")
    x, y = cohort.inputs, cohort.labels
    keep = make_plan(cohort.num_patients, args.models, 0).record_keep(cohort.patient)
    print(f"RHC: {cohort.num_records} records, {x.shape[1]} features; {args.models} models; "
          f"{available_cores()} cores; {platform.processor() or platform.machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| estimator | plain loop (s) | miaudit (s) | ratio | max |Δ logit| |")
    print("|---|---:|---:|---:|---:|")
    for name, path, params, obj in estimators(args.models):
        t = time.perf_counter()
        slow = plain_loop(obj, x, y, keep, 0)
        t_slow = time.perf_counter() - t
        t = time.perf_counter()
        fast = train_estimators(EstimatorRecipe(path, params), x, y, keep, range(args.models), 0)
        t_fast = time.perf_counter() - t
        # log-softmax of both, so margins and log-probabilities compare
        def logp(z: np.ndarray) -> np.ndarray:
            z = z - z.max(-1, keepdims=True)
            return z - np.log(np.exp(z).sum(-1, keepdims=True))

        delta = np.abs(logp(fast[:, :, 0].astype(np.float64)) - logp(slow)).max()
        print(f"| {name} | {t_slow:.1f} | {t_fast:.1f} | {t_slow / t_fast:.2f} | {delta:.1e} |")

    n, count = cohort.num_records, args.command_models
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text(SCRIPT)
        t = time.perf_counter()
        for m in range(count):
            out = Path(tmp) / "direct" / str(m)
            out.mkdir(parents=True)
            subprocess.run([sys.executable, str(script), str(out), str(n)], check=True)
        t_direct = time.perf_counter() - t
        recipe = CommandRecipe(f"{sys.executable} {script} {{out}} {n}", Path(tmp) / "recipe")
        t = time.perf_counter()
        train_commands(recipe, cohort.record_ids, cohort.patient_ids[cohort.patient], y,
                       keep[:count], range(count), 0, workers=1)
        t_recipe = time.perf_counter() - t
    print(f"\ncommand recipe, {count} models one at a time: direct subprocess {t_direct:.2f} s, "
          f"train_commands {t_recipe:.2f} s; overhead {(t_recipe - t_direct) / count * 1000:.0f} ms "
          "per model")


if __name__ == "__main__":
    main()
