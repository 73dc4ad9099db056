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
from miaudit.views import ViewSpec

ATTACK_NAMES = ("lira", "lira_offline", "rmia", "rmia_online", "loss", "confidence")
#: Attacks that fit a Gaussian per record: ≥ 2 references per side, so models/2 − 1 ≥ 2.
LIRA_PER_RECORD = ("lira", "lira_offline")
LIRA_MIN_MODELS = 6
#: Far above any published audit (the paper uses 200); above it the plan alone outgrows RAM.
MAX_MODELS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Keys of [cohort.synthetic] that only one modality uses.
_SYNTHETIC_ONLY = {
    "num_features": "table",
    "image_size": "image",
    "channels": "image",
    "leads": "signal",
    "length": "signal",
    "sampling_rate": "signal",
}


#: Defaults of [cohort.synthetic] for images and signals (those of their generators).
_MEDIA_SYNTHETIC_DEFAULTS = {
    "num_patients": 300,
    "rare_fraction": 0.05,
    "num_atypical": 5,
    "num_mislabelled": 5,
    "max_records_per_patient": 2,
}


class SyntheticSpec(_Strict):
    """Parameters of the synthetic cohort (for demos and tests): a table, images or ECGs."""

    modality: Literal["table", "image", "signal"] = "table"
    num_patients: int = Field(2000, ge=20)
    num_features: int = Field(20, ge=2)
    rare_fraction: float = Field(0.02, gt=0, lt=0.5)
    num_atypical: int = Field(10, ge=0)
    num_mislabelled: int = Field(10, ge=0)
    max_records_per_patient: int = Field(1, ge=1)
    num_labels: int | None = Field(None, ge=2, description="images/signals: K findings (multi-label)")
    image_size: tuple[int, int] = (16, 16)
    channels: Literal[1, 3] = 1
    leads: int = Field(3, ge=1)
    length: int = Field(500, ge=16)
    sampling_rate: float = Field(100.0, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _modality_keys(self) -> SyntheticSpec:
        if self.modality != "table":
            # image/ECG cohorts default to the generators' own sizes (CNNs train slower)
            for key, value in _MEDIA_SYNTHETIC_DEFAULTS.items():
                if key not in self.model_fields_set:
                    setattr(self, key, value)
        fields = type(self).model_fields
        wrong = sorted(
            k
            for k in self.model_fields_set
            if _SYNTHETIC_ONLY.get(k, self.modality) != self.modality
            and getattr(self, k) != fields[k].get_default()
        )
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} do not apply to modality "
                f"{self.modality!r}; remove them or set cohort.synthetic.modality"
            )
        if self.modality == "table" and self.num_labels is not None:
            raise ValueError(
                "cohort.synthetic.num_labels: multi-label synthetic cohorts are images or "
                "signals; set modality = \"image\" or \"signal\""
            )
        return self


#: [cohort] keys that only tables use, and keys that only image/signal cohorts use.
_TABLE_KEYS = ("features", "exclude", "positive", "categorical")
_MEDIA_KEYS = (
    "path_column", "root", "array", "labels", "label_separator", "splits", "image_size",
    "channels", "sampling_rate", "length", "leads", "standardize",
)


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
    # image and signal cohorts (see miaudit.datasets.media.MediaSpec)
    modality: Literal["table", "image", "signal"] | None = None
    path_column: str | None = None
    root: Path | None = None
    array: Path | None = None
    labels: list[str] | None = None
    label_separator: str | None = None
    splits: list[str] | None = None
    image_size: tuple[int, int] | None = None
    channels: Literal[1, 3] | None = None
    sampling_rate: float | None = Field(None, gt=0)
    length: int | None = Field(None, ge=1)
    leads: list[str] | None = None
    standardize: bool | None = None

    @property
    def is_media(self) -> bool:
        """Images or signals read by ``datasets.media`` (an index with a modality, or a .npz)."""
        if self.path is None:
            return False
        return self.modality in ("image", "signal") or self.path.suffix.lower() == ".npz"

    def input_modality(self) -> str:
        """The modality the config asks for, known before any data is read."""
        if self.synthetic is not None:
            return self.synthetic.modality
        if self.is_media:
            return self.modality or "image"
        return "table"

    @model_validator(mode="after")
    def _one_source(self) -> CohortConfig:
        sources = [self.dataset is not None, self.synthetic is not None, self.path is not None]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one of cohort.dataset (a built-in cohort, see `miaudit datasets`), "
                "cohort.path (your CSV/Parquet table, image/signal index or MedMNIST .npz) or a "
                "[cohort.synthetic] table"
            )
        # keys holding a non-default value (a dumped config repeats the defaults)
        defaults = type(self).model_fields
        given = {
            k
            for k in self.model_fields_set
            if getattr(self, k) != defaults[k].get_default(call_default_factory=True)
        }
        if self.path is None:
            stray = [k for k in (*_TABLE_KEYS, *_MEDIA_KEYS, "modality") if k in given]
            if stray:
                raise ValueError(
                    f"cohort.{stray[0]} describes a file given by cohort.path; remove it or give "
                    "cohort.path"
                )
            return self
        if self.is_media:
            stray = [k for k in _TABLE_KEYS if k in given]
            if stray:
                raise ValueError(
                    f"cohort.{stray[0]} applies to tables only; an image/signal cohort uses "
                    "every pixel/sample as input (remove it)"
                )
            is_npz = self.path.suffix.lower() == ".npz"
            if not is_npz and self.label is None and self.labels is None:
                raise ValueError(
                    "cohort.path (an image/signal index) needs cohort.label (one label column) or "
                    "cohort.labels (several 0/1 finding columns)"
                )
            return self
        stray = [k for k in _MEDIA_KEYS if k in given]
        if stray:
            raise ValueError(
                f"cohort.{stray[0]} applies to image/signal cohorts; set cohort.modality = "
                "\"image\" or \"signal\" for an index of image/signal files, or remove it"
            )
        if self.label is None:
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


