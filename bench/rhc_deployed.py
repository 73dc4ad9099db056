"""Audit one deployed RHC model from its logits file, with 1, 4 and 16 reference models.

    python bench/rhc_deployed.py [--targets 1] [--references 1 4 16] [--markdown]

The owner's situation from the paper: one released model, its predictions, the roster of
patients it trained on, and no GPU. A target MLP (the default recipe) is trained on a random
half of RHC's patients; its logits are written to a CSV file and audited from that file
alone with ``run_deployed``, for each number of references with the ``auto`` attack and each
explicit attack where it is defined (online LiRA needs an even number ≥ 2). Printed per run,
at patient level: AUC, TPR at 1 % and 0.1 % FPR, members flagged at FPR ≤ 1 % and ≤ 0.1 %,
the members the same attack flags at FPR ≤ 1 % on the neither model (a model trained on
population patients only: the count expected with no membership, about 1 % of the members),
the same-distribution control (input-classifier AUC, the neither model's attack AUC) and
the wall time. ``--targets K`` repeats everything for K targets (different halves and
seeds) and also prints the mean over them. Offline attacks with the same number of
references share one run directory, so their references are trained once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.datasets import load_builtin
from miaudit.deployed import choose_attack, parse_deployed_config, run_deployed
from miaudit.models import ModelSpec
from miaudit.training import TrainingSpec, train_group

COLUMNS = [
    "target",
    "refs",
    "attack",
    "ran",
    "auc",
    "tpr@1%",
    "tpr@0.1%",
    "flag@1%",
    "flag@0.1%",
    "neither flag@1%",
    "clf auc",
    "neither auc",
    "confounded",
    "seconds",
]


def write_target(cohort, folder: Path, index: int) -> tuple[Path, Path]:
    """Train one target on a random half of the patients; write its logits and roster."""
    rng = np.random.default_rng([2026, index])
    member = np.zeros(cohort.num_patients, dtype=bool)
    member[rng.permutation(cohort.num_patients)[: cohort.num_patients // 2]] = True
    logits = train_group(
        ModelSpec(),
        TrainingSpec(),
        cohort.inputs,
        cohort.labels,
        member[cohort.patient][None],
        [100_000 + index],
        seed=7 + index,
    )[0, :, 0]
    predictions = folder / f"target{index}_logits.csv"
    frame = pd.DataFrame(logits, columns=list(cohort.class_names))
    frame.insert(0, "record_id", cohort.record_ids)
    frame.to_csv(predictions, index=False)
    roster = folder / f"target{index}_roster.csv"
    pd.DataFrame({"patient_id": cohort.patient_ids[member]}).to_csv(roster, index=False)
    return predictions, roster


def attacks_for(refs: int) -> list[str]:
    names = ["auto", "rmia_offline", "lira_offline"]
    if refs >= 2 and refs % 2 == 0:
        names.append("lira_online")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=1)
    parser.add_argument("--references", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    cohort = load_builtin("rhc")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for index in range(args.targets):
            t0 = time.perf_counter()
            predictions, roster = write_target(cohort, folder, index)
            print(f"target {index}: trained and exported in {time.perf_counter() - t0:.1f} s")
            for refs in args.references:
                for attack in attacks_for(refs):
                    config = parse_deployed_config(
                        {
                            "cohort": {"dataset": "rhc"},
                            "target": {"predictions": str(predictions), "roster": str(roster)},
                            "references": {"models": refs, "attack": attack},
                            "report": {"html": False},
                        }
                    )
                    ran, _ = choose_attack(attack, refs)
                    mode = "online" if ran == "lira_online" else "offline"
                    out = folder / f"run-t{index}-r{refs}-{mode}"
                    t1 = time.perf_counter()
                    result = run_deployed(config, out)
                    seconds = time.perf_counter() - t1
                    ran = result.attack
                    m = result.summary["attacks"][ran]
                    c = result.summary["confound"]
                    rates = m["patient"]["tpr_at_fpr"]
                    rows.append(
                        {
                            "target": index,
                            "refs": refs,
                            "attack": attack,
                            "ran": ran,
                            "auc": m["patient"]["auc"],
                            "tpr@1%": rates["0.01"],
                            "tpr@0.1%": rates["0.001"],
                            "flag@1%": m["flagged"]["0.01"],
                            "flag@0.1%": m["flagged"]["0.001"],
                            "neither flag@1%": c["neither_model"]["flagged"]["0.01"],
                            "clf auc": c["classifier"]["auc"] if c["classifier"] else np.nan,
                            "neither auc": c["neither"]["auc"],
                            "confounded": c["confounded"],
                            "seconds": seconds,
                        }
                    )
                    print("  " + "  ".join(f"{k}={_text(v)}" for k, v in rows[-1].items()))
    table = pd.DataFrame(rows, columns=COLUMNS)
    members = cohort.num_patients // 2
    print(f"\nRHC: {cohort.num_patients} patients, {members} members per target; default "
          f"recipe (MLP 128x2, 10 epochs); load average before/after {load_before:.2f} / "
          f"{os.getloadavg()[0]:.2f}")
    if args.targets > 1:
        mean = (
            table.groupby(["refs", "attack", "ran"], sort=False)[
                [
                    "auc", "tpr@1%", "tpr@0.1%", "flag@1%", "flag@0.1%", "neither flag@1%",
                    "clf auc", "neither auc", "seconds",
                ]
            ]
            .mean()
            .reset_index()
        )
        mean["confounded"] = table.groupby(["refs", "attack", "ran"], sort=False)["confounded"].sum().to_numpy()
        print(f"mean over {args.targets} targets (confounded: number of targets flagged)")
        _print(mean, args.markdown)
    else:
        _print(table.drop(columns=["target"]), args.markdown)


def _text(v: object) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.3f}"
    return str(v)


def _print(table: pd.DataFrame, markdown: bool) -> None:
    if not markdown:
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        return
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "|".join("---" if c in ("attack", "ran") else "---:" for c in table.columns) + "|")
    for _, row in table.iterrows():
        print("| " + " | ".join(_text(v) for v in row.to_numpy()) + " |")


if __name__ == "__main__":
    main()
