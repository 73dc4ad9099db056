"""Sweeps over capacity and ε: the grid, the shared plan, the collected table and chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest

from miaudit.audit import AuditResult
from miaudit.config import AuditConfig
from miaudit.errors import InputError
from miaudit.results.store import load_npz
from miaudit.sweep import HIGH_RISK, SweepSpec, _row, run_sweep, sweep_points
from miaudit.training.dp import DPSpec, privacy_report

BASE = {
    "cohort": {"synthetic": {"num_patients": 120, "num_features": 6, "num_atypical": 3,
                             "num_mislabelled": 3, "seed": 2}},
    "model": {"family": "mlp", "width": 16, "depth": 1},
    "training": {"epochs": 3, "batch_size": 16, "learning_rate": 5e-3},
    "audit": {"models": 8, "group_size": 8, "attacks": ["lira", "loss"], "seed": 3},
    "report": {"html": False},
}


def _config(**changes: dict) -> AuditConfig:
    data = {k: dict(v) for k, v in BASE.items()}
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value}
    return AuditConfig.model_validate(data)


def test_spec_validation() -> None:
    spec = SweepSpec.model_validate({"epsilons": ["inf", 10, 3, 1]})
    assert spec.epsilon_values() == [math.inf, 10.0, 3.0, 1.0]
    assert spec.holdout_fraction == 0.2
    for bad, message in [
        ({}, "nothing to sweep"),
        ({"widths": [8], "sizes": {"s": {"width": 8}}}, "not both"),
        ({"widths": [0, 8]}, "≥ 1"),
        ({"depths": [1, 1]}, "twice"),
        ({"epsilons": [0]}, "> 0"),
        ({"epsilons": ["inf", "inf"]}, "twice"),
        ({"sizes": {"a/b": {"width": 8}}}, "folder name"),
        ({"widths": [8], "extra": 1}, "Extra inputs"),
    ]:
        with pytest.raises(pydantic.ValidationError, match=message):
            SweepSpec.model_validate(bad)


def test_capacity_grid_is_cartesian_and_shares_the_plan() -> None:
    config = _config()
    points = sweep_points(config, SweepSpec(widths=[8, 32], depths=[1, 2], holdout_fraction=0.25))
    assert [name for name, _ in points] == ["w8-d1", "w8-d2", "w32-d1", "w32-d2"]
    assert [(c.model.width, c.model.depth) for _, c in points] == [(8, 1), (8, 2), (32, 1), (32, 2)]
    for _, c in points:
        assert c.audit.holdout_fraction == 0.25
        assert (c.audit.seed, c.audit.models) == (3, 8)
        assert c.cohort == config.cohort and c.training == config.training
    assert config.audit.holdout_fraction == 0.0  # the base config is left alone


def test_named_sizes_and_epsilons_combine() -> None:
    config = _config()
    sweep = SweepSpec(sizes={"small": {"width": 8}, "deep": {"depth": 3}}, epsilons=["inf", 2])
    points = dict(sweep_points(config, sweep))
    assert list(points) == ["small_eps-inf", "small_eps2", "deep_eps-inf", "deep_eps2"]
    assert points["small_eps2"].model.width == 8 and points["deep_eps2"].model.depth == 3
    assert points["small_eps-inf"].privacy.epsilon is None
    assert not points["small_eps-inf"].privacy.enabled
    assert points["deep_eps2"].privacy.epsilon == 2.0


def test_epsilon_points_keep_the_other_privacy_settings() -> None:
    config = _config(privacy={"noise_multiplier": 1.3, "level": "record", "max_grad_norm": 0.5})
    points = dict(sweep_points(config, SweepSpec(epsilons=[1])))
    privacy = points["eps1"].privacy
    assert privacy.epsilon == 1.0 and privacy.noise_multiplier is None
    assert privacy.level == "record" and privacy.max_grad_norm == 0.5


@pytest.mark.parametrize(
    ("model", "sweep", "message"),
    [
        ({"family": "tabresnet"}, {"depths": [1, 2]}, "no depth knob"),
        ({"family": "logistic"}, {"widths": [8]}, "no width knob"),
        ({}, {"sizes": {"bad": {"width": 0}}}, "sweep.sizes.bad: not a valid model"),
        ({}, {"sizes": {"bad": {"colour": 1}}}, "sweep.sizes.bad"),
    ],
)
def test_grid_errors_name_the_key(model, sweep, message) -> None:
    with pytest.raises(InputError, match=message):
        sweep_points(_config(model=model), SweepSpec.model_validate(sweep))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("sweep")
    sweep = SweepSpec(sizes={"tiny": {"width": 4}, "wide": {"width": 64}}, epsilons=["inf", 2])
    return out, run_sweep(_config(), sweep, out)


def test_sweep_writes_one_row_per_point_from_the_points_runs(swept) -> None:
    out, table = swept
    assert list(table["point"]) == ["tiny_eps-inf", "tiny_eps2", "wide_eps-inf", "wide_eps2"]
    for name in ("sweep.parquet", "sweep.csv", "sweep.json", "sweep.svg"):
        assert (out / name).is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), table)
    for row in table.itertuples(index=False):
        run = out / row.point
        summary = json.loads((run / "summary.json").read_text())
        patients = pd.read_parquet(run / "patients.parquet")
        exposure = patients["exposure"].to_numpy()
        assert row.diagnostic_auroc == pytest.approx(summary["diagnostic"]["auroc_mean"])
        assert row.attack_auc == pytest.approx(summary["attacks"]["lira"]["aggregate"]["auc"])
        assert row.highly_exposed == int(np.sum(exposure >= HIGH_RISK))
        assert table.loc[table["point"] == row.point, "high_risk_0.8"].item() == int(np.sum(exposure >= 0.8))
        public = patients["attr_insurance"] == "public"
        defined = public & patients["exposure"].notna()
        share = (patients.loc[defined, "exposure"] >= HIGH_RISK).mean()
        got = table.loc[table["point"] == row.point, "high_risk_share[insurance=public]"].item()
        assert got == pytest.approx(share)


def test_points_share_plan_and_held_out_patients(swept) -> None:
    out, table = swept
    plans = [load_npz(out / p / "plan.npz") for p in table["point"]]
    for plan in plans[1:]:
        np.testing.assert_array_equal(plan["keep"], plans[0]["keep"])
        np.testing.assert_array_equal(plan["holdout"], plans[0]["holdout"])
    held = plans[0]["holdout"]
    assert held.sum() == round(0.2 * 120)
    patients = pd.read_parquet(out / table["point"][0] / "patients.parquet")
    assert patients.loc[held, "exposure"].isna().all()
    assert table["audited_patients"].eq(120 - held.sum()).all()


def test_epsilon_column_and_bound_follow_the_accountant(swept) -> None:
    out, table = swept
    plain = table[table["point"].str.endswith("eps-inf")]
    private = table[table["point"].str.endswith("eps2")]
    assert np.isinf(plain["epsilon"]).all() and (plain["max_auc"] == 1.0).all()
    assert (private["epsilon"] == 2.0).all()
    keep = load_npz(out / "tiny_eps2" / "plan.npz")["keep"]
    expected = privacy_report(DPSpec(epsilon=2.0), num_units=int(keep.sum(1).min()),
                              batch_size=16, epochs=3)
    assert private["max_auc"].to_numpy() == pytest.approx(expected["max_auc"])
    assert private["sigma"].to_numpy() == pytest.approx(expected["sigma"])
    assert (private["max_auc"] < private["max_auc_eps_delta"]).all()
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["points"][0]["epsilon"] == "inf"
    assert saved["spec"]["epsilons"] == ["inf", 2.0]


def test_chart_labels_every_point_and_draws_the_bound(swept) -> None:
    out, table = swept
    svg = (out / "sweep.svg").read_text()
    assert svg.startswith("<svg") and "<title" in svg
    for name in table["point"]:
        assert name in svg
    assert "DP bound ε=2" in svg


def test_rerunning_a_sweep_resumes_without_training(swept) -> None:
    out, table = swept
    shards = sorted((out / "wide_eps2" / "shards").iterdir())
    stamps = [p.stat().st_mtime_ns for p in shards]
    sweep = SweepSpec(sizes={"tiny": {"width": 4}, "wide": {"width": 64}}, epsilons=["inf", 2])
    again = run_sweep(_config(), sweep, out)
    assert [p.stat().st_mtime_ns for p in sorted((out / "wide_eps2" / "shards").iterdir())] == stamps
    pd.testing.assert_frame_equal(again, table)


def test_private_points_train_privately_and_report_sigma_runs_by_epsilon(swept) -> None:
    out, _ = swept
    plain = load_npz(next((out / "tiny_eps-inf" / "shards").iterdir()))
    private = load_npz(next((out / "tiny_eps2" / "shards").iterdir()))
    key = next(iter(plain))
    assert not np.allclose(plain[key], private[key])
    # a point set by noise multiplier reports the ε its accountant gives
    run = out / "tiny_eps2"
    result = AuditResult(run, json.loads((run / "summary.json").read_text()),
                         pd.read_parquet(run / "patients.parquet"), pd.DataFrame())
    config = _config(model={"width": 4}, privacy={"noise_multiplier": 1.5})
    row = _row("sigma", config, result)
    keep = load_npz(run / "plan.npz")["keep"]
    expected = privacy_report(DPSpec(noise_multiplier=1.5), num_units=int(keep.sum(1).min()),
                              batch_size=16, epochs=3)
    assert row["epsilon"] == pytest.approx(expected["epsilon"]) and row["sigma"] == 1.5


def test_a_sweep_over_an_estimators_params_runs_each_capacity(tmp_path: Path) -> None:
    config = AuditConfig.model_validate({
        **BASE,
        "model": {"estimator": "sklearn.ensemble:HistGradientBoostingClassifier",
                  "params": {"min_samples_leaf": 1}},
        "executor": {"workers": 2},
    })
    sweep = SweepSpec(params={"max_iter": [2, 100]}, holdout_fraction=0.25)
    points = sweep_points(config, sweep)
    assert [name for name, _ in points] == ["max_iter2", "max_iter100"]
    assert [c.model.params["max_iter"] for _, c in points] == [2, 100]
    assert all(c.model.params["min_samples_leaf"] == 1 for _, c in points)
    assert len({c.training_hash() for _, c in points}) == 2
    table = run_sweep(config, sweep, tmp_path / "sweep")
    assert table["param_max_iter"].tolist() == [2, 100]
    # 100 boosting rounds fit their training patients far more closely than 2: the attack
    # AUC rose by 0.11-0.16 over audit seeds 3, 4 and 5 (8 models); 0.05 leaves room
    auc = table["attack_auc"].tolist()
    assert auc[1] > auc[0] + 0.05, auc
    with pytest.raises(InputError, match="params to sweep"):
        sweep_points(_config(), sweep)
    with pytest.raises(InputError, match="sweep params"):
        sweep_points(config, SweepSpec(widths=[8]))


def test_the_sweep_has_a_page_and_its_svg_opens_on_its_own(swept) -> None:
    import xml.etree.ElementTree as ET

    out, table = swept
    svg = (out / "sweep.svg").read_text()
    root = ET.fromstring(svg)  # a standalone SVG document, as a browser reads it
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    page = (out / "sweep.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and 'id="sweep-table"' in page
    assert 'xmlns="http://www.w3.org/2000/svg"' not in page  # inlined: HTML implies it
    for name in table["point"]:
        assert f"<td class=\"num\">{name}</td>" in page
    assert "20% of patients held out of every model" in page
    assert (out / "sweep.html").stat().st_mode & 0o777 == 0o600
