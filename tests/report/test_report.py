"""The HTML report: numbers recomputed from the run's files, escaping, privacy, offline rendering."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _fake_run import (
    COHORT_NAME,
    PLANTED,
    PLANTED_ATTRIBUTE,
    PLANTED_GROUP,
    REDACTION_KEY,
    THRESHOLDS,
    TOP_FRACTION,
    make_fake_run,
)
from sklearn.metrics import roc_auc_score

from miaudit.errors import InputError
from miaudit.report.charts import _step_points
from miaudit.report.html import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# --------------------------------------------------------------------------- HTML reading


class _Page(HTMLParser):
    """Tables (by id or class), figures and the headline of a report, as plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: list[dict[str, Any]] = []
        self.headline: dict[str, str] = {}
        self.headline_text = ""
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self._headline_depth = 0
        self._figure: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            key = a.get("id") or f"{a.get('class')}-{len(self.tables)}"
            self._table = self.tables.setdefault(key, [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "section" and a.get("id") == "headline":
            self.headline = {k: v or "" for k, v in a.items()}
            self._headline_depth = 1
        elif tag == "figure":
            self._figure = {"chart": a.get("data-chart"), "svg": 0, "paths": 0}
            self.figures.append(self._figure)
        elif tag == "svg" and self._figure is not None:
            self._figure["svg"] += 1
        elif tag == "path" and self._figure is not None:
            self._figure["paths"] += 1
        if self._headline_depth and tag == "section" and a.get("id") != "headline":
            self._headline_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None
        elif tag == "section" and self._headline_depth:
            self._headline_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._headline_depth:
            self.headline_text += data


def read_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


# --------------------------------------------------------------------------- oracles


def aggregate_auc(run: Path, attack: str) -> float:
    """AUC over all non-NaN (target, record) pairs, built with a plain loop over targets."""
    scores = np.load(run / "scores" / f"{attack}.npy").astype(float)
    targets = np.load(run / "scores" / "targets.npy")
    keep = np.load(run / "plan.npz")["keep"]
    patient = pd.read_parquet(run / "records.parquet")["patient"].to_numpy()
    s, y = [], []
    for t, model in enumerate(targets):
        member = [bool(keep[model, p]) for p in patient]
        for n, value in enumerate(scores[t]):
            if not math.isnan(value):
                s.append(value)
                y.append(member[n])
    return float(roc_auc_score(y, s))


def most_exposed(run: Path, k: int) -> pd.DataFrame:
    patients = pd.read_parquet(run / "patients.parquet")
    rows = [p for p in range(len(patients)) if not math.isnan(patients.at[p, "exposure"])]
    rows.sort(key=lambda p: (-patients.at[p, "exposure"], p))
    return patients.iloc[rows[:k]].reset_index(drop=True)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    return build_report(run)


@pytest.fixture(scope="module")
def html(report: Path) -> str:
    return report.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(html: str) -> _Page:
    return read_page(html)


# --------------------------------------------------------------------------- content


def test_the_report_is_written_into_the_run_owner_readable_only(run: Path, report: Path) -> None:
    assert report == run / "report.html"
    assert report.stat().st_mode & 0o777 == 0o600
    assert not [f.name for f in run.iterdir() if f.name.endswith(".tmp")]  # no temp file left


def test_the_headline_puts_the_aggregate_auc_next_to_the_exposed_patients(
    run: Path, page: _Page
) -> None:
    auc = aggregate_auc(run, "lira")
    exposure = pd.read_parquet(run / "patients.parquet")["exposure"].to_numpy()
    n90, n99 = int(np.sum(exposure >= 0.9)), int(np.sum(exposure >= 0.99))
    assert n90 > n99 >= PLANTED > 0  # the fixture has exposed patients to show
    assert float(page.headline["data-aggregate-auc"]) == pytest.approx(auc, abs=5e-5)
    assert int(page.headline["data-count-0.9"]) == n90
    assert int(page.headline["data-count-0.99"]) == n99
    text = " ".join(page.headline_text.split())
    share90 = f"{100 * n90 / len(exposure):.1f}%"
    share99 = f"{100 * n99 / len(exposure):.1f}%"
    assert (
        f"Aggregate attack AUC {auc:.2f} — yet {n90} patients ({share90}) are identified "
        f"with AUC ≥ 0.9, and {n99} ({share99}) with AUC ≥ 0.99." in text
    )


def test_a_run_without_highly_exposed_patients_says_so_from_the_patient_table(
    tmp_path: Path,
) -> None:
    run = make_fake_run(tmp_path)
    patients = pd.read_parquet(run / "patients.parquet")
    for col in ("exposure", "exposure_lira"):
        patients[col] = np.minimum(patients[col], 0.75)
    patients.to_parquet(run / "patients.parquet", index=False)
    html = build_report(run).read_text()
    page = read_page(html)
    text = " ".join(page.headline_text.split())
    assert "no patient reaches AUC ≥ 0.9: the most exposed patient has AUC 0.750" in text
    assert int(page.headline["data-count-0.9"]) == 0
    # summary.json still counts the patients above 0.9: the page shows the files' figures
    summary = json.loads((run / "summary.json").read_text())
    assert summary["attacks"]["lira"]["high_risk"]["0.9"] > 0


def test_the_attack_table_matches_the_scores(run: Path, page: _Page) -> None:
    rows = page.tables["attack-table"]
    assert [r[0] for r in rows] == ["lira (primary)", "loss"]
    patients = pd.read_parquet(run / "patients.parquet")
    for row, attack in zip(rows, ("lira", "loss"), strict=True):
        assert row[1] == f"{aggregate_auc(run, attack):.3f}"
        counts = [int(np.sum(patients[f"exposure_{attack}"] >= t)) for t in THRESHOLDS]
        # the threshold counts, then "beyond chance" (— for a run without a null), the median
        assert row[-2 - len(THRESHOLDS) : -2] == [str(c) for c in counts]


def test_the_most_exposed_table_lists_the_top_patients_in_order(run: Path, page: _Page) -> None:
    rows = page.tables["most-exposed-table"]
    expected = most_exposed(run, 25)
    assert len(rows) == 25
    for i, (row, (_, want)) in enumerate(zip(rows, expected.iterrows(), strict=True)):
        rank, pid, exposure, loss, records, sex, race, insurance, age, income = row
        assert rank == str(i + 1)
        assert pid == want["patient_id"]
        assert exposure == f"{want['exposure']:.3f} ± {want['se']:.3f}"
        assert loss == f"{want['exposure_loss']:.3f}"
        assert records == str(want["records"])
        assert (sex, race, insurance, age, income) == (
            want["attr_sex"],
            want["attr_race"],
            want["attr_insurance"],
            str(want["attr_age"]),
            want["attr_income"],
        )
    # the planted patients are all on Medicaid and lead the table
    assert all(r[7] == PLANTED_GROUP for r in rows[:PLANTED])


def test_top_patients_sets_the_table_length(run: Path, tmp_path: Path) -> None:
    out = build_report(run, out=tmp_path / "short.html", top_patients=3)
    rows = read_page(out.read_text()).tables["most-exposed-table"]
    assert [r[1] for r in rows] == list(most_exposed(run, 3)["patient_id"])


def test_the_subgroup_table_counts_the_planted_group_among_the_most_exposed(
    run: Path, page: _Page
) -> None:
    patients = pd.read_parquet(run / "patients.parquet")
    k = math.ceil(TOP_FRACTION * len(patients) - 1e-9)
    top = set(most_exposed(run, k)["patient"])
    table = next(
        rows
        for rows in page.tables.values()
        if rows and rows[0][0] in set(patients[f"attr_{PLANTED_ATTRIBUTE}"])
    )
    by_group = {r[0]: r for r in table}
    for group, members in patients.groupby(f"attr_{PLANTED_ATTRIBUTE}")["patient"]:
        observed = len(top & set(members))
        expected = k * len(members) / len(patients)
        row = by_group[group]
        assert row[1] == str(len(members))
        assert row[4] == str(observed)
        assert row[6] == f"{(observed - expected) / math.sqrt(expected):.2f}"


def test_an_over_represented_group_is_spelled_out(html: str) -> None:
    finding = re.search(r'<p class="finding">(.*?)</p>', html, re.S)
    assert finding is not None
    assert f"<strong>{PLANTED_ATTRIBUTE} = {PLANTED_GROUP}</strong> makes up" in finding.group(1)
    assert "100.0% of the most exposed 2%" in finding.group(1)


def test_every_chart_is_an_inline_svg_with_unique_ids(run: Path, html: str, page: _Page) -> None:
    attributes = [c for c in pd.read_parquet(run / "patients.parquet") if c.startswith("attr_")]
    expected = {
        "roc-linear",
        "roc-loglog",
        "survival",
        "size-exposure",
        "adequacy",
        "diagnostic",
        *(f"group-{i}" for i in range(len(attributes))),
    }
    assert {f["chart"] for f in page.figures} == expected
    for f in page.figures:
        assert f["svg"] == 1 and f["paths"] > 5, f
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'(?:url\(#|href="#)([^")]+)', html):
        assert ref in ids


def test_the_report_needs_no_network(html: str) -> None:
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered
    assert not re.search(r"\ssrc\s*=", lowered)
    assert all(ref.startswith("#") for ref in re.findall(r"url\(\s*([^)]*)\)", lowered))
    assert "default-src 'none'" in html  # and the page forbids loading anything itself


def test_everything_from_the_run_is_escaped(html: str) -> None:
    assert "synthetic &lt;ed&gt; &amp; co" in html
    assert COHORT_NAME not in html and "<ed>" not in html
    # subgroup names reach tables and chart text as typed: escaped, and "$" is not maths
    assert "<$11k" not in html and ">$50k" not in html.replace("</", "")
    assert "<td>&lt;$11k</td>" in html
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", html)
    assert any("$11-$25k" in t for t in texts) and any("&lt;$11k" in t for t in texts)


def test_the_run_details_show_config_fingerprint_and_version(run: Path, html: str) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data_fingerprint"] in html and summary["config_hash"] in html
    assert "miaudit 0.1.0" in html
    assert "top_fraction = 0.02" in html  # config.toml, as written


def test_rebuilding_gives_identical_bytes(run: Path, report: Path, tmp_path: Path) -> None:
    again = build_report(run, out=tmp_path)
    assert again == tmp_path / "report.html"
    assert again.read_bytes() == report.read_bytes()


def test_a_run_without_attributes_still_gets_a_report(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path, with_attributes=False)
    page = read_page(build_report(run).read_text())
    assert not [f for f in page.figures if str(f["chart"]).startswith("group-")]
    assert len(page.tables["most-exposed-table"]) == 25


# --------------------------------------------------------------------------- privacy


def test_a_redacted_run_shows_only_pseudonyms(tmp_path: Path) -> None:
    redacted = make_fake_run(tmp_path, seed=3, redacted=True)
    html = build_report(redacted).read_text()
    pseudonyms = pd.read_parquet(redacted / "patients.parquet")["patient_id"]
    assert "PT-" not in html and "REC-" not in html  # the fixture's real ids look like these
    shown = read_page(html).tables["most-exposed-table"]
    assert all(re.fullmatch(r"P-[0-9a-f]{12}", r[1]) for r in shown)
    assert {r[1] for r in shown} <= set(pseudonyms)
    assert REDACTION_KEY.hex() not in html and "keyed pseudonyms" in html


def test_a_run_marked_redacted_with_real_ids_is_refused_without_printing_them(
    tmp_path: Path,
) -> None:
    run = make_fake_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["redacted"] = True
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="not pseudonyms") as err:
        build_report(run)
    assert "PT-" not in str(err.value)
    assert not (run / "report.html").exists()


