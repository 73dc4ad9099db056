"""Null calibration of the scoring core: pure-noise signals, where nothing is learnt.

    python bench/bench_null.py                       # all studies, M = 8, 16, 32, 200
    python bench/bench_null.py --study coverage --models 8 16 32 64 200
    python bench/bench_null.py --study calibration --records 2000

Signals come from :func:`miaudit.simulate.signal_world`: i.i.d. standard normal for every
model and record under miaudit's balanced patient-level plan, one record per patient, or
records / 5 patients × 5 records (a patient's records share their membership and a patient
effect, correlation 0.5). With no membership effect every record AUC is centred on 0.5.

``bias``: the aggregate AUC (all targets' scores pooled) and the median and mean record AUC
of online LiRA as the audit measures it (balanced target scores, leave-pair-out record AUC),
the record AUC of the same target scores, the textbook estimator (``lira_textbook``) and
offline LiRA, averaged over seeds; power is the mean record AUC of planted records (5 % of
the patients, members' signals shifted by +1: true AUC Φ(1/√2) = 0.760).

``calibration``: the chance baseline of ``lira`` (leave-pair-out) with 20 permutations — the share of patients
with p ≤ 0.01, 0.05, 0.2 on pure noise (uniform p-values give the level itself), the runs of
``--seeds`` with any discovery at FDR 5 % (every one is false), the observed count ≥ 0.8 and
the null's mean count; and with 5 % of the patients planted at +3 (true AUC 0.983), the mean
false-discovery proportion and the share of planted patients found.

``coverage``: records with known true AUCs (0.5 … 0.99, a patient's records sharing theirs):
the share of 95 % exposure intervals (score intervals widened by the null's variance, see
:func:`miaudit.risk.intervals.auc_score_interval`) that contain the true AUC, for records and,
with 5 records per patient, for the patients' max-of-k exposure.
"""

from __future__ import annotations

import argparse

import numpy as np

from miaudit import attacks, risk
from miaudit.chance import null_records
from miaudit.risk.chance import chance
from miaudit.simulate import SignalWorld, signal_world

# (row label, options, record AUC by leave-pair-out?)
ESTIMATORS = (
    ("`lira` (as audited: leave-pair-out record AUC)", attacks.LiraOptions(), True),
    ("`lira`, record AUC of its target scores", attacks.LiraOptions(), False),
    ("`lira_textbook` (the textbook estimator)", attacks.LiraOptions(balanced=False), False),
    ("`lira_offline` (leave-pair-out)", attacks.LiraOptions(online=False), True),
)
DESIGNS = (("1 record/patient", 1), ("5 records/patient", 5))


