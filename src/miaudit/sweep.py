"""Sweeps: one audit per point of a grid over model capacity and/or privacy budget ε.

What a sweep answers is the trade-off a team has to choose on: how good the diagnostic
model is, against how many patients it exposes. Every point shares the cohort, the
membership plan and the seeds, and sets the same patients aside (``holdout_fraction``)
that no reference model of any point trains on, so the diagnostic AUROC of all points is
measured on the same unseen patients. Each point is an ordinary audit in
``OUT/<point>/``, so an interrupted sweep resumes like an audit; the collected table
(``sweep.parquet``/``.csv``/``.json``) and chart (``sweep.svg``) are rebuilt from the
points at the end of every run.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic

from miaudit import disparity, risk
from miaudit.audit import AuditResult, run_audit
from miaudit.cohort import Cohort
from miaudit.config import AuditConfig
from miaudit.config.sweep import KNOBS, SweepSpec
from miaudit.errors import InputError
from miaudit.models import ModelSpec, count_parameters
from miaudit.report import charts
from miaudit.report.sweep import render_sweep
from miaudit.results import layout as L
from miaudit.results.ownership import Manifest, claim, owning, start
from miaudit.results.read import patient_attributes
from miaudit.results.store import load_npz, make_dirs
from miaudit.results.write import write_sweep
from miaudit.runner import ProgressSink, cohort_info, load_cohort, with_pixels
from miaudit.training.dp import DPSpec, privacy_report

__all__ = ["HIGH_RISK", "SweepSpec", "run_sweep", "sweep_chart", "sweep_points"]

HIGH_RISK = 0.9
"""Exposure at which a patient counts as highly exposed in the sweep's table and chart."""

_SHORT = {"width": "w", "depth": "d", "blocks": "b"}