# --------------------------------------------------------------------------- bad input


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path)
    (run / "models.parquet").unlink()
    with pytest.raises(InputError, match=r"missing models\.parquet.*miaudit audit"):
        build_report(run)


def test_scores_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path)
    scores = np.load(run / "scores" / "loss.npy")
    np.save(run / "scores" / "loss.npy", scores[:, :-1])
    with pytest.raises(InputError, match=r"loss\.npy: shape"):
        build_report(run)


def test_not_a_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        build_report(tmp_path / "nothing")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_top_patients_must_be_a_positive_whole_number(run: Path, bad: Any) -> None:
    with pytest.raises(InputError, match="top_patients"):
        build_report(run, top_patients=bad)


# --------------------------------------------------------------------------- fast paths


def test_the_roc_step_matches_a_plain_scan() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        fpr = np.sort(np.r_[0.0, rng.choice(np.linspace(0, 1, 11), n), 1.0])
        tpr = np.maximum.accumulate(np.sort(rng.random(fpr.size)))
        grid = np.r_[rng.random(30), 0.0, 1.0, fpr[1:-1]]
        want = [
            max([t for f, t in zip(fpr, tpr, strict=True) if f <= x], default=0.0) for x in grid
        ]
        np.testing.assert_array_equal(_step_points(fpr, tpr, grid), want)


