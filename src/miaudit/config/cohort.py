"""The ``[cohort]`` table: a built-in cohort, a synthetic one, or the user's table or index.

The schema describes where the records come from; ``miaudit.audit.load_cohort`` and
``miaudit.datasets`` read or build them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from miaudit.config.base import Strict

__all__ = ["LOCAL_DATASETS", "CohortConfig", "SyntheticSpec"]


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


class SyntheticSpec(Strict):
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
    sampling_rate: float = Field(100.0, gt=0, allow_inf_nan=False)
    seed: int = Field(0, ge=0, lt=2**63, description="random seed (a whole number ≥ 0)")

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


#: The paper's datasets read from a local copy (``miaudit.datasets.local``) and what their
#: records are, so a config's recipe is checked against them before any file is read.
LOCAL_DATASETS: dict[str, str] = {
    "chexpert": "image", "mimic_cxr": "image", "embed": "image", "fairvision": "image",
    "fitzpatrick17k": "image", "ptbxl": "signal", "mimic_iv_ed": "table", "ham10000": "image",
}

#: [cohort] keys that only tables use, and keys that only image/signal cohorts use.
_TABLE_KEYS = ("features", "exclude", "positive", "categorical")
_MEDIA_KEYS = (
    "path_column", "root", "array", "labels", "label_separator", "splits", "image_size",
    "channels", "sampling_rate", "length", "leads", "standardize",
)


class CohortConfig(Strict):
    """Where the records come from: a built-in cohort, a synthetic one, or the user's table."""

    dataset: str | None = Field(
        None, description="a built-in cohort, or a paper dataset read from your copy under "
        "root (see `miaudit datasets`)"
    )
    synthetic: SyntheticSpec | None = None
    path: Path | None = Field(
        None, description="your table (.csv/.tsv/.parquet), image/signal index or MedMNIST .npz"
    )
    label: str | None = Field(None, description="the label column (binary or categorical)")
    patient_id: str | None = Field(
        None, description="column naming each record's patient (records go IN or OUT together)"
    )
    record_id: str | None = Field(None, description="column naming each record (unique)")
    features: list[str] | None = Field(
        None, description="feature columns (default: all but label, ids, exclude)"
    )
    exclude: list[str] = Field(default_factory=list, description="columns that are not features")
    attributes: list[str] = Field(
        default_factory=list, description="patient subgroup columns for the disparity analysis"
    )
    positive: str | None = Field(None, description="audit this label value against all others")
    categorical: list[str] | None = Field(
        None, description="numeric columns to one-hot encode as categories"
    )
    # image and signal cohorts (see miaudit.datasets.media.MediaSpec)
    modality: Literal["table", "image", "signal"] | None = Field(
        None, description="what the index's files hold"
    )
    path_column: str | None = Field(None, description="index column with each record's file")
    root: Path | None = Field(
        None, description="folder the index's file paths are relative to; with a paper "
        "dataset, the folder of your copy of it"
    )
    array: Path | None = Field(None, description="signals: one .npy array of all records")
    labels: list[str] | None = Field(None, description="multi-label: the finding columns")
    label_separator: str | None = Field(
        None, description="multi-label findings in one column, separated by this"
    )
    splits: list[str] | None = Field(None, description="MedMNIST: the splits to audit")
    image_size: tuple[int, int] | None = Field(None, description="images resized to (H, W)")
    channels: Literal[1, 3] | None = Field(None, description="images: greyscale or RGB")
    sampling_rate: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="signals: samples per second"
    )
    length: int | None = Field(None, ge=1, description="signals: samples per record")
    leads: list[str] | None = Field(None, description="signals: the leads to read")
    standardize: bool | None = Field(None, description="signals: standardise each lead")

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
        if self.dataset in LOCAL_DATASETS:
            return LOCAL_DATASETS[self.dataset]
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
            # a dataset read from a local copy takes its folder (`root`) and nothing else
            local = {"root"} if self.dataset is not None else set()
            stray = [k for k in (*_TABLE_KEYS, *_MEDIA_KEYS, "modality") if k in given - local]
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
