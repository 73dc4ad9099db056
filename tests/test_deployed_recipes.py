"""audit-model of a fitted scikit-learn target: skops and ONNX files, its own recipe, warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from miaudit.config.cohort import CohortConfig
from miaudit.deployed import (
    _identity,
    load_deployed_config,
    parse_deployed_config,
    recipe_warnings,
    run_deployed,
)
from miaudit.deployed_model import TargetOutputs, predict_onnx
from miaudit.errors import InputError
from miaudit.models import ModelSpec
from miaudit.recipes.estimator import _set_params, estimator_logits
from miaudit.results.store import RunStore
from miaudit.runner import load_cohort
from miaudit.seeding import recipe_seed

sio = pytest.importorskip("skops.io", reason="skops not installed")

TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
PLANTED = 12  # members with a flipped label, which a deep boosted model memorises
FEATURES = ["age", "sex", "x1", "x2", "x3"]


def make_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(n)],
        "age": rng.integers(18, 90, size=n).astype(float),
        "sex": rng.choice(["female", "male"], size=n),
        "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
    })
    label = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, n) > 0).astype(int)
    label[:PLANTED] = 1 - label[:PLANTED]  # planted: the label the features contradict
    frame["outcome"] = label
    return frame


def fit_target(frame: pd.DataFrame, member: np.ndarray, **params: object):
    est = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["sex"]), remainder="passthrough"),
        HistGradientBoostingClassifier(**({"max_iter": 60, "min_samples_leaf": 2} | params)),
    )
    train = frame[member]
    return est.fit(train[FEATURES], train["outcome"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("fitted")
    frame = make_frame()
    frame.to_csv(root / "cohort.csv", index=False)
    rng = np.random.default_rng(1)
    member = rng.random(len(frame)) < 0.4
    member[:PLANTED // 2] = True  # half the planted patients trained the target …
    member[PLANTED // 2 : PLANTED] = False  # … the other half did not
    frame.loc[member, ["patient_id"]].to_csv(root / "roster.csv", index=False)
    target = fit_target(frame, member, random_state=7)
    sio.dump(target, root / "target.skops")
    return {"root": root, "frame": frame, "member": member, "target": target}


def config_text(**tables: str) -> str:
    base = {
        "cohort": 'path = "cohort.csv"\nlabel = "outcome"\npatient_id = "patient_id"\n'
                  f"features = {FEATURES!r}\n".replace("'", '"'),
        "target": f'model = "target.skops"\nroster = "roster.csv"\ntrusted = ["{TREE}"]\n',
        "references": "models = 8\n",
        "population": "fraction = 0.8\n",
        "report": "html = true\n",
    }
    base.update(tables)
    return "".join(f"[{k}]\n{v}\n" for k, v in base.items() if v is not None)


def write_config(root: Path, name: str, **tables: str) -> Path:
    path = root / name
    path.write_text(config_text(**tables))
    return path


def miaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "miaudit.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def test_a_skops_target_gives_its_estimators_own_logits(folder: dict) -> None:
    config = load_deployed_config(write_config(folder["root"], "read.toml"))
    cohort = load_cohort(config.cohort)
    from miaudit.deployed import load_target

    got = load_target(config.target, cohort, config.model)
    assert got.estimator is not None and got.inputs == "raw"
    assert got.columns == tuple(FEATURES)
    raw = folder["frame"][FEATURES]
    # oracle: softmax of the logits is the estimator's own predict_proba, row for row
    z = got.logits[:, 0, :]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, folder["target"].predict_proba(raw), rtol=1e-9, atol=1e-12)
    # and the margin is the booster's raw decision value, not a rounded probability
    np.testing.assert_allclose(z[:, 1] - z[:, 0], folder["target"].decision_function(raw), rtol=1e-12)


def test_references_take_the_targets_own_recipe_and_flag_its_memorised_members(folder: dict) -> None:
    root = folder["root"]
    config = load_deployed_config(write_config(root, "own.toml"))
    assert config.model.estimator == "target"  # no [model] table: the target's recipe
    result = run_deployed(config, root / "run-own")
    assert result.summary["warnings"] == []
    assert 'estimator = "target"' in (result.run_dir / "config.toml").read_text()
    # oracle: reference m is clone(target) seeded with model m's seed, fitted on its keep row
    store = RunStore(result.run_dir)
    logits = store.load_logits(9)
    plan = np.load(result.run_dir / "plan.npz", allow_pickle=False)["keep"]
    cohort = load_cohort(config.cohort)
    raw = cohort.table[FEATURES]
    for m in (0, 5):
        rows = plan[m + 1][cohort.patient]
        ref = _set_params(clone(folder["target"]), recipe_seed(config.audit.seed, m), 1)
        ref.fit(raw[rows], cohort.labels[rows])
        np.testing.assert_allclose(logits[m, :, 0], estimator_logits(ref, raw, 2), rtol=1e-5, atol=1e-5)
    # the planted members the target memorised are exposed; the planted non-members are not
    patients = result.patients.set_index("patient_id")
    planted = [f"P{i:04d}" for i in range(PLANTED)]
    members = patients.loc[planted[: PLANTED // 2], "exposure"]
    assert members.median() > 0.9, members.tolist()


def test_references_unlike_the_target_are_named_in_a_warning(folder: dict) -> None:
    root = folder["root"]
    path = write_config(root, "mlp.toml", model='family = "mlp"\nwidth = 16\ndepth = 1\n',
                        training="epochs = 2\n")
    r = miaudit("audit-model", str(path), "--out", str(root / "run-mlp"), cwd=root)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())  # rich wraps long lines
    assert "warning:" in said and "fitted HistGradientBoostingClassifier" in said
    assert 'estimator = "target"' in said
    report = (root / "run-mlp" / "report.html").read_text()
    assert "References unlike the target" in report


def test_an_untrusted_type_in_a_skops_file_is_refused_by_name(folder: dict) -> None:
    root = folder["root"]
    path = write_config(root, "untrusted.toml",
                        target='model = "target.skops"\nroster = "roster.csv"\n')
    r = miaudit("audit-model", str(path), "--out", str(root / "never"), cwd=root)
    assert r.returncode == 2
    assert TREE in r.stderr and "trusted" in r.stderr and "Traceback" not in r.stderr
    assert not (root / "never").exists()


def test_the_recipe_of_another_target_is_another_identity(folder: dict) -> None:
    config = load_deployed_config(write_config(folder["root"], "ident.toml"))
    cohort = load_cohort(config.cohort)
    role = np.zeros(cohort.num_patients, dtype=np.int8)

    def identity(est: object) -> str:
        target = TargetOutputs(np.zeros((cohort.num_records, 1, 2)), "logits", "x",
                               estimator=est, inputs="raw", columns=tuple(FEATURES))
        return _identity(config, cohort, role, False, target)["training_hash"]

    same = clone(folder["target"])
    deeper = clone(folder["target"]).set_params(histgradientboostingclassifier__max_depth=3)
    assert identity(folder["target"]) == identity(same)
    assert identity(folder["target"]) != identity(deeper)


def test_an_onnx_pipeline_reads_the_raw_columns_and_says_it_is_a_tree_ensemble(folder: dict) -> None:
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [("age", FloatTensorType([None, 1])), ("sex", StringTensorType([None, 1])),
             *[(c, FloatTensorType([None, 1])) for c in ("x1", "x2", "x3")]]
    # skl2onnx converts random forests (its HistGradientBoosting converter lags scikit-learn)
    frame, member = folder["frame"], folder["member"]
    forest = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["sex"]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=20, random_state=0),
    ).fit(frame.loc[member, FEATURES], frame.loc[member, "outcome"])
    onx = skl2onnx.convert_sklearn(forest, initial_types=types, options={"zipmap": False})
    path = folder["root"] / "target.onnx"
    path.write_bytes(onx.SerializeToString())
    cohort = load_cohort(CohortConfig(path=folder["root"] / "cohort.csv", label="outcome",
                                      patient_id="patient_id", features=FEATURES))
    got = predict_onnx(path, cohort, inputs="raw")
    assert got.graph == "tree ensemble" and got.inputs == "raw"
    want = forest.predict_proba(frame[FEATURES])
    # float32 inside the ONNX runtime: probabilities agree to its precision
    np.testing.assert_allclose(np.exp(got.logits[:, 0, :]), want, atol=1e-5)
    with pytest.raises(InputError, match="encoded records as one input"):
        predict_onnx(path, cohort)
    warnings = recipe_warnings(ModelSpec(), got, 200.0, 200)
    assert len(warnings) == 1 and "tree ensemble" in warnings[0]


def test_references_far_from_the_targets_training_size_are_named() -> None:
    target = TargetOutputs(np.zeros((4, 1, 2)), "logits", "predictions:x")
    assert recipe_warnings(ModelSpec(), target, 180.0, 200) == []
    assert recipe_warnings(ModelSpec(), target, 70.0, 200) == []
    (small,) = recipe_warnings(ModelSpec(), target, 60.0, 200)
    assert "60 records" in small and "200" in small and "[population] fraction" in small
    assert len(recipe_warnings(ModelSpec(), target, 700.0, 200)) == 1


@pytest.mark.parametrize(
    ("target", "model", "message"),
    [
        ({"predictions": "t.csv", "roster": "r.csv", "trusted": []}, None, "target.trusted"),
        ({"predictions": "t.csv", "roster": "r.csv", "inputs": "raw"}, None, "target.inputs"),
        ({"predictions": "t.csv", "roster": "r.csv"}, {"estimator": "target"}, "needs target.model"),
        ({"model": "t.skops", "roster": "r.csv"}, {"estimator": "target", "params": {"a": 1}},
         "remove model.params"),
    ],
)
def test_target_recipe_keys_that_cannot_apply_are_refused(target: dict, model: dict | None,
                                                          message: str) -> None:
    data = {"cohort": {"dataset": "rhc"}, "target": target}
    if model is not None:
        data["model"] = model
    with pytest.raises(InputError, match=message):
        parse_deployed_config(data)
