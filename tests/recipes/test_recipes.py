"""The user's own recipes: scikit-learn estimators, PyTorch modules, training functions, commands.

Each kind is checked against a slow, obvious implementation (a plain loop a user would write),
end to end through the audit, on resume after an interruption, and on bad input.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _margins import SEED, at_least, planted_or_decoy
from scipy.special import softmax
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from miaudit.audit import run_audit
from miaudit.cli import app
from miaudit.config import AuditConfig, ModelSpec, TrainingSpec, parse_config, to_toml
from miaudit.datasets import make_synthetic_tabular
from miaudit.errors import InputError
from miaudit.executors import TrainingJob
from miaudit.recipes.estimator import EstimatorRecipe, estimator_logits, train_estimators
from miaudit.recipes.module import train_module
from miaudit.seeding import recipe_seed
from miaudit.training import train_sequential

SYNTH = {"num_patients": 400, "num_features": 10, "num_atypical": 6, "num_mislabelled": 6,
         "seed": 1 + SEED}
HGB = "sklearn.ensemble:HistGradientBoostingClassifier"


def _config(model: dict, cohort: dict | None = None, workers: int | None = 2,
            **audit: object) -> AuditConfig:
    return parse_config({
        "cohort": cohort or {"synthetic": SYNTH},
        "model": model,
        "training": {"epochs": 3, "batch_size": 64},
        "audit": {"models": 8, "group_size": 4, "attacks": ["lira", "loss"], **audit},
        "report": {"html": False},
        "executor": {} if workers is None else {"workers": workers},
    })


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cohort, _ = make_synthetic_tabular(**SYNTH)
    keep = np.random.default_rng(0).random((4, cohort.num_records)) < 0.5
    return cohort.inputs, cohort.labels, keep


# --- the schema ------------------------------------------------------------------------------

def test_a_family_config_keeps_its_training_hash_and_config_file() -> None:
    # the hash of the default config as computed before the other recipe kinds existed:
    # runs made then must still resume
    assert AuditConfig().training_hash() == (
        "96fea9ff95879c445f76aeb2cb59a2a32299050aeb7338679dcd24770acfda40"
    )
    text = to_toml(AuditConfig())
    assert "params" not in text and "inputs" not in text and "estimator" not in text


def test_a_recipe_config_round_trips_and_rejects_mixed_kinds() -> None:
    config = _config({"estimator": HGB, "params": {"max_depth": 3}})
    assert config.model.kind == "estimator" and config.model.capacity() == {"max_depth": 3}
    again = parse_config(__import__("tomllib").loads(to_toml(config)))
    assert again.training_hash() == config.training_hash()
    assert _config({"estimator": HGB, "params": {"max_depth": 4}}).training_hash() != (
        config.training_hash())
    for model, message in [
        ({"estimator": HGB, "command": "x {out}"}, "both set"),
        ({"estimator": HGB, "width": 3}, "belong to the built-in families"),
        ({"family": "mlp", "params": {"a": 1}}, "only an estimator"),
        ({"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}, "package.module:Name"),
        ({"module": "nets:build", "inputs": "raw"}, "only an estimator or train_fn"),
    ]:
        with pytest.raises(InputError, match=message):
            _config(model)
    with pytest.raises(InputError, match="DP-SGD"):
        parse_config({"model": {"estimator": HGB}, "privacy": {"epsilon": 1.0}})


# --- estimators: logits and training against plain scikit-learn -------------------------------

@pytest.mark.parametrize("make", [
    lambda: HistGradientBoostingClassifier(max_depth=3, random_state=0),
    lambda: LogisticRegression(max_iter=500),
    lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
])
def test_estimator_logits_give_the_estimators_own_probabilities(data, make) -> None:
    x, y, keep = data
    for labels in (y, (x[:, 0] > 0.3).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)):
        est = make().fit(x[keep[0]], labels[keep[0]])
        k = int(labels.max()) + 1
        z = estimator_logits(est, x, k)
        assert z.shape == (len(x), k) and np.isfinite(z).all()
        p = est.predict_proba(x)
        np.testing.assert_allclose(softmax(z, axis=1), np.clip(p, 1e-12, None) / np.clip(
            p, 1e-12, None).sum(1, keepdims=True), atol=1e-6)  # float32 inputs: p in float32


def test_margins_stay_distinct_where_probabilities_round_to_one(data) -> None:
    x, _y, _ = data
    separable = (x[:, 0] > 0).astype(np.int64)
    est = LogisticRegression(C=1e6, max_iter=5000).fit(x * 50, separable)
    z = estimator_logits(est, x * 50, 2)
    saturated = est.predict_proba(x * 50)[:, 1] == 1.0
    assert saturated.sum() > 10
    margins = z[saturated, 1] - z[saturated, 0]
    assert np.unique(margins).size > 0.9 * saturated.sum()  # probabilities would all say 1


def test_a_class_missing_from_one_models_training_gets_the_lowest_logit(data) -> None:
    x, _, _ = data
    labels = np.zeros(len(x), dtype=np.int64)
    labels[: len(x) // 2] = 1
    labels[-3:] = 2  # class 2 only among records the model does not train on
    rows = np.arange(len(x)) < len(x) - 3
    est = LogisticRegression(max_iter=500).fit(x[rows], labels[rows])
    z = estimator_logits(est, x, 3)
    assert (z[:, 2] < z[:, :2].min(axis=1)).all()


def test_train_estimators_matches_a_plain_loop_in_any_number_of_workers(data) -> None:
    x, y, keep = data
    recipe = EstimatorRecipe(path=HGB, params={"max_depth": 3, "max_iter": 30})
    models = [5, 0, 9, 2]
    one = train_estimators(recipe, x, y, keep, models, seed=3, workers=1)
    two = train_estimators(recipe, x, y, keep, models, seed=3, workers=2)
    assert one.shape == (4, len(x), 1, 2)
    assert np.array_equal(one, two)
    for g, m in enumerate(models):  # the loop a user would write
        est = HistGradientBoostingClassifier(max_depth=3, max_iter=30,
                                             random_state=recipe_seed(3, m))
        p = est.fit(x[keep[g]], y[keep[g]]).predict_proba(x)[:, 1]
        np.testing.assert_allclose(softmax(one[g, :, 0].astype(np.float64), axis=1)[:, 1], p,
                                   atol=1e-6)
    # an estimator object (the Python API) trains the same models as its class path
    obj = EstimatorRecipe(obj=HistGradientBoostingClassifier(max_depth=3, max_iter=30))
    assert np.array_equal(train_estimators(obj, x, y, keep, models, seed=3, workers=1), one)


# --- audits with the user's recipe ------------------------------------------------------------

@pytest.fixture(scope="module")
def gbm_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gbm") / "run"
    config = _config({"estimator": HGB, "params": {"max_depth": 6, "max_iter": 100}}, models=16,
                     group_size=8)
    return out, run_audit(config, out)


def test_an_audit_with_boosted_trees_finds_the_planted_patients_beyond_chance(gbm_run) -> None:
    """Deep boosted trees memorise much of the cohort (about 200 of 400 patients are exposed
    beyond chance, 80 at exposure 1.0), so a top-k ranking is a tie-break; the planted
    patients must all be among those exposed beyond chance."""
    _, result = gbm_run
    cohort, planted = make_synthetic_tabular(**SYNTH)
    memorised = planted_or_decoy(
        np.concatenate([planted.atypical_patients, cohort.patient[planted.mislabelled_records]]),
        cohort.num_patients,
    )
    patients = result.patients
    found = np.mean(patients.loc[memorised, "q_value"].to_numpy() <= 0.05)
    at_least("share of memorised patients the GBM audit finds beyond chance", found, 0.75,
             strict=False)
    planted_mean = patients.loc[memorised, "exposure"].mean()
    others = patients.drop(index=memorised)["exposure"].mean()
    at_least("GBM audit: mean exposure, memorised - others", planted_mean - others, 0.1)
    assert result.summary["cohort"]["patients"] == SYNTH["num_patients"]


def test_an_interrupted_estimator_audit_resumes_to_the_same_numbers(gbm_run, tmp_path) -> None:
    out, result = gbm_run
    config = parse_config(__import__("tomllib").loads((out / "config.toml").read_text()))

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(config, tmp_path / "run", after_shard=stop)
    resumed = run_audit(config, tmp_path / "run")
    pd.testing.assert_frame_equal(resumed.patients, result.patients)


def _write_nets(folder: Path) -> str:
    (folder / "nets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from miaudit.config import ModelSpec
        from miaudit.models import build_module

        def build(shape, num_classes, width=32, depth=2):
            # the built-in MLP, initialised from the model's seed as the engine does
            spec = ModelSpec(family="mlp", width=width, depth=depth)
            generator = torch.Generator().manual_seed(torch.initial_seed())
            return build_module(spec, shape[0], num_classes, generator=generator)

        def with_batchnorm(shape, num_classes):
            return nn.Sequential(nn.Linear(shape[0], 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, num_classes))
    """))
    return str(folder / "nets.py")


