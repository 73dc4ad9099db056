"""The release gate: check a finished run against a privacy policy, for model-release pipelines.

A policy (TOML) states what a release may expose, e.g. at most 10 patients with exposure ≥ 0.9,
an aggregate TPR of at most 1% at 0.1% FPR, no subgroup over-represented among the most exposed
patients beyond a Pearson residual of 3. ``evaluate`` takes each figure from the run's
findings (:mod:`miaudit.findings`, the report's own) and returns one result per check;
``miaudit gate`` prints them and exits 1 when any fails. A typo in a policy must never pass silently, so unknown keys are
errors that name the key and the file.

```toml
[policy]
attack = "lira"                                        # optional, default: the run's primary
max_patients_above = { threshold = 0.9, count = 10 }   # or a list of such tables
max_share_above = { threshold = 0.8, share = 0.05 }
max_aggregate_auc = 0.6
max_tpr_at_fpr = { fpr = 0.001, tpr = 0.01 }
max_subgroup_residual = 3.0     # |Pearson residual| in the most exposed top_fraction
min_diagnostic_auroc = 0.7
min_models = 32                 # below it, high-risk counts are mostly chance
max_patients_beyond_chance = 0  # patients exposed beyond chance at the run's FDR
```

``max_patients_beyond_chance`` counts the patients whose exposure survives the run's
false-discovery control (``audit.fdr``, Benjamini–Hochberg by default) against its
permutation null; a run without a null (``audit.null_permutations = 0``) fails it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from miaudit.config.base import FrozenStrict
from miaudit.errors import InputError
from miaudit.findings import AttackFindings, attack_findings
from miaudit.findings.groups import composition
from miaudit.results.read import RunFiles, load_run

__all__ = [
    "CheckResult",
    "Policy",
    "evaluate",
    "exit_code",
    "format_results",
    "load_policy",
]


def _one_or_many(value: Any) -> Any:
    """A single inline table is a list of one, so both spellings of a limit are accepted."""
    return [value] if isinstance(value, dict) else value


class PatientsAbove(FrozenStrict):
    """At most ``count`` patients with exposure ≥ ``threshold``."""

    threshold: float = Field(ge=0.0, le=1.0)
    count: int = Field(ge=0)


class ShareAbove(FrozenStrict):
    """At most ``share`` of the patients (with a defined exposure) at exposure ≥ ``threshold``."""

    threshold: float = Field(ge=0.0, le=1.0)
    share: float = Field(ge=0.0, le=1.0)


class TprAtFpr(FrozenStrict):
    """Aggregate true-positive rate at false-positive rate ``fpr`` at most ``tpr``."""

    fpr: float = Field(gt=0.0, le=1.0)
    tpr: float = Field(ge=0.0, le=1.0)


class Policy(FrozenStrict):
    """What a release may expose; every limit is optional, at least one must be set."""

    attack: str | None = None
    max_patients_above: Annotated[list[PatientsAbove], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    max_share_above: Annotated[list[ShareAbove], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    max_aggregate_auc: float | None = Field(None, ge=0.0, le=1.0)
    max_tpr_at_fpr: Annotated[list[TprAtFpr], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    max_subgroup_residual: float | None = Field(None, gt=0.0)
    min_diagnostic_auroc: float | None = Field(None, ge=0.0, le=1.0)
    min_models: int | None = Field(None, ge=2)
    max_patients_beyond_chance: int | None = Field(None, ge=0)
    _source: str = PrivateAttr(default="policy")

    @model_validator(mode="after")
    def _has_a_check(self) -> Policy:
        if not (
            self.max_patients_above
            or self.max_share_above
            or self.max_tpr_at_fpr
            or self.max_aggregate_auc is not None
            or self.max_subgroup_residual is not None
            or self.min_diagnostic_auroc is not None
            or self.min_models is not None
            or self.max_patients_beyond_chance is not None
        ):
            raise ValueError(
                "the policy sets no limit; add at least one of max_patients_above, "
                "max_share_above, max_aggregate_auc, max_tpr_at_fpr, max_subgroup_residual, "
                "min_diagnostic_auroc, min_models, max_patients_beyond_chance"
            )
        return self

    @property
    def source(self) -> str:
        """Where the policy came from (its file), for messages."""
        return self._source


class _PolicyFile(FrozenStrict):
    policy: Policy


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    """The keys the table holding an unknown key accepts, for the error message."""
    model: type[BaseModel] = _PolicyFile
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(str(item))
        if field is None:
            break
        inner = field.annotation
        for candidate in (inner, *getattr(inner, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
    return ", ".join(model.model_fields)


def _policy_error(path: Path, err: ValidationError) -> InputError:
    # An unknown key is usually a typo that also makes a required key look missing: name it first.
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(first["loc"])
    where = _location(loc) or "policy"
    if first["type"] == "extra_forbidden":
        return InputError(
            f"{path}: unknown key '{where}'; the accepted keys there are "
            f"{_allowed_keys(loc)}. Fix the spelling or remove the key."
        )
    if first["type"] == "missing":
        if loc == ("policy",):
            return InputError(
                f"{path}: no [policy] table; put the limits under a [policy] header, e.g. "
                "[policy] max_aggregate_auc = 0.6"
            )
        return InputError(f"{path}: key '{where}' is required; add it.")
    message = first["msg"].removeprefix("Value error, ")
    if loc == ("policy",):
        return InputError(f"{path}: {message}.")
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return InputError(f"{path}: key '{where}': {message}{shown}; fix the value in the policy.")


def load_policy(path: Path | str) -> Policy:
    """Read a policy TOML; InputError for a missing file, bad TOML, unknown keys or bad values."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: policy file not found; pass --policy with the path of a TOML file holding "
            "a [policy] table"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is not TOML
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid TOML ({err}); fix the syntax") from None
    try:
        parsed = _PolicyFile.model_validate(data)
    except ValidationError as err:
        raise _policy_error(path, err) from None
    policy = parsed.policy
    policy._source = str(path)
    return policy


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class CheckResult:
    """One check of a policy against a run: passed or not, the value and the limit it met."""

    name: str
    passed: bool
    value: float | int | None
    limit: float | int
    message: str


