"""Hostile and broken input: one clear error, exit code 2, no traceback, nothing changed.

Every case runs ``miaudit audit`` as a child process (forked from a zygote that has already
imported miaudit, see hostile/zygote.py; one case also runs as a plain subprocess) on a
user's folder holding a valid CSV, a valid config and a finished run. Unless a case says
otherwise, ``--out`` points at that finished run. Each case asserts the exit code, the words
that name what is wrong and where, no traceback, and that the sha256 and mode of every file
in the user's folder (inputs, configs, the existing run) are unchanged and nothing was added.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostile.runfiles import tree_state
from hostile.zygote import Result, Zygote

NUM_PATIENTS = 60


def base_table() -> pd.DataFrame:
    """Emergency visits: 60 patients, the first 20 with two visits, both label classes."""
    rng = np.random.default_rng(7)
    patient = np.r_[np.arange(NUM_PATIENTS), np.arange(20)]
    n = patient.size
    sex = np.where(np.arange(NUM_PATIENTS) % 2 == 0, "female", "male")[patient]
    insurance = np.array(["private", "public", "uninsured"])[np.arange(NUM_PATIENTS) % 3][patient]
    age = rng.integers(18, 90, NUM_PATIENTS)[patient]
    heart_rate = np.round(rng.normal(85, 15, n), 1)
    lactate = np.round(rng.gamma(2.0, 1.0, n), 2)
    score = (heart_rate - 85) / 15 + (lactate - 2) + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "subject_id": [f"S{p:04d}" for p in patient],
            "visit_id": [f"V{i:05d}" for i in range(n)],
            "age": age,
            "heart_rate": heart_rate,
            "lactate": lactate,
            "triage": (np.arange(n) % 5 + 1).astype(str),
            "sex": sex,
            "insurance": insurance,
            "admitted": np.where(score > 0, "yes", "no"),
        }
    )


CONFIG = """\
[cohort]
path = "{data}"
label = "{label}"
patient_id = "subject_id"
record_id = "visit_id"
attributes = ["sex", "insurance"]
{cohort_extra}
[model]
family = "logistic"

[audit]
models = 4
attacks = ["loss", "rmia"]
{audit_extra}
[report]
html = false
"""


SWEEP_CONFIG = """\
[cohort]
path = "data/visits.csv"
label = "admitted"
patient_id = "subject_id"
record_id = "visit_id"

[model]
family = "mlp"

[audit]
models = 4
attacks = ["loss"]

[sweep]
widths = [4]
"""


def config(data: str = "data/visits.csv", label: str = "admitted", cohort_extra: str = "",
           audit_extra: str = "", tail: str = "") -> str:
    return CONFIG.format(data=data, label=label, cohort_extra=cohort_extra,
                         audit_extra=audit_extra) + tail


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def changed(**columns: Callable[[pd.Series], object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        for name, fn in columns.items():
            frame[name] = fn(frame[name])
        return frame

    return apply


def with_value(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return apply


class Payload:
    """Unpickling this creates a folder: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def pickled_npz(path: Path, marker: Path, key: str) -> None:
    """Replace an .npz's ``key`` array with a pickled Payload (object dtype), keeping the rest."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.savez(path, **{**arrays, key: payload})


@dataclass
class Case:
    """One hostile input: files to add to the user's folder, the command, what it must say."""

    name: str
    expect: list[str]
    files: dict[str, bytes | Callable[[pd.DataFrame], bytes]] = field(default_factory=dict)
    config: str | None = None  # written as case.toml; None: the user's valid config
    argv: list[str] | None = None  # default: audit CONFIG --out runs/existing
    out: str = "runs/existing"
    setup: Callable[[Path], None] | None = None  # changes the folder in other ways


def data(fn: Callable[[pd.DataFrame], pd.DataFrame], kind: str = "csv") -> Callable[[pd.DataFrame], bytes]:
    return lambda frame: (csv if kind == "csv" else parquet)(fn(frame))