def test_a_user_module_identical_to_the_builtin_mlp_gives_its_logits(data, tmp_path) -> None:
    x, y, keep = data
    nets = _write_nets(tmp_path)
    training = TrainingSpec(epochs=3, batch_size=32)
    builtin = train_sequential(ModelSpec(family="mlp", width=32, depth=2), training, x, y,
                               keep, [0, 1, 2, 3], 7)
    own = train_module(f"{nets}:build", {"width": 32, "depth": 2}, training, x, y, keep,
                       [0, 1, 2, 3], 7)
    assert np.array_equal(own, builtin)
    # a module that tracks BatchNorm statistics trains one model at a time, group-independent
    both = train_module(f"{nets}:with_batchnorm", {}, training, x, y, keep[:2], [0, 1], 7)
    alone = train_module(f"{nets}:with_batchnorm", {}, training, x, y, keep[1:2], [1], 7)
    assert np.array_equal(both[1:], alone) and np.isfinite(both).all()


def test_a_module_audit_resumes_to_the_same_numbers(tmp_path) -> None:
    nets = _write_nets(tmp_path)
    config = _config({"module": f"{nets}:build", "params": {"width": 16}})
    full = run_audit(config, tmp_path / "full")

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(config, tmp_path / "cut", after_shard=stop)
    pd.testing.assert_frame_equal(run_audit(config, tmp_path / "cut").patients, full.patients)