def _round(x: float) -> float | None:
    return None if not math.isfinite(x) else float(f"{x:.6g}")


def _undefined(name: str, limit: float | int, what: str) -> CheckResult:
    return CheckResult(name, False, None, limit, f"not evaluated: {what}; the check fails")


def evaluate(run_dir: Path | str, policy: Policy) -> list[CheckResult]:
    """Every check of ``policy`` on the run, in policy order; figures recomputed from the files.

    Counts and shares are over the patients with a defined exposure. A figure that cannot be
    computed (no defined exposure, no subgroup attributes, undefined AUROC) fails its check:
    a release gate never passes what it could not measure.
    """
    run = load_run(run_dir)
    if not run.complete:
        raise InputError(
            f"{run.path / 'run.json'}: the run is not complete (it is being rerun, or was "
            "stopped before it finished writing its results), so its files may mix two "
            "scorings; finish it with `miaudit audit` on the same --out, then gate it"
        )
    attack = policy.attack or run.primary
    run.check_attack(attack, f"{policy.source}: key 'policy.attack'")
    exposure, _ = run.exposure(attack)
    defined = exposure[~np.isnan(exposure)]
    cache: dict[str, AttackFindings] = {}

    def figures() -> AttackFindings:
        if attack not in cache:
            cache[attack] = attack_findings(run, attack)
        return cache[attack]

    results: list[CheckResult] = []

    if policy.min_models is not None:
        models = int(run.keep.shape[0])
        results.append(
            CheckResult(
                "min_models",
                models >= policy.min_models,
                models,
                policy.min_models,
                "reference models of the run; fewer leave high-risk counts to chance",
            )
        )

    if policy.max_patients_beyond_chance is not None:
        name = "max_patients_beyond_chance"
        found = figures().chance
        if found is None:
            results.append(
                _undefined(
                    name,
                    policy.max_patients_beyond_chance,
                    "the run has no chance baseline; rerun it with audit.null_permutations ≥ 1",
                )
            )
        else:
            n = found.beyond_chance
            results.append(
                CheckResult(
                    name,
                    n <= policy.max_patients_beyond_chance,
                    n,
                    policy.max_patients_beyond_chance,
                    f"{n} of {defined.size} patients exposed beyond chance at FDR "
                    f"{found.fdr:g} ({found.fdr_method.upper()}, {found.permutations} "
                    f"permutations; {attack})",
                )
            )

    for limit in policy.max_patients_above:
        name = f"max_patients_above({limit.threshold:g})"
        if defined.size == 0:
            results.append(_undefined(name, limit.count, "no patient has a defined exposure"))
            continue
        n = int(np.count_nonzero(defined >= limit.threshold))
        results.append(
            CheckResult(
                name,
                n <= limit.count,
                n,
                limit.count,
                f"{n} of {defined.size} patients have exposure ≥ {limit.threshold:g} ({attack})",
            )
        )

    for limit in policy.max_share_above:
        name = f"max_share_above({limit.threshold:g})"
        if defined.size == 0:
            results.append(_undefined(name, limit.share, "no patient has a defined exposure"))
            continue
        n = int(np.count_nonzero(defined >= limit.threshold))
        share = n / defined.size
        results.append(
            CheckResult(
                name,
                share <= limit.share,
                _round(share),
                limit.share,
                f"{n} of {defined.size} patients ({share:.2%}) have exposure ≥ "
                f"{limit.threshold:g} ({attack})",
            )
        )

    if policy.max_aggregate_auc is not None:
        auc = figures().auc
        results.append(
            CheckResult(
                "max_aggregate_auc",
                auc <= policy.max_aggregate_auc,
                _round(auc),
                policy.max_aggregate_auc,
                f"attack AUC over all (target, record) pairs ({attack})",
            )
        )

    for limit in policy.max_tpr_at_fpr:
        value = figures().tpr_at(limit.fpr)
        results.append(
            CheckResult(
                f"max_tpr_at_fpr({limit.fpr:g})",
                value <= limit.tpr,
                _round(value),
                limit.tpr,
                f"true-positive rate at FPR {limit.fpr:g}, all (target, record) pairs ({attack})",
            )
        )

    if policy.max_subgroup_residual is not None:
        results.append(_residual_check(run, exposure, attack, policy.max_subgroup_residual))

    if policy.min_diagnostic_auroc is not None:
        auroc = run.models["test_auroc"].to_numpy(np.float64)
        auroc = auroc[np.isfinite(auroc)]
        name = "min_diagnostic_auroc"
        if auroc.size == 0:
            results.append(
                _undefined(name, policy.min_diagnostic_auroc, "no model has a defined AUROC")
            )
        else:
            mean = float(auroc.mean())
            results.append(
                CheckResult(
                    name,
                    mean >= policy.min_diagnostic_auroc,
                    _round(mean),
                    policy.min_diagnostic_auroc,
                    f"mean AUROC of {auroc.size} models on their held-out patients",
                )
            )
    return results


