"""The release gate: each check recomputed from the run's files, passing and failing policies."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _fake_run import PLANTED_ATTRIBUTE, PLANTED_GROUP, TOP_FRACTION, make_fake_run
from sklearn.metrics import roc_auc_score

from miaudit.errors import InputError
from miaudit.gate import CheckResult, evaluate, exit_code, format_results, load_policy

# --------------------------------------------------------------------------- oracles


def pairs(run: Path, attack: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat non-NaN (score, IN?) pairs of every target and record, built plainly."""
    scores = np.load(run / "scores" / f"{attack}.npy")
    targets = np.load(run / "scores" / "targets.npy")
    keep = np.load(run / "plan.npz")["keep"]
    patient = pd.read_parquet(run / "records.parquet")["patient"].to_numpy()
    s, y = [], []
    for t, model in enumerate(targets):
        for n in range(scores.shape[1]):
            if not np.isnan(scores[t, n]):
                s.append(float(scores[t, n]))
                y.append(bool(keep[model, patient[n]]))
    return np.array(s), np.array(y)


def brute_tpr_at_fpr(s: np.ndarray, y: np.ndarray, at: float) -> float:
    """Best TPR over all thresholds "score ≥ c" whose FPR is at most ``at``."""
    best = 0.0
    for c in np.unique(s):
        pred = s >= c
        fpr = (pred & ~y).sum() / (~y).sum()
        if fpr <= at:
            best = max(best, (pred & y).sum() / y.sum())
    return float(best)


