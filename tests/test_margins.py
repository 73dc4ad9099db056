"""The tooling that keeps statistical tests portable across numeric paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import _margins
import pytest
from margins import PATHS, summarise

ROOT = Path(__file__).resolve().parents[1]


def test_ci_reruns_under_the_measured_compatible_path() -> None:
    """`make test-portable` must use the path whose margins tests/margins.py measured."""
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^PORTABLE_ENV := (.*)$", makefile, re.MULTILINE)
    assert line is not None
    assert dict(kv.split("=", 1) for kv in line.group(1).split()) == PATHS["compatible"]
    assert "make test-portable" in (ROOT / ".ci" / "run").read_text()


def test_checks_assert_and_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.jsonl"
    monkeypatch.setenv("MIAUDIT_MARGINS", str(out))
    _margins.at_least("a", 0.8, 0.7)
    _margins.at_most("b", 0.1, 0.1, strict=False)
    with pytest.raises(AssertionError, match=r"c: 0\.7 ≤ 0\.7"):
        _margins.at_least("c", 0.7, 0.7)
    with pytest.raises(AssertionError, match=r"d: 0\.2 > 0\.1"):
        _margins.at_most("d", 0.2, 0.1, strict=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["check"], r["value"], r["op"], r["threshold"]) for r in rows] == [
        ("a", 0.8, ">", 0.7), ("b", 0.1, "<=", 0.1), ("c", 0.7, ">", 0.7), ("d", 0.2, "<=", 0.1)
    ]


def test_summary_takes_the_worst_value_and_both_spreads() -> None:
    import pandas as pd

    rows = pd.DataFrame([
        {"test": "t::x", "check": "auc", "op": ">", "threshold": 0.7, "path": p, "seed": s, "value": v}
        for (p, s, v) in [("native", 0, 0.80), ("avx2", 0, 0.78), ("native", 1, 0.90),
                          ("avx2", 1, 0.91)]
    ] + [
        {"test": "t::x", "check": "gap", "op": "<", "threshold": 0.1, "path": "native", "seed": 0,
         "value": 0.04}
    ])
    table = summarise(rows).set_index("check")
    assert table.loc["auc", "margin"] == pytest.approx(0.78 - 0.7)
    assert table.loc["auc", "path spread"] == pytest.approx(0.02)
    assert table.loc["auc", "seed spread"] == pytest.approx(0.13)
    assert table.loc["gap", "margin"] == pytest.approx(0.06)


def test_decoys_are_ordinary_patients_of_the_same_number(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = [3, 1, 4, 1, 5]
    assert _margins.planted_or_decoy(planted, 50).tolist() == [1, 3, 4, 5]
    monkeypatch.setattr(_margins, "DECOY", True)
    decoys = _margins.planted_or_decoy(planted, 50)
    assert decoys.size == 4 and not set(decoys.tolist()) & {1, 3, 4, 5}