def _residual_check(run: RunFiles, exposure: np.ndarray, attack: str, limit: float) -> CheckResult:
    name = "max_subgroup_residual"
    attrs = run.attributes()
    if attrs.shape[1] == 0:
        return _undefined(
            name,
            limit,
            "the run has no subgroup attributes (attr_ columns in patients.parquet); audit "
            "with attributes or remove max_subgroup_residual from the policy",
        )
    if np.isnan(exposure).all():
        return _undefined(name, limit, "no patient has a defined exposure")
    comp = composition(run, attack)
    groups = comp.groups
    magnitude = groups["residual"].abs().to_numpy(np.float64)
    i = int(np.nanargmax(magnitude))
    worst = groups.iloc[i]
    value = float(magnitude[i])
    return CheckResult(
        name,
        value <= limit,
        _round(value),
        limit,
        f"{worst['attribute']}={worst['group']}: {int(worst['n_top'])} of the {comp.n_top} most "
        f"exposed patients (top {run.top_fraction * 100:g}%), {float(worst['expected']):.1f} "
        f"expected ({attack})",
    )


def exit_code(results: list[CheckResult]) -> int:
    """0 when every check passed, 1 when any failed (the CLI's gate exit status)."""
    return 0 if all(r.passed for r in results) else 1


def format_results(results: list[CheckResult]) -> str:
    """Plain text, one line per check, for logs of pipelines without a terminal."""
    lines = []
    for r in results:
        value = "undefined" if r.value is None else f"{r.value:g}"
        lines.append(
            f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {value} (limit {r.limit:g}) — {r.message}"
        )
    failed = sum(not r.passed for r in results)
    lines.append(
        f"{len(results) - failed} of {len(results)} checks passed"
        + (f"; {failed} failed" if failed else "")
    )
    return "\n".join(lines)
