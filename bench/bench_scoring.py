"""Scoring throughput: model-record scores per second for every attack, against a naive loop.

    python bench/bench_scoring.py [--models 256 --records 100000 --views 1]

Every attack scores all M models as targets (leave-one-model-out), so one run yields
M × N model-record scores. The naive baseline is the obvious per-record Python loop
(for each target and record: select the references, fit, score) timed on a subsample in
the same process and extrapolated to M × N; the ratio column is naive time / our time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy import stats

from miaudit import attacks
from miaudit.signals import logit_confidence, true_class_probability


def synthetic(m: int, n: int, v: int, seed: int = 0):
    """Balanced keep (each record IN for exactly M/2 models) and member-shifted signals."""
    rng = np.random.default_rng(seed)
    order = rng.random((m, n)).argsort(axis=0)
    keep = order < m // 2
    base = rng.normal(0.0, 3.0, size=(1, n, 1))
    spread = rng.uniform(0.3, 2.0, size=(1, n, 1))
    signals = base + spread * rng.standard_normal((m, n, v)) + 1.0 * keep[:, :, None]
    logits = np.stack([np.zeros_like(signals), signals], axis=-1).astype(np.float32)
    return keep, logits


def naive_lira_online(signals, keep, targets, records):
    """Per target and record: pick references, fit two Gaussians with numpy, score."""
    m = signals.shape[0]
    out = []
    for t in targets:
        refs = np.arange(m) != t
        for i in records:
            col = signals[refs, i, :]
            k = keep[refs, i]
            s_in, s_out = col[k], col[~k]
            lp_in = stats.norm.logpdf(signals[t, i], s_in.mean(0), s_in.std(0, ddof=1))
            lp_out = stats.norm.logpdf(signals[t, i], s_out.mean(0), s_out.std(0, ddof=1))
            out.append(float((lp_in - lp_out).mean()))
    return out


def naive_rmia_reference(probs, keep, target, records, a=0.3):
    """Per record: the reference Pr(x) by a loop over the other models, then ratio(x)."""
    m = probs.shape[0]
    refs = np.arange(m) != target
    ratio = []
    for i in records:
        p_out = probs[refs, i, 0][~keep[refs, i]].mean()
        ratio.append(probs[target, i, 0] / (0.5 * ((1 + a) * p_out + (1 - a))))
    return np.array(ratio)


def naive_rmia_compare(ratio, records):
    """Per record x: LR(x, z) ≥ 1 against every other population record z."""
    return [float(np.mean(ratio[i] / np.delete(ratio, i) >= 1.0)) for i in records]


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Best wall-clock time of ``repeat`` calls (other load on the machine only adds time)."""
    best, _, result = timed_cpu(fn, *args, repeat=repeat, **kwargs)
    return best, result


def timed_cpu(fn, *args, repeat: int = 1, **kwargs):
    """(best wall seconds, CPU seconds of that call, result) over ``repeat`` calls."""
    best, cpu, result = np.inf, np.inf, None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        wall, used = time.perf_counter() - start, time.process_time() - start_cpu
        if wall < best:
            best, cpu = wall, used
    return best, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=256)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="threads (default: per attack)")
    parser.add_argument("--median", action="store_true", help="also time estimator='median'")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    m, n, v = args.models, args.records, args.views
    cores = len(os.sched_getaffinity(0))
    print(
        f"M={m} N={n} V={v}  python {platform.python_version()}  numpy {np.__version__}  "
        f"cores={cores}  load={os.getloadavg()[0]:.2f}  best of {args.repeat}"
    )
    keep, logits = synthetic(m, n, v)
    scores = m * n

    labels = np.ones(n, dtype=int)
    t_conf, conf = timed(logit_confidence, logits, labels, repeat=args.repeat)
    t_prob, prob = timed(true_class_probability, logits, labels, repeat=args.repeat)
    print(f"{'signal':28s} {'seconds':>8s} {'values/s':>12s}")
    print(f"{'logit_confidence':28s} {t_conf:8.2f} {m * n * v / t_conf / 1e6:10.1f} M")
    print(f"{'probability':28s} {t_prob:8.2f} {m * n * v / t_prob / 1e6:10.1f} M")

    jobs = {} if args.jobs is None else {"n_jobs": args.jobs}
    lira, rmia = attacks.lira, attacks.rmia
    LiraOptions, RmiaOptions = attacks.LiraOptions, attacks.RmiaOptions
    runs = [
        ("lira (online)", lira, conf, {"options": LiraOptions(online=True), **jobs}),
        ("lira_offline", lira, conf, {"options": LiraOptions(online=False), **jobs}),
        ("lira fixed_variance", lira, conf, {"options": LiraOptions(fixed_variance=True), **jobs}),
        (
            "lira_offline fixed_variance",
            lira,
            conf,
            {"options": LiraOptions(online=False, fixed_variance=True), **jobs},
        ),
        ("rmia (offline, a chosen)", rmia, prob, {**jobs}),
        ("rmia (offline, a=0.3)", rmia, prob, {"options": RmiaOptions(a=0.3), **jobs}),
        ("rmia_online", rmia, prob, {"options": RmiaOptions(online=True), **jobs}),
    ]
    if args.median:
        median = LiraOptions(estimator="median")
        runs.insert(2, ("lira median", lira, conf, {"options": median, **jobs}))
    results = {}
    print(f"\n{'attack':28s} {'seconds':>8s} {'scores/s':>12s} {'CPU s':>8s} {'scores/CPU s':>14s}")
    baselines = [
        ("loss", attacks.loss_attack, -np.log(prob), None),
        ("confidence", attacks.confidence_attack, prob, None),
    ]
    for name, fn, arr, options in runs + baselines:
        call_args = (arr,) if options is None else (arr, keep)
        seconds, cpu, _ = timed_cpu(fn, *call_args, repeat=args.repeat, **(options or {}))
        results[name] = seconds
        print(
            f"{name:28s} {seconds:8.2f} {scores / seconds / 1e6:10.1f} M {cpu:8.2f} "
            f"{scores / cpu / 1e6:12.1f} M"
        )

    # naive per-record loops on a subsample, extrapolated to M x N
    rng = np.random.default_rng(1)
    sub_t = rng.choice(m, size=2, replace=False)
    sub_r = rng.choice(n, size=min(n, 500), replace=False)
    seconds, _ = timed(naive_lira_online, conf, keep, sub_t, sub_r)
    naive_lira = seconds / (sub_t.size * sub_r.size) * scores
    seconds, ratio = timed(naive_rmia_reference, prob, keep, int(sub_t[0]), np.arange(n))
    per_reference = seconds / n
    seconds, _ = timed(naive_rmia_compare, ratio, sub_r[:50])
    per_compare = seconds / 50  # one record x against all N records z
    naive_rmia_total = m * n * (per_reference + per_compare)
    print(f"\n{'naive per-record loop':28s} {'seconds':>8s} {'scores/s':>12s} {'ratio':>8s}")
    print(
        f"{'lira (online)':28s} {naive_lira:8.0f} {scores / naive_lira / 1e6:10.3f} M "
        f"{naive_lira / results['lira (online)']:8.0f}x"
    )
    print(
        f"{'rmia (offline, a=0.3)':28s} {naive_rmia_total:8.0f} "
        f"{scores / naive_rmia_total / 1e6:10.5f} M "
        f"{naive_rmia_total / results['rmia (offline, a=0.3)']:8.0f}x"
    )


if __name__ == "__main__":
    main()
