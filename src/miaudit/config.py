"""The TOML schema of an audit.

Unknown keys are errors (a misspelt key silently ignored would change what is audited), and
every error names the file and the key. Defaults are chosen so that ``miaudit audit`` on the
built-in RHC cohort finishes in a few minutes on a 2-core laptop.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from miaudit.errors import InputError
from miaudit.models import ModelSpec
from miaudit.training import TrainingSpec
from miaudit.training.dp import DPSpec

ATTACK_NAMES = ("lira", "lira_offline", "rmia", "rmia_online", "loss", "confidence")
#: Attacks that fit a Gaussian per record: ≥ 2 references per side, so models/2 − 1 ≥ 2.
LIRA_PER_RECORD = ("lira", "lira_offline")
LIRA_MIN_MODELS = 6
#: Far above any published audit (the paper uses 200); above it the plan alone outgrows RAM.
MAX_MODELS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticSpec(_Strict):
    """Parameters of the synthetic cohort (for demos and tests)."""

    num_patients: int = Field(2000, ge=20)
    num_features: int = Field(20, ge=2)
    rare_fraction: float = Field(0.02, gt=0, lt=0.5)
    num_atypical: int = Field(10, ge=0)
    num_mislabelled: int = Field(10, ge=0)
    max_records_per_patient: int = Field(1, ge=1)
    seed: int = 0


class CohortConfig(_Strict):
    """Where the records come from: a built-in cohort, a synthetic one, or the user's table."""

    dataset: str | None = None
    synthetic: SyntheticSpec | None = None
    path: Path | None = None
    label: str | None = None
    patient_id: str | None = None
    record_id: str | None = None
    features: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    attributes: list[str] = Field(default_factory=list)
    positive: str | None = None
    categorical: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CohortConfig:
        sources = [self.dataset is not None, self.synthetic is not None, self.path is not None]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one of cohort.dataset (a built-in cohort, see `miaudit datasets`), "
                "cohort.path (your CSV/Parquet file) or a [cohort.synthetic] table"
            )
        if self.path is not None and self.label is None:
            raise ValueError("cohort.path needs cohort.label: the column holding the diagnostic target")
        return self


