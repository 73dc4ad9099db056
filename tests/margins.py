"""Measure the statistical assertions of the model-training tests across numeric paths.

    .venv/bin/python tests/margins.py                      # 3 numeric paths × 3 cohort seeds
    .venv/bin/python tests/margins.py --paths native avx2 --seeds 0 1 --out margins.md
    .venv/bin/python tests/margins.py --decoy -k "planted or memorable or bound"   # decoys

Each run is ``pytest -m trains`` in a fresh process with one numeric path (environment
variables that choose MKL's, ATen's, oneDNN's and OpenBLAS's kernels, as another CPU would)
and one offset of the synthetic cohorts' seeds; every check of ``tests/_margins.py`` appends
its value. The table gives, per check, the worst value seen, the threshold, the margin the
worst value keeps, and two spreads: across numeric paths at a fixed seed (what another
machine changes) and across seeds (what another cohort changes). A threshold is portable
when the margin is several times the numeric-path spread.

``--decoy`` runs once with ``MIAUDIT_TEST_DECOY=1``: the ranking tests look for ordinary
patients instead of the planted ones, and must fail.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

#: Environment of each numeric path. ``native`` is the machine's own choice (AVX-512 where
#: the CPU has it); ``avx2`` is an AVX2-only CPU; ``compatible`` is the slowest, most
#: portable kernels of every library. Thread counts are left alone.
PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "MKL_CBWR": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "compatible": {
        "MKL_CBWR": "COMPATIBLE",
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "OPENBLAS_CORETYPE": "Sandybridge",
    },
}


def path_environment(path: str) -> dict[str, str]:
    """This process's environment with one numeric path's variables (and no other path's)."""
    chosen = {name for variables in PATHS.values() for name in variables}
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    env.update(PATHS[path])
    return env


def run_once(path: str, seed: int, out: Path, decoy: bool, expr: str, keyword: str) -> list[str]:
    """One pytest run of the model-training tests; the tests that failed."""
    env = path_environment(path)
    env.update(
        MIAUDIT_MARGINS=str(out),
        MIAUDIT_NUMERIC_PATH=path,
        MIAUDIT_TEST_SEED=str(seed),
        MIAUDIT_TEST_DECOY="1" if decoy else "",
        # a measurement records every check; with decoys the checks must fail
        MIAUDIT_MARGINS_RECORD_ONLY="" if decoy else "1",
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", expr, "-k", keyword, "-p", "no:cacheprovider",
         "-rf"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    failed = [line.split()[1] for line in lines if line.startswith("FAILED ")]
    tail = lines[-1] if lines else proc.stderr.strip()[-500:]
    print(f"  {path:<10} seed {seed}: {time.monotonic() - start:4.0f} s  {tail}", flush=True)
    return failed


def markdown(table: pd.DataFrame) -> str:
    """A markdown table (numbers to 4 significant digits)."""
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(t) else "---" for t in table.dtypes) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per check: worst value, threshold, margin, and the path and seed spreads."""
    keys = ["test", "check", "op", "threshold"]
    out = []
    for (test, check, op, threshold), group in rows.groupby(keys, sort=False):
        lower = op in (">", ">=")
        worst = group["value"].min() if lower else group["value"].max()
        margin = worst - threshold if lower else threshold - worst
        by_seed = group.groupby("seed")["value"]
        path_spread = float((by_seed.max() - by_seed.min()).max())
        by_path = group.groupby("path")["value"]
        seed_spread = float((by_path.max() - by_path.min()).max())
        out.append({
            "test": test.split("::", 1)[-1], "check": check,
            "min": group["value"].min(), "max": group["value"].max(),
            "assert": f"{op} {threshold:g}", "margin": margin,
            "path spread": path_spread, "seed spread": seed_spread, "runs": len(group),
        })
    return pd.DataFrame(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--decoy", action="store_true", help="look for decoys, expect failures")
    parser.add_argument("-m", dest="expr", default="trains", help="pytest marker expression")
    parser.add_argument("-k", dest="keyword", default="", help="pytest keyword expression")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "margins.jsonl"
        runs = [("native", 0)] if args.decoy else [(p, s) for s in args.seeds for p in args.paths]
        failed = [t for path, seed in runs for t in run_once(path, seed, values, args.decoy, args.expr, args.keyword)]
        if not values.exists():
            print("no check recorded a value", file=sys.stderr)
            return 1
        rows = pd.DataFrame([json.loads(line) for line in values.read_text().splitlines()])
    if args.decoy:
        planted = sorted(set(rows.loc[rows["op"] == "ranking", "test"]))
        print(f"\nWith decoys for the planted patients, {len(failed)} tests fail:")
        print("\n".join(f"  {t}" for t in sorted(set(failed))))
        survivors = [t for t in planted if t not in failed]
        print("Ranking tests that still pass (must be none):", survivors or "none")
        return 1 if survivors else 0
    table = summarise(rows[rows["op"] != "ranking"])
    text = markdown(table)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    thin = table[table["margin"] < 3 * table["path spread"]]
    if len(thin):
        print(f"\n{len(thin)} checks keep less than 3× their numeric-path spread:", file=sys.stderr)
        print(thin[["test", "check", "margin", "path spread"]].to_string(index=False),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