# --- the command kind ---------------------------------------------------------------------------

TRAIN_SCRIPT = """
import os, sys, pathlib
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
table, rows, out, seed, log = sys.argv[1:6]
with open(log, "a") as f:
    f.write(os.environ["MIAUDIT_MODEL"] + "\\n")
if os.environ["MIAUDIT_MODEL"] == os.environ.get("FAIL_MODEL"):
    sys.exit("training crashed on purpose")
frame = pd.read_csv(table, dtype={"patient_id": str})
x = frame.drop(columns=["patient_id", "label"]).to_numpy()
train = np.loadtxt(rows, dtype=np.int64, ndmin=1)
est = LogisticRegression(max_iter=500, random_state=int(seed)).fit(x[train], frame["label"].to_numpy()[train])
margin = est.decision_function(x)
np.save(pathlib.Path(out) / "logits.npy", np.stack([np.zeros_like(margin), margin], axis=1))
"""


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cohort, _ = make_synthetic_tabular(**{**SYNTH, "num_patients": 120})
    frame = pd.DataFrame(cohort.inputs, columns=list(cohort.feature_names))
    frame.insert(0, "patient_id", [f"P{p:04d}" for p in cohort.patient])
    frame["label"] = cohort.labels
    path = tmp_path_factory.mktemp("table") / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


def _cohort(table: Path) -> dict:
    return {"path": str(table), "label": "label", "patient_id": "patient_id"}