class AuditSpec(_Strict):
    """How the audit is run and summarised."""

    models: int = Field(
        200,
        ge=4,
        le=MAX_MODELS,
        description="reference models; every patient is IN for half",
    )
    attacks: list[str] = Field(default_factory=lambda: ["lira", "lira_offline", "rmia", "loss"])
    targets: int | None = Field(None, ge=1, description="models used as targets (default: all)")
    patient_aggregate: Literal["max", "mean"] = "max"
    record_auc: Literal["empirical", "gaussian"] = "empirical"
    thresholds: list[float] = Field(default_factory=lambda: [0.8, 0.9, 0.95, 0.99])
    top_fraction: float = Field(0.01, gt=0, le=0.5)
    group_size: int = Field(50, ge=1, description="models trained together in one group")
    holdout_fraction: float = Field(
        0.0, ge=0.0, lt=0.9, description="patients no model trains on (diagnostic test set)"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> AuditSpec:
        if self.models % 2:
            raise ValueError(
                f"audit.models = {self.models}: must be even so that every patient is IN for "
                "exactly half of the models; use an even number such as 200"
            )
        unknown = [a for a in self.attacks if a not in ATTACK_NAMES]
        if unknown or not self.attacks:
            raise ValueError(
                f"audit.attacks: unknown attack(s) {unknown}; choose from {list(ATTACK_NAMES)}"
            )
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError("audit.attacks lists an attack twice")
        if self.targets is not None and self.targets > self.models:
            raise ValueError(
                f"audit.targets = {self.targets} exceeds audit.models = {self.models}; lower "
                "audit.targets or leave it unset to use every model as a target"
            )
        if self.targets is not None and self.targets < 2:
            raise ValueError(
                f"audit.targets = {self.targets}: a record's attack success compares its scores "
                "as a member and as a non-member, which needs at least 2 targets; raise "
                "audit.targets or leave it unset to use every model"
            )
        per_record = [a for a in self.attacks if a in LIRA_PER_RECORD]
        if per_record and self.models < LIRA_MIN_MODELS:
            raise ValueError(
                f"audit.models = {self.models} is too few for {', '.join(per_record)}: with one "
                f"model as target, a record keeps only models/2 − 1 = {self.models // 2 - 1} "
                "reference(s) on its IN or OUT side, and LiRA's per-record Gaussian needs 2; "
                f"use audit.models ≥ {LIRA_MIN_MODELS} (the paper uses 200) or drop "
                f"{', '.join(per_record)} from audit.attacks"
            )
        if any(not 0.5 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("audit.thresholds are exposure (AUC) levels between 0.5 and 1")
        return self


class ReportSpec(_Strict):
    """What the report shows and whether patient ids are pseudonymised."""

    redact: bool = False
    top_patients: int = Field(25, ge=1)
    html: bool = True


class ExecutorSpec(_Strict):
    """Where groups of models train."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    device: str | None = None
    num_gpus: float = Field(0.0, ge=0)
    num_cpus: float = Field(1.0, gt=0)
    max_retries: int = Field(2, ge=0)


class AuditConfig(_Strict):
    """One audit: cohort, model recipe, training recipe, audit and report options."""

    cohort: CohortConfig = Field(default_factory=lambda: CohortConfig(dataset="rhc"))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    privacy: DPSpec = Field(default_factory=DPSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

    def training_hash(self) -> str:
        """Hash of everything the trained models depend on (not attacks, report or executor).

        A run directory is bound to this hash: resuming with a different recipe would mix
        shards of two experiments. Scoring is recomputed from the shards on every run, so
        changing the attacks or thresholds reuses the trained models.
        """
        science = self.model_dump(mode="json", include={"cohort", "model", "training", "privacy"})
        # where the table lies is not science (the data fingerprint binds its content), so a
        # run and its data can move to another folder or machine and still resume
        science["cohort"].pop("path", None)
        science["audit"] = {
            "models": self.audit.models,
            "seed": self.audit.seed,
            "holdout_fraction": self.audit.holdout_fraction,
        }
        text = json.dumps(science, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling against the documented config keys"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return f"{source}: invalid config — " + "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> AuditConfig:
    """Validate a config mapping, turning pydantic errors into one readable message."""
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as err:
        raise InputError(_format_validation_error(err, source)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a mapping, with one clear error for a missing, non-UTF-8 or broken file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found; pass the path of a TOML file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err}); fix the syntax at that line") from None


def load_config(path: Path, *, tables: tuple[str, ...] = ()) -> Any:
    """Read and validate a TOML config; relative cohort paths are taken from the config's folder.

    ``tables`` names top-level tables that belong to the caller (e.g. ``sweep``); with it
    the result is ``(config, {name: table})``, without it just the config.
    """
    path = Path(path)
    data = read_toml(path)
    extra = {name: data.pop(name) for name in tables if name in data}
    cohort = data.get("cohort")
    if isinstance(cohort, dict) and isinstance(cohort.get("path"), str):
        p = Path(cohort["path"]).expanduser()
        cohort["path"] = str(p if p.is_absolute() else (path.parent / p).resolve())
    config = parse_config(data, str(path))
    return (config, extra) if tables else config


def validation_message(err: ValidationError, source: str) -> str:
    """One line naming each bad key, for schemas defined outside this module."""
    return _format_validation_error(err, source)


def to_toml(config: AuditConfig) -> str:
    """Render a resolved config as TOML (the run directory keeps it next to the results)."""
    data = config.model_dump(mode="json", exclude_none=True)
    return _dump_toml(data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {type(v)} as TOML")


def _dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = []
    if prefix and scalars:
        out.append(f"[{prefix}]")
    out += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    if scalars:
        out.append("")
    for k, v in tables.items():
        name = f"{prefix}.{k}" if prefix else k
        out.append(_dump_toml(v, name))
    return "\n".join(out)
