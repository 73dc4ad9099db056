"""The README's Python example runs as written and shows what it claims."""

from __future__ import annotations

import contextlib
import io
import re
import tomllib
from pathlib import Path

from miaudit.config import load_config, parse_config
from miaudit.deployed import parse_deployed_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    aggregate = float(out.getvalue().splitlines()[0])
    assert 0.45 < aggregate < 0.6  # the average sits near a coin flip …
    exposure = namespace["exposure"]
    # … while the ten planted records' patients are the most exposed
    top = set(namespace["np"].argsort(-exposure)[:10].tolist())  # type: ignore[attr-defined]
    assert top == set(range(10))


def test_readme_configs_are_valid() -> None:
    """Every TOML example in the README passes the config schema (unknown keys are errors)."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        data = tomllib.loads(block)
        if "policy" in data:  # miaudit gate
            from miaudit.gate import Policy

            Policy.model_validate(data["policy"])
        elif "target" in data:  # miaudit audit-model
            parse_deployed_config(data, "README.md")
        else:
            parse_config(data, "README.md")


def test_the_examples_the_readme_names_exist_and_are_valid() -> None:
    named = set(re.findall(r"examples/[\w.]+\.toml", README.read_text(encoding="utf-8")))
    assert named
    for rel in sorted(named):
        config = load_config(README.parent / rel)
        assert config.cohort.synthetic is not None  # runs anywhere, no data needed