# --------------------------------------------------------------------------- in a browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (no network, no deps).

    Console errors, uncaught exceptions and failed loads all arrive as protocol events, so
    nothing the page reports is lost, unlike Chromium's own stderr log.
    """

    def __init__(self, exe: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The protocol pipe is fds 3 (commands in) and 4 (replies out) of the browser.
        shell = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self._log = open(profile.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", shell, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer over the DevTools pipe")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + 60
        while not any(
            e.get("method") == method and e.get("sessionId") == session for e in self.events
        ):
            self.events.append(self._read(deadline))

    def open(self, url: str, width: int = 1280) -> tuple[str, list[str]]:
        """Load ``url`` in a new tab; return its session and the errors it reported."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        self.send("Runtime.evaluate", {"expression": "1", "returnByValue": True}, session)
        return session, self.errors(session)

    def errors(self, session: str) -> list[str]:
        found = []
        for e in self.events:
            if e.get("sessionId") != session:
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value")) for a in p["args"]))
            elif e["method"] == "Runtime.exceptionThrown":
                found.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return found

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return result["result"].get("value")

    def screenshot(self, session: str) -> bytes:
        size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session,
        )
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not on PATH (CI installs it: apt-get install -y chromium)")
    chromium = Chromium(exe, tmp_path_factory.mktemp("chromium") / "profile")
    yield chromium
    chromium.close()