def world(models: int, records: int, per: int, seed: int, effect: float = 0.0) -> SignalWorld:
    return signal_world(models, records // per, records_per_patient=per, effect=effect, seed=seed)


def record_of(w: SignalWorld, options: attacks.LiraOptions, pairwise: bool) -> risk.RecordAUC:
    if pairwise:
        return risk.pairwise_record_auc(*attacks.lira_pair_auc(w.signals, w.keep, options=options))
    return risk.record_auc(attacks.lira(w.signals, w.keep, options=options), w.keep)


def bias_figures(w: SignalWorld, options: attacks.LiraOptions, pairwise: bool) -> tuple[float, ...]:
    scores = attacks.lira(w.signals, w.keep, options=options)
    agg = risk.attack_metrics(scores, w.keep)["aggregate"]["auc"]
    rec = record_of(w, options, pairwise).auc
    planted = w.planted[w.patient]
    power = float(np.nanmean(rec[planted])) if planted.any() else np.nan
    return agg, float(np.nanmedian(rec)), float(np.nanmean(rec)), power


def bias(models: list[int], records: int, seeds: int) -> None:
    print("| design | M | estimator | null aggregate AUC | null median / mean record AUC "
          "| planted mean record AUC |")
    print("|---|---|---|---|---|---|")
    for label, per in DESIGNS:
        for m in models:
            for name, options, pairwise in ESTIMATORS:
                null = np.array([bias_figures(world(m, records, per, s), options, pairwise)[:3]
                                 for s in range(seeds)])
                power = [bias_figures(world(m, records, per, 100 + s, 1.0), options, pairwise)[3]
                         for s in range(seeds)]
                print(f"| {label} | {m} | {name} | {null[:, 0].mean():.4f} | "
                      f"{null[:, 1].mean():.4f} / {null[:, 2].mean():.4f} | "
                      f"{np.mean(power):.4f} |", flush=True)


def chance_of(w: SignalWorld, permutations: int = 20):
    p = w.num_patients
    options = attacks.LiraOptions()

    def measure(keep: np.ndarray) -> risk.RecordAUC:
        return risk.pairwise_record_auc(*attacks.lira_pair_auc(w.signals, keep, options=options))

    rec = measure(w.keep)
    exposure, _ = risk.patient_exposure(rec.auc, w.patient, num_patients=p)
    null = null_records(measure, w.keep, w.patient, p, permutations=permutations, seed=7)
    found = chance(rec.auc, rec.n_in, rec.n_out, exposure, w.patient, p, null)
    return found, risk.high_risk_counts(exposure, (0.8,))["0.8"]


def calibration(models: list[int], records: int, seeds: int) -> None:
    print("| design | M | P(p ≤ 0.01 / 0.05 / 0.2) on noise | runs with a discovery on noise "
          "| ≥ 0.8 observed / null mean | planted: mean FDP / power |")
    print("|---|---|---|---|---|---|")
    for label, per in DESIGNS:
        for m in models:
            levels, any_found, seen, null_mean, fdp, power = [], 0, [], [], [], []
            for s in range(seeds):
                found, count = chance_of(world(m, records, per, s))
                levels.append([np.nanmean(found.patient_p <= a) for a in (0.01, 0.05, 0.2)])
                any_found += found.beyond_chance > 0
                seen.append(count)
                null_mean.append(found.high_risk_null["0.8"])
                w = world(m, records, per, 100 + s, effect=3.0)
                planted, _ = chance_of(w)
                hit = planted.patient_q <= 0.05
                fdp.append(np.sum(hit & ~w.planted) / max(hit.sum(), 1))
                power.append(np.mean(hit[w.planted]))
            lv = np.mean(levels, axis=0)
            print(f"| {label} | {m} | {lv[0]:.4f} / {lv[1]:.4f} / {lv[2]:.4f} | "
                  f"{any_found} of {seeds} | {np.mean(seen):.1f} / {np.mean(null_mean):.1f} | "
                  f"{np.mean(fdp):.3f} / {np.mean(power):.3f} |", flush=True)


COVERAGE_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def coverage_world(models: int, patients: int, per: int, seed: int):
    """Every patient's records share a true AUC from the grid (the patient's true exposure)."""
    from scipy.stats import norm

    from miaudit.plan import make_plan

    rng = np.random.default_rng([seed, 0xC0])
    patient = np.repeat(np.arange(patients), per)
    keep = make_plan(patients, models, seed).keep[:, patient]
    true = np.resize(np.array(COVERAGE_GRID), patients)
    delta = np.sqrt(2.0) * norm.ppf(true)[patient]
    x = rng.standard_normal(keep.shape) + delta * keep
    return x[:, :, None], keep, patient, true


def coverage(models: list[int], records: int, seeds: int) -> None:
    """Share of 95 % intervals that contain the true AUC, records and patients (max of k)."""
    from miaudit.risk.chance import inflation

    print("| design | M | record coverage at true AUC " + " / ".join(map(str, COVERAGE_GRID))
          + " | patient coverage (max of k) |")
    print("|---|---|---|---|")
    for label, per in DESIGNS:
        for m in models:
            hit_r = {g: [] for g in COVERAGE_GRID}
            hit_p = {g: [] for g in COVERAGE_GRID}
            for s in range(seeds):
                x, keep, patient, true = coverage_world(m, records // per, per, s)
                p = true.size

                def measure(k, x=x):
                    return risk.pairwise_record_auc(*attacks.lira_pair_auc(x, k))

                rec = measure(keep)
                null = null_records(measure, keep, patient, p, permutations=10, seed=3)
                kappa = inflation(null, rec.n_in, rec.n_out)
                lo, hi = risk.auc_score_interval(rec.auc, rec.n_in, rec.n_out, inflation=kappa)
                plo, phi = risk.patient_interval(rec.auc, lo, hi, patient, num_patients=p)
                t_rec = true[patient]
                for g in COVERAGE_GRID:
                    r = t_rec == g
                    hit_r[g].append(np.mean((lo[r] <= g) & (g <= hi[r])))
                    q = true == g
                    hit_p[g].append(np.mean((plo[q] <= g) & (g <= phi[q])))
            rec_cov = " / ".join(f"{np.mean(hit_r[g]):.3f}" for g in COVERAGE_GRID)
            pat_cov = " / ".join(f"{np.mean(hit_p[g]):.3f}" for g in COVERAGE_GRID)
            print(f"| {label} | {m} | {rec_cov} | {pat_cov if per > 1 else '(as records)'} |",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=("bias", "calibration", "coverage", "all"),
                    default="all")
    ap.add_argument("--models", type=int, nargs="+", default=[8, 16, 32, 200])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    if args.study in ("bias", "all"):
        bias(args.models, args.records, args.seeds)
    if args.study in ("calibration", "all"):
        print()
        calibration(args.models, args.records, args.seeds)
    if args.study in ("coverage", "all"):
        print()
        coverage(args.models, args.records, args.seeds)


if __name__ == "__main__":
    main()
