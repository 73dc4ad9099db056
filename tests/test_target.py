"""Reading a deployed model's outputs: prediction files, ONNX, state dicts, and the roster."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import miaudit.deployed_model
import miaudit.target
from miaudit.datasets import make_synthetic_tabular
from miaudit.deployed_model import (
    as_logits,
    predict_onnx,
    predict_state_dict,
    read_predictions,
    read_roster,
    resolve_kind,
)
from miaudit.errors import InputError
from miaudit.models import ModelSpec, build_module
from miaudit.signals import true_class_probability
from miaudit.training import model_generator

SPEC = ModelSpec(family="mlp", width=16, depth=2)


@pytest.fixture(scope="module")
def cohort():
    c, _ = make_synthetic_tabular(num_patients=80, num_features=5, max_records_per_patient=2,
                                  num_atypical=2, num_mislabelled=2, seed=4)
    return c


@pytest.fixture(scope="module")
def module(cohort) -> torch.nn.Module:
    m = build_module(SPEC, cohort.inputs.shape[1], 2, generator=model_generator(0, 0, 0))
    return m.eval()


def module_logits(module: torch.nn.Module, cohort) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(cohort.inputs)).double().numpy()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_csv(path: Path, ids: np.ndarray, values: np.ndarray, names=("l0", "l1")) -> Path:
    frame = pd.DataFrame(values, columns=list(names))
    frame.insert(0, "record_id", ids)
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- predictions


def test_rows_are_matched_to_the_cohort_by_record_id(cohort, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(cohort.num_records, 2))
    order = rng.permutation(cohort.num_records)
    path = write_csv(tmp_path / "p.csv", cohort.record_ids[order], logits[order])
    out = read_predictions(path, cohort)
    assert out.kind == "logits" and out.logits.shape == (cohort.num_records, 1, 2)
    np.testing.assert_allclose(out.logits[:, 0], logits, rtol=1e-12)


def test_probabilities_are_recognised_and_keep_their_true_class_probability(
    cohort, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.01, 0.99, size=cohort.num_records)
    probs = np.stack([1 - p1, p1], axis=1)
    # columns named after the classes, in reverse order: taken in class order
    frame = pd.DataFrame({"record_id": cohort.record_ids, "positive": p1, "negative": 1 - p1})
    path = tmp_path / "probs.parquet"
    frame.to_parquet(path)
    out = read_predictions(path, cohort)
    assert out.kind == "probabilities"
    want = probs[np.arange(cohort.num_records), cohort.labels]
    np.testing.assert_allclose(true_class_probability(out.logits, cohort.labels)[:, 0], want,
                               rtol=1e-9)


def test_a_single_probability_column_needs_its_kind_named(cohort, tmp_path: Path) -> None:
    p1 = np.linspace(0.05, 0.95, cohort.num_records)
    path = write_csv(tmp_path / "one.csv", cohort.record_ids, p1[:, None], names=("p",))
    with pytest.raises(InputError, match=r'target\.kind = "probabilities"'):
        read_predictions(path, cohort)
    out = read_predictions(path, cohort, kind="probabilities")
    prob = true_class_probability(out.logits, cohort.labels)[:, 0]
    np.testing.assert_allclose(prob, np.where(cohort.labels == 1, p1, 1 - p1), rtol=1e-9)


def test_npz_predictions(cohort, tmp_path: Path) -> None:
    logits = np.random.default_rng(2).normal(size=(cohort.num_records, 2))
    path = tmp_path / "p.npz"
    np.savez(path, record_ids=cohort.record_ids.astype(str), logits=logits)
    np.testing.assert_allclose(read_predictions(path, cohort).logits[:, 0], logits)
    bad = tmp_path / "objects.npz"
    np.savez(bad, record_ids=cohort.record_ids, logits=logits)  # object array: a pickle
    with pytest.raises(InputError, match="plain-array"):
        read_predictions(bad, cohort)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "have no prediction"),
        ("extra", "not records of cohort"),
        ("three_columns", "3 output column"),
        ("nan", "NaN or infinite"),
        ("repeat", "record ids repeat"),
        ("text", "are not numbers"),
        ("no_id", "Did you mean 'record_ID'"),
    ],
)
def test_bad_prediction_files_are_refused_and_left_untouched(
    cohort, tmp_path: Path, case: str, message: str
) -> None:
    ids = cohort.record_ids.astype(str)
    values = np.random.default_rng(3).normal(size=(cohort.num_records, 2))
    frame = pd.DataFrame({"record_id": ids, "l0": values[:, 0], "l1": values[:, 1]})
    if case == "missing":
        frame = frame.iloc[3:]
    elif case == "extra":
        frame = pd.concat([frame, frame.iloc[:2].assign(record_id=["X1", "X2"])])
    elif case == "three_columns":
        frame["l2"] = 0.0
    elif case == "nan":
        frame.loc[5, "l1"] = np.nan
    elif case == "repeat":
        frame.loc[1, "record_id"] = frame.loc[0, "record_id"]
    elif case == "text":
        frame["note"] = "x"
    elif case == "no_id":
        frame = frame.rename(columns={"record_id": "record_ID"})
    path = tmp_path / f"{case}.csv"
    frame.to_csv(path, index=False)
    before = digest(path)
    with pytest.raises(InputError, match=message) as err:
        read_predictions(path, cohort)
    assert str(path) in str(err.value)
    assert digest(path) == before
    if case == "missing":
        assert f"{ids[0]!s}" in str(err.value)  # names some of the missing records


def test_probabilities_that_do_not_sum_to_one_are_refused(cohort, tmp_path: Path) -> None:
    probs = np.full((cohort.num_records, 2), 0.3)
    path = write_csv(tmp_path / "p.csv", cohort.record_ids, probs)
    with pytest.raises(InputError, match="must sum to 1"):
        read_predictions(path, cohort, kind="probabilities")
    with pytest.raises(InputError, match="outside"):
        read_predictions(
            write_csv(tmp_path / "q.csv", cohort.record_ids, probs + 1.0), cohort,
            kind="probabilities",
        )


def test_kind_resolution_and_conversion() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert resolve_kind(probs, "auto", "f", "k") == "probabilities"
    assert resolve_kind(np.array([[2.0, -1.0], [0.1, 0.3]]), "auto", "f", "k") == "logits"
    logits = as_logits(probs, "probabilities")
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs)
    # probability exactly 0 or 1 still gives finite logits
    assert np.isfinite(as_logits(np.array([[0.0, 1.0]]), "probabilities")).all()
    assert np.isfinite(as_logits(np.array([[1.0]]), "probabilities")).all()


# --------------------------------------------------------------------------- roster


def test_the_roster_marks_its_patients(cohort, tmp_path: Path) -> None:
    chosen = cohort.patient_ids[[0, 3, 3, 7]]
    path = tmp_path / "roster.csv"
    pd.DataFrame({"pid": chosen}).to_csv(path, index=False)
    member = read_roster(path, "pid", cohort)
    assert member.sum() == 3 and member[[0, 3, 7]].all()


@pytest.mark.parametrize(
    ("rows", "message"),
    [(["P00", "nobody"], "not patients of cohort"), ([], "no rows")],
)
def test_a_roster_that_does_not_fit_the_cohort_is_refused(
    cohort, tmp_path: Path, rows: list[str], message: str
) -> None:
    path = tmp_path / "roster.csv"
    pd.DataFrame({"patient_id": pd.Series(rows, dtype=str)}).to_csv(path, index=False)
    with pytest.raises(InputError, match=message):
        read_roster(path, "patient_id", cohort)
    if rows:
        with pytest.raises(InputError, match="column 'pid' not found"):
            read_roster(path, "pid", cohort)


# --------------------------------------------------------------------------- ONNX


def export_onnx(module: torch.nn.Module, width: int, path: Path) -> Path:
    pytest.importorskip("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(3, width),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        )
    return path


def test_onnx_model_outputs_match_the_torch_module(cohort, module, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = export_onnx(module, cohort.inputs.shape[1], tmp_path / "target.onnx")
    out = predict_onnx(path, cohort)
    np.testing.assert_allclose(out.logits[:, 0], module_logits(module, cohort), atol=1e-5)
    assert out.kind == "logits"


def test_onnx_model_with_the_wrong_input_width_is_refused(cohort, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    other = build_module(SPEC, cohort.inputs.shape[1] + 2, 2).eval()
    path = export_onnx(other, cohort.inputs.shape[1] + 2, tmp_path / "wide.onnx")
    with pytest.raises(InputError, match=r"expects input 'x' of shape \['batch', 7\]"):
        predict_onnx(path, cohort)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a valid ONNX model"):
        predict_onnx(broken, cohort)


def test_onnx_model_with_a_fixed_batch_size_is_fed_in_padded_batches(
    cohort, module, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(7, cohort.inputs.shape[1]),), str(path),
                          dynamo=False, input_names=["x"], output_names=["logits"])
    out = predict_onnx(path, cohort)
    np.testing.assert_allclose(out.logits[:, 0], module_logits(module, cohort), atol=1e-5)


# --------------------------------------------------------------------------- state dicts


def test_safetensors_and_pt_state_dicts_give_the_modules_logits(
    cohort, module, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(tmp_path / "target.safetensors"))
    torch.save(state, tmp_path / "target.pt")
    want = module_logits(module, cohort)
    for name in ("target.safetensors", "target.pt"):
        out = predict_state_dict(tmp_path / name, cohort, SPEC)
        np.testing.assert_allclose(out.logits[:, 0], want, rtol=1e-6, atol=1e-6)


def test_a_pickled_module_is_refused_by_weights_only(cohort, module, tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(module, path)  # the whole object, not its state dict
    before = digest(path)
    with pytest.raises(InputError, match="weights_only=True"):
        predict_state_dict(path, cohort, SPEC)
    assert digest(path) == before


def test_a_state_dict_of_another_architecture_is_refused_key_by_key(
    cohort, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    wide = build_module(ModelSpec(family="mlp", width=32, depth=1), cohort.inputs.shape[1], 2)
    path = tmp_path / "wide.safetensors"
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(path))
    with pytest.raises(InputError) as err:
        predict_state_dict(path, cohort, SPEC)
    text = str(err.value)
    assert "does not match [model]" in text and "missing 'hidden.1.weight'" in text
    assert "hidden.0.weight (32, 5) (expected (16, 5))" in text
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 32)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        predict_state_dict(garbage, cohort, SPEC)


def test_miaudit_target_is_an_alias_of_deployed_model() -> None:
    for name in miaudit.deployed_model.__all__:
        assert getattr(miaudit.target, name) is getattr(miaudit.deployed_model, name)