#: The family a modality gets when [model] family is not given.
_DEFAULT_FAMILY = {"table": "mlp", "image": "wrn", "signal": "resnet1d"}
#: Modality each convolutional family takes.
_CONV_FAMILY_MODALITY = {"wrn": "image", "resnet1d": "signal"}


class AuditConfig(_Strict):
    """One audit: cohort, model recipe, training recipe, audit and report options."""

    cohort: CohortConfig = Field(default_factory=lambda: CohortConfig(dataset="rhc"))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    privacy: DPSpec = Field(default_factory=DPSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    views: ViewSpec = Field(default_factory=ViewSpec)

    @model_validator(mode="before")
    @classmethod
    def _family_for_modality(cls, data: Any) -> Any:
        """Without [model] family, images get the WRN and signals the 1-D ResNet.

        The MLP default suits tables only; picking the matching CNN lets an image or ECG
        audit run from a [cohort] table alone.
        """
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        if isinstance(model, dict) and "family" in model:
            return data
        if isinstance(model, ModelSpec) and "family" in model.model_fields_set:
            return data
        try:
            cohort = CohortConfig.model_validate(data.get("cohort", {"dataset": "rhc"}))
        except ValidationError:
            return data  # reported by the field's own validation
        family = _DEFAULT_FAMILY[cohort.input_modality()]
        if family != "mlp":
            base = model.model_dump(exclude_unset=True) if isinstance(model, ModelSpec) else dict(model or {})
            data = {**data, "model": {**base, "family": family}}
        return data

    @model_validator(mode="after")
    def _model_fits_cohort(self) -> AuditConfig:
        modality = self.cohort.input_modality()
        wanted = _DEFAULT_FAMILY[modality]
        family = self.model.family
        if (family in _CONV_FAMILY_MODALITY) != (modality != "table") or (
            family in _CONV_FAMILY_MODALITY and _CONV_FAMILY_MODALITY[family] != modality
        ):
            raise ValueError(
                f"model.family = {family!r} does not take {modality} records; use "
                f"family = \"{wanted}\" for this cohort"
                + ("" if modality == "table" else " (or leave [model] family unset)")
            )
        if modality == "table" and (self.views.flip or self.views.shift):
            raise ValueError(
                "views: tables have one view (the record itself); remove the [views] table"
            )
        if family in _CONV_FAMILY_MODALITY and self.privacy.enabled:
            raise ValueError(
                f"privacy: patient-level DP-SGD is implemented for the table families; "
                f"model.family = {family!r} cannot be trained privately yet — remove "
                "[privacy] epsilon or audit a table cohort"
            )
        return self

    def training_hash(self) -> str:
        """Hash of everything the trained models depend on (not attacks, report or executor).

        A run directory is bound to this hash: resuming with a different recipe would mix
        shards of two experiments. Scoring is recomputed from the shards on every run, so
        changing the attacks or thresholds reuses the trained models.
        """
        science = self.model_dump(
            mode="json", include={"cohort", "model", "training", "privacy", "views"}
        )
        # where the files lie is not science (the data fingerprint binds their content), so
        # a run and its data can move to another folder or machine and still resume
        for key in ("path", "root", "array"):
            science["cohort"].pop(key, None)
        # keys added for images and signals are left out where unused, so runs of tables
        # made before them keep their hash
        for key in ("modality", *_MEDIA_KEYS):
            if science["cohort"].get(key) is None:
                science["cohort"].pop(key, None)
        synthetic = science["cohort"].get("synthetic")
        if synthetic and synthetic["modality"] == "table":
            for key in ("modality", "num_labels", *(k for k, m in _SYNTHETIC_ONLY.items() if m != "table")):
                synthetic.pop(key, None)
        if self.model.family != "resnet1d":
            science["model"].pop("kernel_size", None)  # a resnet1d knob only
        if science["views"] == ViewSpec().model_dump(mode="json"):
            science.pop("views")  # runs made before views existed keep their hash
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
    if isinstance(cohort, dict):
        for key in ("path", "root", "array"):
            if isinstance(cohort.get(key), str):
                p = Path(cohort[key]).expanduser()
                cohort[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
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
