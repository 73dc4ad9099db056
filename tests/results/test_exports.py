"""Redaction: no real patient or record id lands in a redacted run; pseudonyms are keyed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.audit import run_audit
from miaudit.config import parse_config
from miaudit.datasets import make_synthetic_tabular
from miaudit.results.redact import KEY_ENV, redact_ids, redaction_key

SYNTH = {"num_patients": 80, "num_features": 5, "seed": 4}


def patient_csv(folder: Path) -> tuple[Path, list[str]]:
    """A user's table with realistic, long identifiers (an MRN and a visit number)."""
    cohort, _ = make_synthetic_tabular(**SYNTH)
    frame = pd.DataFrame(cohort.inputs, columns=[f"x{i}" for i in range(cohort.inputs.shape[1])])
    frame["outcome"] = cohort.labels
    frame["mrn"] = [f"MRN{7_300_000 + 17 * p}" for p in cohort.patient]
    frame["visit"] = [f"VISIT{9_100_000 + 13 * r}" for r in range(len(frame))]
    frame["sex"] = cohort.attributes["sex"].to_numpy()
    path = folder / "visits.csv"
    frame.to_csv(path, index=False)
    return path, sorted(set(frame["mrn"])) + list(frame["visit"])


def config(redact: bool, path: Path) -> object:
    return parse_config(
        {
            "cohort": {
                "path": str(path),
                "label": "outcome",
                "patient_id": "mrn",
                "record_id": "visit",
                "attributes": ["sex"],
            },
            "model": {"family": "logistic"},
            "audit": {"models": 6, "attacks": ["lira", "loss"]},
            "report": {"redact": redact},
        }
    )


def test_redacted_run_holds_no_real_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(KEY_ENV, raising=False)
    out = tmp_path / "run"
    path, ids = patient_csv(tmp_path)
    result = run_audit(config(True, path), out)
    assert result.patients["patient_id"].str.fullmatch(r"P-[0-9a-f]{12}").all()
    blobs = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    leaked = [i for i in ids if i.encode() in blobs]
    assert not leaked, leaked[:3]
    # the key is kept outside the run directory, owner-only
    key_file = tmp_path / "home" / "miaudit" / "redaction.key"
    assert key_file.is_file() and (key_file.stat().st_mode & 0o077) == 0
    assert key_file.read_text().encode() not in blobs
    # the owner re-identifies a patient by recomputing the pseudonym with the key
    pseudonyms = set(result.patients["patient_id"])
    assert redact_ids(np.array(["MRN7300000"]), redaction_key())[0] in pseudonyms
    # without redaction the same run names the patients
    plain = run_audit(config(False, path), tmp_path / "plain")
    assert "MRN7300000" in set(plain.patients["patient_id"])


def test_pseudonyms_depend_on_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = np.array(["a", "b", "c"])
    monkeypatch.setenv(KEY_ENV, "00" * 32)
    first = redact_ids(ids, redaction_key())
    monkeypatch.setenv(KEY_ENV, "01" * 32)
    second = redact_ids(ids, redaction_key())
    assert len(set(first)) == 3 and not set(first) & set(second)
    np.testing.assert_array_equal(redact_ids(ids, bytes(32)), first)
