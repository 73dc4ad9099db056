"""Helpers the executor, crash and hostile-input tests share: digests of files and runs."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

#: The files that carry an audit's results; compared byte for byte between runs. run.json
#: (creation time, timings) is left out; report.html is compared without its one timestamp.
RESULT_FILES = (
    "patients.parquet",
    "records.parquet",
    "patients.csv",
    "models.parquet",
    "summary.json",
    "plan.npz",
    "config.toml",
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: The report prints when its run was created: the only field that may differ.
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


def content(path: Path) -> bytes:
    """A file's bytes, with ISO timestamps masked in the HTML report."""
    data = path.read_bytes()
    return TIMESTAMP.sub(b"<time>", data) if path.suffix == ".html" else data


def result_digests(run: Path) -> dict[str, str]:
    """sha256 of every result file, score array and logits shard of a finished run."""
    names = [*RESULT_FILES]
    names += ["report.html"] if (run / "report.html").exists() else []
    names += sorted(f"scores/{p.name}" for p in (run / "scores").glob("*.npy"))
    names += sorted(f"shards/{p.name}" for p in (run / "shards").glob("models-*.npz"))
    missing = [n for n in names if not (run / n).is_file()]
    assert not missing, f"{run}: missing {missing}"
    return {n: hashlib.sha256(content(run / n)).hexdigest() for n in names}


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """(sha256 or '<dir>', mode) of everything under ``root``: to prove nothing changed."""
    state: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if path.is_symlink():
                state[rel] = (f"-> {os.readlink(path)}", mode)
            elif path.is_dir():
                state[rel] = ("<dir>", mode)
            else:
                state[rel] = (digest(path), mode)
    return state
