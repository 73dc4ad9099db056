"""Reference models from any training program (``[model] command``), once per model.

For each reference model miaudit fills the command's placeholders, runs it (through the
shell, in the folder miaudit was started from) and reads back the logits it wrote:

=================  ==========================================================================
``{train_ids}``    a text file: the model's training record ids, one per line
``{train_rows}``   a text file: the same records as 0-based rows of ``{records}``
``{records}``      a CSV of every record to score, in order: ``row, record_id, patient_id, label``
``{out}``          the model's own folder; the program writes ``{out}/logits.npy`` there
``{seed}``         the model's seed (an integer in [0, 2**31))
``{model}``        the model's global index
``{classes}``      the number of classes K
=================  ==========================================================================

``logits.npy`` is a plain array (never a pickle) of shape [N, K] or [N, V, K] in the order
of ``{records}``; it is checked for shape and finiteness. The id files live in a private
temporary folder removed after each model, so no patient id stays behind; the model's
folder (in the run directory) keeps its logits and the program's ``stdout.txt`` and
``stderr.txt``, and a model whose logits were accepted is not run again on resume. The
program sees ``OMP_NUM_THREADS`` (and the MKL, OpenBLAS and numexpr equivalents) set to its
share of the cores, and ``MIAUDIT_MODEL`` / ``MIAUDIT_SEED``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import string
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.recipes.workers import worker_count
from miaudit.seeding import recipe_seed

__all__ = ["LOGITS_FILE", "PLACEHOLDERS", "CommandRecipe", "check_template", "train_commands"]

PLACEHOLDERS = ("train_ids", "train_rows", "records", "out", "seed", "model", "classes")
LOGITS_FILE = "logits.npy"
#: Written into a model's folder once its logits are accepted; a resumed run reuses them.
DONE_FILE = ".miaudit-accepted"
_STDERR_LINES = 12
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def check_template(template: str) -> None:
    """Reject a command whose placeholders miaudit does not fill, before anything runs."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise InputError(
            f"model.command = {template!r}: {err}; write a literal brace as {{{{ or }}}}"
        ) from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise InputError(
            f"model.command: unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            f"miaudit fills {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    if "out" not in fields:
        raise InputError(
            "model.command: has no {out} placeholder, so the program cannot know where to "
            f"write {LOGITS_FILE}; add e.g. --out {{out}}"
        )


@dataclass(frozen=True)
class CommandRecipe:
    """A command template, the folder under which each model gets its own, and where it runs.

    ``work_dir`` None (a Ray task, which never touches the run directory) gives each call a
    private temporary folder: the driver keeps the finished groups' logits instead.
    ``cwd`` None runs the command in the current folder.
    """

    template: str
    work_dir: Path | None
    cwd: Path | None = None

    def model_dir(self, model: int) -> Path:
        assert self.work_dir is not None
        return self.work_dir / f"model_{model:05d}"


def _read_logits(path: Path, n: int, views: int, num_classes: int, model: int) -> np.ndarray:
    where = f"model.command: model {model} wrote {path}"
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(
            f"model.command: model {model} exited 0 but wrote no {path}; save the logits "
            f"there with numpy.save (shape [N, K] = [{n}, {num_classes}])"
        ) from None
    except ValueError as err:
        raise InputError(f"{where}, which is not a plain numeric array ({err}); save it with "
                         "numpy.save from a float array") from None
    if not np.issubdtype(z.dtype, np.number):
        raise InputError(f"{where} with dtype {z.dtype}; save a float array")
    shape = list(z.shape)
    if z.ndim == 2:
        z = z[:, None, :]
    if z.shape != (n, views, num_classes):
        expected = f"[{n}, {num_classes}]" if views == 1 else f"[{n}, {views}, {num_classes}]"
        raise InputError(
            f"{where} of shape {shape}; expected {expected} (one row per record of "
            "{records}, in its order, one column per class)"
        )
    if not np.isfinite(z).all():
        bad = int((~np.isfinite(z)).any(axis=(1, 2)).sum())
        raise InputError(f"{where} with NaN or infinite logits for {bad} record(s); fix the "
                         "program's output (use logits or clipped log-probabilities)")
    return z.astype(np.float32)


def _run_one(recipe: CommandRecipe, records_csv: Path, record_ids: np.ndarray,
             rows: np.ndarray, model: int, seed: int, views: int, num_classes: int,
             threads: int) -> np.ndarray:
    out = recipe.model_dir(model)
    if (out / DONE_FILE).is_file():
        return _read_logits(out / LOGITS_FILE, len(record_ids), views, num_classes, model)
    if out.exists():
        shutil.rmtree(out)  # an interrupted attempt of this model, in miaudit's own folder
    out.mkdir(parents=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="miaudit-ids-") as tmp:
        ids, idx = Path(tmp) / "train_ids.txt", Path(tmp) / "train_rows.txt"
        chosen = np.flatnonzero(rows)
        ids.write_text("".join(f"{r}\n" for r in record_ids[chosen]))
        idx.write_text("".join(f"{r}\n" for r in chosen))
        own_seed = recipe_seed(seed, model)
        values = {"train_ids": ids, "train_rows": idx, "records": records_csv, "out": out,
                  "seed": own_seed, "model": model, "classes": num_classes}
        command = recipe.template.format_map({k: shlex.quote(str(v)) for k, v in values.items()})
        env = {**os.environ, **dict.fromkeys(_THREAD_ENV, str(threads)),
               "MIAUDIT_MODEL": str(model), "MIAUDIT_SEED": str(own_seed)}
        with open(out / "stdout.txt", "wb") as so, open(out / "stderr.txt", "wb") as se:
            try:
                code = subprocess.run(command, shell=True, stdout=so, stderr=se, env=env,
                                      cwd=recipe.cwd, stdin=subprocess.DEVNULL,
                                      check=False).returncode
            except OSError as err:
                raise InputError(f"model.command: cannot start {command!r}: {err}") from None
    if code != 0:
        tail = (out / "stderr.txt").read_text(errors="replace").strip().splitlines()[-_STDERR_LINES:]
        shown = "\n  ".join(tail) if tail else "(nothing on stderr)"
        raise InputError(
            f"model.command: model {model} exited with status {code}: {command}\n  {shown}\n"
            f"(its output is in {out}; the models that finished are kept, so fix the program "
            "and run the audit again to continue)"
        )
    z = _read_logits(out / LOGITS_FILE, len(record_ids), views, num_classes, model)
    (out / DONE_FILE).write_text("")
    return z


def train_commands(
    recipe: CommandRecipe,
    record_ids: np.ndarray,
    patient_ids: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    models: Sequence[int],
    seed: int,
    *,
    views: int = 1,
    workers: int | None = None,
) -> np.ndarray:
    """Run the command once per model (``workers`` at a time); logits [G, N, V, K].

    ``patient_ids`` [N] is each record's patient id, for ``{records}``. On a failure the
    models already running finish (and are kept), then the first error is raised.
    """
    check_template(recipe.template)
    labels = np.asarray(labels)
    num_classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
    models = [int(m) for m in models]
    n_workers, threads = worker_count(workers, len(models))
    with tempfile.TemporaryDirectory(prefix="miaudit-records-") as tmp:
        if recipe.work_dir is None:
            recipe = replace(recipe, work_dir=Path(tmp) / "models")
        assert recipe.work_dir is not None
        recipe.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        records_csv = Path(tmp) / "records.csv"
        label_text = (["".join(str(int(v)) for v in row) for row in labels] if labels.ndim == 2
                      else [str(int(v)) for v in labels])
        lines = ["row,record_id,patient_id,label\n"] + [
            f"{i},{_csv(r)},{_csv(p)},{y}\n"
            for i, (r, p, y) in enumerate(zip(record_ids, patient_ids, label_text, strict=True))
        ]
        records_csv.write_text("".join(lines))
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(_run_one, recipe, records_csv, record_ids, keep[g], m, seed,
                                   views, num_classes, threads) for g, m in enumerate(models)]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            return np.stack([f.result() for f in futures])


def _csv(value: object) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