def _param_points(model: ModelSpec, sweep: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """A grid over the recipe's own parameters (estimator, module or training function)."""
    if model.kind not in ("estimator", "module", "train_fn"):
        raise InputError(
            f"sweep.params: a {model.describe()} recipe has no params to sweep; sweep widths, "
            "depths or blocks of a built-in family, or give [model] an estimator or module"
        )
    keys = list(sweep.params)
    points = []
    for combo in itertools.product(*(sweep.params[k] for k in keys)):
        chosen = dict(zip(keys, combo, strict=True))
        name = "-".join(f"{k}{v}" for k, v in chosen.items())
        points.append((name, {"params": {**model.params, **chosen}}))
    return points


def _capacity_points(model: ModelSpec, sweep: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    if sweep.params:
        return _param_points(model, sweep)
    if sweep.sizes and model.kind != "family":
        # a named size of a user recipe is a set of its params
        return [(name, {"params": {**model.params, **values}}) for name, values in sweep.sizes.items()]
    if sweep.sizes:
        return list(sweep.sizes.items())
    if model.kind != "family" and any(getattr(sweep, key) for key in KNOBS):
        raise InputError(
            f"sweep: widths, depths and blocks are knobs of the built-in families; the "
            f"{model.describe()} recipe's capacity is in its params — sweep "
            "params = { NAME = [values] } instead"
        )
    axes = [(knob, getattr(sweep, key)) for key, knob in KNOBS.items() if getattr(sweep, key)]
    if not axes:
        return [("", {})]
    unused = {
        "logistic": {"width", "depth", "blocks"},
        "mlp": {"blocks"},
        "tabresnet": {"depth"},
        "wrn": {"depth"},
        "resnet1d": {"depth"},
    }
    for knob, _ in axes:
        if knob in unused[model.family]:
            raise InputError(
                f"sweep.{knob}s: the {model.family} family has no {knob} knob (its capacity is "
                f"{', '.join(model.capacity())}); sweep named sizes instead, e.g. "
                "[sweep.sizes.small] with the knobs of that family"
            )
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        overrides = {knob: v for (knob, _), v in zip(axes, combo, strict=True)}
        points.append(("-".join(f"{_SHORT[k]}{v}" for k, v in overrides.items()), overrides))
    return points


def _epsilon_name(eps: float) -> str:
    return "eps-inf" if math.isinf(eps) else f"eps{eps:g}"


def sweep_points(
    config: AuditConfig, sweep: SweepSpec, *, holdout_fraction: float | None = None
) -> list[tuple[str, AuditConfig]]:
    """One (name, config) per grid point; all share cohort, plan size, seeds and held-out patients.

    ``holdout_fraction`` replaces the sweep's (0 where the cohort holds out its dataset's
    official test split instead)."""
    holdout = sweep.holdout_fraction if holdout_fraction is None else holdout_fraction
    fields = type(config).model_fields
    if sweep.epsilons and "privacy" not in fields:
        raise InputError(
            "sweep.epsilons: this config has no [privacy] section to set ε in; update miaudit "
            "or sweep capacity only"
        )
    base = config.model_dump(mode="python")
    base["model"] = config.model.toml_data()
    points = []
    budgets: list[float | None] = list(sweep.epsilon_values()) or [None]
    for (size, overrides), eps in itertools.product(_capacity_points(config.model, sweep), budgets):
        data = config.model_dump(mode="python")
        model = {**base["model"], **overrides}
        try:
            ModelSpec.model_validate(model)
        except pydantic.ValidationError as err:
            where = f"sweep.sizes.{size}" if sweep.sizes else "sweep"
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise InputError(f"{where}: not a valid model ({problems})") from None
        data["model"] = model
        data["audit"]["holdout_fraction"] = holdout
        if "sweep" in fields:
            data["sweep"] = None
        if eps is not None:
            privacy = DPSpec.model_validate(base.get("privacy") or {})
            update = {"epsilon": None if math.isinf(eps) else eps, "noise_multiplier": None}
            data["privacy"] = privacy.model_copy(update=update).model_dump()
        name = "_".join(part for part in (size, None if eps is None else _epsilon_name(eps)) if part)
        points.append((name, type(config).model_validate(data)))
    return points


def _num_units(run_dir: Path, patients: pd.DataFrame, privacy: DPSpec) -> int:
    """Privacy units of the smallest model of a run (from its plan)."""
    keep = load_npz(run_dir / L.PLAN)["keep"]
    if privacy.level == "record":
        return int((keep @ patients["records"].to_numpy()).min())
    return int(keep.sum(axis=1).min())


def _privacy(cfg: AuditConfig, result: AuditResult) -> dict[str, Any]:
    recorded = result.summary.get("privacy")
    if isinstance(recorded, dict) and "max_auc" in recorded:
        return recorded
    privacy = getattr(cfg, "privacy", None) or DPSpec()
    units = _num_units(result.run_dir, result.patients, privacy) if privacy.enabled else 0
    return privacy_report(
        privacy, num_units=units, batch_size=cfg.training.batch_size, epochs=cfg.training.epochs
    )


def _subgroup_shares(patients: pd.DataFrame, seed: int) -> dict[str, float]:
    attributes = patient_attributes(patients)
    exposure = patients[L.EXPOSURE].to_numpy(dtype=float)
    if attributes.shape[1] == 0 or np.isnan(exposure).all():
        return {}
    table = disparity.group_risk(attributes, exposure, thresholds=(HIGH_RISK,), n_boot=200, seed=seed)
    share = f"share_ge_{HIGH_RISK:g}"
    return {
        f"high_risk_share[{a}={g}]": float(s)
        for a, g, s in zip(table["attribute"], table["group"], table[share], strict=True)
    }


def _row(name: str, cfg: AuditConfig, result: AuditResult) -> dict[str, Any]:
    summary = result.summary
    primary = summary["primary_attack"]
    cohort = summary["cohort"]
    exposure = result.patients[L.EXPOSURE].to_numpy(dtype=float)
    se = result.patients[L.SE].to_numpy(dtype=float)
    priv = _privacy(cfg, result)
    eps_target = (priv.get("epsilon_target") or priv["epsilon"]) if priv["private"] else math.inf
    bound = float(priv["max_auc"])
    defined = exposure[~np.isnan(exposure)]
    # the columns a reader looks at first come first (the CLI prints the leading ones)
    row: dict[str, Any] = {
        "point": name,
        # a user recipe's size is its own business (trees have no weight count)
        "parameters": count_parameters(
            cfg.model,
            tuple(cohort["input_shape"]) if cohort["modality"] != "table" else cohort["features"],
            len(cohort["classes"]),
        ) if cfg.model.kind == "family" else np.nan,
        "epsilon": math.inf if eps_target is None else float(eps_target),
        "max_auc": bound,
        "diagnostic_auroc": summary["diagnostic"]["auroc_mean"],
        "attack_auc": summary["attacks"][primary]["aggregate"]["auc"],
        "highly_exposed": int(np.count_nonzero(defined >= HIGH_RISK)),
    }
    chance = summary["attacks"][primary].get("chance")
    # patients exposed beyond chance at the run's FDR; and what chance puts ≥ the headline level
    row["beyond_chance"] = chance["beyond_chance"] if chance else np.nan
    row["highly_exposed_null"] = (
        chance["high_risk_null"].get(repr(float(HIGH_RISK)), np.nan) if chance else np.nan
    )
    for t in summary.get("thresholds", []):
        row[f"high_risk_{t:g}"] = int(np.count_nonzero(defined >= t))
    row.update({
        "above_bound": int(np.count_nonzero(exposure - se > bound)) if bound < 1 else 0,
        "median_exposure": float(np.median(defined)) if defined.size else np.nan,
        "max_exposure": float(defined.max()) if defined.size else np.nan,
        "diagnostic_auroc_std": summary["diagnostic"]["auroc_std"],
        "diagnostic_accuracy": summary["diagnostic"]["accuracy_mean"],
        "attack": primary,
        "family": cfg.model.family if cfg.model.kind == "family" else "",
        "recipe": cfg.model.describe(),
        **{f"param_{k}": v for k, v in cfg.model.params.items()
           if isinstance(v, bool | int | float | str)},
        **{knob: getattr(cfg.model, knob) if cfg.model.kind == "family" else np.nan
           for knob in ("width", "depth", "blocks", "dropout", "l2")},
        "epsilon_spent": math.inf if priv["epsilon"] is None else float(priv["epsilon"]),
        "delta": np.nan if priv["delta"] is None else float(priv["delta"]),
        "dp_level": priv["level"] if priv["private"] else "none",
        "sigma": float(priv["sigma"]),
        "max_auc_eps_delta": float(priv["max_auc_eps_delta"]),
        "models": cfg.audit.models,
        "audited_patients": int(defined.size),
    })
    for attack, metrics in summary["attacks"].items():
        row[f"attack_auc[{attack}]"] = metrics["aggregate"]["auc"]
    row.update(_subgroup_shares(result.patients, cfg.audit.seed))
    return row


def run_sweep(
    config: AuditConfig,
    sweep: SweepSpec,
    out: Path,
    *,
    force: bool = False,
    progress: ProgressSink | None = None,
) -> pd.DataFrame:
    """Run (or resume) the audit of every point in ``out/<point>/`` and collect one table.

    Writes ``sweep.parquet``, ``sweep.csv``, ``sweep.json``, ``sweep.svg`` and the page
    ``sweep.html`` into ``out``
    and returns the table: one row per point with capacity, ε and the mechanism's max AUC,
    diagnostic AUROC on the held-out patients, aggregate attack AUC, high-risk counts and
    per-subgroup high-risk shares.
    """
    out = Path(out)
    manifest = own_sweep_folder(out)
    cohort = _shared_cohort(config, out, manifest, progress)
    split = cohort_info(cohort).get("test_split")
    holdout = 0.0 if split else sweep.holdout_fraction
    points = sweep_points(config, sweep, holdout_fraction=holdout)
    rows, curves = [], {}
    for name, cfg in points:
        result = run_audit(cfg, out / name, force=force, progress=progress, cohort=cohort)
        row = _row(name, cfg, result)
        rows.append(row)
        curves[name] = (risk.survival(result.patients[L.EXPOSURE].to_numpy(dtype=float)), row)
    table = pd.DataFrame(rows)
    meta = {
        "spec": sweep.model_dump(mode="json"),
        "high_risk_threshold": HIGH_RISK,
        "bound": "max_auc: largest attack AUC the DP mechanism permits, from the trade-off "
                 "envelope of its accountant's (ε(δ), δ) profile; max_auc_eps_delta: from the "
                 "single (ε, δ) pair",
    }
    meta["holdout_fraction"] = holdout
    if split:
        meta["test_split"] = split
    table.attrs["test_split"] = split
    chart = sweep_chart(table, {k: v[0] for k, v in curves.items()})
    page = render_sweep(table, chart, meta, name=out.name)
    with owning(manifest):
        write_sweep(out, table, meta, chart, page)
    return table


def _shared_cohort(config: AuditConfig, out: Path, manifest: Manifest,
                   progress: ProgressSink | None) -> Cohort:
    """The cohort every point audits, loaded once; an image cohort's pixels decoded once
    into the sweep folder's own ``cache/`` (resumable, as a run's), not once per point."""
    cohort = load_cohort(config.cohort, decode=False)
    if cohort.pending is None:
        return cohort
    if not (out / L.CACHE_DIR).exists():
        manifest.own_dir(out / L.CACHE_DIR)
    with owning(manifest):
        return with_pixels(cohort, out, progress)


def _is_sweep_record(folder: Path) -> bool:
    """Whether ``folder`` holds the ``sweep.json`` of a sweep made before manifests."""
    try:
        return isinstance(json.loads((folder / L.SWEEP_JSON).read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def own_sweep_folder(out: Path) -> Manifest:
    """The sweep folder's manifest; a folder that is neither new, empty nor a sweep is refused.

    A sweep folder holds the sweep's files and one run folder per point (each with its own
    manifest); anything else in a folder without a manifest means it is the user's.
    """
    legacy = claim(out, "sweep", legacy=_is_sweep_record)
    make_dirs(out)
    sweep_files = [L.SWEEP_TABLE, L.SWEEP_CSV, L.SWEEP_JSON, L.SWEEP_CHART]
    return start(out, "sweep", [out / n for n in sweep_files] if legacy else None)


def sweep_chart(table: pd.DataFrame, survival: dict[str, risk.Survival], *, chart_id: str = "sweep") -> str:
    """Diagnostic AUROC against highly exposed patients, and exposure survival with DP bounds.

    Drawn by :func:`miaudit.report.charts.sweep_chart`, at the sweep's ``HIGH_RISK``.
    """
    return charts.sweep_chart(table, survival, high_risk=HIGH_RISK, chart_id=chart_id)