def test_a_training_command_reproduces_the_in_process_recipe(table, tmp_path, monkeypatch) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    log = tmp_path / "calls.txt"
    command = (f"{sys.executable} {script} {table} {{train_rows}} {{out}} {{seed}} {log}")
    in_process = run_audit(_config({"estimator": "sklearn.linear_model:LogisticRegression",
                                    "params": {"max_iter": 500}, "inputs": "raw"},
                                   cohort=_cohort(table)), tmp_path / "estimator")
    config = _config({"command": command}, cohort=_cohort(table))
    monkeypatch.setenv("FAIL_MODEL", "5")
    with pytest.raises(InputError, match=r"model 5 exited with status 1(.|\n)*crashed on purpose"):
        run_audit(config, tmp_path / "command")
    ran_first = log.read_text().split()
    assert "5" in ran_first
    accepted = {str(int(p.name.split("_")[1])) for p in (tmp_path / "command" / "recipe").iterdir()
                if (p / ".miaudit-accepted").is_file()}
    monkeypatch.delenv("FAIL_MODEL")
    result = run_audit(config, tmp_path / "command")
    ran_again = log.read_text().split()[len(ran_first):]
    # models accepted before the failure are not trained again
    assert accepted and "5" not in accepted and not accepted & set(ran_again)
    assert accepted | set(ran_again) == {str(m) for m in range(8)}
    np.testing.assert_allclose(result.patients["exposure"], in_process.patients["exposure"],
                               atol=1e-6)
    # no patient id stays behind in the run directory
    for path in (tmp_path / "command" / "recipe").rglob("*"):
        if path.is_file():
            assert b"P0000" not in path.read_bytes(), path


@pytest.mark.parametrize(("body", "message"), [
    ("np.save(out / 'logits.npy', np.zeros((3, 2)))", r"shape \[3, 2\]"),
    ("np.save(out / 'logits.npy', np.full((N, 2), np.nan))", "NaN or infinite"),
    ("pass", "wrote no"),
    ("np.save(out / 'logits.npy', np.array([object()] * N))", "not a plain numeric array"),
])
def test_bad_command_output_is_one_clear_error(table, tmp_path, body, message) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import sys, pathlib, numpy as np\nout = pathlib.Path(sys.argv[1])\n"
                      f"N = {len(pd.read_csv(table))}\n{body}\n")
    config = _config({"command": f"{sys.executable} {script} {{out}}"}, cohort=_cohort(table))
    with pytest.raises(InputError, match=message):
        run_audit(config, tmp_path / "run")