def brute_max_residual(run: Path, attack: str, fraction: float) -> tuple[float, str, str]:
    """Largest |(O − E)/√E| over all attribute subgroups of the most exposed patients."""
    patients = pd.read_parquet(run / "patients.parquet")
    exposure = patients[f"exposure_{attack}"].to_numpy()
    defined = [p for p in range(len(exposure)) if not np.isnan(exposure[p])]
    ranked = sorted(defined, key=lambda p: (-exposure[p], p))
    k = int(np.ceil(fraction * len(defined) - 1e-9))
    top = set(ranked[:k])
    best = (-1.0, "", "")
    for col in [c for c in patients.columns if c.startswith("attr_")]:
        values = patients[col]
        if pd.api.types.is_numeric_dtype(values):  # numeric: quartile groups, as pandas cuts them
            values = pd.Series(pd.qcut(values, 4, labels=False, duplicates="drop"))
        for g in sorted(set(values)):
            members = [p for p in defined if values[p] == g]
            observed = sum(p in top for p in members)
            expected = k * len(members) / len(defined)
            r = abs(observed - expected) / np.sqrt(expected)
            if r > best[0]:
                best = (r, col.removeprefix("attr_"), str(g))
    return best


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_run(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def figures(run: Path) -> dict[str, float]:
    """The figures a policy checks, recomputed here without miaudit's code."""
    exposure = pd.read_parquet(run / "patients.parquet")["exposure_lira"].to_numpy()
    s, y = pairs(run, "lira")
    residual, attribute, group = brute_max_residual(run, "lira", TOP_FRACTION)
    return {
        "n_0.9": int(np.sum(exposure >= 0.9)),
        "share_0.8": float(np.mean(exposure >= 0.8)),
        "auc": float(roc_auc_score(y, s)),
        "tpr_0.01": brute_tpr_at_fpr(s, y, 0.01),
        "residual": residual,
        "residual_at": f"{attribute}={group}",
        "auroc": float(pd.read_parquet(run / "models.parquet")["test_auroc"].mean()),
    }


def digests(run: Path) -> dict[str, str]:
    return {
        str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(run.rglob("*"))
        if f.is_file()
    }


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def policy_around(f: dict[str, float], delta: float) -> str:
    """A policy whose every limit sits ``delta`` above (or, for the AUROC floor, below) the run."""
    return f"""
[policy]
max_patients_above = {{ threshold = 0.9, count = {f["n_0.9"] + int(np.sign(delta))} }}
max_share_above = {{ threshold = 0.8, share = {f["share_0.8"] + delta} }}
max_aggregate_auc = {f["auc"] + delta}
max_tpr_at_fpr = {{ fpr = 0.01, tpr = {f["tpr_0.01"] + delta} }}
max_subgroup_residual = {f["residual"] + delta}
min_diagnostic_auroc = {f["auroc"] - delta}
"""


# --------------------------------------------------------------------------- checks


def test_the_planted_group_dominates_the_fake_run(figures: dict[str, float]) -> None:
    # the fixture is what the other tests rely on: the average near chance, one group exposed
    assert figures["auc"] < 0.6
    assert figures["n_0.9"] >= 10
    assert figures["residual_at"] == f"{PLANTED_ATTRIBUTE}={PLANTED_GROUP}"
    assert figures["residual"] > 3


def test_a_policy_just_above_every_figure_passes(
    run: Path, figures: dict[str, float], tmp_path: Path
) -> None:
    results = evaluate(run, load_policy(write(tmp_path, policy_around(figures, 1e-4))))
    assert [r.name for r in results] == [
        "max_patients_above(0.9)",
        "max_share_above(0.8)",
        "max_aggregate_auc",
        "max_tpr_at_fpr(0.01)",
        "max_subgroup_residual",
        "min_diagnostic_auroc",
    ]
    assert all(r.passed for r in results), format_results(results)
    assert exit_code(results) == 0
    values = {r.name: r.value for r in results}
    assert values["max_patients_above(0.9)"] == figures["n_0.9"]
    assert values["max_share_above(0.8)"] == pytest.approx(figures["share_0.8"], rel=1e-5)
    assert values["max_aggregate_auc"] == pytest.approx(figures["auc"], rel=1e-5)
    assert values["max_tpr_at_fpr(0.01)"] == pytest.approx(figures["tpr_0.01"], rel=1e-5)
    assert values["max_subgroup_residual"] == pytest.approx(figures["residual"], rel=1e-5)
    assert values["min_diagnostic_auroc"] == pytest.approx(figures["auroc"], rel=1e-5)


def test_a_policy_just_below_every_figure_fails_every_check(
    run: Path, figures: dict[str, float], tmp_path: Path
) -> None:
    results = evaluate(run, load_policy(write(tmp_path, policy_around(figures, -1e-4))))
    assert not any(r.passed for r in results), format_results(results)
    assert exit_code(results) == 1
    residual = next(r for r in results if r.name == "max_subgroup_residual")
    assert f"{PLANTED_ATTRIBUTE}={PLANTED_GROUP}" in residual.message


def test_a_count_equal_to_the_limit_passes(
    run: Path, figures: dict[str, float], tmp_path: Path
) -> None:
    n = figures["n_0.9"]
    text = f"[policy]\nmax_patients_above = {{ threshold = 0.9, count = {n} }}\n"
    (result,) = evaluate(run, load_policy(write(tmp_path, text)))
    assert result.passed and result.value == n and result.limit == n


def test_a_list_of_limits_gives_one_check_each(run: Path, tmp_path: Path) -> None:
    exposure = pd.read_parquet(run / "patients.parquet")["exposure_lira"].to_numpy()
    n99 = int(np.sum(exposure >= 0.99))
    text = f"""
[policy]
max_patients_above = [{{ threshold = 0.99, count = {n99} }}, {{ threshold = 0.5, count = 0 }}]
"""
    results = evaluate(run, load_policy(write(tmp_path, text)))
    assert [(r.name, r.passed) for r in results] == [
        ("max_patients_above(0.99)", True),
        ("max_patients_above(0.5)", False),
    ]
    assert results[1].value == int(np.sum(exposure >= 0.5))
    assert exit_code(results) == 1


def test_the_policy_attack_picks_that_attacks_figures(run: Path, tmp_path: Path) -> None:
    exposure = pd.read_parquet(run / "patients.parquet")["exposure_loss"].to_numpy()
    s, y = pairs(run, "loss")
    text = '[policy]\nattack = "loss"\nmax_patients_above = { threshold = 0.8, count = 0 }\n'
    text += "max_aggregate_auc = 1.0\n"
    count, auc = evaluate(run, load_policy(write(tmp_path, text)))
    assert count.value == int(np.sum(exposure >= 0.8))
    assert auc.value == pytest.approx(roc_auc_score(y, s), rel=1e-5)


def test_a_check_that_cannot_be_measured_fails(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path, with_attributes=False)
    policy = load_policy(write(tmp_path, "[policy]\nmax_subgroup_residual = 100.0\n"))
    (result,) = evaluate(run, policy)
    assert not result.passed and result.value is None
    assert "no subgroup attributes" in result.message


def test_format_results_gives_one_line_per_check_and_a_tally() -> None:
    results = [
        CheckResult("max_aggregate_auc", True, 0.55, 0.6, "fine"),
        CheckResult("max_subgroup_residual", False, None, 3.0, "not evaluated"),
    ]
    text = format_results(results).splitlines()
    assert text[0].startswith("PASS  max_aggregate_auc: 0.55 (limit 0.6)")
    assert text[1].startswith("FAIL  max_subgroup_residual: undefined (limit 3)")
    assert text[2] == "1 of 2 checks passed; 1 failed"


# --------------------------------------------------------------------------- policy errors


def test_an_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nmax_aggregate_auc = 0.6\nmax_patient_above = 3\n")
    with pytest.raises(InputError) as err:
        load_policy(path)
    message = str(err.value)
    assert "policy.max_patient_above" in message and str(path) in message
    assert "max_patients_above" in message  # the accepted keys, so the typo is easy to fix


def test_an_unknown_key_inside_a_limit_is_named_before_the_missing_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nmax_patients_above = { threshold = 0.9, cnt = 3 }\n")
    with pytest.raises(InputError, match=r"unknown key 'policy\.max_patients_above\[0\]\.cnt'"):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[policy\n", "not valid TOML"),
        ("max_aggregate_auc = 0.6\n", "unknown key 'max_aggregate_auc'"),
        ("[policy]\n", "sets no limit"),
        ('[policy]\nmax_aggregate_auc = "low"\n', "policy.max_aggregate_auc"),
        ("[policy]\nmax_share_above = { threshold = 0.9, share = 2 }\n", "share"),
    ],
)
def test_bad_policies_are_input_errors_that_name_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_policy(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_a_missing_policy_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="policy file not found"):
        load_policy(tmp_path / "nope.toml")


