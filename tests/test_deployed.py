"""Auditing one deployed model from its outputs, end to end and part by part."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _margins import SEED, at_least, at_most, planted_or_decoy
from scipy import stats

from miaudit.attacks import RmiaOptions, rmia_target
from miaudit.cohort import Cohort
from miaudit.config import parse_config, to_toml
from miaudit.datasets import make_synthetic, make_synthetic_tabular
from miaudit.deployed import (
    ROLE_MEMBER,
    ROLE_NONMEMBER,
    ROLE_POPULATION,
    _identity,
    choose_attack,
    null_rates,
    parse_deployed_config,
    patient_max,
    patient_p_values,
    reference_plan,
    rmia_p_values,
    run_deployed,
    split_roles,
)
from miaudit.errors import InputError
from miaudit.models import ModelSpec, build_module
from miaudit.runner import training_job
from miaudit.training import TrainingSpec, train_group
from miaudit.training.data import TrainingData
from miaudit.training.stacked import train_stacked

SYN = {"num_patients": 600, "num_features": 10, "num_atypical": 8, "num_mislabelled": 8,
       "max_records_per_patient": 2, "seed": 3 + SEED}
MODEL = ModelSpec(family="mlp", width=64, depth=2)
TRAINING = TrainingSpec(epochs=40, batch_size=32, learning_rate=3e-3)
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


# --------------------------------------------------------------------------- oracles


def null_rates_by_loop(scores: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr = np.full(scores.size, np.nan)
    exposure = np.full(scores.size, np.nan)
    for i, s in enumerate(scores):
        if np.isnan(s):
            continue
        others = [scores[j] for j in range(scores.size) if null[j] and j != i and not np.isnan(scores[j])]
        if not others:
            continue
        ge = sum(o >= s for o in others)
        fpr[i] = (1 + ge) / (1 + len(others))
        exposure[i] = (sum(o < s for o in others) + 0.5 * sum(o == s for o in others)) / len(others)
    return fpr, exposure


def test_null_rates_match_a_plain_loop_with_ties_and_gaps() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)
    scores[rng.random(300) < 0.05] = np.nan
    null = rng.random(300) < 0.5
    fpr, exposure, n = null_rates(scores, null)
    want_fpr, want_exposure = null_rates_by_loop(scores, null)
    np.testing.assert_allclose(fpr, want_fpr, equal_nan=True)
    np.testing.assert_allclose(exposure, want_exposure, equal_nan=True)
    defined_null = null & ~np.isnan(scores)
    assert n[~null & ~np.isnan(scores)][0] == defined_null.sum()
    assert n[defined_null][0] == defined_null.sum() - 1


def test_patient_aggregates_match_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    patient = rng.integers(0, 40, size=150)
    values = rng.random(150)
    values[rng.random(150) < 0.2] = np.nan
    got_max = patient_max(values, patient, 45)
    got_p = patient_p_values(values, patient, 45)
    for p in range(45):
        mine = [v for v, q in zip(values, patient, strict=True) if q == p and not np.isnan(v)]
        if not mine:
            assert np.isnan(got_max[p]) and np.isnan(got_p[p])
            continue
        assert got_max[p] == max(mine)
        assert got_p[p] == pytest.approx(min(1.0, len(mine) * min(mine)))


def test_rmia_p_values_match_the_ratio_comparison_written_out() -> None:
    """p(x) = (1 + #z with ratio ≥ x's) / (1 + #z), offline RMIA's ratio computed by hand."""
    rng = np.random.default_rng(2)
    n, r, a = 200, 3, 0.4
    population = np.zeros(n, dtype=bool)
    population[:120] = True
    keep = np.zeros((r, n), dtype=bool)
    keep[:, :120] = rng.random((r, 120)) < 0.5
    keep[0, :2] = False  # every population record keeps ≥ 1 OUT reference ...
    keep[:, 2] = True  # ... except record 2, which has none and is no valid z
    refs = rng.uniform(0.05, 0.95, size=(r, n))
    target = np.clip(refs.mean(0) + rng.normal(0, 0.1, n), 0.01, 0.99)
    scores = rmia_target(
        target[:, None], refs[:, :, None], keep, population=population, options=RmiaOptions(a=a)
    )
    got = rmia_p_values(scores, population)

    def ratio(i: int) -> float:
        out = [refs[m, i] for m in range(r) if not keep[m, i]]
        if not out:
            return np.nan
        return target[i] / (0.5 * ((1 + a) * np.mean(out) + (1 - a)))

    z = [ratio(i) for i in range(n) if population[i] and not np.isnan(ratio(i))]
    for i in range(120, n):
        want = (1 + sum(v >= ratio(i) for v in z)) / (1 + len(z))
        assert got[i] == pytest.approx(want)
    assert np.isnan(got[:120]).all()


def test_a_non_members_fpr_is_a_conformal_p_value() -> None:
    """With continuous scores the n non-members' fpr are 1/n, ..., n/n; members from the same
    distribution (no membership signal) get fpr ≤ α with probability about α."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=3000)
    null = np.zeros(3000, dtype=bool)
    null[:1000] = True
    fpr, _, _ = null_rates(scores, null)
    np.testing.assert_allclose(np.sort(fpr[null]), np.arange(1, 1001) / 1000)
    for alpha in (0.01, 0.05, 0.1):
        share = np.mean(fpr[~null] <= alpha)
        sd = np.sqrt(alpha * (1 - alpha) / 2000)
        assert abs(share - alpha) < 4 * sd + 1e-3


# --------------------------------------------------------------------------- roles and plans


def test_roles_split_the_non_roster_patients_by_seed() -> None:
    member = np.zeros(100, dtype=bool)
    member[:40] = True
    role = split_roles(member, fraction=0.25, seed=5)
    assert (role[:40] == ROLE_MEMBER).all()
    assert (role == ROLE_POPULATION).sum() == 15 and (role == ROLE_NONMEMBER).sum() == 45
    np.testing.assert_array_equal(role, split_roles(member, fraction=0.25, seed=5))
    assert not np.array_equal(role, split_roles(member, fraction=0.25, seed=6))
    explicit = np.zeros(100, dtype=bool)
    explicit[90:] = True
    role = split_roles(member, fraction=0.25, seed=5, population=explicit)
    assert (role[90:] == ROLE_POPULATION).all() and (role[40:90] == ROLE_NONMEMBER).all()


@pytest.mark.parametrize(
    ("members", "fraction", "message"),
    [(0, 0.5, "lists none"), (100, 0.5, "no patient the target never saw"),
     (97, 0.5, "both need at least 2")],
)
def test_rosters_that_leave_nothing_to_compare_are_refused(
    members: int, fraction: float, message: str
) -> None:
    member = np.zeros(100, dtype=bool)
    member[:members] = True
    with pytest.raises(InputError, match=message):
        split_roles(member, fraction=fraction, seed=0)


def test_offline_references_never_train_on_a_candidate() -> None:
    member = np.zeros(200, dtype=bool)
    member[:80] = True
    role = split_roles(member, fraction=0.5, seed=0)
    keep = reference_plan(role, 3, online=False, seed=0)
    assert keep.shape == (4, 200)
    assert not keep[:, role != ROLE_POPULATION].any()
    np.testing.assert_array_equal(keep.sum(axis=1), [30, 30, 30, 30])  # half of 60 each


def test_online_references_put_every_patient_in_for_half() -> None:
    member = np.zeros(200, dtype=bool)
    member[:80] = True
    role = split_roles(member, fraction=0.5, seed=0)
    keep = reference_plan(role, 16, online=True, seed=0)
    assert (keep[:16].sum(axis=0) == 8).all()
    neither = keep[16]
    assert not neither[role != ROLE_POPULATION].any() and neither.sum() == 30
    with pytest.raises(InputError, match="even number"):
        reference_plan(role, 5, online=True, seed=0)


def test_auto_takes_rmia_below_16_references_and_online_lira_from_16() -> None:
    assert choose_attack("auto", 1)[0] == "rmia_offline"
    assert choose_attack("auto", 15)[0] == "rmia_offline"
    assert choose_attack("auto", 16)[0] == "lira_online"
    assert choose_attack("auto", 17)[0] == "rmia_offline"  # odd: no balanced online plan
    assert choose_attack("lira_offline", 16) == ("lira_offline", "chosen in the config")


# --------------------------------------------------------------------------- the config

TARGET = {"target": {"predictions": "outputs.csv", "roster": "roster.csv"}, "references": {"models": 4}}
TABLE = {"synthetic": {"num_patients": 40, "seed": 1}}
IMAGE = {"synthetic": {"modality": "image", "num_patients": 40, "seed": 1}}


def test_a_deployed_recipe_has_views_and_the_image_default() -> None:
    config = parse_deployed_config({**TARGET, "cohort": IMAGE, "views": {"flip": True, "shift": 2}})
    assert config.model.family == "wrn"  # the image family without [model] family, as in audit
    assert (config.views.flip, config.views.shift) == (True, 2)
    text = to_toml(config)
    assert "[views]\nflip = true\nshift = 2\n" in text
    assert parse_deployed_config(tomllib.loads(text)).views == config.views
    cohort, _ = make_synthetic(config.cohort.synthetic)
    keep = np.zeros((2, cohort.num_records), dtype=bool)
    assert training_job(config, cohort, keep, seed=0).views == config.views  # references use them


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"cohort": TABLE, "views": {"flip": True}}, "tables have one view"),
        ({"cohort": TABLE, "model": {"family": "wrn"}}, "does not take table records"),
        ({"cohort": IMAGE, "model": {"family": "mlp"}}, "does not take image records"),
        ({"cohort": IMAGE, "privacy": {"epsilon": 3.0}}, "DP-SGD is implemented for the table"),
    ],
)
def test_a_deployed_recipe_is_checked_as_an_audits_is(tables: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as deployed_error:
        parse_deployed_config({**TARGET, **tables})
    with pytest.raises(InputError, match=message) as audit_error:
        parse_config(tables)
    words = [str(e.value).partition("invalid config — ")[2] for e in (deployed_error, audit_error)]
    assert words[0] == words[1]  # one check, one message


def test_default_views_leave_a_deployed_runs_config_and_identity_as_before() -> None:
    unset = parse_deployed_config({**TARGET, "cohort": TABLE})
    default = parse_deployed_config({**TARGET, "cohort": TABLE, "views": {"flip": False, "shift": 0}})
    assert to_toml(unset) == to_toml(default)
    assert "views" not in to_toml(unset)
    cohort, _ = make_synthetic_tabular(num_patients=40, seed=1)
    role = (np.arange(40) % 3).astype(np.int8)
    identity = _identity(unset, cohort, role, online=False)
    assert _identity(default, cohort, role, online=False) == identity
    # computed by the code before DeployedConfig had [views] (commit 93ac5d5), so runs made
    # then still resume
    assert identity["training_hash"] == (
        "4e0b34124f18866a62d8184f0ec6448417562c84b9a1f3bea78d69e8452be74d"
    )
    image = parse_deployed_config({**TARGET, "cohort": IMAGE})
    shifted = parse_deployed_config({**TARGET, "cohort": IMAGE, "views": {"shift": 2}})
    assert _identity(image, cohort, role, online=False) != _identity(shifted, cohort, role, online=False)


# --------------------------------------------------------------------------- end to end


def train_target(cohort: Cohort, member: np.ndarray) -> tuple[np.ndarray, torch.nn.Module]:
    """The engine's logits for a target trained on ``member`` patients, and the same model
    as a plain module (from the engine's stacked parameters)."""
    keep = member[cohort.patient][None]
    logits = train_group(MODEL, TRAINING, cohort.inputs, cohort.labels, keep, [1000], seed=7)
    data = TrainingData(inputs=cohort.inputs, labels=cohort.labels, keep=keep,
                        model_index=[1000], seed=7, num_classes=2)
    params, _ = train_stacked(MODEL, TRAINING, data, torch.device("cpu"), max_models=64)
    module = build_module(MODEL, cohort.inputs.shape[1], 2).eval()
    with torch.no_grad():
        for (_, p), value in zip(module.named_parameters(), params, strict=True):
            p.copy_(value[0])
        again = module(torch.from_numpy(cohort.inputs)).numpy()
    np.testing.assert_allclose(again, logits[0, :, 0], atol=1e-5)
    return logits[0, :, 0], module


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("deployed")
    cohort, planted = make_synthetic_tabular(**SYN)
    member = np.zeros(cohort.num_patients, dtype=bool)
    member[np.random.default_rng(0).permutation(cohort.num_patients)[:300]] = True
    logits, module = train_target(cohort, member)
    frame = pd.DataFrame(logits, columns=["negative", "positive"])
    frame.insert(0, "record_id", cohort.record_ids)
    frame.to_csv(folder / "target_logits.csv", index=False)
    pd.DataFrame({"patient_id": cohort.patient_ids[member]}).to_csv(folder / "roster.csv", index=False)
    config = {
        "cohort": {"synthetic": SYN},
        "target": {"predictions": str(folder / "target_logits.csv"), "roster": str(folder / "roster.csv")},
        "references": {"models": 16},
        "model": MODEL.model_dump(),
        "training": TRAINING.model_dump(),
        "report": {"html": False},
    }
    result = run_deployed(parse_deployed_config(config), folder / "run")
    memorable = planted_or_decoy(
        np.r_[planted.atypical_patients, cohort.patient[planted.mislabelled_records]],
        cohort.num_patients,
    )
    return {"folder": folder, "cohort": cohort, "member": member, "module": module,
            "config": config, "result": result, "memorable": memorable}


def test_included_memorable_patients_are_flagged_and_excluded_ones_are_not(deployed: dict) -> None:
    result, member = deployed["result"], deployed["member"]
    patients = result.patients.set_index("patient")
    memorable = deployed["memorable"]
    included = memorable[member[memorable]]
    excluded = memorable[patients.loc[memorable, "role"].to_numpy() == "non-member"]
    assert included.size >= 6 and excluded.size >= 2
    flagged = patients.loc[included, "fpr"].to_numpy() <= 0.05
    at_least("share of included memorable patients at FPR ≤ 5 %", flagged.mean(), 0.5,
             strict=False)
    # excluded ones are non-members: flagged at 5 % FPR no more often than chance (each has
    # a 5 % chance, so "none of them" would fail by chance alone for one seed in three)
    excluded_flagged = int((patients.loc[excluded, "fpr"].to_numpy() <= 0.05).sum())
    at_least("binomial p of the excluded memorable patients flagged at 5 % FPR",
             stats.binom.sf(excluded_flagged - 1, excluded.size, 0.05), 0.001)
    # the aggregate hides them: far more members flagged than the AUC suggests
    m = result.summary["attacks"][result.attack]
    assert result.attack == "lira_online"
    at_least("patient-level AUC", m["patient"]["auc"], 0.55)
    at_most("patient-level AUC", m["patient"]["auc"], 0.85)
    at_least("members flagged at 1 % FPR / included memorable",
             m["flagged"]["0.01"] / included.size, 0.5, strict=False)


def test_the_run_files_agree_with_each_other(deployed: dict) -> None:
    result, cohort, member = deployed["result"], deployed["cohort"], deployed["member"]
    run = result.run_dir
    patients = pd.read_parquet(run / "patients.parquet")
    records = pd.read_parquet(run / "records.parquet")
    scores = np.load(run / "scores" / "lira_online.npy")
    assert scores.shape == (1, cohort.num_records)
    population = patients["role"].to_numpy() == "population"
    assert np.isnan(patients.loc[population, ["score", "fpr", "exposure"]].to_numpy()).all()
    assert not np.isnan(patients.loc[~population, ["score", "fpr", "exposure"]].to_numpy()).any()
    np.testing.assert_array_equal(patients["member"].to_numpy(), member)
    # patient score = max over its records; fpr and exposure recomputed by the plain loop
    best = records.groupby("patient")["score"].max()
    np.testing.assert_allclose(patients["score"], best, equal_nan=True)
    fpr, exposure = null_rates_by_loop(
        patients["score"].to_numpy(), patients["role"].to_numpy() == "non-member"
    )
    np.testing.assert_allclose(patients["fpr"], fpr, equal_nan=True)
    np.testing.assert_allclose(patients["exposure"], exposure, equal_nan=True)
    fpr, exposure = null_rates_by_loop(
        records["score"].to_numpy(), records["role"].to_numpy() == "non-member"
    )
    np.testing.assert_allclose(records["fpr"], fpr, equal_nan=True)
    np.testing.assert_allclose(records["exposure"], exposure, equal_nan=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kind"] == "deployed" and summary["roles"]["members"] == member.sum()
    assert summary["flag_levels"] == [0.1, 0.01, 0.001]
    flagged = (patients["member"] & (patients["fpr"] <= 0.01)).sum()
    assert summary["attacks"]["lira_online"]["flagged"]["0.01"] == flagged
    assert not summary["confound"]["confounded"]
    # only members can be exposed: the column the report's subgroups and the gate read
    only = patients["exposure_lira_online"].to_numpy()
    np.testing.assert_array_equal(only[member], patients["exposure"].to_numpy()[member])
    assert np.isnan(only[~member]).all()
    models = pd.read_parquet(run / "models.parquet")
    assert models["role"].tolist() == ["target"]
    references = pd.read_parquet(run / "references.parquet")
    assert references["role"].tolist() == ["reference"] * 16 + ["neither"]
    plan = np.load(run / "plan.npz")
    np.testing.assert_array_equal(plan["keep"][0], member)
    assert plan["keep"].shape == (18, cohort.num_patients)  # target, 16 references, neither
    for f in run.rglob("*"):
        if f.is_file():
            assert f.stat().st_mode & 0o077 == 0, f


def test_the_release_gate_reads_a_deployed_run_as_members_at_risk(
    deployed: dict, tmp_path: Path
) -> None:
    from miaudit.gate import evaluate, load_policy

    policy = tmp_path / "policy.toml"
    policy.write_text(
        "[policy]\nmax_patients_above = { threshold = 0.99, count = 1000 }\n"
        "min_diagnostic_auroc = 0.5\n"
    )
    checks = {c.name: c for c in evaluate(deployed["result"].run_dir, load_policy(policy))}
    patients = deployed["result"].patients
    members_high = int((patients["member"] & (patients["exposure"] >= 0.99)).sum())
    assert checks["max_patients_above(0.99)"].value == members_high
    assert checks["min_diagnostic_auroc"].value == pytest.approx(
        deployed["result"].summary["target"]["test_auroc"]
    )


def test_onnx_and_safetensors_give_the_scores_of_the_predictions_file(deployed: dict) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from safetensors.torch import save_file

    folder, module, cohort = deployed["folder"], deployed["module"], deployed["cohort"]
    onnx_path = folder / "target.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, cohort.inputs.shape[1]),), str(onnx_path),
                          dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    save_file({k: v.contiguous() for k, v in module.state_dict().items()},
              str(folder / "target.safetensors"))
    want = deployed["result"].patients
    for name in ("target.onnx", "target.safetensors"):
        config = json.loads(json.dumps(deployed["config"]))
        config["target"] = {"model": str(folder / name), "roster": str(folder / "roster.csv")}
        config["confound"] = {"classifier": "none"}
        out = folder / f"run-{name}"
        # the same references (same recipe, data and roles): the copy resumes, nothing retrains
        shutil.copytree(deployed["result"].run_dir, out)
        got = run_deployed(parse_deployed_config(config), out).patients
        np.testing.assert_allclose(got["score"], want["score"], rtol=1e-4, atol=1e-4)
        agree = np.isclose(got["fpr"], want["fpr"], equal_nan=True)
        assert agree.mean() > 0.99, name


def test_the_same_run_resumes_and_a_changed_roster_is_refused(deployed: dict, tmp_path: Path) -> None:
    folder, result = deployed["folder"], deployed["result"]
    shards = {p.name: p.stat().st_mtime_ns for p in (result.run_dir / "shards").iterdir()}
    again = run_deployed(parse_deployed_config(deployed["config"]), result.run_dir)
    assert {p.name: p.stat().st_mtime_ns for p in (result.run_dir / "shards").iterdir()} == shards
    pd.testing.assert_frame_equal(again.patients, result.patients)
    roster = pd.read_csv(folder / "roster.csv").iloc[1:]
    roster.to_csv(tmp_path / "shorter.csv", index=False)
    config = json.loads(json.dumps(deployed["config"]))
    config["target"]["roster"] = str(tmp_path / "shorter.csv")
    with pytest.raises(InputError, match="--force"):
        run_deployed(parse_deployed_config(config), result.run_dir)
    assert {p.name: p.stat().st_mtime_ns for p in (result.run_dir / "shards").iterdir()} == shards


def miaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd), "MIAUDIT_REDACTION_KEY": KEY}
    return subprocess.run([sys.executable, "-m", "miaudit.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def test_the_command_line_audits_from_the_file_and_rebuilds_the_report(deployed: dict) -> None:
    folder = deployed["folder"]
    toml = folder / "deployed.toml"
    toml.write_text(
        "[cohort.synthetic]\n"
        + "".join(f"{k} = {v}\n" for k, v in SYN.items())
        + '\n[target]\npredictions = "target_logits.csv"\nroster = "roster.csv"\n'
        + "\n[references]\nmodels = 16\n"
        + '\n[model]\nfamily = "mlp"\nwidth = 64\ndepth = 2\n'
        + "\n[training]\nepochs = 40\nbatch_size = 32\nlearning_rate = 3e-3\n"
    )
    # a copy of the API run: same recipe, data and roles, so its references are reused
    out = folder / "run-cli"
    shutil.copytree(deployed["result"].run_dir, out)
    r = miaudit("audit-model", str(toml), "--out", str(out), "--redact", cwd=folder)
    assert r.returncode == 0, r.stderr
    assert "Members flagged at FPR ≤ 1%" in r.stdout
    assert "no confound detected" in r.stdout and "Most exposed members" in r.stdout
    patients = pd.read_csv(out / "patients.csv")
    assert patients["patient_id"].str.fullmatch(r"P-[0-9a-f]{12}").all()
    report = (out / "report.html").read_bytes()
    for real in deployed["cohort"].patient_ids[:20]:
        assert f">{real}<".encode() not in report
    before = report
    r = miaudit("report", str(out), cwd=folder)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").read_bytes() == before


def test_bad_input_on_the_command_line_exits_2_and_creates_nothing(deployed: dict) -> None:
    from typer.testing import CliRunner

    from miaudit.cli import app

    folder = deployed["folder"]
    pd.DataFrame({"patient_id": ["P000", "stranger"]}).to_csv(folder / "bad_roster.csv", index=False)
    toml = folder / "bad.toml"
    toml.write_text(
        f'[cohort.synthetic]\nnum_patients = 600\nnum_features = 10\nseed = {SYN["seed"]}\n'
        '[target]\npredictions = "target_logits.csv"\nroster = "bad_roster.csv"\n'
    )
    runner = CliRunner()
    r = runner.invoke(app, ["audit-model", str(toml), "--out", str(folder / "nothing")])
    assert r.exit_code == 2
    assert "'stranger'" in r.stderr and "bad_roster.csv" in r.stderr
    assert "Traceback" not in r.output
    assert not (folder / "nothing").exists()
    toml.write_text('[cohort]\ndataset = "rhc"\n[target]\nroster = "x.csv"\n')
    r = runner.invoke(app, ["audit-model", str(toml)])
    assert r.exit_code == 2 and "exactly one of target.predictions" in r.stderr


# --------------------------------------------------------------------------- the confound


def two_source_cohort(shift: float) -> tuple[Cohort, Cohort, dict[str, np.ndarray]]:
    """One synthetic source split into the target's own training patients (not in the cohort),
    the roster, the population (all source A) and the non-members, whose records are moved by
    ``shift`` along three features (source B)."""
    base, _ = make_synthetic_tabular(1000, num_features=8, num_atypical=0, num_mislabelled=0,
                                     seed=11 + SEED)
    perm = np.random.default_rng(0).permutation(1000)
    parts = {"target": perm[:125], "roster": perm[250:500], "population": perm[500:750],
             "other": perm[750:]}
    chosen = np.sort(np.r_[parts["roster"], parts["population"], parts["other"]])
    rows = np.isin(base.patient, chosen)
    inputs = base.inputs[rows].copy()
    moved = np.isin(base.patient[rows], parts["other"])
    inputs[moved, :3] += shift
    cohort = Cohort(
        name="two sources",
        inputs=inputs.astype(np.float32),
        labels=base.labels[rows],
        patient=np.searchsorted(chosen, base.patient[rows]).astype(np.int64),
        patient_ids=base.patient_ids[chosen],
        record_ids=base.record_ids[rows],
        attributes=base.attributes[rows].reset_index(drop=True),
        class_names=base.class_names,
        feature_names=base.feature_names,
        source="test",
    )
    cohort.validate()
    return base, cohort, parts


@pytest.mark.parametrize("shift", [4.0, 0.0])
def test_the_control_reports_a_source_confound_and_passes_a_shared_source(
    shift: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, cohort, parts = two_source_cohort(shift)
    # the target trained on other patients of the roster's source: no membership signal
    inputs = np.concatenate([base.inputs, cohort.inputs])
    labels = np.concatenate([base.labels, cohort.labels])
    keep = np.zeros(len(inputs), dtype=bool)
    keep[: base.num_records] = np.isin(base.patient, parts["target"])
    logits = train_group(MODEL, TrainingSpec(epochs=30, batch_size=32, learning_rate=3e-3),
                         inputs, labels, keep[None], [999], seed=5)[0, base.num_records:, 0]
    frame = pd.DataFrame(logits, columns=["a", "b"])
    frame.insert(0, "record_id", cohort.record_ids)
    frame.to_csv(tmp_path / "pred.csv", index=False)
    for name in ("roster", "population"):
        pd.DataFrame({"patient_id": base.patient_ids[parts[name]]}).to_csv(
            tmp_path / f"{name}.csv", index=False
        )
    monkeypatch.setattr("miaudit.deployed.load_cohort", lambda _: cohort)
    config = parse_deployed_config({
        "cohort": {"dataset": "rhc"},  # replaced by the two-source cohort above
        "target": {"predictions": str(tmp_path / "pred.csv"), "roster": str(tmp_path / "roster.csv")},
        "population": {"patients": str(tmp_path / "population.csv")},
        "references": {"models": 4},
        "model": MODEL.model_dump(),
        "training": {"epochs": 30, "batch_size": 32, "learning_rate": 3e-3},
        "report": {"html": False},
    })
    result = run_deployed(config, tmp_path / "run")
    c = result.summary["confound"]
    if shift:
        # how far the shift alone lifts the attack depends on the cohort (0.57-0.81 over six
        # seeds); the control must see the shift and reproduce the attack's AUC without members
        assert c["confounded"]
        at_least("input classifier AUC", c["classifier"]["auc"], 0.95)
        at_most("|attack AUC - AUC against a model trained on neither|",
                abs(c["neither"]["auc"] - c["attack"]["auc"]), 0.15)
        assert any("input classifier" in r for r in c["reasons"])
    else:
        assert not c["confounded"], c["reasons"]
        at_most("|attack AUC - 0.5|", abs(c["attack"]["auc"] - 0.5), 0.08)
        at_most("|AUC against neither - 0.5|", abs(c["neither"]["auc"] - 0.5), 0.08)
        # no membership signal: roster patients are flagged at about the nominal rate
        patients = result.patients
        roster = patients[patients["member"]]
        for alpha in (0.1, 0.2):
            sd = np.sqrt(alpha * (1 - alpha) / len(roster))
            at_most(f"|share at FPR ≤ {alpha} - {alpha}| / sd",
                    abs((roster["fpr"] <= alpha).mean() - alpha) / sd, 3.5)
            # the attack's own null p-values run anti-conservative with 4 references (up to
            # +4.6 sd at p ≤ 0.2 over eight cohort seeds); the FPR above is the exact one
            at_most(f"(share with p ≤ {alpha} - {alpha}) / sd",
                    ((roster["p_value"] <= alpha).mean() - alpha) / sd, 6.0)
        at_most("members flagged at 1 % FPR",
                result.summary["attacks"][result.attack]["flagged"]["0.01"], 8, strict=False)


def test_the_stored_summary_agrees_with_the_findings_of_the_run_files(deployed: dict) -> None:
    from miaudit.findings import deployed_findings
    from miaudit.results.read import load_run

    run = load_run(deployed["result"].run_dir)
    found = deployed_findings(run)
    stored = run.summary["attacks"][run.primary]
    # a deployed run stores its scores as float64: the figures agree exactly
    assert stored["aggregate"]["auc"] == pytest.approx(found.record_auc, abs=1e-12)
    assert stored["patient"]["auc"] == pytest.approx(found.patient_auc, abs=1e-12)
    assert {repr(lvl): n for lvl, n, _ in found.flagged} == stored["flagged"]
    neither = run.summary["confound"]["neither_model"]["flagged"]
    assert {repr(lvl): n for lvl, _, n in found.flagged} == neither
    assert run.summary["confound"]["confounded"] == found.tests["verdict"].confounded
    assert stored["high_risk"] == found.high_risk