CHECK_PAGE = """JSON.stringify({
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const s = f.querySelector('svg');
    const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
    const b = s ? s.getBBox() : {width: 0, height: 0};
    return {chart: f.dataset.chart, width: r.width, height: r.height,
            drawn: [b.width, b.height], marks: s ? s.querySelectorAll('path').length : 0};
  }),
  table: (() => {
    const t = document.getElementById('most-exposed-table');
    return t ? {rows: t.tBodies[0].rows.length, height: t.getBoundingClientRect().height} : null;
  })(),
})"""


def test_the_error_probe_sees_a_broken_page(browser: Chromium, tmp_path: Path) -> None:
    # the browser check below could not fail if the probe missed errors; show it does not
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><p>x</p><script>console.error('boom'); undefinedCall();</script>"
        '<img src="missing.png">'
    )
    _, errors = browser.open(broken.as_uri())
    assert any("boom" in e for e in errors)
    assert any(e.startswith("exception") for e in errors)


def test_the_report_renders_in_chromium_without_errors(
    browser: Chromium, report: Path, run: Path
) -> None:
    session, errors = browser.open(report.as_uri())
    assert errors == []
    state = json.loads(browser.evaluate(session, CHECK_PAGE))
    attributes = [c for c in pd.read_parquet(run / "patients.parquet") if c.startswith("attr_")]
    assert len(state["charts"]) == 6 + len(attributes)
    for chart in state["charts"]:
        assert chart["width"] > 200 and chart["height"] > 100, chart
        assert min(chart["drawn"]) > 50 and chart["marks"] > 5, chart
    assert state["table"]["rows"] == 25 and state["table"]["height"] > 25 * 20

    png = browser.screenshot(session)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(png)
    from PIL import Image  # matplotlib's own dependency

    image = Image.open(ARTIFACTS / "report.png").convert("L")
    assert image.width == 1280 and image.height > 4000
    ink = np.asarray(image) < 200
    assert ink.mean() > 0.03  # text and charts, not a blank page
    assert browser.errors(session) == []


def test_the_headline_says_what_chance_gives_and_when_a_threshold_means_little(
    tmp_path: Path,
) -> None:
    """8 models of a barely-leaking logistic model: the counts ≥ 0.9 are mostly chance."""
    from miaudit.audit import run_audit
    from miaudit.config import parse_config

    config = parse_config(
        {
            "cohort": {"synthetic": {"num_patients": 300, "num_features": 6, "seed": 4}},
            "model": {"family": "logistic"},
            "training": {"epochs": 10},
            "audit": {"models": 8, "attacks": ["loss"], "thresholds": [0.8, 0.9]},
        }
    )
    out = tmp_path / "few"
    summary = run_audit(config, out).summary
    chance = summary["attacks"]["loss"]["chance"]
    page = read_page((out / "report.html").read_text())
    text = " ".join(page.headline_text.split())
    null = chance["high_risk_null"]["0.9"]
    assert f"puts {null:.1f} patients at AUC ≥ 0.9" in text
    assert f"{chance['beyond_chance']} patient" in text and "Benjamini–Hochberg" in text
    seen = summary["attacks"]["loss"]["high_risk"]["0.9"]
    assert null >= 0.5 * seen  # the design: chance explains the count
    assert "With 8 models, the count at AUC ≥ 0.9 is mostly chance" in text
    assert "models would leave fewer than one patient above it by chance" in text


def test_an_incomplete_run_is_marked_as_such(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path)
    assert 'id="incomplete"' not in build_report(run).read_text()
    data = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**data, "complete": False}))
    html = build_report(run).read_text()
    assert 'id="incomplete"' in html and "This run is not complete." in html