def test_an_attack_the_run_lacks_is_an_input_error(run: Path, tmp_path: Path) -> None:
    path = write(tmp_path, '[policy]\nattack = "rmia"\nmax_aggregate_auc = 0.6\n')
    with pytest.raises(InputError, match=r"'rmia' is not in the run .* lira, loss"):
        evaluate(run, load_policy(path))


def test_a_folder_that_is_not_a_run_is_an_input_error(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "[policy]\nmax_aggregate_auc = 0.6\n"))
    with pytest.raises(InputError, match=r"missing summary\.json"):
        evaluate(tmp_path, policy)


# --------------------------------------------------------------------------- command line


def test_the_gate_command_prints_each_check_and_exits_1_when_one_fails(
    run: Path, tmp_path: Path
) -> None:
    policy = write(
        tmp_path,
        "[policy]\nmax_patients_above = { threshold = 0.9, count = 0 }\nmax_aggregate_auc = 0.99\n",
    )
    before = digests(run)
    r = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "gate", str(run), "--policy", str(policy)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "max_patients_above(0.9)" in r.stdout and "max_aggregate_auc" in r.stdout
    assert "Traceback" not in r.stderr
    assert digests(run) == before  # the gate only reads the run


def tiny_audit(out: Path, **audit: object) -> dict:
    """A real 16-model audit of a small synthetic cohort (seconds): its summary."""
    from miaudit.audit import run_audit
    from miaudit.config import parse_config

    config = parse_config(
        {
            "cohort": {"synthetic": {"num_patients": 200, "num_features": 6, "seed": 3}},
            "model": {"family": "logistic"},
            "training": {"epochs": 20},
            "audit": {"models": 16, "attacks": ["loss"], **audit},
            "report": {"html": False},
        }
    )
    return run_audit(config, out).summary


def test_min_models_and_beyond_chance_checks_on_a_real_run(tmp_path: Path) -> None:
    out = tmp_path / "real"
    summary = tiny_audit(out)
    beyond = summary["attacks"]["loss"]["chance"]["beyond_chance"]
    passing = write(tmp_path, f"[policy]\nmin_models = 16\nmax_patients_beyond_chance = {beyond}\n")
    assert [r.passed for r in evaluate(out, load_policy(passing))] == [True, True]
    failing = write(
        tmp_path, f"[policy]\nmin_models = 32\nmax_patients_beyond_chance = {beyond - 1}\n", "f.toml"
    ) if beyond else write(tmp_path, "[policy]\nmin_models = 32\n", "f.toml")
    checks = evaluate(out, load_policy(failing))
    assert not any(r.passed for r in checks)
    assert checks[0].value == 16 and "chance" in checks[0].message


def test_beyond_chance_fails_a_run_without_a_null(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    tiny_audit(out, null_permutations=0)
    policy = write(tmp_path, "[policy]\nmax_patients_beyond_chance = 1000\n")
    (check,) = evaluate(out, load_policy(policy))
    assert not check.passed and "null_permutations" in check.message


@pytest.mark.parametrize("record", [{"complete": False}, {}])
def test_an_incomplete_run_is_refused(tmp_path: Path, record: dict) -> None:
    import json

    run = make_fake_run(tmp_path)
    data = json.loads((run / "run.json").read_text())
    data.pop("complete")
    (run / "run.json").write_text(json.dumps({**data, **record}))
    policy = write(tmp_path, "[policy]\nmax_aggregate_auc = 1.0\n")
    with pytest.raises(InputError, match="the run is not complete"):
        evaluate(run, load_policy(policy))
