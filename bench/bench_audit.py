"""Wall time of the full built-in RHC audit (default recipe), stage by stage.

    python bench/bench_audit.py [--models 200] [--no-report]

Runs ``run_audit`` into a temporary directory and prints the time spent loading the
cohort, training the reference models, scoring every attack and writing the tables and
report, with the load average so that a run on a busy machine can be recognised.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from miaudit.audit import run_audit
from miaudit.config import parse_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--dataset", default="rhc")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    cfg = parse_config(
        {
            "cohort": {"dataset": args.dataset},
            "audit": {"models": args.models},
            "report": {"html": not args.no_report},
        }
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_audit(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - t0
        timings = json.loads((result.run_dir / "run.json").read_text())["timings"]
    report_s = timings["total_s"] - timings["cohort_s"] - timings["training_s"] - timings["scoring_s"]
    print(f"{args.dataset}: {args.models} models, default recipe ({cfg.model.family} "
          f"{cfg.model.width}x{cfg.model.depth}, {cfg.training.epochs} epochs)")
    print(f"load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"cohort   {timings['cohort_s']:7.1f} s")
    print(f"training {timings['training_s']:7.1f} s  ({timings['training_s'] / args.models:.3f} s/model)")
    print(f"scoring  {timings['scoring_s']:7.1f} s  ({len(cfg.audit.attacks)} attacks)")
    print(f"writing  {report_s:7.1f} s  (tables{'' if args.no_report else ' and HTML report'})")
    print(f"total    {wall:7.1f} s  (goal < 180 s on 2 cores)")


if __name__ == "__main__":
    main()