# --- bad recipes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "message"), [
    ({"estimator": "no_such_package.models:Net"}, "no module named 'no_such_package.models'"),
    ({"estimator": "sklearn.ensemble:NoSuchForest"}, "has no 'NoSuchForest'"),
    ({"estimator": "sklearn.preprocessing:StandardScaler"}, "not a classifier"),
    ({"estimator": HGB, "params": {"depth_max": 3}}, r"does not take \['depth_max'\]"),
    ({"estimator": HGB, "params": {"max_depth": -1}}, r"model \d+ failed to train.*max_depth"),
    ({"command": "python train.py {nope} {out}"}, r"unknown placeholder\(s\) \{nope\}"),
    ({"command": "python train.py"}, "no {out} placeholder"),
])
def test_a_bad_recipe_is_one_clear_error_and_exit_2(tmp_path, model, message) -> None:
    config = _config(model)
    with pytest.raises(InputError, match=message):
        run_audit(config, tmp_path / "run")
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    result = CliRunner().invoke(app, ["audit", str(path), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_training_function_is_called_with_the_documented_signature(data, tmp_path) -> None:
    x, y, keep = data
    (tmp_path / "loop.py").write_text(textwrap.dedent("""
        import numpy as np
        def train(inputs, labels, keep, models, seed, scale=1.0):
            out = np.zeros((len(models), len(labels), 2))
            for g, m in enumerate(models):
                mean = inputs[keep[g]].mean(axis=0)
                out[g, :, 1] = scale * (inputs - mean).sum(axis=1) + m + seed
            return out
    """))
    job = TrainingJob(model=ModelSpec(train_fn=f"{tmp_path / 'loop.py'}:train",
                                      params={"scale": 2.0}),
                      training=TrainingSpec(), inputs=x, labels=y, keep=keep, seed=1)
    z = job.train(np.array([0, 3]))
    assert z.shape == (2, len(x), 1, 2)
    expected = 2.0 * (x - x[keep[3]].mean(axis=0)).sum(axis=1) + 3 + 1
    np.testing.assert_allclose(z[1, :, 0, 1], expected, rtol=1e-5)


# --- the Python API ---------------------------------------------------------------------------

def test_audit_frame_audits_an_estimator_object_on_a_dataframe(table, tmp_path) -> None:
    import miaudit

    frame = pd.read_csv(table, dtype={"patient_id": str})
    frame["sex"] = np.where(frame.index % 3 == 0, "F", "M")
    frame["sex"] = frame.groupby("patient_id")["sex"].transform("first")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    kwargs = dict(label="label", patient_id="patient_id", attributes=["sex"], exclude=["sex"],
                  models=8,
                  attacks=["lira", "loss"], html=False, workers=2)
    result = miaudit.audit_frame(frame, recipe=pipeline, out=tmp_path / "api", **kwargs)
    assert result.patients["patient_id"].str.startswith("P").all()
    assert set(pd.read_parquet(result.run_dir / "patients.parquet")["attr_sex"]) == {"F", "M"}
    assert result.summary["cohort"]["features"] == SYNTH["num_features"]  # sex excluded
    # calling again resumes (same numbers); another parameter is another run
    again = miaudit.audit_frame(frame, recipe=pipeline, out=tmp_path / "api", **kwargs)
    pd.testing.assert_frame_equal(again.patients, result.patients)
    other = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
    with pytest.raises(InputError):
        miaudit.audit_frame(frame, recipe=other, out=tmp_path / "api", **kwargs)
    with pytest.raises(InputError, match="not an estimator"):
        miaudit.audit_frame(frame, recipe=object(), out=tmp_path / "x", **kwargs)


GBM_PARAMS = {
    # each samples half the features at random, so the seed changes the model
    "lightgbm": {"n_estimators": 20, "max_depth": 3, "colsample_bytree": 0.5, "verbose": -1},
    "xgboost": {"n_estimators": 20, "max_depth": 3, "colsample_bytree": 0.5},
    "catboost": {"iterations": 20, "depth": 3, "rsm": 0.5, "verbose": 0},
}


@pytest.mark.parametrize(("package", "path"), [("lightgbm", "lightgbm:LGBMClassifier"),
                                              ("xgboost", "xgboost:XGBClassifier"),
                                              ("catboost", "catboost:CatBoostClassifier")])
def test_gradient_boosting_libraries_train_through_their_sklearn_classes(
    data, package, path, tmp_path, monkeypatch
) -> None:
    lib = pytest.importorskip(package, reason=f"{package} not installed")
    monkeypatch.chdir(tmp_path)
    x, y, keep = data
    params = GBM_PARAMS[package]
    recipe = EstimatorRecipe(path=path, params=params)
    one = train_estimators(recipe, x, y, keep[:2], [4, 7], seed=2, workers=1)
    assert np.array_equal(train_estimators(recipe, x, y, keep[:2], [4, 7], seed=2, workers=2), one)
    cls = {"lightgbm": "LGBMClassifier", "xgboost": "XGBClassifier",
           "catboost": "CatBoostClassifier"}[package]
    for g, m in enumerate([4, 7]):  # the plain loop, its own probabilities
        est = getattr(lib, cls)(**params, random_state=recipe_seed(2, m)).fit(x[keep[g]], y[keep[g]])
        np.testing.assert_allclose(softmax(one[g, :, 0].astype(np.float64), axis=1),
                                   est.predict_proba(x), atol=1e-6)
    # each model is seeded by its own index: the same rows under another index differ
    both = train_estimators(recipe, x, y, keep[[0, 0]], [4, 5], seed=2, workers=1)
    assert not np.array_equal(both[0], both[1])
    if package == "catboost":  # the plain loop above wrote its training log; miaudit did not
        import shutil

        shutil.rmtree(tmp_path / "catboost_info")
        train_estimators(recipe, x, y, keep[:2], [4, 7], seed=2, workers=2)
        assert not any(tmp_path.iterdir())
