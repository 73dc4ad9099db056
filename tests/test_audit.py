"""The audit end to end on a synthetic cohort with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _margins import SEED, at_least, planted_or_decoy
from sklearn.metrics import roc_auc_score

from miaudit.audit import load_cohort, run_audit
from miaudit.config import parse_config
from miaudit.datasets import make_synthetic_tabular
from miaudit.errors import InputError

SYNTH = {"num_patients": 400, "num_features": 10, "num_atypical": 6, "num_mislabelled": 6,
         "seed": 1 + SEED}


def small_config(**audit: object) -> object:
    return parse_config(
        {
            "cohort": {"synthetic": SYNTH},
            "model": {"family": "mlp", "width": 64, "depth": 2},
            "training": {"epochs": 40, "batch_size": 64, "learning_rate": 3e-3},
            "audit": {"models": 16, "group_size": 6, "attacks": ["lira", "rmia", "loss"], **audit},
            "report": {"html": False},
        }
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("runs") / "synthetic"
    return out, run_audit(small_config(), out)


def test_planted_patients_are_the_most_exposed(finished: tuple[Path, object]) -> None:
    _, result = finished
    cohort, planted = make_synthetic_tabular(**SYNTH)
    memorised = planted_or_decoy(
        np.concatenate([planted.atypical_patients, cohort.patient[planted.mislabelled_records]]),
        cohort.num_patients,
    )
    patients = result.patients
    order = patients.sort_values("exposure", ascending=False)["patient"].to_numpy()
    top = set(order[: 2 * len(memorised)].tolist())
    hit = len(top & set(memorised.tolist())) / len(memorised)
    at_least("share of memorised patients in the top 2k", hit, 0.4, strict=False)  # chance: 0.06
    is_memorised = patients["patient"].isin(memorised).to_numpy()
    at_least("AUC of exposure, memorised vs others",
             roc_auc_score(is_memorised, patients["exposure"].to_numpy()), 0.6)
    planted_mean = patients.loc[memorised, "exposure"].mean()
    others = patients.drop(index=memorised)["exposure"].mean()
    at_least("mean exposure, memorised - others", planted_mean - others, 0.1)
    # the average hides them: aggregate attack AUC stays far below the planted patients' exposure
    aggregate = result.summary["attacks"]["lira"]["aggregate"]["auc"]
    at_least("memorised mean exposure - aggregate LiRA AUC", planted_mean - aggregate, 0.03)


def test_outputs_are_complete_and_consistent(finished: tuple[Path, object]) -> None:
    out, result = finished
    for name in ("patients.parquet", "patients.csv", "records.parquet", "models.parquet",
                 "summary.json", "config.toml", "plan.npz", "scores/lira.npy"):
        assert (out / name).is_file(), name
    patients = pd.read_parquet(out / "patients.parquet")
    records = pd.read_parquet(out / "records.parquet")
    assert len(patients) == result.summary["cohort"]["patients"]
    assert len(records) == result.summary["cohort"]["records"]
    # patient exposure = max over that patient's records
    best = records.groupby("patient")["auc_lira"].max()
    np.testing.assert_allclose(patients.set_index("patient")["exposure_lira"], best)
    # every model trained on its own half and generalises
    models = pd.read_parquet(out / "models.parquet")
    assert len(models) == 16
    at_least("mean test AUROC", models["test_auroc"].mean(), 0.7)
    at_least("share of models with train > test accuracy",
             (models["train_accuracy"] > models["test_accuracy"]).mean(), 0.9)


def test_rerun_resumes_and_gives_identical_numbers(
    finished: tuple[Path, object], tmp_path: Path
) -> None:
    out, result = finished
    # an interrupted run: stop after the first group of models
    crashed = tmp_path / "crashed"

    def crash(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(small_config(), crashed, after_shard=crash)
    assert len(list((crashed / "shards").glob("models-*.npz"))) == 1
    resumed = run_audit(small_config(), crashed)
    pd.testing.assert_frame_equal(resumed.patients, result.patients)
    a = np.load(out / "scores" / "rmia.npy")
    b = np.load(crashed / "scores" / "rmia.npy")
    np.testing.assert_array_equal(a, b)


def test_a_run_with_another_recipe_is_refused(finished: tuple[Path, object]) -> None:
    out, _ = finished
    before = sorted(p.name for p in (out / "shards").iterdir())
    cfg = small_config(seed=7)
    with pytest.raises(InputError, match="--force"):
        run_audit(cfg, out)
    assert sorted(p.name for p in (out / "shards").iterdir()) == before


def test_cohort_from_a_users_csv(tmp_path: Path) -> None:
    cohort, _ = make_synthetic_tabular(num_patients=60, num_features=4, seed=0)
    frame = pd.DataFrame(cohort.inputs[:, :4], columns=["a", "b", "c", "d"])
    frame["y"] = np.where(cohort.labels == 1, "yes", "no")
    frame["pid"] = cohort.patient_ids[cohort.patient]
    frame["sex"] = cohort.attributes["sex"].to_numpy()
    path = tmp_path / "visits.csv"
    frame.to_csv(path, index=False)
    cfg = parse_config(
        {"cohort": {"path": str(path), "label": "y", "patient_id": "pid", "attributes": ["sex"]}}
    )
    loaded = load_cohort(cfg.cohort)
    assert loaded.num_patients == cohort.num_patients
    assert list(loaded.attributes.columns) == ["sex"]


def test_holdout_patients_get_no_exposure_and_measure_diagnostics(tmp_path: Path) -> None:
    cfg = small_config(holdout_fraction=0.25, attacks=["lira", "rmia", "rmia_online"])
    result = run_audit(cfg, tmp_path / "held")
    plan = np.load(tmp_path / "held" / "plan.npz")
    holdout = plan["holdout"]
    assert holdout.sum() == 100
    exposure = result.patients["exposure"].to_numpy()
    assert np.isnan(exposure[holdout]).all() and not np.isnan(exposure[~holdout]).any()
    assert not plan["keep"][:, holdout].any()
    online = result.attacks["rmia_online"].exposure  # the held-out patients are its z
    assert np.isnan(online[holdout]).all() and np.isfinite(online[~holdout]).all()
    at_least("mean AUROC on held-out patients", result.summary["diagnostic"]["auroc_mean"], 0.7)


#: The summary's figures come from the float64 scores in memory, the findings from the
#: float32 scores on disk; the rounding moves an AUC by ~1e-6 (measured on RHC), never 1e-4.
STORED_AUC_TOLERANCE = 1e-4


def test_the_stored_summary_agrees_with_the_findings_of_the_run_files(
    finished: tuple[Path, object],
) -> None:
    from miaudit.findings import attack_findings
    from miaudit.results.read import load_run

    out, _ = finished
    run = load_run(out)
    for name in run.attacks:
        found = attack_findings(run, name)
        stored = run.summary["attacks"][name]
        assert abs(stored["aggregate"]["auc"] - found.auc) <= STORED_AUC_TOLERANCE
        assert stored["high_risk"] == found.high_risk
        assert stored["per_target"]["auc_mean"] == pytest.approx(
            found.metrics["per_target"]["auc_mean"], abs=STORED_AUC_TOLERANCE
        )


def test_the_run_says_what_chance_gives_and_finds_memorised_patients_beyond_it(
    finished: tuple[Path, object],
) -> None:
    from miaudit.findings import attack_findings
    from miaudit.results.read import load_run

    out, result = finished
    run = load_run(out)
    records = pd.read_parquet(out / "records.parquet")
    patients = pd.read_parquet(out / "patients.parquet")
    for name in run.attacks:
        stored = result.summary["attacks"][name]["chance"]
        assert stored["permutations"] == 20 and stored["fdr"] == 0.05
        null = np.load(out / "scores" / f"{name}.null.npz", allow_pickle=False)
        assert null["auc"].shape == (20, len(records))
        found = attack_findings(run, name).chance
        assert found is not None
        assert found.summary() == stored  # the report's figures are the summary's
        q, p = patients[f"q_{name}"].to_numpy(), patients[f"p_{name}"].to_numpy()
        ok = ~np.isnan(p)
        assert (q[ok] >= p[ok] - 1e-15).all() and ((p[ok] > 0) & (p[ok] <= 1)).all()
        assert stored["beyond_chance"] == int(np.sum(q[ok] <= 0.05))
        # the null counts lie below the observed ones on a cohort that leaks
        assert stored["high_risk_null"]["0.8"] < result.summary["attacks"][name]["high_risk"]["0.8"]
    np.testing.assert_array_equal(patients["q_value"], patients["q_lira"])
    # the memorised patients have the smallest p-values, and some are found beyond chance
    # (the models also leak ordinary patients, so not every discovery is a planted one)
    cohort, planted = make_synthetic_tabular(**SYNTH)
    memorised = planted_or_decoy(
        np.concatenate([planted.atypical_patients, cohort.patient[planted.mislabelled_records]]),
        cohort.num_patients,
    )
    is_memorised = patients["patient"].isin(memorised).to_numpy()
    p_lira = patients["p_lira"].to_numpy()
    at_least("AUC of -p, memorised vs others", roc_auc_score(is_memorised, -p_lira), 0.7)
    found_memorised = int(np.sum(patients["q_lira"].to_numpy()[is_memorised] <= 0.05))
    at_least("memorised patients found beyond chance", found_memorised, 2, strict=False)


def test_without_permutations_the_run_has_no_chance_baseline(tmp_path: Path) -> None:
    from miaudit.findings import attack_findings
    from miaudit.results.read import load_run

    out = tmp_path / "plain"
    result = run_audit(small_config(null_permutations=0, attacks=["loss"]), out)
    assert "chance" not in result.summary["attacks"]["loss"]
    assert not (out / "scores" / "loss.null.npz").exists()
    assert "q_value" not in result.patients.columns
    assert attack_findings(load_run(out), "loss").chance is None
