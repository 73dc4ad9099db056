"""How far an audit moves when only the numeric path changes (another CPU, other kernels).

    .venv/bin/python bench/reproducibility.py                     # RHC, 200 models
    .venv/bin/python bench/reproducibility.py --dataset covid_testing --models 64

Runs the same built-in audit three times, each in a fresh process: twice on this machine's
own numeric path (the rerun must be bit-identical) and once under ``--path`` (default
``compatible``: MKL's, ATen's, oneDNN's and OpenBLAS's most portable kernels, as
``tests/margins.py`` defines them). Then, per attack: the largest difference in a patient's
exposure, the high-risk counts of both runs, the overlap of the 1 % most exposed patients
and the aggregate AUC. The runs go to a temporary folder unless ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from margins import PATHS, path_environment

from miaudit import risk


def audit(dataset: str, models: int, out: Path, path: str) -> float:
    """One audit in a fresh process under a numeric path; its wall time."""
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", "--dataset", dataset,
         "--models", str(models), "--out", str(out)],
        env=path_environment(path), check=True, stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start


def compare(a: Path, b: Path) -> list[dict[str, object]]:
    """Per attack: how far run b's figures are from run a's."""
    pa, pb = pd.read_parquet(a / "patients.parquet"), pd.read_parquet(b / "patients.parquet")
    sa = json.loads((a / "summary.json").read_text())["attacks"]
    sb = json.loads((b / "summary.json").read_text())["attacks"]
    rows = []
    for attack in sa:
        ea = pa[f"exposure_{attack}"].to_numpy(dtype=float)
        eb = pb[f"exposure_{attack}"].to_numpy(dtype=float)
        ta, tb = risk.top_exposed(ea, 0.01), risk.top_exposed(eb, 0.01)
        counts = " ".join(
            f"≥{t}: {sa[attack]['high_risk'][t]}→{sb[attack]['high_risk'][t]}"
            for t in sa[attack]["high_risk"]
        )
        rows.append({
            "attack": attack,
            "max |Δ exposure|": float(np.nanmax(np.abs(ea - eb))),
            "median |Δ exposure|": float(np.nanmedian(np.abs(ea - eb))),
            "high-risk counts": counts,
            "top 1 % overlap": f"{len(np.intersect1d(ta, tb))}/{len(ta)}",
            "aggregate AUC": f"{sa[attack]['aggregate']['auc']:.4f}→{sb[attack]['aggregate']['auc']:.4f}",
        })
    return rows


def identical(a: Path, b: Path) -> bool:
    """Whether two runs wrote the same scores and patients, bit for bit."""
    same = pd.read_parquet(a / "patients.parquet").equals(pd.read_parquet(b / "patients.parquet"))
    for scores in sorted((a / "scores").glob("*.npy")):
        same &= np.array_equal(np.load(scores), np.load(b / "scores" / scores.name), equal_nan=True)
    return bool(same)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="rhc")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--path", default="compatible", choices=[p for p in PATHS if p != "native"])
    parser.add_argument("--keep", type=Path, help="write the three runs here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        runs = {"native": root / "native", "rerun": root / "native-rerun", args.path: root / args.path}
        for name, out in runs.items():
            seconds = audit(args.dataset, args.models, out, "native" if name == "rerun" else name)
            print(f"{name}: {seconds:.0f} s", flush=True)
        print(f"native rerun bit-identical: {identical(runs['native'], runs['rerun'])}")
        table = pd.DataFrame(compare(runs["native"], runs[args.path]))
    print(f"\n{args.dataset}, {args.models} models: native → {args.path}\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
