"""Audit one deployed model from its outputs: which of the owner's patients does it expose?

A hospital that released a model holds three things: the records (the cohort), who trained
the model (the roster), and the model's outputs on every record. This module turns them into
the same per-patient exposure, report and disparity analysis as a full audit, for that one
model, the way a realistic attacker would: with a few reference models trained by the
owner's recipe on data the target never saw.

Roles (patient level, seeded):

* **members** — the roster: patients the target trained on;
* **population** — a share (``population.fraction``) of the patients *not* on the roster,
  drawn at random (or listed explicitly in ``population.patients``). References train on
  them and RMIA compares every record with them (its population records z);
* **evaluation non-members** — the other non-roster patients. Nobody trains on them in the
  offline mode; they are the null every member is measured against.

Candidates are members and evaluation non-members. Holding the population out of the
candidates is what makes the audit honest: the null a member is compared with is made of
patients the references never saw either, so a member's false-positive rate is the rate at
which the attack would flag a patient who never contributed to anything.

References (the recipe in [model] / [training]):

* *offline* (``rmia_offline``, ``lira_offline``): each reference trains on a random half of
  the population only, so every candidate is OUT for every reference and a single reference
  already works;
* *online* (``lira_online``): a balanced plan over candidates and population, each patient
  IN for exactly half of the references (even count needed).

``auto`` takes offline RMIA below 16 references and online LiRA from 16 on: on RHC (see
bench/RESULTS.md, "Deployed model") RMIA is the stronger attack with 1 and 4 references, and
online LiRA with 16.

For every candidate patient (score = the max over its records):

* ``p_value`` — from the attack's own null, without the evaluation non-members: LiRA's
  OUT-Gaussian tail Φ(−(s − μ_out)/σ_out); RMIA's share of population records the target
  ranks at or above the record, (1 + #z above)/(1 + #z). A patient with k records gets
  min(1, k · min p) (Bonferroni over its records);
* ``fpr`` — the empirical false-positive rate at which the patient would be flagged:
  (1 + #{non-member patients scoring ≥ it}) / (1 + #non-member patients), the patient itself
  left out when it is a non-member. A conformal p-value: a non-member patient has
  fpr ≤ α with probability ≤ α, whatever the attack;
* ``exposure`` — the probability that the patient's score beats a random evaluation
  non-member's (ties half): 1 − the FPR of the threshold at its score, on the full audit's
  [0, 1] scale, so exposure ≥ 0.99 means flagged at FPR ≤ 1 %.

Records get the same four numbers, their ``fpr`` and ``exposure`` measured against the
evaluation non-members' records.

Next to the attack result stands the same-distribution control (:mod:`miaudit.confound`):
an input classifier and the attack against a model trained on neither group (the neither
model: one extra model drawn like a reference, on population patients only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit import confound, risk
from miaudit.attacks import LiraOptions, RmiaOptions, calibrate_offline_a, lira_target, rmia_target
from miaudit.cohort import Cohort
from miaudit.config import to_toml
from miaudit.config.deployed import (
    ConfoundSpec,
    DeployedAuditSpec,
    DeployedConfig,
    PopulationSpec,
    ReferenceSpec,
    TargetSpec,
    load_deployed_config,
    parse_deployed_config,
)
from miaudit.config.model import TARGET_RECIPE
from miaudit.deployed_estimator import final_step, load_skops, recipe_text
from miaudit.deployed_model import (
    TargetOutputs,
    predict_onnx,
    predict_state_dict,
    read_predictions,
    read_roster,
)
from miaudit.diagnostics import model_performance
from miaudit.errors import InputError
from miaudit.models import ModelSpec
from miaudit.null import null_rates, patient_max, patient_p_values, rmia_p_values
from miaudit.plan import make_plan
from miaudit.recipes.estimator import EstimatorRecipe
from miaudit.results import layout as L
from miaudit.results.layout import ROLE_MEMBER, ROLE_NONMEMBER, ROLE_POPULATION
from miaudit.results.redact import redacting
from miaudit.results.store import RunStore, load_npz, write_npz
from miaudit.results.write import write_deployed_outputs
from miaudit.runner import (
    ProgressSink,
    Silent,
    Timings,
    cohort_info,
    finish_run,
    load_cohort,
    open_run,
    train_missing,
    training_job,
)
from miaudit.signals import check_logits, compute_signal

__all__ = [
    "ATTACK_CHOICES",
    "ConfoundSpec",
    "DeployedAuditSpec",
    "DeployedConfig",
    "DeployedResult",
    "PopulationSpec",
    "ReferenceSpec",
    "choose_attack",
    "load_deployed_config",
    "load_target",
    "null_rates",
    "parse_deployed_config",
    "patient_max",
    "patient_p_values",
    "reference_plan",
    "rmia_p_values",
    "run_deployed",
    "score_against_references",
    "split_roles",
]

ATTACK_CHOICES = ("auto", "rmia_offline", "lira_offline", "lira_online")
#: From this many references ``auto`` switches from offline RMIA to online LiRA (measured on
#: RHC: bench/rhc_deployed.py, bench/RESULTS.md).
ONLINE_FROM = 16
#: Below this many references LiRA uses one variance for all records (Carlini et al. 2022:
#: per-record variances need many models; with few, a global variance is better).
PER_RECORD_VARIANCE_FROM = 64
#: Offline RMIA's ``a`` with one reference, where it cannot be calibrated (that needs one
#: reference attacked by another); the value Zarifzadeh et al. use for most data sets.
SINGLE_REFERENCE_A = 0.3
#: FPR levels at which flagged members are counted.
FLAG_LEVELS = (0.1, 0.01, 0.001)



# --------------------------------------------------------------------------- pure parts


def choose_attack(requested: str, references: int) -> tuple[str, str]:
    """The attack to run and why (``auto``: offline RMIA below 16 references, online LiRA from 16)."""
    if requested not in ATTACK_CHOICES:
        raise InputError(
            f"references.attack: {requested!r}; choose one of {', '.join(ATTACK_CHOICES)}"
        )
    if requested != "auto":
        return requested, "chosen in the config"
    if references < ONLINE_FROM:
        return "rmia_offline", (
            f"auto: {references} reference(s) < {ONLINE_FROM}: offline RMIA, the strongest "
            "attack with few references"
        )
    if references % 2:
        return "rmia_offline", (
            f"auto: {references} references is odd, and online LiRA needs an even number "
            "(each patient IN for half): offline RMIA"
        )
    return "lira_online", (
        f"auto: {references} references ≥ {ONLINE_FROM}: online LiRA, the stronger attack "
        "there on RHC"
    )


def split_roles(
    member: np.ndarray,
    *,
    fraction: float,
    seed: int,
    population: np.ndarray | None = None,
) -> np.ndarray:
    """Role of every patient [P] int8: member (roster), population, or evaluation non-member.

    Without an explicit ``population`` mask, round(fraction · #non-roster) non-roster
    patients drawn with ``default_rng([seed, 2])`` are population. The draw is its own
    stream, so it does not depend on the number of references.
    """
    member = np.asarray(member, dtype=bool)
    role = np.full(member.size, ROLE_NONMEMBER, dtype=np.int8)
    role[member] = ROLE_MEMBER
    outside = np.flatnonzero(~member)
    if member.sum() == 0:
        raise InputError(
            "target.roster: lists none of the cohort's patients; the roster must name the "
            "patients the target trained on"
        )
    if outside.size == 0:
        raise InputError(
            f"target.roster: lists all {member.size} patients of the cohort, so there is no "
            "patient the target never saw to compare them with; add patients who were not in "
            "the target's training data to the cohort"
        )
    if population is not None:
        population = np.asarray(population, dtype=bool)
        both = np.flatnonzero(population & member)
        if both.size:
            raise InputError(
                f"population.patients: {both.size} patient(s) are also on the roster (patient "
                f"indices {both[:5].tolist()}); population patients must be ones the target "
                "never saw"
            )
        role[population] = ROLE_POPULATION
    else:
        count = round(fraction * outside.size)
        drawn = np.random.default_rng([seed, 2]).choice(outside, size=count, replace=False)
        role[drawn] = ROLE_POPULATION
    n_pop = int((role == ROLE_POPULATION).sum())
    n_eval = int((role == ROLE_NONMEMBER).sum())
    if n_pop < 2 or n_eval < 2:
        raise InputError(
            f"population: the {outside.size} patients outside the roster give {n_pop} "
            f"population and {n_eval} evaluation non-member patient(s); both need at least 2 "
            "(references train on the population, members are compared with the "
            "non-members): add non-roster patients or change population.fraction"
        )
    return role


def reference_plan(role: np.ndarray, references: int, *, online: bool, seed: int) -> np.ndarray:
    """keep [R + 1, P]: rows 0..R−1 the references, row R the neither model.

    Offline: a balanced plan over the population alone (R + 1 models, rounded up to even),
    so references and the neither model are drawn alike and no candidate is ever IN.
    Online: a balanced plan over candidates and population for the R references (R even);
    the neither model takes a random half of the population (``default_rng([seed, 3])``).
    """
    role = np.asarray(role)
    pop = np.flatnonzero(role == ROLE_POPULATION)
    keep = np.zeros((references + 1, role.size), dtype=bool)
    if not online:
        models = references + 1 + (references + 1) % 2
        inner = make_plan(pop.size, models, seed).keep
        keep[:, pop] = inner[: references + 1]
        return keep
    if references % 2 or references < 2:
        raise InputError(
            f"references.models = {references}: online LiRA needs an even number ≥ 2 (each "
            "patient IN for exactly half of them); use e.g. 16, or an offline attack"
        )
    keep[:references] = make_plan(role.size, references, seed).keep
    half = np.random.default_rng([seed, 3]).choice(pop, size=pop.size // 2, replace=False)
    keep[references, half] = True
    return keep


def score_against_references(
    attack: str,
    target_signal: np.ndarray,
    ref_signal: np.ndarray,
    ref_keep: np.ndarray,
    population: np.ndarray,
    *,
    a: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores [N], p-values [N]) of one model against R references with ``attack``.

    ``target_signal`` [N, 1] and ``ref_signal`` [R, N, 1] are RMIA's true-class
    probabilities or LiRA's logit-scaled confidences; ``a`` is offline RMIA's interpolation
    (given explicitly, so the target and the neither model are scored alike). LiRA uses one
    variance for all records below 64 references.
    """
    refs = ref_signal.shape[0]
    if attack == "rmia_offline":
        scores = rmia_target(
            target_signal, ref_signal, ref_keep, population=population, options=RmiaOptions(a=a)
        )
        return scores, rmia_p_values(scores, population)
    fixed = refs < PER_RECORD_VARIANCE_FROM
    offline = lira_target(
        target_signal, ref_signal, ref_keep, options=LiraOptions(online=False, fixed_variance=fixed)
    )
    p = np.clip(-np.expm1(offline), 0.0, 1.0)
    if attack == "lira_offline":
        return offline, p
    if attack == "lira_online":
        online = lira_target(
            target_signal, ref_signal, ref_keep, options=LiraOptions(online=True, fixed_variance=fixed)
        )
        return online, p
    raise InputError(f"attack {attack!r} is not one of {', '.join(ATTACK_CHOICES[1:])}")


def load_target(spec: TargetSpec, cohort: Cohort, model: ModelSpec) -> TargetOutputs:
    """The target's outputs on the cohort from the source [target] names."""
    if spec.predictions is not None:
        return read_predictions(
            spec.predictions,
            cohort,
            record_id=spec.record_id,
            kind=spec.kind,
            columns=spec.columns,
        )
    assert spec.model is not None
    name = spec.model.name.lower()
    if name.endswith(".onnx"):
        return predict_onnx(spec.model, cohort, kind=spec.kind, inputs=spec.inputs)
    if spec.is_estimator:
        fitted = load_skops(spec.model, cohort, trusted=list(spec.trusted or []), inputs=spec.inputs)
        return TargetOutputs(
            logits=fitted.logits[:, None, :], kind="logits", source=f"skops:{spec.model.name}",
            estimator=fitted.estimator, inputs=fitted.inputs, columns=fitted.columns,
        )
    if name.endswith((".safetensors", ".pt", ".pth", ".bin", ".ckpt")):
        return predict_state_dict(spec.model, cohort, model)
    raise InputError(
        f"target.model '{spec.model}': unknown model format; give an .onnx file, a fitted "
        "scikit-learn model saved with skops (.skops), or a state dict of the built-in family "
        "in [model] as .safetensors (preferred) or .pt"
    )


def _reference_cohort(config: DeployedConfig, cohort: Cohort, target: TargetOutputs) -> tuple[ModelSpec, Cohort]:
    """The recipe and cohort the references train with: the target's own for ``"target"``.

    A fitted target's references read what it read: the same inputs, and for raw inputs the
    same columns in its order.
    """
    model = config.model
    if model.estimator != TARGET_RECIPE:
        return model, cohort
    model = model.model_copy(update={"inputs": target.inputs})
    if target.inputs == "raw" and cohort.table is not None and target.columns:
        cohort = replace(cohort, table=cohort.table[list(target.columns)])
    return model, cohort


#: References that train on more than this factor fewer or more records than the target get a
#: warning (the offline default, half of half the non-roster patients, stays inside it for
#: rosters up to about 40 % of the cohort).
SIZE_RATIO = 3.0


def recipe_warnings(
    model: ModelSpec, target: TargetOutputs, reference_records: float, target_records: int
) -> list[str]:
    """Where the references are unlike the target, each as one sentence to act on.

    The attacks compare the target with the references, so references of another model
    class, or trained on far fewer or more records, can report the opposite of the truth.
    """
    warnings: list[str] = []
    hint = "an audit with references unlike the target can report the opposite of the truth"
    if target.estimator is not None and model.estimator != TARGET_RECIPE:
        want = type(final_step(target.estimator))
        if model.kind == "estimator":
            built = EstimatorRecipe(path=model.estimator, params=dict(model.params)).build()
            same = type(final_step(built)) is want
        else:
            same = False
        if not same:
            warnings.append(
                f"the target is a fitted {want.__name__}, the references are {model.describe()}: "
                f'{hint}; set [model] estimator = "{TARGET_RECIPE}" to train them with the '
                "target's own recipe"
            )
    if target.graph is not None and model.kind == "family" and not (
        target.graph == "linear model" and model.family == "logistic"
    ):
        warnings.append(
            f"the target's ONNX graph is a {target.graph}, the references are {model.describe()}: "
            f"{hint}; set [model] estimator to the target's class and parameters (e.g. "
            '"sklearn.ensemble:HistGradientBoostingClassifier" with [model.params])'
        )
    if target_records > 0 and not 1 / SIZE_RATIO <= reference_records / target_records <= SIZE_RATIO:
        warnings.append(
            f"each reference trains on {reference_records:,.0f} records on average, the target "
            f"on {target_records:,}: exposure depends on the training-set size, so references "
            "far smaller or larger than the target misjudge it; change [population] fraction "
            "(or population.patients) to bring them closer"
        )
    return warnings


# --------------------------------------------------------------------------- the run


@dataclass
class DeployedResult:
    """What a finished deployed-model audit returns (also all on disk in ``run_dir``)."""

    run_dir: Path
    summary: dict[str, Any]
    patients: pd.DataFrame
    records: pd.DataFrame
    attack: str


def _hash(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _identity(
    config: DeployedConfig,
    cohort: Cohort,
    role: np.ndarray,
    online: bool,
    target: TargetOutputs | None = None,
) -> dict[str, Any]:
    """What the reference shards depend on; a run directory is bound to it.

    References with the target's own recipe depend on that recipe (its class, parameters
    and the inputs it read), so it is part of their identity.
    """
    # views only where set (a DeployedConfig dumps them only then): runs made before [views]
    # keep their identity
    science = config.model_dump(
        mode="json", include={"cohort", "model", "training", "privacy", "views"}
    )
    science["model"] = config.model.science()
    if config.model.estimator == TARGET_RECIPE and target is not None:
        science["model"]["target"] = {"recipe": recipe_text(target.estimator),
                                      "inputs": target.inputs, "columns": list(target.columns)}
    science["cohort"].pop("path", None)
    science["references"] = {
        "models": config.references.models,
        "online": online,
        "seed": config.audit.seed,
        "roles": _hash(role.astype(np.int8)),
    }
    text = json.dumps(science, sort_keys=True)
    return {
        "kind": L.DEPLOYED_KIND,
        "training_hash": hashlib.sha256(text.encode()).hexdigest(),
        "data_fingerprint": cohort.fingerprint(),
        "models": config.references.models + 1,
    }


def _plan(store: RunStore, keep: np.ndarray, member: np.ndarray, role: np.ndarray, seed: int) -> np.ndarray:
    """The references' plan: written once, then read back (a resumed run uses the same).

    plan.npz ``keep`` has one row per model of the run: row 0 the target (its roster),
    rows 1..R the references and row R + 1 the neither model (shard index m is row m + 1).
    """
    path = store.file(L.PLAN)
    if path.is_file():
        arrays = load_npz(path)
        stored = np.asarray(arrays.get("keep", np.zeros((0, 0)))).astype(bool)
        if stored.shape != (keep.shape[0] + 1, keep.shape[1]) or not np.array_equal(stored[0], member):
            raise InputError(f"{path}: plan does not match this run; pass --force to restart it")
        return stored[1:]
    write_npz(
        path,
        keep=np.concatenate([member[None], keep]).astype(bool),
        role=role.astype(np.int8),
        seed=np.array(seed, dtype=np.int64),
    )
    return keep


@redacting
def run_deployed(
    config: DeployedConfig,
    out: Path,
    *,
    force: bool = False,
    progress: ProgressSink | None = None,
    executor: Any | None = None,
    after_shard: Callable[[int], None] | None = None,
) -> DeployedResult:
    """Read the target's outputs, train (or resume) the references, score and write the run."""
    progress = progress or Silent()
    timings = Timings()
    progress.stage("loading cohort", total=1)
    cohort = load_cohort(config.cohort)
    progress.advance()
    target_spec = config.target
    member = read_roster(target_spec.roster, target_spec.roster_column, cohort)
    explicit = None
    if config.population.patients is not None:
        explicit = read_roster(config.population.patients, config.population.column, cohort)
    seed = config.audit.seed
    role = split_roles(member, fraction=config.population.fraction, seed=seed, population=explicit)
    progress.stage("reading the target's outputs")
    target = load_target(target_spec, cohort, config.model)
    references = config.references.models
    attack, attack_rule = choose_attack(config.references.attack, references)
    online = attack == "lira_online"
    plan_keep = reference_plan(role, references, online=online, seed=seed)
    timings.since_start("inputs_s")

    identity = _identity(config, cohort, role, online, target)
    with open_run(
        out,
        identity=identity,
        force=force,
        config_toml=to_toml(config),
        cohort=cohort,
        kind=L.DEPLOYED_KIND,
    ) as store:
        plan_keep = _plan(store, plan_keep, member, role, seed)
        record_keep = plan_keep[:, cohort.patient]
        num_models = references + 1

        with timings.measure("training_s"):
            model, reference_cohort = _reference_cohort(config, cohort, target)
            job = replace(
                training_job(config, reference_cohort, record_keep, seed, store.path),
                model=model,
                estimator=target.estimator if model.estimator == TARGET_RECIPE else None,
            )
            train_missing(
                store, job, num_models, config.audit.group_size, progress, executor, after_shard
            )

        with timings.measure("scoring_s"):
            progress.stage("scoring the target", total=3)
            logits = store.load_logits(num_models)
            check_logits(logits)
            scored = _score(config, cohort, target, logits, record_keep, role, attack)
            progress.advance()
            control = _confound(config, cohort, member, role, scored)
            progress.advance()
            performance = _performance(cohort, target, logits, member, record_keep)
            progress.advance()

        progress.stage("writing results", total=1)
        summary = _summary(
            config, cohort, store.read_identity() or {}, role, scored, control, performance,
            attack, attack_rule, target,
        )
        summary["warnings"] = recipe_warnings(
            model, target, float(record_keep[:references].sum(axis=1).mean()),
            int(member[cohort.patient].sum()),
        )
        records, patients = write_deployed_outputs(
            store,
            cohort,
            role=role,
            scored=scored,
            confound_arrays={
                "neither_scores": scored["neither_record"],
                "classifier_probability": control["probability"],
            },
            performance=performance,
            summary=summary,
            redact=config.report.redact,
        )
        finish_run(store, config.report, timings, progress)
    return DeployedResult(store.path, summary, patients, records, attack)


def _score(
    config: DeployedConfig,
    cohort: Cohort,
    target: TargetOutputs,
    logits: np.ndarray,
    record_keep: np.ndarray,
    role: np.ndarray,
    attack: str,
) -> dict[str, Any]:
    """Scores, p-values, FPR and exposure of the target and of the neither model."""
    references = config.references.models
    signal_name = "probability" if attack.startswith("rmia") else "logit_confidence"
    target_signal = compute_signal(signal_name, target.logits, cohort.labels)[:, :1]
    ref_signal = compute_signal(signal_name, logits, cohort.labels)[:, :, :1]
    rec_role = role[cohort.patient]
    population = rec_role == ROLE_POPULATION
    refs, ref_keep = ref_signal[:references], record_keep[:references]
    a = None
    if attack == "rmia_offline":
        a = config.references.rmia_a
        if a is None:
            a = (
                SINGLE_REFERENCE_A
                if references < 2
                else calibrate_offline_a(refs, ref_keep, population=population)
            )
    p_count = cohort.num_patients
    out: dict[str, Any] = {"attack": attack, "rmia_a": a}
    for name, signal in (("target", target_signal), ("neither", ref_signal[references])):
        scores, p = score_against_references(attack, signal, refs, ref_keep, population, a=a)
        scores = np.where(population, np.nan, scores)
        p = np.where(population, np.nan, p)
        pat_score = patient_max(scores, cohort.patient, p_count)
        fpr, exposure, n_null = null_rates(pat_score, role == ROLE_NONMEMBER)
        out[f"{name}_record"] = scores
        out[f"{name}_record_p"] = p
        rec_fpr, rec_exposure, _ = null_rates(scores, rec_role == ROLE_NONMEMBER)
        out[f"{name}_record_fpr"] = rec_fpr
        out[f"{name}_record_exposure"] = rec_exposure
        out[f"{name}_score"] = pat_score
        out[f"{name}_p"] = patient_p_values(p, cohort.patient, p_count)
        out[f"{name}_fpr"] = fpr
        out[f"{name}_exposure"] = exposure
        out[f"{name}_n_null"] = n_null
    return out


def _confound(
    config: DeployedConfig,
    cohort: Cohort,
    member: np.ndarray,
    role: np.ndarray,
    scored: dict[str, Any],
) -> dict[str, Any]:
    candidate = role != ROLE_POPULATION
    spec = config.confound
    classifier = None
    if spec.classifier != "none":
        classifier = confound.input_classifier(
            cohort.inputs,
            cohort.labels,
            cohort.patient,
            member,
            candidate,
            folds=spec.folds,
            seed=config.audit.seed,
            classifier=spec.classifier,
        )
    attack_test = confound.auc_test(scored["target_score"][candidate], member[candidate])
    neither_test = confound.auc_test(scored["neither_score"][candidate], member[candidate])
    verdict = confound.assess(
        attack_test,
        None if classifier is None else classifier.test,
        neither_test,
        alpha=spec.alpha,
    )
    probability = (
        np.full(cohort.num_records, np.nan) if classifier is None else classifier.probability
    )
    return {"verdict": verdict, "classifier": classifier, "probability": probability}


def _performance(
    cohort: Cohort,
    target: TargetOutputs,
    logits: np.ndarray,
    member: np.ndarray,
    record_keep: np.ndarray,
) -> pd.DataFrame:
    """Diagnostic performance: the target on every non-roster record, references on their OUT.

    Row 0 is the target (the only row of models.parquet); then the references and the
    neither model (references.parquet).
    """
    target_rows = model_performance(
        target.logits[None], cohort.labels, member[cohort.patient][None]
    )
    ref_rows = model_performance(logits[:, :, :1], cohort.labels, record_keep)
    table = pd.concat([target_rows, ref_rows], ignore_index=True)
    table["model"] = np.arange(len(table), dtype=np.int64)
    roles = ["target"] + ["reference"] * (len(ref_rows) - 1) + ["neither"]
    table.insert(1, "role", roles)
    return table


def _metrics(scores: np.ndarray, member: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    m = risk.attack_metrics(scores[candidate][None], member[candidate][None])
    return m["aggregate"]


def _flagged(fpr: np.ndarray, member: np.ndarray) -> dict[str, int]:
    return {repr(level): int(np.count_nonzero(member & (fpr <= level))) for level in FLAG_LEVELS}


def _summary(
    config: DeployedConfig,
    cohort: Cohort,
    record: dict[str, Any],
    role: np.ndarray,
    scored: dict[str, Any],
    control: dict[str, Any],
    performance: pd.DataFrame,
    attack: str,
    attack_rule: str,
    target: TargetOutputs,
) -> dict[str, Any]:
    member = role == ROLE_MEMBER
    candidate = role != ROLE_POPULATION
    rec_member = member[cohort.patient]
    rec_candidate = candidate[cohort.patient]
    thresholds = sorted(config.audit.thresholds)
    exposure = scored["target_exposure"]
    verdict: confound.Confound = control["verdict"]
    identity = record.get("identity", {})
    target_perf = performance.iloc[0]
    metrics = {
        "aggregate": _metrics(scored["target_record"], rec_member, rec_candidate),
        "patient": _metrics(scored["target_score"], member, candidate),
        "patient_auc_ci": verdict.attack.to_dict(),
        "flagged": _flagged(scored["target_fpr"], member),
        "high_risk": risk.high_risk_counts(exposure[member], thresholds),
    }
    neither = {
        "aggregate": _metrics(scored["neither_record"], rec_member, rec_candidate),
        "patient": _metrics(scored["neither_score"], member, candidate),
        "flagged": _flagged(scored["neither_fpr"], member),
    }
    classifier = control["classifier"]
    confound_info = verdict.to_dict()
    confound_info["classifier_model"] = None if classifier is None else classifier.classifier
    confound_info["folds"] = None if classifier is None else classifier.folds
    confound_info["neither_model"] = neither
    return {
        "kind": L.DEPLOYED_KIND,
        "primary_attack": attack,
        "attack_rule": attack_rule,
        "attacks": {attack: metrics},
        "confound": confound_info,
        "target": {
            "source": target.source,
            "kind": target.kind,
            "test_auroc": float(target_perf["test_auroc"]),
            "test_accuracy": float(target_perf["test_accuracy"]),
            "train_accuracy": float(target_perf["train_accuracy"]),
        },
        "roles": {
            "members": int(member.sum()),
            "non_members": int((role == ROLE_NONMEMBER).sum()),
            "population": int((role == ROLE_POPULATION).sum()),
            "population_rule": (
                "listed in population.patients"
                if config.population.patients is not None
                else f"{config.population.fraction:g} of the non-roster patients, seed {config.audit.seed}"
            ),
        },
        "references": config.references.models,
        "mode": "online" if attack == "lira_online" else "offline",
        "rmia_a": scored["rmia_a"],
        "diagnostic": {
            "auroc_mean": float(target_perf["test_auroc"]),
            "auroc_std": 0.0,
            "accuracy_mean": float(target_perf["test_accuracy"]),
            "accuracy_std": 0.0,
            "train_accuracy_mean": float(target_perf["train_accuracy"]),
        },
        "flag_levels": list(FLAG_LEVELS),
        "patient_aggregate": "max",
        "record_auc": "one target",
        "thresholds": thresholds,
        "top_fraction": config.audit.top_fraction,
        "redacted": config.report.redact,
        "models": config.references.models + 1,
        "targets": 1,
        "cohort": cohort_info(cohort),
        "data_fingerprint": identity.get("data_fingerprint", cohort.fingerprint()),
        "config_hash": identity.get("training_hash"),
        "miaudit_version": record.get("miaudit_version"),
        "seed": config.audit.seed,
    }
