"""DP-SGD benchmark: the group engine's ghost clipping against non-private training and Opacus.

    python bench/bench_dp.py                        # RHC-sized defaults (a few minutes on 2 cores)
    python bench/bench_dp.py --records-per-patient 3 --opacus-models 0

Prints, per model and in one process, on the same synthetic RHC-sized data (N records,
F = 106 features like RHC, an MLP, the same expected number of record passes):

* train_group (non-private, stacked weights): the baseline; and train_sequential, the
  same non-private recipe one plain module at a time (the baseline of the Opacus runs);
* train_group_dp (patient-level DP-SGD, Poisson sampling of patients, ghost clipping,
  vectorised over the group): its ratio to the baseline;
* Opacus 1.x, one model at a time, per-sample gradients by hooks (``grad_sample_mode=
  "hooks"``) and, if it runs, Opacus' own ghost clipping (``"ghost"``): their ratios.

Opacus clips records, not patients, so it is run at record level (with one record per
patient the two are the same mechanism). Wall and process CPU times are both shown: on a
shared machine the CPU time per model is the steadier number.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from miaudit.models import ModelSpec, build_module
from miaudit.training import TrainingSpec, train_group, train_sequential
from miaudit.training.dp import DPSpec, accounting, train_group_dp


def cohort(records: int, features: int, models: int, per_patient: int, seed: int):
    """Standardised features, a 65 % majority label with signal, patients, balanced halves."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(records, features)).astype(np.float32)
    score = x[:, :10] @ rng.normal(size=10) * 0.3 + rng.normal(size=records)
    y = (score > np.quantile(score, 0.35)).astype(np.int64)
    patient = np.arange(records) // per_patient
    num_patients = int(patient.max()) + 1
    keep = np.zeros((models, num_patients), dtype=bool)
    for m in range(0, models, 2):
        half = rng.permutation(num_patients) < num_patients // 2
        keep[m] = half
        if m + 1 < models:
            keep[m + 1] = ~half
    return x, y, patient, keep[:, patient]


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def opacus_models(spec: ModelSpec, training: TrainingSpec, sigma: float, clip: float,
                  x: np.ndarray, y: np.ndarray, keep: np.ndarray, mode: str) -> np.ndarray:
    """One model at a time through Opacus' PrivacyEngine with Poisson sampling and DP-Adam."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    out = []
    for m, rows in enumerate(keep):
        torch.manual_seed(m)
        module = build_module(spec, x.shape[1], 2)
        optimizer = torch.optim.Adam(module.parameters(), lr=training.learning_rate)
        data = TensorDataset(torch.from_numpy(x[rows]), torch.from_numpy(y[rows]))
        loader = DataLoader(data, batch_size=training.batch_size)
        engine = PrivacyEngine(accountant="rdp")
        criterion = torch.nn.CrossEntropyLoss()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = engine.make_private(
                module=module, optimizer=optimizer, data_loader=loader, criterion=criterion,
                noise_multiplier=sigma, max_grad_norm=clip, poisson_sampling=True,
                grad_sample_mode=mode,
            )
        if mode == "ghost":
            private, optimizer, criterion, loader = made
        else:
            private, optimizer, loader = made
        for _ in range(training.epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = criterion(private(xb), yb)
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            out.append(module.eval()(torch.from_numpy(x)).numpy())
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5735)
    parser.add_argument("--features", type=int, default=106)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--records-per-patient", type=int, default=1)
    parser.add_argument("--group", type=int, default=50, help="models per group (both engines)")
    parser.add_argument("--opacus-models", type=int, default=3, help="models through Opacus, one by one")
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved repeats; the fastest of each is kept (shared machines)")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    models = max(args.group, args.opacus_models)
    x, y, patient, keep = cohort(args.records, args.features, models, args.records_per_patient, args.seed)
    spec = ModelSpec(family="mlp", width=args.width, depth=args.depth)
    training = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size)
    privacy = DPSpec(noise_multiplier=args.sigma, max_grad_norm=1.0)
    units = len(np.unique(patient[keep[0]]))
    acct = accounting(privacy, num_units=units, batch_size=args.batch_size, epochs=args.epochs)
    print(f"data: N={args.records} records, {args.records_per_patient} per patient, F={args.features}; "
          f"MLP {args.features}-" + "-".join([str(args.width)] * args.depth) + f"-2, {args.epochs} "
          f"epochs, batch {args.batch_size}; DP: q={acct.sample_rate:.4f} per patient, "
          f"{acct.steps} steps, sigma={args.sigma}, epsilon={acct.epsilon:.2f} at delta={acct.delta:.1e}")

    g = args.group
    best: dict[str, tuple[float, float, int]] = {}

    def record(name: str, wall: float, cpu: float, count: int) -> None:
        old = best.get(name)
        if old is None or wall / count < old[0] / old[2]:
            best[name] = (wall, cpu, count)

    results = {}
    for _ in range(args.repeats):
        out, wall, cpu = timed(lambda: train_group(spec, training, x, y, keep[:g], range(g), args.seed))
        results["plain"] = out
        record("train_group (non-private)", wall, cpu, g)
        out, wall, cpu = timed(lambda: train_group_dp(spec, training, privacy, x, y, patient, keep[:g],
                                                      range(g), args.seed))
        results["dp"] = out
        record("train_group_dp (patient-level, ghost clipping)", wall, cpu, g)
        if args.opacus_models and args.records_per_patient == 1:
            s = args.opacus_models
            _, wall, cpu = timed(lambda s=s: train_sequential(spec, training, x, y, keep[:s], range(s),
                                                              args.seed))
            record("plain loop, non-private (one model at a time)", wall, cpu, s)
            for mode in ("hooks", "ghost"):
                try:
                    out, wall, cpu = timed(lambda mode=mode, s=s: opacus_models(
                        spec, training, args.sigma, 1.0, x, y, keep[:s], mode))
                except Exception as error:  # an Opacus mode that does not run here is reported
                    print(f"opacus {mode}: failed ({type(error).__name__}: {error})")
                    continue
                record(f"opacus, {mode} (one model at a time)", wall, cpu, s)

    base_wall, base_cpu, base_n = best["train_group (non-private)"]
    print(f"\nper model (best of {args.repeats}); ratio = time / non-private train_group")
    print(f"  {'':52s} {'wall s':>8s} {'ratio':>6s} {'CPU s':>8s} {'ratio':>6s}")
    for name, (wall, cpu, count) in best.items():
        print(f"  {name:52s} {wall / count:8.3f} {wall / count / (base_wall / base_n):6.2f} "
              f"{cpu / count:8.3f} {cpu / count / (base_cpu / base_n):6.2f}")
    loop = best.get("plain loop, non-private (one model at a time)")
    if loop is not None:
        for mode in ("hooks", "ghost"):
            name = f"opacus, {mode} (one model at a time)"
            if name in best:
                print(f"  {name} / plain non-private loop: "
                      f"{best[name][0] / best[name][2] / (loop[0] / loop[2]):.2f}x wall")
    for name, logits in (("non-private", results["plain"]), ("DP", results["dp"])):
        auroc = np.mean([roc_auc_score(y[~rows], logits[m, ~rows, 0, 1] - logits[m, ~rows, 0, 0])
                         for m, rows in enumerate(keep[:g])])
        print(f"  {name} models' AUROC on their OUT records: {auroc:.3f}")


if __name__ == "__main__":
    main()