def png(height: int, width: int, seed: int = 0) -> bytes:
    """A small grayscale PNG."""
    from PIL import Image

    pixels = (np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def image_folder(sizes: dict[int, tuple[int, int]] | None = None,
                 broken: int | None = None) -> dict[str, bytes]:
    """imgs/index.csv and 8 PNGs (one per patient); optional odd sizes or a broken file."""
    rows = ["path,label,patient_id,sex"]
    files: dict[str, bytes] = {}
    for i in range(8):
        h, w = (sizes or {}).get(i, (8, 8))
        files[f"imgs/r{i}.png"] = b"not a png" if i == broken else png(h, w, i)
        rows.append(f"r{i}.png,{'yes' if i % 2 else 'no'},P{i},{'f' if i % 2 else 'm'}")
    files["imgs/index.csv"] = ("\n".join(rows) + "\n").encode()
    return files


IMAGE_CONFIG = """\
[cohort]
path = "imgs/index.csv"
modality = "image"
label = "{label}"
patient_id = "patient_id"
attributes = ["sex"]
{extra}
[audit]
models = 4
attacks = ["loss"]
"""


CASES = [
    # -- columns ----------------------------------------------------------------------------
    Case("label misspelt", ["'admited' (label) not found", "Did you mean 'admitted'?", "visits.csv"],
         config=config(label="admited")),
    Case("label in the wrong case", ["'Admitted' (label) not found", "Did you mean 'admitted'?"],
         config=config(label="Admitted")),
    Case("feature misspelt", ["'hart_rate' (features) not found", "Did you mean 'heart_rate'"],
         config=config(cohort_extra='features = ["age", "hart_rate"]')),
    Case("patient id column misspelt", ["'subjectid' (patient_id) not found"],
         config=config().replace('patient_id = "subject_id"', 'patient_id = "subjectid"')),
    Case("attribute missing", ["'race' (attributes) not found", "visits.csv"],
         config=config().replace('["sex", "insurance"]', '["sex", "race"]')),
    Case("exclude names a missing column", ["'notes' (exclude) not found"],
         config=config(cohort_extra='exclude = ["notes"]')),
    Case("label listed as a feature", ["label column 'admitted' is listed in `features`"],
         config=config(cohort_extra='features = ["age", "admitted"]')),
    Case("repeated column names", ["column names repeat in the header", "'age'"],
         files={"data/visits.csv": lambda f: csv(f).replace(b",heart_rate,", b",age,", 1)}),
    Case("semicolon-delimited file", ["'admitted' (label) not found", "delimiter does not match"],
         files={"data/visits.csv": lambda f: f.to_csv(index=False, sep=";").encode()}),
    # -- values -----------------------------------------------------------------------------
    Case("infinite feature", ["feature column 'heart_rate' has infinite values", "data rows 4"],
         files={"data/visits.csv": data(with_value("heart_rate", 3, "inf"))}),
    Case("minus infinity in parquet", ["visits.parquet", "feature column 'lactate' has infinite values"],
         files={"data/visits.parquet": data(with_value("lactate", 0, -np.inf), "parquet")},
         config=config(data="data/visits.parquet")),
    Case("all features empty (NaN)", ["no usable feature columns"],
         files={"data/visits.csv": data(changed(lactate=lambda s: np.nan))},
         config=config(cohort_extra='features = ["lactate"]')),
    Case("huge feature values", ["feature column 'heart_rate' holds values too large", "1e+308 in data row 2"],
         files={"data/visits.csv": data(with_value("heart_rate", 1, 1e308))}),
    Case("empty label cells (NaN)", ["label column 'admitted' is empty in 2 row(s)", "data rows 5, 9"],
         files={"data/visits.csv": data(lambda f: with_value("admitted", 8, None)(with_value("admitted", 4, None)(f)))}),
    Case("one class only", ["label column 'admitted' has a single class", "'yes'"],
         files={"data/visits.csv": data(changed(admitted=lambda s: "yes"))}, out="runs/new"),
    Case("positive is not a class", ["positive = 'admit' is not a value of label column 'admitted'", "'no', 'yes'"],
         config=config(cohort_extra='positive = "admit"')),
    Case("label outside the classes (fractional)", ["label column 'admitted' holds non-integer numbers", "0.5"],
         files={"data/visits.csv": data(lambda f: with_value("admitted", 2, 0.5)(
             changed(admitted=lambda s: (s == "yes").astype(float))(f)))}),
    Case("duplicate record ids", ["record id column 'visit_id' repeats values", "'V00002'", "data rows 3, 4"],
         files={"data/visits.csv": data(with_value("visit_id", 3, "V00002"))}),
    Case("patient with conflicting attributes", ["attribute 'sex' differs between records of the same patient"],
         files={"data/visits.csv": data(with_value("sex", 61, "female"))}),
    Case("empty patient id cells", ["patient id column 'subject_id' is empty in 1 row(s)", "data rows 7"],
         files={"data/visits.csv": data(with_value("subject_id", 6, None))}),
    Case("identifier used as a feature", ["categorical feature column 'visit_note'", "looks like an identifier"],
         files={"data/visits.csv": data(lambda f: f.assign(visit_note=[f"note {i}" for i in range(len(f))]))}),
    Case("too few patients", ["cohort visits: 3 patients", "needs ≥ 4"],
         files={"data/visits.csv": data(lambda f: f[f.subject_id.isin(["S0000", "S0001", "S0002", "S0003"])]
                                         .assign(subject_id=lambda d: d.subject_id.replace("S0003", "S0002"),
                                                 sex="female", insurance="private"))}),
    # -- files ------------------------------------------------------------------------------
    Case("empty file", ["visits.csv' is empty (0 bytes)"], files={"data/visits.csv": b""}),
    Case("header but no rows", ["has a header (9 columns) but no data rows"],
         files={"data/visits.csv": lambda f: csv(f.iloc[:0])}),
    Case("spreadsheet instead of a table", ["cannot read .xlsx", ".csv, .tsv"],
         files={"data/visits.xlsx": b"PK\x03\x04 not really a workbook"},
         config=config(data="data/visits.xlsx")),
    Case("image saved as .csv", ["visits.csv' is not UTF-8 text", "byte 0x89 at byte offset 0"],
         files={"data/visits.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))}),
    Case("CSV text saved as .parquet", ["visits.parquet' is not a readable Parquet file"],
         files={"data/visits.parquet": csv}, config=config(data="data/visits.parquet")),
    Case("gzip that is not gzip", ["visits.csv.gz' is not a complete gzip file"],
         files={"data/visits.csv.gz": csv}, config=config(data="data/visits.csv.gz")),
    Case("latin-1 text", ["visits.csv' is not UTF-8 text", "byte 0xed at byte offset", "iconv"],
         files={"data/visits.csv": lambda f: csv(f).replace(b"public", "publíc".encode("latin-1"))}),
    Case("data file missing", ["nowhere.csv' not found"], config=config(data="data/nowhere.csv")),
    Case("data path is a folder", ["is a directory, not a table file"],
         files={"data/folder.csv/readme.txt": b"x"}, config=config(data="data/folder.csv")),
    # -- config -----------------------------------------------------------------------------
    Case("TOML syntax error", ["case.toml: not valid TOML", "line"],
         config=config(audit_extra="seed = ")),
    Case("config not UTF-8", ["case.toml: not UTF-8 text", "save the config as UTF-8"],
         config=None, files={"case.toml": lambda f: ("# réglages\n" + config()).encode("latin-1")}),
    Case("misspelt config key", ["audit.modles", "unknown key"],
         config=config(audit_extra="modles = 8")),
    Case("unknown section", ["trainng", "unknown key"],
         config=config(tail="\n[trainng]\nepochs = 3\n")),
    Case("wrong type", ["audit.seed", "valid integer"], config=config(audit_extra='seed = "zero"')),
    Case("negative epochs", ["training.epochs", "greater than or equal to 1"],
         config=config(tail="\n[training]\nepochs = -1\n")),
    Case("odd number of models", ["audit.models = 7", "must be even"],
         config=config().replace("models = 4", "models = 7"), out="runs/new"),
    Case("too few models for LiRA", ["audit.models = 4 is too few for lira", "audit.models ≥ 6"],
         config=config().replace('["loss", "rmia"]', '["lira", "loss"]')),
    Case("absurd number of models", ["audit.models", "less than or equal to 10000"],
         config=config().replace("models = 4", "models = 100000000000")),
    Case("one target", ["audit.targets = 1", "at least 2 targets"], config=config(audit_extra="targets = 1")),
    Case("more targets than models", ["audit.targets = 9 exceeds audit.models = 4"],
         config=config(audit_extra="targets = 9")),
    Case("unknown attack", ["audit.attacks", "'lria'", "choose from"],
         config=config().replace('["loss", "rmia"]', '["lria"]')),
    Case("threshold outside 0.5..1", ["audit.thresholds"], config=config(audit_extra="thresholds = [1.5]")),
    Case("two cohort sources", ["give exactly one of cohort.dataset"],
         config=config(cohort_extra='dataset = "rhc"')),
    Case("unknown built-in dataset", ["unknown dataset 'rhx'", "Did you mean 'rhc'?"],
         argv=["audit", "--dataset", "rhx", "--models", "8", "--out", "runs/existing"]),
    Case("config file missing", ["nothing.toml: config file not found"],
         argv=["audit", "nothing.toml", "--out", "runs/existing"]),
    Case("a CSV passed as the config", ["visits.csv: not valid TOML"],
         argv=["audit", "data/visits.csv", "--out", "runs/existing"]),
    Case("unknown executor", ["executor.kind", "'local' or 'ray'"],
         argv=["audit", "config.toml", "--executor", "slurm", "--out", "runs/existing"]),
    Case("address without ray", ["--address '10.0.0.5:6379' is only used with --executor ray"],
         argv=["audit", "config.toml", "--address", "10.0.0.5:6379", "--out", "runs/existing"]),
    # -- run directories --------------------------------------------------------------------
    Case("run directory from another config", ["runs/existing: holds a run made with a different",
                                               "training_hash", "--force"],
         config=config().replace('family = "logistic"', 'family = "mlp"')),
    Case("output is an existing file", ["visits.csv: exists and is not a directory"],
         argv=["audit", "config.toml", "--out", "data/visits.csv"]),
    Case("output is someone else's folder", ["data: folder is not empty and holds no miaudit run"],
         argv=["audit", "config.toml", "--out", "data"]),
    Case("damaged run record", ["runs/damaged/run.json: damaged run record", "--force"],
         argv=["audit", "config.toml", "--out", "runs/damaged"]),
    # -- folders miaudit does not own: refused before anything is written ----------------
    *[Case(f"--out holding {what}", ["runs/mine: folder is not empty and holds no miaudit run",
                                      "never deletes or replaces"],
           files={f"runs/mine/{k}": v for k, v in files.items()},
           argv=["audit", "config.toml", "--out", "runs/mine", *force])
      for what, files, force in (
          ("a stray run.lock and the user's config", {"run.lock": b"", "config.toml": b"x=1\n"}, []),
          ("a run.json that is null", {"run.json": b"null"}, []),
          ("a run.json that is a list", {"run.json": b"[]"}, ["--force"]),
          ("another tool's run.json", {"run.json": b'{"tool": "other", "identity": 3}'},
           ["--force"]),
          ("the user's notes, with --force", {"notes.md": b"mine", "src/analysis.py": b"1"},
           ["--force"]),
      )],
    # -- input meaning: never silently reinterpreted --------------------------------------
    Case("labels that differ only in case", ["label column 'admitted' writes one class in "
                                             "several ways", "'No', 'no'"],
         files={"data/cased.csv": data(changed(admitted=lambda v: np.where(
             np.arange(len(v)) % 7 == 0, v.str.capitalize(), v)))},
         config=config(data="data/cased.csv")),
    Case("a count column as the label", ["label column 'age' holds", "count or a measurement",
                                         "positive = VALUE"],
         config=config(label="age")),
    Case("a numeric id column and no patient_id", ["column 'subject_id' looks like an "
                                                   "identifier", "patient_id = 'subject_id'"],
         files={"data/numeric_ids.csv": data(changed(subject_id=lambda v: v.str[1:].astype(int)))},
         config=config(data="data/numeric_ids.csv").replace('patient_id = "subject_id"\n', "")),
    Case("a text id column and no patient_id", ["column 'subject_id' looks like an identifier",
                                                "patient_id = 'subject_id'"],
         config=config().replace('patient_id = "subject_id"\n', "")),
    Case("an infinite learning rate", ["training.learning_rate", "finite number"],
         config=config(tail="\n[training]\nlearning_rate = inf\n")),
    # -- OS faults on the run's paths: one message naming the path and the fix ------------
    Case("--out under a regular file", ["data/visits.csv/run", "a part of this path is a file"],
         argv=["audit", "config.toml", "--out", "data/visits.csv/run"]),
    Case("--out a dangling symbolic link", ["runs/link: a symbolic link to", "does not exist"],
         setup=lambda root: (root / "runs/link").symlink_to(root / "nowhere"),
         argv=["audit", "config.toml", "--out", "runs/link"]),
    Case("a negative seed", ["audit.seed", "greater than or equal to 0"],
         config=config(audit_extra="seed = -1")),
    Case("a run.json that is valid JSON but not an object",
         ["runs/listed: folder is not empty and holds no miaudit run"],
         files={"runs/listed/run.json": b"[1, 2]", "runs/listed/plan.npz": b"x"},
         argv=["audit", "config.toml", "--out", "runs/listed"]),
    Case("a run file the user changed", ["runs/existing: summary.json changed since miaudit wrote",
                                         "never replaces a file it did not write"],
         setup=lambda root: (root / "runs/existing/summary.json").write_text("{}")),
    Case("a run file the user changed, with --force",
         ["summary.json changed since miaudit wrote"],
         setup=lambda root: (root / "runs/existing/summary.json").write_text("{}"),
         argv=["audit", "config.toml", "--out", "runs/existing", "--force"]),
    Case("a user's file under a run's name", ["runs/existing: report.html changed since",
                                              "or miaudit never wrote it"],
         files={"runs/existing/report.html": b"<p>my notes</p>"}),
    Case("sweep into the user's folder", ["sweeps: folder is not empty and holds no miaudit "
                                          "sweep", "sweep.csv"],
         files={"sweeps/sweep.csv": b"a,b\n1,2\n", "sweep.toml": SWEEP_CONFIG.encode()},
         argv=["sweep", "sweep.toml", "--out", "sweeps"]),
    # -- the paper's datasets from a local copy -----------------------------------------------
    Case("paper dataset without its folder", ["dataset 'ptbxl' is read from your local copy",
                                              "set cohort.root (or --root)", "physionet.org"],
         argv=["audit", "--dataset", "ptbxl", "--out", "runs/ptbxl"]),
    Case("paper dataset folder missing", ["ptbxl: cohort.root 'ptb-xl' does not exist",
                                          "miaudit datasets"],
         argv=["audit", "--dataset", "ptbxl", "--root", "ptb-xl", "--out", "runs/ptbxl"]),
    Case("paper dataset misspelt", ["unknown dataset 'ptb_xl'. Did you mean 'ptbxl'?"],
         argv=["audit", "--dataset", "ptb_xl", "--root", "data", "--out", "runs/ptbxl"]),
    Case("paper layout lacks a file", ["'scp_statements.csv' not found; it should hold the SCP statements"],
         files={"ptb-xl/ptbxl_database.csv": b"ecg_id,patient_id\n1,15709.0\n"},
         argv=["audit", "--dataset", "ptbxl", "--root", "ptb-xl", "--out", "runs/ptbxl"]),
    Case("paper layout lacks a column", ["'ptbxl_database.csv' lacks column(s) 'age', 'sex'"],
         files={"ptb-xl/ptbxl_database.csv": b"ecg_id,patient_id\n1,15709.0\n",
                "ptb-xl/scp_statements.csv": b",diagnostic,diagnostic_class\nNORM,1.0,NORM\n"},
         argv=["audit", "--dataset", "ptbxl", "--root", "ptb-xl", "--out", "runs/ptbxl"]),
    Case("paper coding violated", ["'fitzpatrick17k.csv' column 'three_partition_label' holds "
                                   "'neoplastic' in data rows 2", "non-neoplastic, malignant, benign"],
         files={"fitz/fitzpatrick17k.csv": b"md5hash,fitzpatrick_scale,three_partition_label,qc\n"
                b"a1,1,benign,\na2,3,neoplastic,1 Diagnostic\n"},
         argv=["audit", "--dataset", "fitzpatrick17k", "--root", "fitz", "--out", "runs/fitz"]),
    Case("root with a built-in cohort", ["cohort.root: the built-in cohort 'rhc' ships with its package"],
         argv=["audit", "--dataset", "rhc", "--root", "data", "--out", "runs/rhc"]),
    Case("paper preset for another cohort", ["preset = 'paper' is defined for the paper's datasets",
                                            "cohort.dataset is 'rhc'"],
         argv=["audit", "--dataset", "rhc", "--preset", "paper", "--out", "runs/rhc"]),
    # -- images -----------------------------------------------------------------------------
    Case("image file is not an image", ["r3.png", "index.csv", "data row 4", "not a readable image"],
         files=image_folder(broken=3),
         config=IMAGE_CONFIG.format(label="label", extra=""), out="runs/images"),
    Case("images of different sizes", ["images differ in size", "r3.png", "9×9", "image_size"],
         files=image_folder(sizes={3: (9, 9)}),
         config=IMAGE_CONFIG.format(label="label", extra=""), out="runs/images"),
    Case("image label column missing", ["column 'finding' (label) not found", "index.csv"],
         files=image_folder(), config=IMAGE_CONFIG.format(label="finding", extra=""),
         out="runs/images"),
    Case("table model for images", ['model.family = \'mlp\' does not take image records',
                                    'family = "wrn"'],
         files=image_folder(),
         config=IMAGE_CONFIG.format(label="label", extra="[model]\nfamily = \"mlp\""),
         out="runs/images"),
]


class World:
    """The user's folder: data/visits.csv, config.toml, runs/existing (finished)."""

    def __init__(self, root: Path, zygote: Zygote) -> None:
        self.root = root
        self.zygote = zygote
        self.logs = root.parent / f"{root.name}-logs"
        self.logs.mkdir()
        self.table = base_table()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    zygote = Zygote()
    try:
        root = tmp_path_factory.mktemp("user")
        (root / "data").mkdir()
        w = World(root, zygote)
        (root / "data" / "visits.csv").write_bytes(csv(w.table))
        (root / "config.toml").write_text(config())
        r = zygote.start(["audit", "config.toml", "--out", "runs/existing"], cwd=root,
                         logs=w.logs / "existing", env={"HOME": str(w.logs)})
        assert r.returncode == 0, r.stderr
        damaged = root / "runs" / "damaged"
        shutil.copytree(root / "runs" / "existing", damaged)
        text = (damaged / "run.json").read_text()
        (damaged / "run.json").write_text(text[: len(text) // 2])
        yield w
    finally:
        zygote.close()


@pytest.fixture
def case_world(world: World, tmp_path: Path) -> World:
    """A private copy of the user's folder for one case."""
    root = tmp_path / "user"
    shutil.copytree(world.root, root, symlinks=True)
    copy = World.__new__(World)
    copy.root, copy.zygote, copy.table = root, world.zygote, world.table
    copy.logs = tmp_path / "logs"
    copy.logs.mkdir()
    return copy


def prepare(case: Case, w: World) -> list[str]:
    for rel, content in case.files.items():
        path = w.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content(w.table))
    if case.config is not None:
        (w.root / "case.toml").write_text(case.config)
    if case.setup is not None:
        case.setup(w.root)
    if case.argv is not None:
        return case.argv
    name = "case.toml" if case.config is not None or "case.toml" in case.files else "config.toml"
    return ["audit", name, "--out", case.out]


def check(case: Case, r: Result, before: dict[str, tuple[str, int]], w: World) -> None:
    err = r.stderr
    assert r.returncode == 2, f"exit {r.returncode}: {err[-3000:]}"
    assert "Traceback" not in err + r.stdout
    message = " ".join(err[err.index("error:"):].split()) if "error:" in err else err
    assert err.count("error:") == 1, err
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert tree_state(w.root) == before, "the user's folder changed"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gives_one_clear_error_and_changes_nothing(case: Case, case_world: World) -> None:
    argv = prepare(case, case_world)
    before = tree_state(case_world.root)
    r = case_world.zygote.start(argv, cwd=case_world.root, logs=case_world.logs / "case",
                                env={"HOME": str(case_world.logs)})
    check(case, r, before, case_world)


def test_the_suite_has_at_least_thirty_distinct_cases() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 30


def test_a_plain_subprocess_says_the_same_as_the_zygote(case_world: World) -> None:
    case = next(c for c in CASES if c.name == "patient with conflicting attributes")
    argv = prepare(case, case_world)
    before = tree_state(case_world.root)
    r = subprocess.run([sys.executable, "-m", "miaudit.cli", *argv], cwd=case_world.root,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "200", "HOME": str(case_world.logs)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    forked = case_world.zygote.start(argv, cwd=case_world.root, logs=case_world.logs / "z",
                                     env={"HOME": str(case_world.logs)})
    assert " ".join(r.stderr.split()) == " ".join(forked.stderr.split())
    assert tree_state(case_world.root) == before




@pytest.mark.parametrize(("target", "key"), [("plan.npz", "keep"), ("shards/models-*.npz", "logits")])
def test_a_run_file_holding_a_pickle_is_never_unpickled(
    case_world: World, target: str, key: str
) -> None:
    """A tampered plan or shard is refused by name; its payload never runs.

    The tamperer also rewrites the manifest's hash of the file (else the run refuses the
    changed file before reading it, see the ownership tests), so the reader's own refusal of
    pickles is what is tested.
    """
    root = case_world.root
    run = root / "runs/existing"
    target = str(next(run.glob(target)).relative_to(run))
    pickled_npz(run / target, root / "pwned", key)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"][target] = hashlib.sha256((run / target).read_bytes()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))
    before = tree_state(root)
    r = case_world.zygote.start(["audit", "config.toml", "--out", "runs/existing"], cwd=root,
                                logs=case_world.logs / "npz", env={"HOME": str(case_world.logs)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    message = " ".join(r.stderr.split())
    assert f"runs/existing/{target}: unreadable or not a plain-array .npz file" in message
    assert "delete it" in message
    assert not (root / "pwned").exists()
    after = tree_state(root)
    # the data, the tampered file and the shards are as they were. The rerun had begun before
    # the plan or shard was read: run.json now says "complete": false, and config.toml was
    # rewritten (with this copy's folder in its cohort path), both recorded in the manifest
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= {
        "runs/existing/run.json", "runs/existing/config.toml", "runs/existing/manifest.json"
    }, changed


def test_with_redact_no_patient_or_record_id_reaches_output_or_run_files(case_world: World) -> None:
    root = case_world.root
    r = case_world.zygote.start(["audit", "config.toml", "--redact", "--out", "runs/redacted"],
                                cwd=root, logs=case_world.logs / "redact",
                                env={"HOME": str(case_world.logs)})
    assert r.returncode == 0, r.stderr
    table = case_world.table
    ids = set(table.subject_id) | set(table.visit_id)
    run = root / "runs/redacted"
    texts = {"stdout": r.stdout, "stderr": r.stderr}
    texts |= {p.name: p.read_text() for p in run.iterdir() if p.suffix in (".csv", ".json", ".toml")}
    for name, text in texts.items():
        leaked = [i for i in ids if i in text]
        assert not leaked, f"{name} shows {leaked[:3]}"
    for path in run.glob("*.parquet"):
        frame = pd.read_parquet(path)
        values = {str(v) for c in frame.columns if frame[c].dtype == object for v in frame[c]}
        assert not ids & values, f"{path.name} holds real ids"
    assert "Most exposed patients" in r.stdout  # the table was printed, with pseudonyms


# -- the user's files: never deleted, never replaced ---------------------------------------


def _state(paths: list[Path]) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
        for p in paths
    }


def test_force_replaces_the_run_and_keeps_every_file_of_the_users(case_world: World) -> None:
    root = case_world.root
    run = root / "runs/existing"
    mine = {"notes.md": b"my notes", "figures/plot.png": b"\x89PNG...", "src/analysis.py": b"1",
            "figures/deep/table.csv": b"a\n"}
    for rel, content in mine.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(content)
    os.chmod(run / "notes.md", 0o640)
    before = _state([run / rel for rel in mine])
    old_scores = sorted(p.name for p in (run / "scores").iterdir())
    assert "rmia.npy" in old_scores
    # --force with fewer attacks: the old run's files go, the user's stay, no stale scores
    (root / "fewer.toml").write_text(config().replace('["loss", "rmia"]', '["loss"]'))
    r = case_world.zygote.start(["audit", "fewer.toml", "--out", "runs/existing", "--force"],
                                cwd=root, logs=case_world.logs / "force",
                                env={"HOME": str(case_world.logs)})
    assert r.returncode == 0, r.stderr
    assert _state([run / rel for rel in mine]) == before
    assert not (run / "scores/rmia.npy").exists() and (run / "scores/loss.npy").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert not any(rel.startswith(("notes", "figures", "src")) for rel in manifest["files"])


def test_rescoring_with_fewer_attacks_removes_the_old_scores(case_world: World) -> None:
    root = case_world.root
    run = root / "runs/existing"
    (run / "scores/mine.npy").write_bytes(b"user's")  # not miaudit's: stays
    (root / "fewer.toml").write_text(config().replace('["loss", "rmia"]', '["loss"]'))
    r = case_world.zygote.start(["audit", "fewer.toml", "--out", "runs/existing"], cwd=root,
                                logs=case_world.logs / "fewer", env={"HOME": str(case_world.logs)})
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (run / "scores").iterdir())
    assert "rmia.npy" not in names and "rmia.null.npz" not in names
    assert {"loss.npy", "loss.null.npz", "mine.npy"} <= set(names)


def test_new_folders_of_a_run_and_a_sweep_are_owner_only(case_world: World) -> None:
    root = case_world.root
    (root / "sweep.toml").write_text(SWEEP_CONFIG)
    for argv in (["audit", "config.toml", "--out", "new/deep/run"],
                 ["sweep", "sweep.toml", "--out", "fresh/sweep"]):
        r = case_world.zygote.start(argv, cwd=root, logs=case_world.logs / argv[0],
                                    env={"HOME": str(case_world.logs)})
        assert r.returncode == 0, r.stderr
    for folder in ("new", "new/deep", "new/deep/run", "fresh", "fresh/sweep"):
        assert (root / folder).stat().st_mode & 0o777 == 0o700, folder
    for path in (root / "fresh").rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path


# -- user text is shown as written, never read as rich markup --------------------------------


def test_ids_columns_and_paths_with_brackets_are_printed_as_written(case_world: World) -> None:
    root = case_world.root
    table = case_world.table.copy()
    table["subject_id"] = table["subject_id"].str.replace("S00", "S[/]", regex=False)
    table["[red]"] = np.where(np.arange(len(table)) % 2, "[/x]", "[bold]b")
    (root / "data" / "brackets.csv").write_bytes(csv(table))
    (root / "brackets.toml").write_text(
        config(data="data/brackets.csv")
        .replace('attributes = ["sex", "insurance"]', 'attributes = ["[red]", "sex"]')
        .replace('attacks = ["loss", "rmia"]', 'attacks = ["loss"]')
    )
    env = {"HOME": str(case_world.logs), "COLUMNS": "250"}
    r = case_world.zygote.start(["audit", "brackets.toml", "--out", "runs/[/x] and [red]"],
                                cwd=root, logs=case_world.logs / "brackets", env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    out = r.stdout
    assert "runs/[/x] and [red]" in out  # the --out path
    assert "S[/]" in out  # patient ids in the most-exposed table
    assert "[red]" in out.split("Most exposed patients")[1]  # the attribute column's name
    assert "[/x]" in out or "[bold]b" in out  # its values
    # an error naming such a column keeps it
    (root / "bad.toml").write_text(config(label="[red]label"))
    r = case_world.zygote.start(["audit", "bad.toml", "--out", "runs/bad"], cwd=root,
                                logs=case_world.logs / "bad", env=env)
    assert r.returncode == 2 and "'[red]label'" in r.stderr and "Traceback" not in r.stderr


def test_help_and_hints_keep_their_brackets(case_world: World) -> None:
    env = {"HOME": str(case_world.logs), "COLUMNS": "200"}
    r = case_world.zygote.start(["datasets"], cwd=case_world.root, logs=case_world.logs / "ds",
                                env=env)
    assert r.returncode == 0, r.stderr
    assert '[cohort] dataset = "NAME"' in r.stdout and "miaudit[" in r.stdout
    r = case_world.zygote.start(["sweep", "--help"], cwd=case_world.root,
                                logs=case_world.logs / "help", env=env)
    assert "a [sweep] table" in " ".join(r.stdout.split()), r.stdout


# -- OS errors mid-run (a full disk, a read-only or forbidden folder): exit 2, then resume ------


@pytest.mark.parametrize(("code", "words"), [
    ("ENOSPC", "the disk is full: free space and run the same command again"),
    ("EROFS", "the filesystem is read-only"),
    ("EACCES", "permission denied: choose a folder you may write"),
])
def test_an_os_error_while_writing_is_one_message_and_a_rerun_completes(
    case_world: World, monkeypatch: pytest.MonkeyPatch, code: str, words: str
) -> None:
    import errno

    from typer.testing import CliRunner

    from miaudit import cli
    from miaudit.results import store

    root = case_world.root
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(case_world.logs))
    real = store.atomic_write

    def failing(path, write):  # the results fail to write: the disk filled up, say
        if Path(path).name == "summary.json":
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(path))
        return real(path, write)

    monkeypatch.setattr(store, "atomic_write", failing)
    runner = CliRunner()
    r = runner.invoke(cli.app, ["audit", "config.toml", "--out", "runs/faulty"])
    assert r.exit_code == 2, r.output
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "Traceback" not in err and err.count("error:") == 1
    assert "runs/faulty/summary.json" in " ".join(err.split()) and words in " ".join(err.split())
    monkeypatch.setattr(store, "atomic_write", real)
    r = runner.invoke(cli.app, ["audit", "config.toml", "--out", "runs/faulty"])
    assert r.exit_code == 0, r.output
    a = pd.read_parquet(root / "runs/faulty/patients.parquet")
    b = pd.read_parquet(root / "runs/existing/patients.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_an_unknown_os_error_is_a_bug_and_keeps_its_traceback() -> None:
    import errno

    from miaudit.errors import os_error_message

    assert os_error_message(OSError(errno.EIO, "I/O error", "/x")) is None
    message = os_error_message(OSError(errno.ENOSPC, "No space left on device", "/run/a.npz"))
    assert message is not None and message.startswith("/run/a.npz: No space left on device")


# -- redaction: no real identifier in any file, terminal line or error -----------------------


def _leaks(folder: Path, texts: dict[str, str], ids: set[str]) -> list[str]:
    """Where a real id shows: in a text, or in the bytes of any file under ``folder``."""
    found = [f"{name}: {i}" for name, text in texts.items() for i in ids if i in text]
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {i}" for i in ids if i.encode() in data]
    return found


def test_rerunning_with_redact_leaves_no_report_of_the_unredacted_run(case_world: World) -> None:
    root = case_world.root
    env = {"HOME": str(case_world.logs)}
    (root / "html.toml").write_text(config().replace("html = false", "html = true"))
    r = case_world.zygote.start(["audit", "html.toml", "--out", "runs/both"], cwd=root,
                                logs=case_world.logs / "clear", env=env)
    assert r.returncode == 0 and (root / "runs/both/report.html").is_file(), r.stderr
    ids = set(case_world.table.subject_id) | set(case_world.table.visit_id)
    assert _leaks(root / "runs/both", {}, ids)  # the unredacted run names them
    r = case_world.zygote.start(["audit", "config.toml", "--redact", "--out", "runs/both"],
                                cwd=root, logs=case_world.logs / "redacted", env=env)
    assert r.returncode == 0, r.stderr
    assert not (root / "runs/both/report.html").exists()
    assert not _leaks(root / "runs/both", {"stdout": r.stdout, "stderr": r.stderr}, ids)


@pytest.mark.parametrize("what", ["attribute conflict", "repeated record id"])
def test_errors_under_redact_name_pseudonyms_not_ids(case_world: World, what: str) -> None:
    root = case_world.root
    table = case_world.table.copy()
    if what == "attribute conflict":  # S0001's two visits disagree on insurance
        rows = np.flatnonzero(table.subject_id == "S0001")
        table.loc[rows[1], "insurance"] = "private" if table.loc[rows[0], "insurance"] != "private" else "public"
        real = "S0001"
    else:
        table.loc[5, "visit_id"] = table.loc[4, "visit_id"]
        real = table.loc[4, "visit_id"]
    (root / "data/odd.csv").write_bytes(csv(table))
    (root / "odd.toml").write_text(config(data="data/odd.csv"))
    plain = case_world.zygote.start(["audit", "odd.toml", "--out", "runs/odd"], cwd=root,
                                    logs=case_world.logs / "plain", env={"HOME": str(case_world.logs)})
    assert plain.returncode == 2 and real in plain.stderr, plain.stderr  # without --redact
    r = case_world.zygote.start(["audit", "odd.toml", "--redact", "--out", "runs/odd"], cwd=root,
                                logs=case_world.logs / "redact", env={"HOME": str(case_world.logs)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert real not in r.stderr + r.stdout
    assert ("'P-" if what == "attribute conflict" else "'R-") in r.stderr


def test_an_attribute_that_is_the_patient_id_is_refused(case_world: World) -> None:
    root = case_world.root
    table = case_world.table.copy()
    table["mrn"] = table["subject_id"]
    (root / "data/mrn.csv").write_bytes(csv(table))
    (root / "mrn.toml").write_text(
        config(data="data/mrn.csv", cohort_extra='exclude = ["mrn"]')
        .replace('["sex", "insurance"]', '["sex", "mrn"]')
    )
    r = case_world.zygote.start(["audit", "mrn.toml", "--redact", "--out", "runs/mrn"], cwd=root,
                                logs=case_world.logs / "mrn", env={"HOME": str(case_world.logs)})
    assert r.returncode == 2 and "attribute 'mrn' holds the patient id" in r.stderr, r.stderr
    assert not (root / "runs/mrn").exists()


@pytest.mark.parametrize(("content", "words"), [
    (b"", "key too short"), (b"ab\n", "key too short"), (b"not hex at all", "not a hex string"),
])
def test_the_key_file_is_checked_like_the_environment_variable(
    case_world: World, content: bytes, words: str
) -> None:
    home = case_world.logs / "home"
    (home / ".config/miaudit").mkdir(parents=True)
    key = home / ".config/miaudit/redaction.key"
    key.write_bytes(content)
    r = case_world.zygote.start(["audit", "config.toml", "--redact", "--out", "runs/keyed"],
                                cwd=case_world.root, logs=case_world.logs / "key",
                                env={"HOME": str(home)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{key}: {words}" in " ".join(r.stderr.split())
    assert key.read_bytes() == content  # the user's key file is never rewritten


def test_ids_keep_their_leading_zeros_and_a_bom_is_not_a_syntax_error(case_world: World) -> None:
    from miaudit.datasets.tabular import load_table_cohort

    root = case_world.root
    table = case_world.table.copy()
    # patients "7" and "007" are two patients; records "1", "01", "001" three records
    first = table.index[table.subject_id == table.subject_id.iloc[0]]
    table.loc[first, "subject_id"] = "7"
    second = table.index[table.subject_id == table.subject_id.iloc[1]]
    table.loc[second, "subject_id"] = "007"
    table["visit_id"] = [("1", "01", "001")[i] if i < 3 else f"{i:05d}" for i in range(len(table))]
    (root / "data/zeros.csv").write_bytes(csv(table))
    cohort = load_table_cohort({"path": root / "data/zeros.csv", "label": "admitted",
                                "patient_id": "subject_id", "record_id": "visit_id"})
    assert cohort.num_patients == table.subject_id.nunique() == NUM_PATIENTS
    assert {"7", "007"} <= set(cohort.patient_ids.tolist())
    assert {"1", "01", "001"} <= set(cohort.record_ids.tolist())
    (root / "bom.toml").write_bytes(b"\xef\xbb\xbf" + config().encode())
    r = case_world.zygote.start(["audit", "bom.toml", "--out", "runs/bom"], cwd=root,
                                logs=case_world.logs / "bom", env={"HOME": str(case_world.logs)})
    assert r.returncode == 0, r.stderr


def test_an_80_column_terminal_shows_every_id_whole_and_the_bars_complete(case_world: World) -> None:
    root = case_world.root
    table = case_world.table.copy()
    table["subject_id"] = "MRN-" + table["subject_id"].str[1:] + "-ABCDEFGHIJKLMNOP"
    (root / "data/long.csv").write_bytes(csv(table))
    (root / "long.toml").write_text(config(data="data/long.csv"))
    r = case_world.zygote.start(["audit", "long.toml", "--out", "runs/long"], cwd=root,
                                logs=case_world.logs / "long",
                                env={"HOME": str(case_world.logs), "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    shown = r.stdout.split("Most exposed patients")[1]
    top = pd.read_parquet(root / "runs/long/patients.parquet").sort_values(
        ["exposure", "patient"], ascending=[False, True]).head(10)["patient_id"]
    for pid in top:
        assert pid in shown, f"{pid} cut in: {shown}"
    assert "0/?" not in r.stderr and "loading cohort" in r.stderr
