"""The run directory: what the writer stores, the reader gives back, name for name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit import risk
from miaudit.datasets import make_synthetic_tabular
from miaudit.plan import make_plan
from miaudit.results import layout as L
from miaudit.results.read import load_run
from miaudit.results.store import RunStore, write_npz, write_text
from miaudit.results.write import build_tables, jsonable, write_outputs
from miaudit.scored import AttackResult, attack_figures

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def _written(tmp_path: Path, *, redact: bool) -> tuple[Path, dict]:
    cohort, _ = make_synthetic_tabular(num_patients=60, num_features=4, num_atypical=2,
                                       num_mislabelled=2, max_records_per_patient=3, seed=5)
    plan = make_plan(cohort.num_patients, 8, seed=1)
    membership = plan.record_keep(cohort.patient)
    rng = np.random.default_rng(0)
    results = {}
    for name in ("lira", "loss"):
        scores = rng.normal(size=membership.shape) + membership
        record = risk.record_auc(scores, membership)
        exposure, se = risk.patient_exposure(record, cohort.patient, num_patients=cohort.num_patients)
        metrics = attack_figures(scores, membership, exposure, (0.8, 0.9))
        results[name] = AttackResult(name, np.arange(8), scores, record, exposure, se, metrics)
    performance = pd.DataFrame({"model": np.arange(8), "test_auroc": rng.uniform(0.6, 0.8, 8)})
    summary = {"primary_attack": "lira", "attacks": {n: r.metrics for n, r in results.items()},
               "thresholds": [0.8, 0.9], "redacted": redact, "score": np.float32(0.25)}
    out = tmp_path / "run"
    with RunStore.open(out, identity={"training_hash": "h", "data_fingerprint": "f", "models": 8}) as store:
        write_npz(store.file(L.PLAN), **plan.to_arrays())
        write_text(store.file(L.CONFIG), "[audit]\nmodels = 8\n")
        write_outputs(store, cohort, results, performance, summary, redact=redact)
    records, patients = build_tables(cohort, results, "lira", redact=redact)
    return out, {"cohort": cohort, "plan": plan, "results": results, "summary": summary,
                 "records": records, "patients": patients, "performance": performance}


@pytest.mark.parametrize("redact", [False, True])
def test_what_is_written_is_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redact: bool) -> None:
    monkeypatch.setenv("MIAUDIT_REDACTION_KEY", KEY)
    out, x = _written(tmp_path, redact=redact)
    run = load_run(out)
    pd.testing.assert_frame_equal(run.records, x["records"])
    pd.testing.assert_frame_equal(run.patients, x["patients"])
    pd.testing.assert_frame_equal(run.models, x["performance"])
    assert run.summary == jsonable(x["summary"])
    np.testing.assert_array_equal(run.keep, x["plan"].keep)
    np.testing.assert_array_equal(run.targets, np.arange(8))
    for name, r in x["results"].items():
        # scores are stored as float32: that is the only rounding on the way
        np.testing.assert_array_equal(run.scores(name), r.scores.astype(np.float32).astype(np.float64))
        exposure, se = run.exposure(name)
        np.testing.assert_array_equal(exposure, r.exposure)
        np.testing.assert_array_equal(se, r.exposure_se)
    np.testing.assert_array_equal(run.membership(), x["plan"].record_keep(x["cohort"].patient))
    ids = run.patients[L.PATIENT_ID].astype(str)
    assert ids.str.fullmatch(L.PSEUDONYM.pattern).all() == redact
    if not redact:
        assert list(ids) == [str(i) for i in x["cohort"].patient_ids]
    for name in (L.PATIENTS, L.RECORDS, L.SUMMARY, L.TARGETS, L.scores_file("lira")):
        assert (out / name).stat().st_mode & 0o077 == 0


def test_every_required_file_is_one_the_writer_and_the_store_make(tmp_path: Path) -> None:
    out, _ = _written(tmp_path, redact=False)
    assert all((out / name).is_file() for name in L.REQUIRED)


def test_the_sweep_json_has_no_nan_and_the_summary_keeps_it() -> None:
    value = {"a": float("nan"), "b": [np.float64("inf"), np.int64(3)], "c": np.array([1.5])}
    assert jsonable(value, nonfinite="text") == {"a": None, "b": ["inf", 3], "c": [1.5]}
    kept = jsonable(value)
    assert np.isnan(kept["a"]) and kept["b"] == [float("inf"), 3] and kept["c"] == [1.5]


def test_the_disparity_statistics_write_tables_as_rows_and_every_non_finite_as_null() -> None:
    frame = pd.DataFrame({"group": ["a", "b"], "odds": [np.nan, np.inf], "n": np.array([1, 2])})
    value = {"table": frame, 1: (np.bool_(True), np.float32(0.5)), "other": pd.Timestamp(0)}
    assert jsonable(value, nonfinite="null") == {
        "table": [{"group": "a", "odds": None, "n": 1}, {"group": "b", "odds": None, "n": 2}],
        "1": [True, 0.5],
        "other": "1970-01-01 00:00:00",
    }
    assert jsonable(frame, nonfinite="text")[1]["odds"] == "inf"
